"""A records split as arrays for the re-ID network: photos resized to its input, ids and cameras."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from keras_disentangle import data
from keras_disentangle.data import records


def load_split(data_dir: str, split: str, height: int, width: int) -> dict:
    """Every record of `split`, in shard order.

    Returns:
      dict: `image` uint8-range float32 `(n, height, width, 3)` (antialiased resize of the stored
      photo), `person_id`, `camera` int64 `(n,)`, `name` str `(n,)`.

    Raises:
      ValueError: if `data_dir` has no shard of `split`, or the split is empty.
    """

    def decode(serialized):
        record = records.parse_image(serialized)
        image = tf.io.decode_image(record["image"], channels=3, expand_animations=False)
        image = tf.image.resize(tf.cast(image, tf.float32), [height, width], antialias=True)
        return {"image": tf.clip_by_value(image, 0.0, 255.0), "person_id": record["person_id"],
                "camera": record["camera"], "name": record["name"]}

    dataset = tf.data.TFRecordDataset(data.shard_files(data_dir, split)).map(decode, tf.data.AUTOTUNE).batch(256)
    chunks: dict[str, list] = {}
    for batch in dataset:
        for key, value in batch.items():
            chunks.setdefault(key, []).append(value.numpy())
    if not chunks:
        raise ValueError(f"--data_dir={data_dir}: the '{split}' split has no records.")
    out = {key: np.concatenate(value) for key, value in chunks.items()}
    out["name"] = np.array([n.decode() for n in out["name"]])
    return out
