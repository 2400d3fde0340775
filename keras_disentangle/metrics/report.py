"""What `evaluate.py` runs: the image sets, the metric registry, the JSON report and its table.

Two sources of images:
  * a stage-I run (`model_images`): `task="reconstruct"` re-generates the first n images of the
    split in their own pose; `task="transfer"` generates the first n pairs of the split's pairs
    file (source appearance, target pose) and compares them with the target photos;
  * two folders of PNG/JPEG files matched by file name (`folder_images`), so any method's outputs
    can be scored with exactly this protocol.

Image metrics (any source): ssim, mask_ssim, is, mask_is, fid. Model metrics (a run only):
gt_swap, leakage, saliency. Every metric returns a dict with at least `value` (None when the
metric is a table or a picture), `n` and `protocol`; `std` where it has one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import os
import pathlib
from typing import Callable, Iterable

import keras
import numpy as np
import tensorflow as tf
from PIL import Image

from keras_disentangle import configs, data, geometry, progress
from keras_disentangle.metrics import image as image_metrics
from keras_disentangle.metrics import inception

TASKS = ("reconstruct", "transfer", "sample")
IMAGE_METRICS = ("ssim", "mask_ssim", "is", "mask_is", "fid")
MODEL_METRICS = ("gt_swap", "leakage", "saliency")
METRICS = IMAGE_METRICS + MODEL_METRICS
MASK_SOURCES = ("target", "source")
IS_SPLITS = 10
# The metrics masks of the original evaluation: limb disks of radius 4 at the dataset's stored size.
METRIC_MASK_RADIUS = 4
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
# Images per SSIM progress-bar step.
_SSIM_CHUNK = 64


@dataclasses.dataclass(frozen=True)
class EvalOptions:
    """The evaluation settings (one per evaluate.py flag).

    Attributes:
      metrics: tuple of str. Names from `METRICS`.
      task: str. `reconstruct`, `transfer` or `sample` (see the module docstring).
      n: int. Images (or pairs) to score.
      seed: int. Seed of every random draw (gt_swap pairs, Hutchinson tangents).
      split: str. Records split.
      batch_size: int. Images per model call.
      ssim_protocol: str. `original` (the paper's) or `gaussian` (Pose-Transfer toolkit).
      mask_from: str. Whose body mask mask-SSIM / mask-IS apply: `target` (correct) or `source`
        (what the original code did).
      inception_weights: str or None. Keras InceptionV3 ImageNet weights (.h5) for IS.
      fid_weights: str or None. The FID Inception .npz (`python -m keras_disentangle.metrics.fid_weights`).
      cache_dir: str or None. Where FID real statistics are cached (None: not cached).
      out_dir: str. Where PNG grids are written.
      leakage_n: int. Images the leakage maps are computed on.
      leakage_projections: int. 0: exact Jacobian norms; K: Hutchinson with K tangents.
      saliency_n: int. Images in the saliency grid.
    """

    metrics: tuple[str, ...]
    task: str = "transfer"
    n: int = 200
    seed: int = 0
    split: str = "test"
    batch_size: int = 32
    ssim_protocol: str = "original"
    mask_from: str = "target"
    inception_weights: str | None = None
    fid_weights: str | None = None
    cache_dir: str | None = None
    out_dir: str = "."
    leakage_n: int = 8
    leakage_projections: int = 0
    saliency_n: int = 8

    def validate(self, folders: bool, stage2: bool = False) -> None:
        """Checks the settings before anything heavy runs.

        Args:
          folders: bool. Whether images come from `--generated_dir/--target_dir` (no model).
          stage2: bool. Whether stage-II runs are loaded (`--stage2_dir`).

        Raises:
          ValueError: one line naming the setting, the value and what is expected.
        """
        unknown = [m for m in self.metrics if m not in METRICS]
        if unknown or not self.metrics:
            raise ValueError(f"--metrics: unknown or empty {','.join(unknown)!r}; expected a comma-separated "
                             f"subset of {','.join(METRICS)}.")
        if self.task not in TASKS:
            raise ValueError(f"--task={self.task}: expected one of {', '.join(TASKS)}.")
        if self.ssim_protocol not in image_metrics.SSIM_PROTOCOLS:
            raise ValueError(f"--ssim_protocol={self.ssim_protocol}: expected one of "
                             f"{', '.join(image_metrics.SSIM_PROTOCOLS)}.")
        if self.mask_from not in MASK_SOURCES:
            raise ValueError(f"--mask_from={self.mask_from}: expected one of {', '.join(MASK_SOURCES)}.")
        for name in ("n", "batch_size", "leakage_n", "saliency_n"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name}={getattr(self, name)}: expected a positive integer.")
        if self.leakage_projections < 0:
            raise ValueError(f"--leakage_projections={self.leakage_projections}: expected 0 (exact) or more.")
        if {"is", "mask_is"} & set(self.metrics):
            if self.n < IS_SPLITS:
                raise ValueError(f"--n={self.n}: IS uses {IS_SPLITS} splits, so it needs n >= {IS_SPLITS}.")
            if not self.inception_weights or not os.path.isfile(self.inception_weights):
                raise ValueError(
                    f"--inception_weights={self.inception_weights or ''}: IS needs the Keras InceptionV3 ImageNet "
                    f"file {inception.KERAS_INCEPTION_WEIGHTS}; on a machine with internet run "
                    "`python -c \"import keras; keras.applications.InceptionV3(weights='imagenet')\"` and copy "
                    "it from ~/.keras/models/.")
        if "fid" in self.metrics:
            if self.n < 2:
                raise ValueError(f"--n={self.n}: FID needs at least 2 images.")
            if not self.fid_weights or not os.path.isfile(self.fid_weights):
                raise ValueError(
                    f"--fid_weights={self.fid_weights or ''}: FID needs the 2015 Inception weights; create them "
                    "with `python -m keras_disentangle.metrics.fid_weights --out=fid_inception_2015.npz`.")
        model_only = [m for m in self.metrics if m in MODEL_METRICS]
        if folders and model_only:
            raise ValueError(f"--metrics={','.join(model_only)} need a model (--logdir); with "
                             "--generated_dir/--target_dir only ssim, mask_ssim, is, mask_is and fid run.")
        if self.task == "sample":
            if folders or not stage2:
                raise ValueError("--task=sample: stage-II sampling evaluation needs --logdir and --stage2_dir "
                                 "(one stage-II run per factor).")
            paired = [m for m in self.metrics if m in ("ssim", "mask_ssim")]
            if paired:
                raise ValueError(f"--metrics={','.join(paired)}: sampled images have no target photo; with "
                                 "--task=sample use is, mask_is, fid and the model metrics.")


@dataclasses.dataclass
class ImageSet:
    """Generated images and what they are compared with.

    Attributes:
      generated: uint8 `(n, H, W, 3)`.
      targets: uint8 `(n, H, W, 3)`, the real photos each generated image should match; None for
        sampled images.
      masks: dict `target` / `source` -> float32 `(n, H, W, 1)` {0, 1} metrics body masks (either
        may be absent, e.g. for folders without masks).
      pairs: list of [source name, target name] (empty for sampled images).
      description: str. Where the images come from.
    """

    generated: np.ndarray
    targets: np.ndarray
    masks: dict
    pairs: list
    description: str


def progress_bar(total: int, unit: str = "batch") -> Callable[[Iterable], Iterable]:
    """A wrapper that shows progress over an iterable of `total` items (`keras_disentangle.progress`:
    a bar on a terminal, a plain line every 30 s in a log)."""
    def wrap(iterable):
        shown = progress.Progress(total, unit=unit)
        for i, item in enumerate(iterable):
            yield item
            shown.update(i + 1)
    return wrap


def metrics_mask_radius(data_cfg: configs.DataConfig) -> int:
    """Radius 4 at the stored size (`METRIC_MASK_RADIUS`), scaled to the model's size, at least 1."""
    return max(1, round(METRIC_MASK_RADIUS * data_cfg.height / data_cfg.stored_height))


def _metrics_masks(data_cfg: configs.DataConfig, keypoints: np.ndarray) -> np.ndarray:
    return geometry.body_mask(keypoints, data_cfg.height, data_cfg.width, metrics_mask_radius(data_cfg),
                              close_size=data_cfg.mask_close_size).numpy()


def _names(batch: dict) -> list[str]:
    return [name.decode() if isinstance(name, bytes) else str(name) for name in batch["name"]]


def model_images(cfg: configs.Config, stage1, data_dir: str, options: EvalOptions) -> ImageSet:
    """Generates the images of `options.task` with a stage-I run.

    Args:
      cfg: Config of the run.
      stage1: Stage1 with restored weights.
      data_dir: str. TFRecords directory.
      options: EvalOptions. Uses `task`, `n`, `split`, `batch_size`.

    Returns:
      ImageSet. Generated with the source's appearance codes in the target's pose heatmaps.

    Raises:
      ValueError: if the split has no records or pairs.
    """
    from keras_disentangle.export import Stage1Serving  # noqa: PLC0415

    serving = Stage1Serving(cfg, stage1)
    if options.task == "reconstruct":
        batches = ((batch, batch) for batch in data.eval_dataset(data_dir, cfg, options.split, options.batch_size))
        description = f"reconstruction of the first {options.n} '{options.split}' images, in their own pose"
    else:
        batches = iter(data.pairs_dataset(data_dir, cfg, options.split, options.batch_size))
        description = (f"pose transfer on the first {options.n} pairs of {options.split}-pairs "
                       "(source appearance, target pose; compared with the target photo)")
    parts: dict[str, list] = {k: [] for k in ("generated", "targets", "target", "source", "pairs")}
    count = 0
    bar = progress.Progress(options.n, unit="image")
    for source, target in batches:
        take = min(options.n - count, len(source["image"]))
        source = {k: v[:take] for k, v in source.items()}
        target = {k: v[:take] for k, v in target.items()}
        codes = serving.encode(source["image"], source["keypoints"])
        generated = serving.generate(codes["fg"], codes.get("bg"), target["heatmaps"])
        parts["generated"].append(image_metrics.to_uint8(np.asarray(generated)))
        parts["targets"].append(image_metrics.to_uint8(target["image"].numpy()))
        parts["target"].append(_metrics_masks(cfg.data, target["keypoints"]))
        parts["source"].append(_metrics_masks(cfg.data, source["keypoints"]))
        parts["pairs"] += [[s, t] for s, t in zip(_names(source), _names(target))]
        count += take
        bar.update(count)
        if count >= options.n:
            break
    if not count:
        raise ValueError(f"data_dir: no '{options.split}' examples to score in {data_dir!r}.")
    return ImageSet(np.concatenate(parts["generated"]), np.concatenate(parts["targets"]),
                    {k: np.concatenate(parts[k]) for k in MASK_SOURCES}, parts["pairs"], description)


def sample_images(serving, options: EvalOptions) -> ImageSet:
    """`options.n` images with every factor sampled by stage II (`Stage2Serving.sample`).

    Batch i is drawn with seed `options.seed + i`, so a run is reproducible for a given batch size.
    The `target` masks are the metrics body masks of the sampled (decoded) poses.
    """
    generated, masks = [], []
    starts = range(0, options.n, options.batch_size)
    for i, start in enumerate(progress_bar(len(starts))(starts)):
        drawn = serving.sample(min(options.batch_size, options.n - start), options.seed + i)
        generated.append(image_metrics.to_uint8(np.asarray(drawn["image"])))
        masks.append(_metrics_masks(serving.cfg.data, drawn["keypoints"]))
    return ImageSet(np.concatenate(generated), None, {"target": np.concatenate(masks)}, [],
                    f"{options.n} people with every factor sampled by stage II (batch i of {options.batch_size} "
                    f"drawn with seed {options.seed} + i)")


def _read_image(path: pathlib.Path, mode: str) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert(mode))


