"""What a trained model is for (paper Sec. 4.3-4.5): sampling, factor swaps, pose transfer,
interpolation and inverse interpolation.

Pure functions over a loaded `runtime.Stage2Serving` (the frozen stage-I networks plus the stage-II
mappers of any subset of factors): tensors or arrays in, float32 tensors out. The command line is
`keras_disentangle.apps.generate`; the SavedModel signatures of `export` call the same methods.

Real images enter as *examples*: dicts with `image` `(n, H, W, 3)` in [-1, 1] and `keypoints`
`(n, 18, 2)`, (y, x) pixels at H x W with -1 for a missing joint (the keys of `keras_disentangle.data`).
A pose is drawn as heatmaps from real keypoints, or decoded from a pose embedding by the frozen pose
decoder.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import keras
import numpy as np
import tensorflow as tf

from keras_disentangle import configs
from keras_disentangle.data import geometry
from keras_disentangle.serving.runtime import FACTOR_STREAMS, Stage2Serving, sample_noise

INTERPOLATIONS = ("linear", "slerp")


def parse_factors(factors: Iterable[str | configs.Factor], models: Stage2Serving) -> tuple[configs.Factor, ...]:
    """Validates factor names against the model's dataset; returns them in the model's order.

    Raises:
      ValueError: for an unknown name, an empty list, or `bg` on a dataset without a background.
    """
    names = [f.value if isinstance(f, configs.Factor) else str(f).strip() for f in factors]
    known = {f.value for f in models.factors}
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        raise ValueError(f"factors: got {names}; expected a non-empty subset of "
                         f"{', '.join(f.value for f in models.factors)}.")
    return tuple(f for f in models.factors if f.value in names)


def roi_selector(cfg: configs.Config, parts: Iterable[str]) -> np.ndarray:
    """A 0/1 mask over the FG embedding that selects the named body ROIs.

    BodyROI7 concatenates one `roi_embedding_dim` code per ROI in `geometry.ROI_NAMES` order, so
    an ROI's code is a contiguous slice.

    Args:
      cfg: Config. Must use the BodyROI7 foreground encoder.
      parts: ROI names, a subset of `geometry.ROI_NAMES` (head, upper_body, legs, left_arm,
        right_arm, left_leg, right_leg).

    Returns:
      float32 `(7 * D,)`.

    Raises:
      ValueError: for an unknown ROI name, or a WholeBody model (it has no per-ROI codes).
    """
    parts = list(parts)
    if cfg.model.fg_encoder != configs.FgEncoderKind.BODY_ROI7:
        raise ValueError(f"parts={parts}: the model's FG encoder is {cfg.model.fg_encoder.value!r}; "
                         "per-ROI swaps need the BodyROI7 encoder ('roi7').")
    unknown = [p for p in parts if p not in geometry.ROI_NAMES]
    if unknown or not parts:
        raise ValueError(f"parts: got {parts}; expected a non-empty subset of {', '.join(geometry.ROI_NAMES)}.")
    selected = np.array([name in parts for name in geometry.ROI_NAMES], np.float32)
    return np.repeat(selected, cfg.model.roi_embedding_dim)


def render(models: Stage2Serving, codes: dict, keypoints=None) -> dict:
    """Decodes appearance codes in a pose.

    Args:
      models: Stage2Serving.
      codes: dict with `fg` `(n, 7 * D)`, `bg` `(n, B)` (datasets with a background) and, when
        `keypoints` is None, `pose` `(n, P)`.
      keypoints: `(n, 18, 2)` real keypoints, or None to decode `codes["pose"]`.

    Returns:
      dict: `image` `(n, H, W, 3)` (unclipped) and the `keypoints` `(n, 18, 2)` it was drawn in.
    """
    if keypoints is None:
        keypoints, heatmaps = models.pose_from_embedding(codes["pose"])
    else:
        keypoints = tf.convert_to_tensor(keypoints, tf.float32)
        heatmaps = models.heatmaps(keypoints)
    return {"image": models.generate(codes["fg"], codes.get("bg"), heatmaps), "keypoints": keypoints}


def sample(models: Stage2Serving, n: int, seed: int, factors: Iterable[str | configs.Factor],
           real: dict | None = None) -> dict:
    """Images whose `factors` are sampled from noise and whose other factors come from `real`.

    Sampling every factor draws new people from nothing (equal to `models.sample(n, seed)`);
    sampling a subset manipulates real images (e.g. `factors=["fg"]`: new clothes, same pose and
    background).

    Args:
      models: Stage2Serving with a mapper of every sampled factor.
      n: int. Images.
      seed: int. The same seed gives the same noise (per factor, independent streams).
      factors: the sampled factors.
      real: example dict of at least `n` images; required unless every factor is sampled.

    Returns:
      dict: `image` `(n, H, W, 3)`, `keypoints` `(n, 18, 2)`, and the codes `fg`, `bg`, `pose`.

    Raises:
      ValueError: for unknown factors, a factor without mapper, or missing/too few real images.
    """
    factors = parse_factors(factors, models)
    kept = [f for f in models.factors if f not in factors]
    real_codes, keypoints = {}, None
    if kept:
        if real is None or len(real["image"]) < n:
            raise ValueError(f"real: factors {[f.value for f in kept]} come from real images; expected at least "
                             f"{n}, got {0 if real is None else len(real['image'])}.")
        real_codes = models.encode(real["image"][:n], real["keypoints"][:n])
        if configs.Factor.POSE in kept:
            keypoints = real["keypoints"][:n]
    codes = {f.value: models.sample_embedding(f, n, seed) if f in factors else real_codes[f.value]
             for f in models.factors}
    return {**render(models, codes, keypoints), **codes}


def swap_codes(models: Stage2Serving, source_codes: dict, target_codes: dict,
               factors: Iterable[str | configs.Factor], parts: Sequence[str] | None = None) -> dict:
    """The target's codes with the appearance `factors` (fg, bg) taken from the source's.

    Args:
      models: Stage2Serving.
      source_codes, target_codes: dicts of `fg` `(n, 7 * D)`, `bg` `(n, B)` (as `models.encode`).
      factors: the swapped factors; `pose` is ignored here (it is drawn from keypoints).
      parts: optional body ROI names: of the FG only these ROIs' codes are taken from the source.

    Returns:
      dict like `target_codes`.

    Raises:
      ValueError: for unknown factors or parts, or `parts` without `fg`.
    """
    factors = parse_factors(factors, models)
    codes = dict(target_codes)
    for factor in factors:
        if factor != configs.Factor.POSE:
            codes[factor.value] = source_codes[factor.value]
    if parts:
        if configs.Factor.FOREGROUND not in factors:
            raise ValueError(f"parts={list(parts)} select FG body ROIs; expected 'fg' among the factors, got "
                             f"{[f.value for f in factors]}.")
        selector = roi_selector(models.cfg, parts)
        codes["fg"] = selector * source_codes["fg"] + (1.0 - selector) * target_codes["fg"]
    return codes


def swap(models: Stage2Serving, source: dict, target: dict, factors: Iterable[str | configs.Factor],
         parts: Sequence[str] | None = None) -> tf.Tensor:
    """The target images with `factors` taken from the source images.

    Args:
      models: Stage1Serving or Stage2Serving (only the stage-I networks are used).
      source, target: example dicts of n images each.
      factors: which of fg, bg, pose to take from the source.
      parts: optional body ROI names: of the FG only these ROIs' codes are taken from the source
        (clothing-part transfer); needs `fg` in `factors` and a BodyROI7 model.

    Returns:
      float32 `(n, H, W, 3)`.

    Raises:
      ValueError: for unknown factors or parts, or `parts` without `fg`.
    """
    factors = parse_factors(factors, models)
    codes = swap_codes(models, models.encode(source["image"], source["keypoints"]),
                       models.encode(target["image"], target["keypoints"]), factors, parts)
    keypoints = source["keypoints"] if configs.Factor.POSE in factors else target["keypoints"]
    return render(models, codes, keypoints)["image"]


def transfer(models: Stage2Serving, source: dict, target_keypoints) -> tf.Tensor:
    """Pose-guided generation: the source people in the target poses.

    Returns:
      float32 `(n, H, W, 3)`.
    """
    return models.transfer(source["image"], source["keypoints"], target_keypoints)["image"]


def lerp(a, b, t) -> np.ndarray:
    """Linear interpolation `(1 - t) a + t b`.

    Args:
      a, b: `(n, K)`.
      t: `(steps,)` in [0, 1].

    Returns:
      float32 `(n, steps, K)`.
    """
    a, b, t = (np.asarray(x, np.float32) for x in (a, b, t))
    return a[:, None] + t[None, :, None] * (b - a)[:, None]


def slerp(a, b, t) -> np.ndarray:
    """Spherical interpolation: along the great circle between the directions of `a` and `b`.

    Gaussian noise concentrates on a sphere; linear paths cut through its inside, where the mapper
    saw no noise. Parallel vectors fall back to `lerp`.

    Args:
      a, b: `(n, K)`.
      t: `(steps,)` in [0, 1].

    Returns:
      float32 `(n, steps, K)`.
    """
    a, b, t = (np.asarray(x, np.float64) for x in (a, b, t))
    cosine = np.sum(a * b, axis=-1) / np.maximum(np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1), 1e-12)
    omega = np.arccos(np.clip(cosine, -1.0, 1.0))[:, None, None]
    sin_omega = np.sin(omega)
    t = t[None, :, None]
    parallel = sin_omega < 1e-6
    safe = np.where(parallel, 1.0, sin_omega)
    spherical = (np.sin((1.0 - t) * omega) * a[:, None] + np.sin(t * omega) * b[:, None]) / safe
    return np.where(parallel, lerp(a, b, t[0, :, 0]), spherical).astype(np.float32)


def _path(method: str):
    if method not in INTERPOLATIONS:
        raise ValueError(f"method: got {method!r}; expected one of {', '.join(INTERPOLATIONS)}.")
    return lerp if method == "linear" else slerp


def _map_path(mapper: keras.Model, path: np.ndarray) -> tf.Tensor:
    """Phi of every point of `(n, steps, K)` paths, flattened to `(n * steps, K)`."""
    return mapper(path.reshape(-1, path.shape[-1]), training=False)


def _render_paths(models: Stage2Serving, paths: dict, n: int, steps: int, keypoints=None) -> tf.Tensor:
    """Decodes `(n * steps, K)` codes per factor; returns images `(n, steps, H, W, 3)`."""
    image = render(models, paths, keypoints)["image"]
    return tf.reshape(image, [n, steps, *image.shape[1:]])


def interpolate(models: Stage2Serving, factor: str | configs.Factor, n: int, steps: int, seed: int,
                method: str = "linear", real: dict | None = None) -> dict:
    """Walks from one noise vector to another in the z space of `factor`; the rest stays fixed.

    The other factors come from `real` when given, else they are sampled once per row (needing
    their mappers).

    Args:
      models: Stage2Serving.
      factor: the interpolated factor.
      n: int. Rows (independent walks).
      steps: int. Images per walk, endpoints included (at least 2).
      seed: int.
      method: `linear` or `slerp` (see `slerp`).
      real: optional example dict of at least `n` images.

    Returns:
      dict: `image` `(n, steps, H, W, 3)`, `z` `(n, steps, K)`.

    Raises:
      ValueError: for an unknown factor or method, a missing mapper, or `steps < 2`.
    """
    (factor,) = parse_factors([factor], models)
    if steps < 2:
        raise ValueError(f"steps: expected at least 2 (the endpoints), got {steps}.")
    mapper = models.mapper(factor)
    stream = tf.constant([seed, len(FACTOR_STREAMS) + FACTOR_STREAMS[factor]], tf.int64)
    ends = sample_noise(2 * n, models.cfg.model.embedding_dim(factor), models.cfg.train.noise_stddev, stream).numpy()
    z = _path(method)(ends[:n], ends[n:], np.linspace(0.0, 1.0, steps))
    keypoints = None
    if real is None:
        fixed = {f.value: models.sample_embedding(f, n, seed) for f in models.factors if f != factor}
    else:
        fixed = models.encode(real["image"][:n], real["keypoints"][:n])
        if factor != configs.Factor.POSE:
            keypoints = np.repeat(np.asarray(real["keypoints"][:n], np.float32), steps, axis=0)
    paths = {name: tf.repeat(code, steps, axis=0) for name, code in fixed.items()}
    paths[factor.value] = _map_path(mapper, z)
    return {"image": _render_paths(models, paths, n, steps, keypoints), "z": z}


def invert(mapper: keras.Model, target, steps: int = 300, learning_rate: float = 0.05, stddev: float = 0.2,
           seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Finds z with Phi(z) close to `target` by Adam on `||Phi(z) - e||^2` (inverse interpolation).

    Args:
      mapper: Phi, `(batch, K)` -> `(batch, K)`, frozen.
      target: `(n, K)` real embeddings e.
      steps: int. Gradient steps.
      learning_rate: float. Adam's step size.
      stddev: float. The noise scale z was trained with (the starting point is drawn from it).
      seed: int. Seed of the starting point.

    Returns:
      `(z, error)`: float32 `(n, K)` and the final `||Phi(z) - e||^2` per example, float32 `(n,)`.
    """
    target = tf.convert_to_tensor(target, tf.float32)
    z = tf.Variable(sample_noise(tf.shape(target)[0], target.shape[-1], stddev, seed))
    optimizer = keras.optimizers.Adam(learning_rate)

    def error() -> tf.Tensor:
        return tf.reduce_sum(tf.square(mapper(z, training=False) - target), axis=-1)

    @tf.function
    def descend(count):
        for _ in tf.range(count):
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(error())
            optimizer.apply_gradients([(tape.gradient(loss, z), z)])

    descend(tf.constant(steps))
    return z.numpy(), error().numpy()


