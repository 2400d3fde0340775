"""Throughput measurements, one JSON line per measurement.

    python -m keras_disentangle.bench --what=input --dataset=market --scale=full --batch_size=16 \
        --data_dir=DIR

Each measurement is a function `measure_<name>(settings) -> dict` registered in `MEASUREMENTS`;
`--what` lists the ones to run. Rates are medians over several timed windows after a warm-up, so a
burst of load from another process moves them less than a single long timing would.

Without `--data_dir`, a temporary set of records is written first (`write_random_records`:
smooth random images with a plausible standing pose), so the benchmark runs anywhere.
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable

import numpy as np
import tensorflow as tf
from absl import app, flags

from keras_disentangle import configs, data, geometry, records
from keras_disentangle.configs import NUM_KEYPOINTS

# A frontal standing person in a 128 x 64 crop, (y, x) per joint; the person's right side is on
# the image's left, as in Market-1501's frontal views.
_TEMPLATE_POSE_128X64 = np.array([
    [14, 32], [26, 32], [27, 20], [46, 16], [64, 15], [27, 44], [46, 48], [64, 49], [67, 25],
    [92, 24], [117, 24], [67, 39], [92, 40], [117, 40], [11, 29], [11, 35], [13, 25], [13, 39],
], dtype=np.float64)


def random_keypoints(rng: np.random.Generator, height: int, width: int,
                     missing_rate: float = 0.15) -> np.ndarray:
    """A plausible random pose: the template moved, scaled and jittered, some joints missing.

    Args:
      rng: numpy Generator.
      height, width: int. Image size the keypoints refer to.
      missing_rate: float. Probability that each joint is dropped (set to -1).

    Returns:
      int64 `(18, 2)` (y, x) pixels inside the image, -1 for missing joints.
    """
    scale = rng.uniform(0.85, 1.05)
    centre = np.array([64.0, 32.0])
    pose = (_TEMPLATE_POSE_128X64 - centre) * scale + centre + rng.normal(0.0, [3.0, 4.0])
    pose = pose + rng.normal(0.0, 2.0, size=pose.shape)
    pose = np.round(pose * [height / 128.0, width / 64.0])
    pose = np.clip(pose, 0, [height - 1, width - 1]).astype(np.int64)
    pose[rng.random(NUM_KEYPOINTS) < missing_rate] = -1
    return pose


def random_images(rng: np.random.Generator, keypoints: np.ndarray, height: int, width: int) -> np.ndarray:
    """Smooth random backgrounds with a two-colour body painted along the limbs.

    Smooth content compresses like real photos, so decoding costs about what it costs on real data.

    Args:
      rng: numpy Generator.
      keypoints: `(N, 18, 2)` (y, x) pixels, -1 missing.
      height, width: int. Image size.

    Returns:
      uint8 `(N, height, width, 3)`.
    """
    count = len(keypoints)
    coarse = rng.uniform(0.0, 255.0, size=(count, 4, 2, 3)).astype(np.float32)
    background = tf.image.resize(coarse, [height, width], method="bicubic").numpy()
    mask = geometry.body_mask(keypoints, height, width, radius=max(2, height // 24), close_size=3).numpy()
    upper = (np.arange(height) < height // 2)[None, :, None, None]  # shirt above, trousers below
    colours = rng.uniform(0.0, 255.0, size=(2, count, 1, 1, 3))
    body = np.where(upper, colours[0], colours[1])
    image = np.where(mask > 0, body, background) + rng.normal(0.0, 6.0, size=background.shape)
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


def write_random_records(
    directory: str,
    data_cfg: configs.DataConfig,
    split: str = "train",
    num_records: int = 64,
    num_shards: int = 2,
    image_format: str = "jpeg",
    seed: int = 0,
) -> list[dict]:
    """Writes `num_records` random image records at the stored size, in `num_shards` shards.

    Args:
      directory: str. Output directory (created if needed).
      data_cfg: DataConfig. `stored_height x stored_width` is the image size written.
      split: str. Shard prefix.
      num_records: int. Records to write.
      num_shards: int. Shards to spread them over, round-robin.
      image_format: str. `jpeg` or `png` (lossless, for tests that compare pixels).
      seed: int. Seed of images and poses.

    Returns:
      The keyword arguments of `records.serialize_image` of every record, in writing order, with
      `pixels` (the uint8 image) added.

    Raises:
      ValueError: for an unknown `image_format`.
    """
    encoders = {"jpeg": (lambda pixels: tf.io.encode_jpeg(pixels, quality=90), "jpg"),
                "png": (tf.io.encode_png, "png")}
    if image_format not in encoders:
        raise ValueError(f"image_format: expected one of {sorted(encoders)}, got {image_format!r}.")
    encode, extension = encoders[image_format]
    rng = np.random.default_rng(seed)
    height, width = data_cfg.stored_height, data_cfg.stored_width
    tf.io.gfile.makedirs(directory)
    examples = []
    writers = [tf.io.TFRecordWriter(os.path.join(directory, records.shard_name(split, i, num_shards)))
               for i in range(num_shards)]
    try:
        # In chunks, because the body mask's per-limb planes of a thousand poses take gigabytes.
        for first in range(0, num_records, 64):
            indices = range(first, min(first + 64, num_records))
            keypoints = np.stack([random_keypoints(rng, height, width) for _ in indices])
            images = random_images(rng, keypoints, height, width)
            for index, points, pixels in zip(indices, keypoints, images):
                person_id = index // 4
                fields = dict(
                    image=encode(pixels).numpy(),
                    name=f"{person_id:04d}_c{index % 6 + 1}s1_{index:06d}_01.{extension}",
                    height=height, width=width, keypoints=points.tolist(), person_id=person_id,
                    camera=index % 6 + 1)
                writers[index % num_shards].write(records.serialize_image(**fields))
                examples.append({**fields, "pixels": pixels})
    finally:
        for writer in writers:
            writer.close()
    return examples


@dataclasses.dataclass(frozen=True)
class Settings:
    """What every measurement receives.

    Attributes:
      cfg: Config. The preset with overrides.
      data_dir: str. Directory of TFRecord shards.
      batch_size: int. Examples per batch.
      warmup: int. Batches run before timing (tracing, autotuning, buffers filling).
      windows: int. Timed windows; the median rate is reported.
      window_batches: int. Batches per timed window.
    """

    cfg: configs.Config
    data_dir: str
    batch_size: int
    warmup: int = 80
    windows: int = 7
    window_batches: int = 40


def _shapes(batch) -> dict:
    return {key: value.shape.as_list() for key, value in batch.items()}


def measure_input(settings: Settings) -> dict:
    """Records per second of `data.train_dataset` (shuffle, flips, parallel map) at its output.

    Returns:
      dict with `records_per_s` (median over windows), the per-window rates and `batch_shapes`.
    """
    dataset = data.train_dataset(settings.data_dir, settings.cfg, batch_size=settings.batch_size)
    batches = iter(dataset)
    batch = next(batches)
    for _ in range(settings.warmup):
        next(batches)
    rates = []
    for _ in range(settings.windows):
        start = time.perf_counter()
        for _ in range(settings.window_batches):
            next(batches)
        rates.append(settings.window_batches * settings.batch_size / (time.perf_counter() - start))
    return {
        "records_per_s": round(statistics.median(rates), 1),
        "window_records_per_s": [round(rate, 1) for rate in rates],
        "batch_shapes": _shapes(batch),
    }


MEASUREMENTS: dict[str, Callable[[Settings], dict]] = {
    "input": measure_input,
}

def run(names: list[str], settings: Settings, labels: dict) -> list[dict]:
    """Runs the named measurements, printing one JSON line each; returns the printed records.

    Raises:
      ValueError: for a name that is not in `MEASUREMENTS`.
    """
    unknown = [name for name in names if name not in MEASUREMENTS]
    if unknown:
        raise ValueError(f"what: unknown measurements {unknown}; expected names from {sorted(MEASUREMENTS)}.")
    results = []
    for name in names:
        result = {"what": name, **labels, "height": settings.cfg.data.height, "width": settings.cfg.data.width,
                  "batch_size": settings.batch_size, "cpus": os.cpu_count(), **MEASUREMENTS[name](settings)}
        print(json.dumps(result), flush=True)
        results.append(result)
    return results


def _define_flags() -> None:
    # Defined only when run as a program, so that importing this module next to other command-line
    # modules (visualize, train) cannot clash on shared flag names.
    flags.DEFINE_list("what", ["input"], f"Measurements to run, from: {', '.join(MEASUREMENTS)}.")
    flags.DEFINE_enum("dataset", "market", list(configs.DATASETS), "Preset dataset.")
    flags.DEFINE_enum("scale", "full", list(configs.SCALES), "Preset scale.")
    flags.DEFINE_integer("batch_size", None, "Batch size; defaults to the preset's.")
    flags.DEFINE_string("data_dir", None, "TFRecord shards; random records are written to a temporary "
                        "directory when unset.")
    flags.DEFINE_integer("num_records", 1024, "Records written when --data_dir is unset.")
    flags.DEFINE_integer("warmup", 80, "Batches before timing.")
    flags.DEFINE_integer("windows", 7, "Timed windows (the median is reported).")
    flags.DEFINE_integer("window_batches", 40, "Batches per timed window.")


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    values = flags.FLAGS
    cfg = configs.override(configs.get_config(values.dataset, values.scale), batch_size=values.batch_size)
    labels = {"dataset": values.dataset, "scale": values.scale}

    def settings(data_dir: str) -> Settings:
        return Settings(cfg=cfg, data_dir=data_dir, batch_size=cfg.train.batch_size, warmup=values.warmup,
                        windows=values.windows, window_batches=values.window_batches)

    try:
        if values.data_dir:
            run(values.what, settings(values.data_dir), labels)
            return
        with tempfile.TemporaryDirectory(prefix="bench-records-") as directory:
            write_random_records(directory, cfg.data, num_records=values.num_records, num_shards=4)
            run(values.what, settings(directory), labels)
    except ValueError as error:
        raise app.UsageError(str(error)) from error


if __name__ == "__main__":
    _define_flags()
    app.run(main)