def folder_images(generated_dir: str, target_dir: str, mask_dir: str | None = None,
                  n: int | None = None) -> ImageSet:
    """Pairs the image files of two folders by file name (sorted), with optional mask files.

    Args:
      generated_dir: str. PNG/JPEG files of generated images.
      target_dir: str. Files of the same names holding the targets (same size as each generated one).
      mask_dir: str or None. Files of the same names (any image, nonzero = body) for mask-SSIM and
        mask-IS; they are used as the `target` masks.
      n: int or None. Score only the first n names.

    Returns:
      ImageSet with `pairs` [name, name].

    Raises:
      ValueError: for a missing folder or file, no images, or images of different sizes.
    """
    for flag, folder in (("--generated_dir", generated_dir), ("--target_dir", target_dir), ("--mask_dir", mask_dir)):
        if folder is not None and not os.path.isdir(folder):
            raise ValueError(f"{flag}={folder}: not a directory.")
    names = sorted(p.name for p in pathlib.Path(generated_dir).iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES)
    if not names:
        raise ValueError(f"--generated_dir={generated_dir}: no .png/.jpg files.")
    names = names[:n]
    generated, targets, masks = [], [], []
    for name in progress_bar(len(names), "image")(names):
        for flag, folder in (("--target_dir", target_dir), ("--mask_dir", mask_dir)):
            if folder is not None and not (pathlib.Path(folder) / name).is_file():
                raise ValueError(f"{flag}={folder}: no file {name!r} to match {generated_dir}/{name}.")
        generated.append(_read_image(pathlib.Path(generated_dir) / name, "RGB"))
        targets.append(_read_image(pathlib.Path(target_dir) / name, "RGB"))
        if generated[-1].shape != targets[-1].shape or generated[-1].shape != generated[0].shape:
            raise ValueError(f"{name}: generated {generated[-1].shape} and target {targets[-1].shape} must have "
                             f"the same size, that of the first image {generated[0].shape}.")
        if mask_dir is not None:
            masks.append((_read_image(pathlib.Path(mask_dir) / name, "L") > 0)[..., np.newaxis].astype(np.float32))
    return ImageSet(np.stack(generated), np.stack(targets), {"target": np.stack(masks)} if masks else {},
                    [[name, name] for name in names], f"{len(names)} files of {generated_dir} against {target_dir}")


