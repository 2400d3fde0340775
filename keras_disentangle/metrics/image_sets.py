"""The image sets `evaluate.py` scores, and their metrics body masks.

Two sources of images:
  * a stage-I run (`model_images`): `task="reconstruct"` re-generates the first n images of the
    split in their own pose; `task="transfer"` generates the first n pairs of the split's pairs
    file, or n seeded random same-identity pairs (`pairs="random"`, the paper's protocol), (source
    appearance, target pose) and compares them with the target photos; `task="sample"`
    (`sample_images`) draws new people with stage II;
  * two folders of PNG/JPEG files matched by file name, or by the target named in another method's
    output name (`folder_images`), so any method's outputs can be scored with exactly this protocol.

Each is an `ImageSet`; the report around the metrics is `report`'s.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
from typing import Callable, Iterable

import numpy as np
from PIL import Image

from keras_disentangle import configs, data, progress
from keras_disentangle.data import geometry
from keras_disentangle.data.visualize import to_uint8

MASK_SOURCES = ("target", "source")
# The metrics masks of the original evaluation: limb disks of radius 4 at the dataset's stored size.
METRIC_MASK_RADIUS = 4
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


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
      keypoints: float32 `(n, 18, 2)`, the pose each generated image was drawn in, or None (a
        baseline's samples, transfers, folders).
    """

    generated: np.ndarray
    targets: np.ndarray
    masks: dict
    pairs: list
    description: str
    keypoints: np.ndarray | None = None


def progress_bar(total: int, unit: str = "batch") -> Callable[[Iterable], Iterable]:
    """A wrapper that shows progress over an iterable of `total` items (`keras_disentangle.progress`:
    a bar on a terminal, a plain line every 30 s in a log)."""
    def wrap(iterable):
        shown = progress.Progress(total, unit=unit)
        for i, item in enumerate(iterable):
            yield item
            shown.update(i + 1)
    return wrap


def metrics_mask_radius(data_cfg: configs.DataConfig, protocol: str = "custom") -> int:
    """The metrics masks' limb radius at the model's size, at least 1: radius 4 at the stored size
    (`METRIC_MASK_RADIUS`), or under `protocol="paper"` the dataset's published radius
    (`EvalConfig.paper_mask_radius`: Market 7, DeepFashion 4), scaled from the stored size."""
    radius = METRIC_MASK_RADIUS
    if protocol == configs.Protocol.PAPER:
        radius = dict(configs.EvalConfig().paper_mask_radius).get(data_cfg.name, METRIC_MASK_RADIUS)
    return max(1, round(radius * data_cfg.height / data_cfg.stored_height))


def metrics_masks(data_cfg: configs.DataConfig, keypoints: np.ndarray, protocol: str = "custom") -> np.ndarray:
    """float32 `(n, H, W, 1)` body masks of `keypoints` for mask-SSIM and mask-IS: limb disks of
    `metrics_mask_radius`, then the dataset's morphological close."""
    return geometry.body_mask(keypoints, data_cfg.height, data_cfg.width, metrics_mask_radius(data_cfg, protocol),
                              close_size=data_cfg.mask_close_size).numpy()


def _names(batch: dict) -> list[str]:
    return [name.decode() if isinstance(name, bytes) else str(name) for name in batch["name"]]


def model_images(cfg: configs.Config, stage1, data_dir: str, options) -> ImageSet:
    """Generates the images of `options.task` with a stage-I run.

    Args:
      cfg: Config of the run.
      stage1: Stage1 with restored weights.
      data_dir: str. TFRecords directory.
      options: registry.EvalOptions. Uses `task`, `n`, `split`, `batch_size`.

    Returns:
      ImageSet. Generated with the source's appearance codes in the target's pose heatmaps.

    Raises:
      ValueError: if the split has no records or pairs.
    """
    from keras_disentangle.serving.runtime import Stage1Serving  # noqa: PLC0415

    serving = Stage1Serving(cfg, stage1)
    split = options.split
    if options.task == configs.Task.RECONSTRUCT:
        available, what = data.count_records(data_dir, split), f"'{split}' images"
        batches = ((batch, batch) for batch in data.eval_dataset(data_dir, cfg, split, options.batch_size))
        description = f"reconstruction of the first {{n}} '{split}' images (of {available}), in their own pose"
    elif options.pairs == configs.Pairs.RANDOM:
        min_person_id = dict(configs.EvalConfig().pair_min_person_id).get(cfg.data.name, 0)
        dataset, available = data.random_pairs_dataset(data_dir, cfg, split, options.n, options.seed, min_person_id,
                                                       options.batch_size)
        what, batches = f"same-identity pairs of '{split}' images", iter(dataset)
        description = (f"pose transfer on {{n}} random same-identity pairs of the '{split}' images (seed "
                       f"{options.seed}; {available} possible)")
    else:
        available, what = data.count_pairs(data_dir, split), f"pairs in {split}-pairs"
        batches = iter(data.pairs_dataset(data_dir, cfg, split, options.batch_size))
        description = f"pose transfer on the first {{n}} pairs of {split}-pairs (of {available}, in file order)"
    check_count(options, available, f"{what} in {data_dir}")
    parts: dict[str, list] = {k: [] for k in ("generated", "targets", "target", "source", "pairs")}
    count = 0
    bar = progress.Progress(options.n, unit="image")
    for source, target in batches:
        take = min(options.n - count, len(source["image"]))
        source = {k: v[:take] for k, v in source.items()}
        target = {k: v[:take] for k, v in target.items()}
        codes = serving.encode(source["image"], source["keypoints"])
        generated = serving.generate(codes["fg"], codes.get("bg"), target["heatmaps"])
        parts["generated"].append(to_uint8(np.asarray(generated)))
        parts["targets"].append(to_uint8(target["image"].numpy()))
        parts["target"].append(metrics_masks(cfg.data, target["keypoints"], options.protocol))
        parts["source"].append(metrics_masks(cfg.data, source["keypoints"], options.protocol))
        parts["pairs"] += [[s, t] for s, t in zip(_names(source), _names(target))]
        count += take
        bar.update(count)
        if count >= options.n:
            break
    if not count:
        raise ValueError(f"data_dir: no '{options.split}' examples to score in {data_dir!r}.")
    if options.task != configs.Task.RECONSTRUCT:
        description += " (source appearance, target pose; compared with the target photo)"
    return ImageSet(np.concatenate(parts["generated"]), np.concatenate(parts["targets"]),
                    {k: np.concatenate(parts[k]) for k in MASK_SOURCES}, parts["pairs"], description.format(n=count))


