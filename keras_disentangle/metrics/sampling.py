"""How good stage II is: sampled embeddings against real ones, sampled poses against bodies, and
inverse interpolation's endpoints against the stage-I reconstructions. `evaluate.py` runs them as
the metrics `sampling` and `inversion` (`metrics/suite/`):

  python evaluate.py --stage1_dir=DIR --stage2_dir=DIR [--stage2_dir=DIR ...] --data_dir=DIR \\
      --metrics=sampling,inversion [--sampling_n=1000]

* Frechet distance of embeddings, per factor: Phi(z) against the stage-I embeddings of held-out
  (test) images, with `inception.fid_from_activations` on the K-d embeddings instead of Inception
  features. Reported for the trained mapper and for a freshly initialized one (same seed, same
  recipe as `train_stage2`), so the ratio says how far training moved the distribution.
* `pose_validity`: the share of poses whose limb lengths and joint angles all lie within the
  ranges seen in the training poses. Reported for pose_decoder(Phi(z)) and, as the baseline, for
  pose_decoder(N(0, I)) without a mapper.
* Inverse interpolation endpoints: SSIM (the paper's grayscale protocol) of decode(Phi(z*)) against
  G1(x, h), and the relative inversion error `||Phi(z*) - e||^2 / ||e||^2`.
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import tensorflow as tf
from keras_disentangle import apps, configs, data
from keras_disentangle.data import geometry
from keras_disentangle.metrics import image as image_metrics
from keras_disentangle.metrics.inception import fid_from_activations
from keras_disentangle.models.mapper import build_mapper
from keras_disentangle.serving.runtime import Stage2Serving, encode_factor, sample_noise

_DEFAULTS = configs.EvalConfig()
# Joints (a, b, c): the angle at b between the bones b->a and b->c (shoulders, elbows, hips,
# knees), in OpenPose-18 indices.
JOINT_ANGLES = (
    (1, 2, 3), (2, 3, 4), (1, 5, 6), (5, 6, 7),  # right shoulder, right elbow, left shoulder, left elbow
    (1, 8, 9), (8, 9, 10), (1, 11, 12), (11, 12, 13),  # right hip, right knee, left hip, left knee
)


def embedding_frechet_distance(sampled, real) -> float:
    """Frechet distance between two sets of embeddings `(n, K)` (FID's formula on embeddings)."""
    return fid_from_activations(sampled, real)


def pose_features(keypoints) -> tuple[np.ndarray, np.ndarray]:
    """Limb lengths and joint angles of poses, NaN where a joint is missing.

    Args:
      keypoints: `(n, 18, 2)` (y, x) pixels; negative = missing.

    Returns:
      `(features, visible)`: float64 `(n, 23 + 8)`, the `geometry.LIMBS` lengths in pixels then the
      `JOINT_ANGLES` in radians; and int `(n,)` the number of present joints.
    """
    keypoints = np.asarray(keypoints, np.float64)
    present = (keypoints >= 0).all(axis=-1)
    points = np.where(present[..., None], keypoints, np.nan)
    limbs = np.array(geometry.LIMBS)
    lengths = np.linalg.norm(points[:, limbs[:, 0]] - points[:, limbs[:, 1]], axis=-1)
    angles = []
    for a, b, c in JOINT_ANGLES:
        u, v = points[:, a] - points[:, b], points[:, c] - points[:, b]
        cosine = np.sum(u * v, axis=-1) / np.maximum(np.linalg.norm(u, axis=-1) * np.linalg.norm(v, axis=-1), 1e-9)
        angles.append(np.arccos(np.clip(cosine, -1.0, 1.0)))
    return np.concatenate([lengths, np.stack(angles, axis=-1)], axis=-1), present.sum(axis=-1)


@dataclasses.dataclass(frozen=True)
class PoseRange:
    """The ranges of `pose_features` over a set of reference poses.

    Attributes:
      low, high: float64 `(31,)` per-feature min and max (NaN where no pose had the feature).
      min_visible: int. The fewest present joints of a reference pose.
    """

    low: np.ndarray
    high: np.ndarray
    min_visible: int


def pose_range(keypoints) -> PoseRange:
    """The `PoseRange` of reference poses `(n, 18, 2)` (the training poses)."""
    features, visible = pose_features(keypoints)
    with np.errstate(all="ignore"):
        return PoseRange(np.nanmin(features, axis=0), np.nanmax(features, axis=0), int(visible.min()))


def pose_validity(keypoints, reference: PoseRange) -> float:
    """The share of poses that look like the reference bodies.

    A pose is valid when it has at least `reference.min_visible` joints and every limb length and
    joint angle it has lies within the reference range. A feature that no reference pose had makes
    the poses that have it invalid.

    Args:
      keypoints: `(n, 18, 2)` (y, x) pixels; negative = missing.
      reference: PoseRange.

    Returns:
      float in [0, 1].
    """
    features, visible = pose_features(keypoints)
    with np.errstate(invalid="ignore"):
        inside = (features >= reference.low) & (features <= reference.high)
    valid = np.where(np.isnan(features), True, inside).all(axis=-1) & (visible >= reference.min_visible)
    return float(valid.mean())


def initial_mapper(cfg: configs.Config, factor: configs.Factor) -> keras.Model:
    """Phi as `train_stage2` initializes it (same seed, same build order)."""
    keras.utils.set_random_seed(cfg.train.seed)
    return build_mapper(cfg, factor)


def _sampled(mapper: keras.Model, cfg: configs.Config, factor: configs.Factor, n: int, seed: int) -> np.ndarray:
    noise = sample_noise(n, cfg.model.embedding_dim(factor), cfg.train.noise_stddev, seed)
    return mapper(noise, training=False).numpy()


def _decoded_keypoints(models: Stage2Serving, pose) -> np.ndarray:
    return models.pose_from_embedding(pose)[0].numpy()


def sampling_report(models: Stage2Serving, data_dir: str, n: int = _DEFAULTS.sampling_n,
                    seed: int = _DEFAULTS.seed) -> dict:
    """The Frechet distances and pose validity of the module docstring.

    Args:
      models: Stage2Serving with any subset of mappers.
      data_dir: str. TFRecords with a test split (held-out embeddings) and a train split (pose ranges).
      n: int. Sampled embeddings per factor (and at most this many test images).
      seed: int.

    Returns:
      dict: per factor with a mapper `{"frechet_init", "frechet_trained", "fall"}` (fall =
      init / trained); with a pose mapper also `pose_validity`: `mapper` (pose_decoder(Phi(z))),
      `no_mapper` (pose_decoder(N(0, I))), and for scale `test_poses` (real held-out poses) and
      `test_poses_autoencoded` (the same through the pose auto-encoder: the decoder's ceiling).
    """
    cfg = models.cfg
    test = data.load_examples(data_dir, cfg, split="test", limit=n)
    report: dict = {"test_images": int(len(test["image"])), "samples": n}
    for factor, mapper in models.mappers.items():
        real = np.concatenate([encode_factor(models.stage1, {k: v[i:i + 256] for k, v in test.items()}, factor).numpy()
                               for i in range(0, len(test["image"]), 256)])
        trained = _sampled(mapper, cfg, factor, n, seed)
        initial = _sampled(initial_mapper(cfg, factor), cfg, factor, n, seed)
        fd_init, fd_trained = embedding_frechet_distance(initial, real), embedding_frechet_distance(trained, real)
        report[factor.value] = {"frechet_init": fd_init, "frechet_trained": fd_trained,
                                "fall": fd_init / max(fd_trained, 1e-12)}
        if factor == configs.Factor.POSE:
            reference = pose_range(data.load_examples(data_dir, cfg, split="train")["keypoints"])
            unit = tf.random.stateless_normal([n, cfg.model.pose_embedding_dim], seed=[seed, 1])
            report["pose_validity"] = {
                "mapper": pose_validity(_decoded_keypoints(models, trained), reference),
                "no_mapper": pose_validity(_decoded_keypoints(models, unit), reference),
                "test_poses": pose_validity(test["keypoints"], reference),
                "test_poses_autoencoded": pose_validity(_decoded_keypoints(models, real), reference),
            }
    return report


def inversion_report(models: Stage2Serving, data_dir: str, n: int = _DEFAULTS.inversions,
                     invert_steps: int = _DEFAULTS.invert_steps, seed: int = _DEFAULTS.seed) -> dict:
    """Inverse interpolation's endpoints on `n` test images: SSIM and relative inversion errors.

    Returns:
      dict: `ssim_vs_reconstruction` (mean SSIM of decode(Phi(z*)) against G1(x, h)),
      `ssim_reconstruction_vs_image` (G1(x, h) against x, for scale) and per factor
      `relative_error_<factor>` (mean `||Phi(z*) - e||^2 / ||e||^2`).
    """
    test = data.load_examples(data_dir, models.cfg, split="test", limit=2 * n)
    half = len(test["image"]) // 2
    a, b = ({k: v[i * half:(i + 1) * half] for k, v in test.items()} for i in (0, 1))
    out = apps.invert_interpolate(models, a, b, steps=2, invert_steps=invert_steps, seed=seed)
    endpoints = np.concatenate([np.asarray(out["image"])[:, 0], np.asarray(out["image"])[:, -1]])
    images = np.concatenate([a["image"], b["image"]])
    keypoints = np.concatenate([a["keypoints"], b["keypoints"]])
    reconstructions = np.asarray(models.reconstruct(images, keypoints)["image"])
    report = {"images": int(len(images)),
              "ssim_vs_reconstruction": float(image_metrics.ssim(endpoints, reconstructions).mean()),
              "ssim_reconstruction_vs_image": float(image_metrics.ssim(reconstructions, images).mean())}
    report.update({k: float(np.mean(v)) for k, v in out.items() if k.startswith("relative_error_")})
    return report


# --- Is it a person? (the sampling variants of Fig. 7, `sample_check`) ------------------------

def body_region(keypoints, data_cfg: configs.DataConfig) -> np.ndarray:
    """Where a body usually is: the pixels inside the metrics body mask of at least half the given poses.

    One fixed region for every sampling variant, so that images drawn without a pose (VAE, DCGAN)
    are described exactly as the others.

    Returns:
      bool `(H, W)`.
    """
    from keras_disentangle.metrics.report import metrics_mask_radius  # noqa: PLC0415

    masks = geometry.body_mask(np.asarray(keypoints, np.float32), data_cfg.height, data_cfg.width,
                               metrics_mask_radius(data_cfg),
                               close_size=data_cfg.mask_close_size).numpy()
    return masks.mean(axis=0)[..., 0] >= 0.5


# The person-vs-chance test compares images on this grid (cells averaged): at 32x16 the per-pixel
# comparison let a third of uniform-noise images pass, 2x2 cells none (docs/training.md, sampling baselines).
PERSON_GRID_HEIGHT = 16


def region_cells(images_uint8, region: np.ndarray) -> np.ndarray:
    """The mean colours of the `PERSON_GRID_HEIGHT`-row grid cells that lie mostly inside `region`.

    Returns:
      float64 `(n, 3 * cells)` in [0, 1].
    """
    images = np.asarray(images_uint8, np.float64) / 255.0
    n, height, width, _ = images.shape
    k = max(1, height // PERSON_GRID_HEIGHT)

    def pool(x):
        return x[:, :height // k * k, :width // k * k].reshape(len(x), height // k, k, width // k, k, -1).mean((2, 4))

    inside = pool(region[None, ..., None].astype(np.float64))[0, ..., 0] >= 0.5
    return pool(images)[:, inside].reshape(n, -1)


def nearest_distance(queries: np.ndarray, references: np.ndarray) -> np.ndarray:
    """Per query row, the Euclidean distance to the nearest reference row: `(n,)`."""
    squared = (queries ** 2).sum(1)[:, None] + (references ** 2).sum(1)[None] - 2.0 * queries @ references.T
    return np.sqrt(np.maximum(squared.min(axis=1), 0.0))


def shuffle_region(images_uint8, region: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The images with the pixels inside `region` permuted at random: a body's colours without its layout."""
    out = np.array(images_uint8, copy=True)
    inside = np.flatnonzero(region.ravel())
    for image in out.reshape(len(out), -1, out.shape[-1]):
        image[inside] = image[rng.permutation(inside)]
    return out


def identity_check(samples_uint8, train: dict, test: dict, data_cfg: configs.DataConfig,
                   seed: int = _DEFAULTS.seed) -> dict:
    """The share of samples whose foreground is closer to a real person of the training set than to chance.

    A 1-nearest-neighbour test on the fixed `body_region` (the same for every sampling variant, so
    images drawn without a pose are treated alike), compared on a coarse grid (`region_cells`): a
    sample passes when its nearest training photo (any identity) is nearer than its nearest *chance*
    image, the same training photos with the pixels of the region shuffled (the same colours, no body).
    For scale: the share of real test people (identities not in training), the ceiling, and of those
    images shuffled, the floor.

    Args:
      samples_uint8: `(n, H, W, 3)` uint8.
      train, test: example dicts with `image` (in [-1, 1]) and `keypoints`.
      data_cfg: DataConfig.
      seed: int. The shuffles.

    Returns:
      dict `share`, `new_people_share`, `shuffled_share`, `training_photos`.
    """
    from keras_disentangle.data.visualize import to_uint8  # noqa: PLC0415

    rng = np.random.default_rng(seed)
    region = body_region(train["keypoints"], data_cfg)
    photos = to_uint8(train["image"])
    real = region_cells(photos, region)
    chance = region_cells(shuffle_region(photos, region, rng), region)

    def share(images) -> float:
        cells = region_cells(images, region)
        return float((nearest_distance(cells, real) < nearest_distance(cells, chance)).mean())

    people = to_uint8(test["image"])
    return {"share": share(samples_uint8), "new_people_share": share(people),
            "shuffled_share": share(shuffle_region(people, region, rng)), "training_photos": int(len(photos))}


if __name__ == "__main__":
    # This was a command until evaluate.py ran the stage-II metrics (cb88dbb); a script that still calls it
    # must fail rather than exit 0 having done nothing.
    from keras_disentangle import cli

    cli.fail("keras_disentangle.metrics.sampling", "this command was replaced: use python evaluate.py "
             "--metrics=sampling --stage1_dir=RUN --stage2_dir=RUN_FG ... --data_dir=RECORDS", cli.USAGE)