# --- Image metrics ---------------------------------------------------------------------------

def _mean_std(values: np.ndarray) -> dict:
    return {"value": float(np.mean(values)), "std": float(np.std(values)), "n": int(len(values))}


def _chunked(fn: Callable, *arrays) -> np.ndarray:
    starts = range(0, len(arrays[0]), _SSIM_CHUNK)
    return np.concatenate([fn(*(a[s:s + _SSIM_CHUNK] for a in arrays))
                           for s in progress_bar(len(starts))(starts)])


def _mask(images: ImageSet, options: EvalOptions) -> np.ndarray:
    if options.mask_from not in images.masks:
        raise ValueError(f"--mask_from={options.mask_from}: no {options.mask_from} masks for these images "
                         "(folders: pass --mask_dir; the source's masks exist only with a model).")
    return images.masks[options.mask_from]


_MASK_NOTE = {"target": "masks from the target's pose (correct)",
              "source": "masks from the source's pose (the original code's bug, reproduces its numbers)"}


def ssim_metric(images: ImageSet, options: EvalOptions) -> dict:
    """Mean and std of per-image SSIM (`metrics.image.ssim`) under `options.ssim_protocol`."""
    scores = _chunked(lambda g, t: image_metrics.ssim(g, t, options.ssim_protocol), images.generated, images.targets)
    return {**_mean_std(scores), "protocol": f"ssim protocol '{options.ssim_protocol}'"}