def check_count(options, available: int, what: str) -> None:
    """Raises unless `options.n` pairs/images exist or `options.allow_fewer` accepts fewer.

    Raises:
      ValueError: naming --n, what exists and the way out.
    """
    if available < options.n and not options.allow_fewer:
        raise ValueError(f"--n={options.n}: only {available} {what}; ask for at most --n={available}, or pass "
                         "--allow_fewer to score what exists.")


def sample_images(serving, options, data_dir: str | None = None) -> ImageSet:
    """`options.n` sampled images: the sampling variants of the paper's Fig. 7.

    * a `runtime.BaselineServing` (VAE / DCGAN): whole images from N(0, I) codes; no pose, no mask;
    * stage II with `options.sample_pose == "sampled"`: every factor from its mapper
      (`Stage2Serving.sample`);
    * stage II with `"real"`: FG (and BG) from their mappers, poses of training images drawn at random
      with `options.seed` (`apps.sample`), the paper's "BodyROI7 + real pose"; needs `data_dir`.

    Batch i is drawn with seed `options.seed + i`, so a run is reproducible for a given batch size.
    The `target` masks are the metrics body masks of the poses the images were drawn in.
    """
    from keras_disentangle import apps  # noqa: PLC0415
    from keras_disentangle.serving.runtime import BaselineServing  # noqa: PLC0415

    baseline = isinstance(serving, BaselineServing)
    real_pose = not baseline and options.sample_pose == configs.SamplePose.REAL
    if real_pose:
        train = data.load_examples(data_dir, serving.cfg, "train")
        chosen = np.random.default_rng(options.seed).choice(len(train["image"]), options.n)
        factors = [f for f in serving.factors if f != configs.Factor.POSE]
    generated, masks, keypoints = [], [], []
    starts = range(0, options.n, options.batch_size)
    for i, start in enumerate(progress_bar(len(starts))(starts)):
        count = min(options.batch_size, options.n - start)
        if real_pose:
            real = {k: train[k][chosen[start:start + count]] for k in ("image", "keypoints")}
            drawn = apps.sample(serving, count, options.seed + i, factors, real)
        else:
            drawn = serving.sample(count, options.seed + i)
        generated.append(to_uint8(np.asarray(drawn["image"])))
        if not baseline:
            keypoints.append(np.asarray(drawn["keypoints"], np.float32))
            masks.append(metrics_masks(serving.cfg.data, keypoints[-1], options.protocol))
    seeds = f"batch i of {options.batch_size} drawn with seed {options.seed} + i"
    if baseline:
        return ImageSet(np.concatenate(generated), None, {}, [],
                        f"{options.n} images sampled by the {serving.model.value.upper()} baseline ({seeds})")
    what = ("FG/BG sampled by stage II in real training poses" if real_pose
            else "people with every factor sampled by stage II")
    return ImageSet(np.concatenate(generated), None, {"target": np.concatenate(masks)}, [],
                    f"{options.n} {what} ({seeds})", np.concatenate(keypoints))


def _read_image(path: pathlib.Path, mode: str) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert(mode))


# How other methods name an output `FROM` -> `TO` (optionally `_vis`-suffixed): PATN `FROM___TO`, GFLA
# and PIDM `FROM_2_TO`, the Pose-Transfer scoring scripts `FROM_TO`; FROM and TO with or without
# their extension.
_PAIR_SEPARATORS = ("___", "_2_", "_")


