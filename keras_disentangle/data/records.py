"""The one TFRecord schema, shared by the converters (`tfrecords/`) and the input pipeline.

Every dataset is stored the same way: one `tf.train.Example` per image, and one per test pair.

Image record features:
  image        bytes   the encoded photo as stored by the dataset (JPEG or PNG), never re-encoded.
  name         bytes   the file name, e.g. `0002_c1s1_000451_03.jpg`.
  height/width int64   the decoded size (Market 128x64, DeepFashion 256x256 or 256x176).
  keypoints    int64   [18 * 2] row-major (y, x) per OpenPose joint, in pixels; -1 = missing.
  person_id    int64   identity (Market: first 4 characters, -1 junk, 0 distractor; DeepFashion:
                       garment index).
  camera       int64   Market camera 1..6; -1 where the dataset has none.
  fg_id, bg_id int64   ground-truth factor ids of the synthetic set; -1 for real data.
  factors      bytes   synthetic only: JSON `{"fg": {...}, "bg": {...}, "pose": {...}}`, the exact
                       parameters that `keras_disentangle.synthetic.render` redraws the image from;
                       empty for real data.

Pair record features: every image feature twice, prefixed `source/` and `target/`.

Shards are named `{split}-{index:05d}-of-{count:05d}.tfrecord` and pairs `{split}-pairs.tfrecord`; Market
layouts may add a `query` split (the re-ID queries, no pairs).
"""

from __future__ import annotations

import tensorflow as tf

from keras_disentangle.configs import NUM_KEYPOINTS

SOURCE = "source/"
TARGET = "target/"

IMAGE_FEATURES = {
    "image": tf.io.FixedLenFeature([], tf.string),
    "name": tf.io.FixedLenFeature([], tf.string),
    "height": tf.io.FixedLenFeature([], tf.int64),
    "width": tf.io.FixedLenFeature([], tf.int64),
    "keypoints": tf.io.FixedLenFeature([NUM_KEYPOINTS * 2], tf.int64),
    "person_id": tf.io.FixedLenFeature([], tf.int64),
    "camera": tf.io.FixedLenFeature([], tf.int64, default_value=-1),
    "fg_id": tf.io.FixedLenFeature([], tf.int64, default_value=-1),
    "bg_id": tf.io.FixedLenFeature([], tf.int64, default_value=-1),
    "factors": tf.io.FixedLenFeature([], tf.string, default_value=b""),
}
PAIR_FEATURES = {
    **{SOURCE + k: v for k, v in IMAGE_FEATURES.items()},
    **{TARGET + k: v for k, v in IMAGE_FEATURES.items()},
}


def shard_name(split: str, index: int, count: int) -> str:
    return f"{split}-{index:05d}-of-{count:05d}.tfrecord"


def shard_pattern(split: str) -> str:
    return f"{split}-?????-of-?????.tfrecord"


def pairs_name(split: str) -> str:
    return f"{split}-pairs.tfrecord"


def _bytes(value: bytes) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _ints(values) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v) for v in values]))


def image_features(
    *,
    image: bytes,
    name: str,
    height: int,
    width: int,
    keypoints,
    person_id: int,
    camera: int = -1,
    fg_id: int = -1,
    bg_id: int = -1,
    factors: bytes = b"",
) -> dict[str, tf.train.Feature]:
    """The features of one image record. `keypoints` is [18, 2] (y, x) ints, -1 when missing."""
    flat = [int(v) for joint in keypoints for v in joint]
    if len(flat) != NUM_KEYPOINTS * 2:
        raise ValueError(f"{name}: expected {NUM_KEYPOINTS} (y, x) keypoints, got {len(flat) // 2}.")
    return {
        "image": _bytes(image),
        "name": _bytes(name.encode()),
        "height": _ints([height]),
        "width": _ints([width]),
        "keypoints": _ints(flat),
        "person_id": _ints([person_id]),
        "camera": _ints([camera]),
        "fg_id": _ints([fg_id]),
        "bg_id": _ints([bg_id]),
        "factors": _bytes(factors),
    }


def serialize_image(**fields) -> bytes:
    """Serializes one image record; keyword arguments as `image_features`."""
    return tf.train.Example(features=tf.train.Features(feature=image_features(**fields))).SerializeToString()


def serialize_pair(source: dict, target: dict) -> bytes:
    """Serializes a (source, target) pair; each argument holds the keyword arguments of `image_features`."""
    feature = {SOURCE + k: v for k, v in image_features(**source).items()}
    feature.update({TARGET + k: v for k, v in image_features(**target).items()})
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def parse_image(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
    """Parses one image record; `keypoints` comes back as int64 [18, 2]."""
    example = tf.io.parse_single_example(serialized, IMAGE_FEATURES)
    example["keypoints"] = tf.reshape(example["keypoints"], [NUM_KEYPOINTS, 2])
    return example


def parse_pair(serialized: tf.Tensor) -> tuple[dict[str, tf.Tensor], dict[str, tf.Tensor]]:
    """Parses one pair record into (source, target) dicts shaped like `parse_image`'s."""
    example = tf.io.parse_single_example(serialized, PAIR_FEATURES)
    halves = []
    for prefix in (SOURCE, TARGET):
        half = {k[len(prefix):]: v for k, v in example.items() if k.startswith(prefix)}
        half["keypoints"] = tf.reshape(half["keypoints"], [NUM_KEYPOINTS, 2])
        halves.append(half)
    return halves[0], halves[1]