def mask_ssim_metric(images: ImageSet, options: EvalOptions) -> dict:
    """Mean and std of per-image mask-SSIM, masks chosen by `options.mask_from`."""
    masks = _mask(images, options)
    scores = _chunked(lambda g, t, m: image_metrics.mask_ssim(g, t, m, options.ssim_protocol),
                      images.generated, images.targets, masks)
    return {**_mean_std(scores),
            "protocol": f"ssim protocol '{options.ssim_protocol}'; {_MASK_NOTE[options.mask_from]}"}


def masked_images(images: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """uint8(mask * image), as the original mask-IS fed the classifier."""
    return (np.asarray(masks, np.float64) * images).astype(np.uint8)


def inception_score(images_uint8: np.ndarray, classifier_logits: Callable[[np.ndarray], np.ndarray]) -> dict:
    """IS over `IS_SPLITS` folds from a logits function (uint8 images -> `(n, classes)` logits)."""
    mean, std = inception.inception_score_from_logits(classifier_logits(images_uint8), splits=IS_SPLITS)
    return {"value": mean, "std": std, "n": int(len(images_uint8))}


def _keras_classifier(options: EvalOptions) -> Callable[[np.ndarray], np.ndarray]:
    model = inception.load_inception_classifier(options.inception_weights)
    return lambda images: inception.classifier_logits(model, images, batch_size=options.batch_size)


_IS_NOTE = (f"Keras InceptionV3 ImageNet logits, {IS_SPLITS} splits, mean +- std over splits; the paper used "
            "the 2015 TF graph's 1008-way softmax, so compare only runs of the same network")


def is_metric(images: ImageSet, options: EvalOptions) -> dict:
    return {**inception_score(images.generated, _keras_classifier(options)), "protocol": _IS_NOTE}


def mask_is_metric(images: ImageSet, options: EvalOptions) -> dict:
    masked = masked_images(images.generated, _mask(images, options))
    return {**inception_score(masked, _keras_classifier(options)),
            "protocol": f"{_IS_NOTE}; generated images times the body mask, {_MASK_NOTE[options.mask_from]}"}


def feature_statistics(features: np.ndarray) -> dict:
    """Mean and unbiased covariance (float64) of `(n, dim)` features."""
    features = np.asarray(features, np.float64)
    return {"mu": features.mean(axis=0), "sigma": np.cov(features, rowvar=False), "n": len(features)}


def cached_statistics(cache_dir: str | None, key: dict, compute: Callable[[], np.ndarray]) -> tuple[dict, str | None]:
    """Feature statistics of the real set, read from or written to `cache_dir` under a hash of `key`.

    Args:
      cache_dir: str or None. None computes without caching.
      key: dict. JSON-serializable description of the real set (dataset, split, n, size, ...).
      compute: () -> `(n, dim)` features, called on a cache miss.

    Returns:
      (statistics {"mu", "sigma", "n"}, path of the cache file or None).
    """
    if cache_dir is None:
        return feature_statistics(compute()), None
    digest = hashlib.md5(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    label = "-".join(str(key[k]) for k in ("dataset", "split", "n") if k in key)
    path = os.path.join(cache_dir, f"fid-real-{label}-{digest}.npz")
    if os.path.isfile(path):
        with np.load(path) as cached:
            return {"mu": cached["mu"], "sigma": cached["sigma"], "n": int(cached["n"])}, path
    stats = feature_statistics(compute())
    os.makedirs(cache_dir, exist_ok=True)
    np.savez(path, key=json.dumps(key, sort_keys=True), **stats)
    return stats, path


def fid_value(generated_features: np.ndarray, real_stats: dict) -> float:
    """FID between generated features and real statistics."""
    fake = feature_statistics(generated_features)
    return inception.frechet_distance(fake["mu"], fake["sigma"], real_stats["mu"], real_stats["sigma"])


def fid_metric(images: ImageSet, options: EvalOptions, real_images: Callable[[], np.ndarray],
               real_key: dict) -> dict:
    """FID of the generated images against a real set, whose statistics are cached by `real_key`."""
    from keras_disentangle.metrics import fid_weights  # noqa: PLC0415 (builds a 24M-parameter network)

    model = fid_weights.build_fid_inception(options.fid_weights)
    features = lambda batch: fid_weights.fid_features(model, batch, batch_size=options.batch_size)  # noqa: E731
    real_stats, cache = cached_statistics(options.cache_dir, real_key, lambda: features(real_images()))
    return {"value": fid_value(features(images.generated), real_stats), "n": int(len(images.generated)),
            "n_real": int(real_stats["n"]), "real_statistics": cache,
            "protocol": ("pool-3 features of the 2015 TF Inception graph (ported, legacy bilinear resize to 299); "
                         "FID is biased upwards for small n: compare equal n only")}


# --- Report ----------------------------------------------------------------------------------

def versions() -> dict:
    """Library versions that change the numbers."""
    import platform  # noqa: PLC0415

    import scipy  # noqa: PLC0415
    import skimage  # noqa: PLC0415

    import keras_disentangle  # noqa: PLC0415

    return {"keras_disentangle": keras_disentangle.__version__, "tensorflow": tf.__version__,
            "keras": keras.__version__, "numpy": np.__version__, "scipy": scipy.__version__,
            "scikit-image": skimage.__version__, "python": platform.python_version()}


def _number(value, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def format_table(report: dict) -> str:
    """The report as plain-text tables: one line per scalar metric, then gt_swap and leakage."""
    lines = [f"\n{report['description']}", f"{'metric':<11}{'value':>9}{'std':>9}{'n':>7}  protocol"]
    for name, result in report["metrics"].items():
        if result.get("value") is not None:
            lines.append(f"{name:<11}{_number(result['value']):>9}{_number(result.get('std')):>9}"
                         f"{result['n']:>7}  {result['protocol']}")
    if "gt_swap" in report["metrics"]:
        result = report["metrics"]["gt_swap"]
        lines += [f"\ngt_swap on {result['n']} pairs (lower L1 is better, higher SSIM is better)",
                  f"{'task':<24}{'output':<16}{'SSIM':>8}{'L1':>8}{'region L1':>11}"]
        for task, by_output in result["tasks"].items():
            for output, m in by_output.items():
                lines.append(f"{task:<24}{output:<16}" + "".join(
                    f"{_number(m[k]['mean'] if k in m else None):>{w}}"
                    for k, w in (("ssim", 8), ("l1", 8), ("region_l1", 11))))
    if "leakage" in report["metrics"]:
        result = report["metrics"]["leakage"]
        lines += [f"\nleakage on {result['n']} images: share of each code's influence inside its own region "
                  "(higher is better; area = the share of an evenly spread code)",
                  f"{'code':<12}{'share':>8}{'std':>8}{'area':>8}{'n':>5}"]
        for code, m in result["codes"].items():
            lines.append(f"{code:<12}{_number(m['share']):>8}{_number(m['share_std']):>8}{_number(m['area']):>8}"
                         f"{m['n']:>5}")
    pictures = [r["png"] for r in report["metrics"].values() if r.get("png")]
    if pictures:
        lines += [""] + [f"Wrote {path}" for path in pictures]
    return "\n".join(lines)


# --- Model metrics ---------------------------------------------------------------------------

def _first_pairs(cfg: configs.Config, data_dir: str, options: EvalOptions, count: int) -> tuple[dict, dict]:
    """The first `count` (source, target) numpy batches of the task, as `model_images` draws them."""

    if options.task == "reconstruct":
        batch = data.load_examples(data_dir, cfg, options.split, count)
        return batch, batch
    source, target = next(iter(data.pairs_dataset(data_dir, cfg, options.split, count)))
    return {k: v.numpy() for k, v in source.items()}, {k: v.numpy() for k, v in target.items()}


def _write_grid(path: str, rows: list, titles: list[str], height: int) -> str:
    from keras_disentangle import visualize  # noqa: PLC0415

    # Tiny-scale images (64 x 32) are too small to read at 1:1, and the titles need the width.
    scale = max(1, 128 // height)
    rows = [[visualize.upscale(cell, scale) for cell in row] for row in rows]
    visualize.save_png(path, visualize.image_grid(rows, column_titles=titles))
    return path


def gt_swap_metric(cfg: configs.Config, stage1, data_dir: str, options: EvalOptions, serving=None) -> dict:
    """`metrics.disentangle.gt_swap` on the run, with the pose auto-encoder check, and the sampled-factor
    checks when `serving` (a `Stage2Serving`) has FG (and BG) mappers."""
    from keras_disentangle.export import Stage1Serving  # noqa: PLC0415
    from keras_disentangle.metrics import disentangle  # noqa: PLC0415

    stage2 = serving
    serving = serving or Stage1Serving(cfg, stage1)
    # Pairs are drawn among up to 4n images so that most images appear in a few pairs at most.
    examples = data.load_examples(data_dir, cfg, options.split, 4 * options.n)

    def encode(batch):
        codes = serving.encode(tf.constant(batch["image"]), tf.constant(batch["keypoints"]))
        return {"fg": codes["fg"], "bg": codes.get("bg")}

    def decode_pose(pose_vectors):
        decoded = stage1.pose_decoder(stage1.pose_encoder(pose_vectors, training=False), training=False)
        return geometry.heatmaps_from_pose_vector(decoded, cfg.data.height, cfg.data.width, cfg.data.heatmap_radius)

    def generate(codes, heatmaps):
        bg = None if codes["bg"] is None else tf.convert_to_tensor(codes["bg"])
        return serving.generate(tf.convert_to_tensor(codes["fg"]), bg, tf.convert_to_tensor(heatmaps))

    sample = None
    if stage2 is not None and configs.Factor.FOREGROUND in stage2.mappers:
        draws = itertools.count(options.seed)

        def sample(factor, count):
            return stage2.sample_embedding(factor, count, next(draws))

    steps = range(0, options.n, options.batch_size)
    result = disentangle.gt_swap(
        examples, generate, encode, cfg.data,
        n=options.n, seed=options.seed, batch_size=options.batch_size, progress=progress_bar(len(steps)),
        decode_pose=decode_pose, sample=sample)
    result["value"] = None
    result["protocol"] = (
        f"'{options.split}' split, pairs with different identity and background, seed {options.seed}; SSIM: "
        "gaussian protocol on colour; L1 in [0, 1] units; region = the pose's body mask (fg_swap, pose_transfer), "
        "its complement (bg_swap), the whole image (reconstruction); pose_transfer_embedded decodes the pose "
        "through the pose auto-encoder; sampled_fg/bg (stage II) score region L1 where the sampled factor must "
        "not change the image, next to the reconstruction's")
    return result


def leakage_metric(cfg: configs.Config, stage1, data_dir: str, options: EvalOptions) -> dict:
    """Jacobian influence maps of each appearance code on the task's first `leakage_n` images."""
    from keras_disentangle.metrics import leakage  # noqa: PLC0415
    from keras_disentangle.models.stage1 import appearance_embedding  # noqa: PLC0415
    from keras_disentangle.training.steps import encoder_inputs  # noqa: PLC0415

    source, target = _first_pairs(cfg, data_dir, options, options.leakage_n)
    embeddings = np.asarray(appearance_embedding(stage1.appearance_encoder(encoder_inputs(source), training=False)))

    def generate(embedding, heatmaps):
        return stage1.generator({"appearance_embedding": embedding, "heatmaps": heatmaps}, training=False)

    count = len(embeddings)
    summary, arrays = leakage.measure_leakage(
        cfg, generate, embeddings, target["heatmaps"], target["keypoints"], target["body_mask"],
        projections=options.leakage_projections, seed=options.seed, progress=progress_bar(count, "image"))
    generated = np.asarray(generate(tf.constant(embeddings), tf.constant(target["heatmaps"])))
    rows = leakage.leakage_rows(generated, arrays["maps"], arrays["regions"], arrays["defined"])
    titles = ["output"] + [name for name, _ in leakage.code_blocks(cfg)]
    path = _write_grid(os.path.join(options.out_dir, "leakage.png"), rows, titles, cfg.data.height)
    estimator = ("exact (one forward-mode JVP per code dimension)" if not options.leakage_projections else
                 f"Hutchinson, {options.leakage_projections} Gaussian JVP tangents per code block")
    return {**summary, "value": summary["mean_share"], "std": None, "n": count, "png": path,
            "estimator": estimator,
            "protocol": (f"share of the per-pixel Jacobian Frobenius norm inside the code's region ({estimator}); "
                         "FG code: its ROI box in the target pose; BG code: outside the target's body mask")}


def saliency_metric(cfg: configs.Config, stage1, data_dir: str, options: EvalOptions) -> dict:
    """Saliency and Grad-CAM grid of D1 and the encoders on the task's first `saliency_n` source images."""
    from keras_disentangle.metrics import saliency  # noqa: PLC0415

    source, _ = _first_pairs(cfg, data_dir, options, options.saliency_n)
    summary, rows, titles = saliency.saliency_report(cfg, stage1, source, progress=progress_bar)
    path = _write_grid(os.path.join(options.out_dir, "saliency.png"), rows, titles, cfg.data.height)
    return {**summary, "value": None, "png": path,
            "protocol": ("vanilla gradient saliency (max |grad| over channels) and Grad-CAM (D1: last LeakyReLU; "
                         "encoders: the masked first-block features), each scaled to [0, 1] per image; "
                         "body_share = mean share of a map inside the body mask")}




def evaluate(options: EvalOptions, *, images: ImageSet | None, real_images: Callable[[], np.ndarray], real_key: dict,
             cfg: configs.Config | None = None, stage1=None, data_dir: str | None = None, stage2=None) -> dict:
    """Runs every metric of `options` and returns the report's `metrics` dict.

    Args:
      options: EvalOptions (validated).
      images: ImageSet the image metrics score (None when only model metrics run).
      real_images: () -> uint8 `(n, H, W, 3)` the real set of FID (called on a cache miss).
      real_key: dict. Identifies the real set in the FID cache.
      cfg, stage1, data_dir: the run, for the model metrics.
      stage2: optional `Stage2Serving`; adds the sampled-factor checks to gt_swap.

    Returns:
      dict metric name -> result.
    """
    functions = {
        "ssim": lambda: ssim_metric(images, options),
        "mask_ssim": lambda: mask_ssim_metric(images, options),
        "is": lambda: is_metric(images, options),
        "mask_is": lambda: mask_is_metric(images, options),
        "fid": lambda: fid_metric(images, options, real_images, real_key),
        "gt_swap": lambda: gt_swap_metric(cfg, stage1, data_dir, options, stage2),
        "leakage": lambda: leakage_metric(cfg, stage1, data_dir, options),
        "saliency": lambda: saliency_metric(cfg, stage1, data_dir, options),
    }
    results = {}
    for name in options.metrics:
        print(f"\n{name}:")
        results[name] = functions[name]()
    return results