def match_target(name: str, targets: set[str]) -> tuple[str, str] | None:
    """The (source, target file) a generated file `name` stands for, or None.

    `name` itself when `targets` holds it; else the longest target name (with or without its
    extension) that ends `name`'s stem (less a `_vis` suffix) after one of `_PAIR_SEPARATORS`.
    """
    if name in targets:
        return name, name
    by_key = {key: target for target in sorted(targets) for key in (target, os.path.splitext(target)[0])}
    stem = os.path.splitext(name)[0]
    stem = stem[:-len("_vis")] if stem.endswith("_vis") else stem
    for separator in _PAIR_SEPARATORS:
        start = stem.find(separator, 1)
        while start > 0:
            tail = stem[start + len(separator):]
            if tail in by_key:
                return stem[:start], by_key[tail]
            start = stem.find(separator, start + 1)
    return None


def crop(image: np.ndarray, panel: tuple[int, int], name: str) -> np.ndarray:
    """The `panel` = (i, k) i-th of k equal-width panels of `image` (a side-by-side strip)."""
    index, count = panel
    width = image.shape[1] // count
    if width * count != image.shape[1]:
        raise ValueError(f"--crop={index}/{count}: {name} is {image.shape[1]} px wide, not a multiple of {count}.")
    return image[:, (index - 1) * width:index * width]


def folder_images(generated_dir: str, target_dir: str, mask_dir: str | None = None,
                  n: int | None = None, panel: tuple[int, int] | None = None,
                  allow_fewer: bool = False) -> ImageSet:
    """Pairs the image files of two folders by file name (sorted), with optional mask files.

    A generated file is matched to the target of the same name, or of the target named in it the way
    other methods name their outputs (`match_target`: PATN, GFLA, PIDM), so their folders are scored
    without renaming.

    Args:
      generated_dir: str. PNG/JPEG files of generated images.
      target_dir: str. The targets (each the size of its generated image, after cropping).
      mask_dir: str or None. Files named like the generated file or its target (any image, nonzero
        = body) for mask-SSIM and mask-IS; they are used as the `target` masks.
      n: int or None. Score the first n generated files (None: all).
      panel: (i, k) or None. Score the i-th of k equal-width panels of each generated file.
      allow_fewer: bool. Score fewer than `n` files when fewer exist (else raise).

    Returns:
      ImageSet with `pairs` [source, target file] ([name, name] when matched by name).

    Raises:
      ValueError: for a missing folder or file, no images, fewer than `n` files, or images of
        different sizes.
    """
    for flag, folder in (("--generated_dir", generated_dir), ("--target_dir", target_dir), ("--mask_dir", mask_dir)):
        if folder is not None and not os.path.isdir(folder):
            raise ValueError(f"{flag}={folder}: not a directory.")
    names = sorted(p.name for p in pathlib.Path(generated_dir).iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES)
    if not names:
        raise ValueError(f"--generated_dir={generated_dir}: no .png/.jpg files.")
    if n is not None and len(names) < n and not allow_fewer:
        raise ValueError(f"--n={n}: only {len(names)} image files in --generated_dir={generated_dir}; ask for at "
                         f"most --n={len(names)}, or pass --allow_fewer to score what exists.")
    names = names[:n]
    target_names = {p.name for p in pathlib.Path(target_dir).iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES}
    generated, targets, masks, pairs = [], [], [], []
    for name in progress_bar(len(names), "image")(names):
        matched = match_target(name, target_names)
        if matched is None:
            raise ValueError(f"--target_dir={target_dir}: no file {name!r}, nor the TO of FROM___TO, FROM_2_TO or "
                             f"FROM_TO (optionally _vis-suffixed), to match {generated_dir}/{name}.")
        pairs.append(list(matched))
        image = _read_image(pathlib.Path(generated_dir) / name, "RGB")
        generated.append(crop(image, panel, name) if panel else image)
        targets.append(_read_image(pathlib.Path(target_dir) / matched[1], "RGB"))
        if generated[-1].shape != targets[-1].shape or generated[-1].shape != generated[0].shape:
            raise ValueError(f"{name}: generated {generated[-1].shape} and target {targets[-1].shape} must have "
                             f"the same size, that of the first image {generated[0].shape}"
                             + ("" if panel else " (a side-by-side strip? --crop=i/k takes one panel)") + ".")
        if mask_dir is not None:
            mask = next((path for path in (pathlib.Path(mask_dir) / m for m in (name, matched[1])) if path.is_file()),
                        None)
            if mask is None:
                raise ValueError(f"--mask_dir={mask_dir}: no file {name!r} or {matched[1]!r} to match "
                                 f"{generated_dir}/{name}.")
            masks.append((_read_image(mask, "L") > 0)[..., np.newaxis].astype(np.float32))
    return ImageSet(np.stack(generated), np.stack(targets), {"target": np.stack(masks)} if masks else {}, pairs,
                    f"{len(names)} files of {generated_dir} against {target_dir}")
