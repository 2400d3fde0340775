"""Random but plausible image records, so that the benchmark (and tests) run without a dataset."""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from keras_disentangle import configs
from keras_disentangle.data import geometry, records
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