def invert_interpolate(models: Stage2Serving, a: dict, b: dict, steps: int, invert_steps: int = 300,
                       seed: int = 0) -> dict:
    """Inverse interpolation between real images: encode, invert every mapper, walk z, decode.

    Each image's embeddings e are inverted into z (`invert`); images along the straight line
    between the two z are decoded. A factor without a mapper is interpolated linearly between the
    real embeddings instead. The pose is decoded from the (sampled) pose embedding.

    Args:
      models: Stage2Serving.
      a, b: example dicts of n images each (the endpoints).
      steps: int. Images per walk, endpoints included (at least 2).
      invert_steps: int. Gradient steps of each inversion.
      seed: int. Seed of the inversions' starting points.

    Returns:
      dict: `image` `(n, steps, H, W, 3)`; `error_<factor>` `(2, n)` the final `||Phi(z) - e||^2`
      of a and b; `relative_error_<factor>` `(2, n)` the same over `||e||^2`.

    Raises:
      ValueError: if `steps < 2`.
    """
    if steps < 2:
        raise ValueError(f"steps: expected at least 2 (the endpoints), got {steps}.")
    n = len(a["image"])
    codes = [models.encode(x["image"], x["keypoints"]) for x in (a, b)]
    t = np.linspace(0.0, 1.0, steps)
    paths, out = {}, {}
    for factor in models.factors:
        name = factor.value
        ends = np.concatenate([codes[0][name].numpy(), codes[1][name].numpy()])
        mapper = models.mappers.get(factor)
        if mapper is None:
            paths[name] = lerp(ends[:n], ends[n:], t).reshape(n * steps, -1)
            continue
        z, error = invert(mapper, ends, invert_steps, stddev=models.cfg.train.noise_stddev, seed=seed)
        out[f"error_{name}"] = error.reshape(2, n)
        out[f"relative_error_{name}"] = (error / np.maximum(np.sum(ends ** 2, axis=-1), 1e-12)).reshape(2, n)
        paths[name] = _map_path(mapper, lerp(z[:n], z[n:], t))
    out["image"] = _render_paths(models, paths, n, steps)
    return out
