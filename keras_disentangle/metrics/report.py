"""What `evaluate.py` runs around the metrics: the FID cache, the JSON report and its table.

The images it scores come from `image_sets` (a stage-I run's reconstructions or transfers, stage-II
samples, or two folders); their names stay importable from here (`report.model_images`, ...).
The metrics themselves are registered in `metrics.registry`, one module each in `metrics/suite/`;
the registry runs them (`registry.evaluate`) and prints the report's table (`registry.format_table`).
Every metric returns a dict with at least `value` (None when the metric is a table or a picture), `n`
and `protocol`; `std` where it has one.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from keras_disentangle import configs, data
# The image sets; their names stay importable from here (`report.ImageSet`, `report.folder_images`, ...).
from keras_disentangle.metrics.image_sets import (  # noqa: F401
    MASK_SOURCES,
    METRIC_MASK_RADIUS,
    ImageSet,
    check_count,
    crop,
    folder_images,
    match_target,
    metrics_mask_radius,
    metrics_masks,
    model_images,
    progress_bar,
    sample_images,
)

# Images per SSIM progress-bar step.
_SSIM_CHUNK = 64


def protocol_note(options, data_cfg: configs.DataConfig | None) -> str:
    """What the report's `protocol` says: the name and, for `paper`, every setting it fixed."""
    if options.protocol != configs.Protocol.PAPER:
        return "custom (the flags' settings)"
    masks = (f"radius-{metrics_mask_radius(data_cfg, 'paper')} body masks of the {options.mask_from} pose"
             if data_cfg is not None else "the --mask_dir masks")
    pairs = (f"{options.n} same-identity '{options.split}' pairs drawn with seed {options.seed}"
             if data_cfg is not None else f"{options.n} files")
    return f"paper (Ma et al. 2018, Table 1): pose transfer on {pairs}; SSIM '{options.ssim_protocol}'; {masks}"


# --- Helpers of the metrics -------------------------------------------------------------------

def mean_std(values: np.ndarray) -> dict:
    return {"value": float(np.mean(values)), "std": float(np.std(values)), "n": int(len(values))}


def chunked(fn: Callable, *arrays) -> np.ndarray:
    """`fn` over `_SSIM_CHUNK`-image slices of `arrays`, with a progress bar; the results concatenated."""
    starts = range(0, len(arrays[0]), _SSIM_CHUNK)
    return np.concatenate([fn(*(a[s:s + _SSIM_CHUNK] for a in arrays))
                           for s in progress_bar(len(starts))(starts)])


def body_masks(images: ImageSet, mask_from: str) -> np.ndarray:
    """The `mask_from` (target / source) metrics masks of an image set."""
    if mask_from not in images.masks:
        raise ValueError(f"--mask_from={mask_from}: no {mask_from} masks for these images "
                         "(folders: pass --mask_dir; the source's masks exist only with a model).")
    return images.masks[mask_from]


MASK_NOTE = {"target": "masks from the target's pose (correct)",
             "source": "masks from the source's pose (the original code's bug, reproduces its numbers)"}


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


def number(value, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


# --- Running the metrics ------------------------------------------------------------------

def first_pairs(cfg: configs.Config, data_dir: str, options, count: int) -> tuple[dict, dict]:
    """The first `count` (source, target) numpy batches of the task, as `model_images` draws them."""

    if options.task == configs.Task.RECONSTRUCT:
        batch = data.load_examples(data_dir, cfg, options.split, count)
        return batch, batch
    source, target = next(iter(data.pairs_dataset(data_dir, cfg, options.split, count)))
    return {k: v.numpy() for k, v in source.items()}, {k: v.numpy() for k, v in target.items()}


def write_grid(path: str, rows: list, titles: list[str], cfg: configs.Config) -> str:
    from keras_disentangle.data import visualize  # noqa: PLC0415

    scale = visualize.picture_scale(cfg)
    rows = [[visualize.upscale(cell, scale) for cell in row] for row in rows]
    visualize.save_png(path, visualize.image_grid(rows, column_titles=titles))
    return path
