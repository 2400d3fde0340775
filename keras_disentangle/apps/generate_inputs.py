"""The pictures a `generate` command names, read into example dicts, and its results pasted back.

An image flag gives a file or a bare file name. Its keypoints come from the keypoints text (the
annotation-CSV syntax or a JSON file), else from the record of that file name in `--data_dir`, else,
for any photo file, from the built-in estimator, which also frames the photo on its person; the
result of a framed photo can be pasted back into it (`paste_back`).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
import sys

import numpy as np
import tensorflow as tf
from PIL import Image

from keras_disentangle import configs, data
from keras_disentangle.data import records, visualize
from keras_disentangle.pose import keypoints

_KEYPOINTS = re.compile(r"^\s*\[([^\]]*)\]\s*:\s*\[([^\]]*)\]\s*$")


def parse_keypoints(text: str, flag: str) -> np.ndarray:
    """Parses `"[y0, ..., y17]:[x0, ..., x17]"` into int64 `(18, 2)` (y, x).

    Raises:
      ValueError: naming `flag` and the value, unless it holds two lists of 18 integers.
    """
    match = _KEYPOINTS.match(text)
    expected = f'expected "[y0, ..., y17]:[x0, ..., x17]" with {configs.NUM_KEYPOINTS} integers per list'
    if match is None:
        raise ValueError(f"--{flag}={text!r}: {expected}.")
    try:
        ys, xs = ([int(v) for v in part.split(",") if v.strip()] for part in match.groups())
    except ValueError:
        raise ValueError(f"--{flag}={text!r}: {expected}.") from None
    if len(ys) != configs.NUM_KEYPOINTS or len(xs) != configs.NUM_KEYPOINTS:
        raise ValueError(f"--{flag}={text!r}: {expected}, got {len(ys)} and {len(xs)}.")
    return np.stack([ys, xs], axis=-1).astype(np.int64)


def records_by_name(data_dir: str, names: set[str]) -> dict[str, tf.Tensor]:
    """Serialized records of the given file names, test split first, then train.

    Returns:
      dict file name -> serialized record (`records.parse_image` reads it); names not found are
      absent.
    """
    found: dict[str, tf.Tensor] = {}
    name_spec = {"name": records.IMAGE_FEATURES["name"]}
    for split in ("test", "train"):
        if names <= set(found):
            break
        try:
            files = data.shard_files(data_dir, split)
        except ValueError:
            continue
        for batch in tf.data.TFRecordDataset(files).batch(512):
            batch_names = tf.io.parse_example(batch, name_spec)["name"].numpy()
            for index, name in enumerate(batch_names):
                name = name.decode()
                if name in names and name not in found:
                    found[name] = batch[index]
    return found


@dataclasses.dataclass(frozen=True)
class Framing:
    """Where a model-size picture sits in a photo: `photo` uint8 [H, W, 3], `box` (top, left, h, w)."""

    photo: np.ndarray
    box: tuple[int, int, int, int]


@functools.cache
def _estimator() -> keypoints.Estimator:
    return keypoints.Estimator()


def _file_example(name: str, image: tf.Tensor, keypoint_array: np.ndarray) -> dict:
    return {"image": image, "name": tf.constant(name), "factors": tf.constant(b""),
            "keypoints": tf.constant(keypoint_array.astype(np.int64)),
            **{key: tf.constant(-1, tf.int64) for key in ("person_id", "camera", "fg_id", "bg_id")}}


def _read_photo(flag: str, path: str) -> np.ndarray:
    """The photo upright (`keypoints.read_image`), as the keypoints of `keypoints` and of the estimator see it."""
    try:
        return keypoints.read_image(path)
    except ValueError as error:
        raise ValueError(f"--{flag}={error}") from None


def _estimated_example(flag: str, path: str, cfg: configs.Config) -> tuple[dict, Framing]:
    """The photo framed on its person at the model's aspect ratio, keypoints from the estimator."""
    photo = _read_photo(flag, path)
    try:
        estimate = _estimator()(photo, f"--{flag}={path}")
    except ValueError as error:
        raise ValueError(f'{error}; pass --{flag}_keypoints="[y0, ..., y17]:[x0, ..., x17]".') from None
    if estimate.num_people > 1:
        print(f"--{flag}={path}: {estimate.num_people} people found; using the largest", file=sys.stderr)
    crop, crop_keypoints, box = keypoints.frame(photo, estimate.keypoints, cfg.data.height / cfg.data.width)
    example = _file_example(os.path.basename(path), tf.io.encode_png(crop), crop_keypoints)
    return example, Framing(photo, box)


def load_images(specs: list[tuple[str, str, str | None]], cfg: configs.Config,
                data_dir: str | None, framings: dict | None = None) -> dict:
    """Reads images given on the command line into one example dict.

    Keypoints come from the keypoints text, else the record of the file name in `data_dir`, else
    (for an existing photo file) the estimator, which also frames the photo on its person.

    Args:
      specs: per image `(flag, path or file name, keypoints text or None)`.
      cfg: Config. The model's data config (size, geometry).
      data_dir: str or None. TFRecords to look file names up in.
      framings: optional dict, filled with flag -> Framing for every photo framed by the estimator.

    Returns:
      Example dict (`data.prepare_example`'s keys) with a leading batch of `len(specs)`.

    Raises:
      ValueError: naming the flag, for a missing file or when no keypoints are available.
    """
    wanted = {os.path.basename(path) for _, path, text in specs if text is None}
    found = records_by_name(data_dir, wanted) if wanted and data_dir else {}
    examples = []
    for flag, path, keypoint_text in specs:
        name = os.path.basename(path)
        if keypoint_text is not None:
            if not os.path.isfile(path):
                raise ValueError(f"--{flag}={path}: no such image file.")
            photo = _read_photo(flag, path)
            if keypoint_text.strip().lower().endswith(".json"):
                given = keypoints.read_keypoints_json(keypoint_text.strip(), *photo.shape[:2])
            else:
                given = parse_keypoints(keypoint_text, f"{flag}_keypoints")
            # The stored bytes decode as a record's photo does; a photo its EXIF orientation turns goes in
            # upright, since the keypoints are the upright photo's.
            encoded = tf.io.read_file(path) if keypoints.stored_upright(path) else tf.io.encode_png(photo)
            parsed = _file_example(name, encoded, given)
        elif name in found:
            parsed = records.parse_image(found[name])
        elif os.path.isfile(path):
            parsed, framing = _estimated_example(flag, path, cfg)
            if framings is not None:
                framings[flag] = framing
        else:
            where = f"the test or train TFRecords of --data_dir={data_dir}" if data_dir else "any --data_dir"
            raise ValueError(f"--{flag}={path}: no such file, and {name} is not in {where}.")
        examples.append(data.prepare_example(parsed, cfg.data))
    return {key: np.stack([e[key].numpy() for e in examples]) for key in examples[0]}


def paste_back(framing: Framing, image) -> np.ndarray:
    """A model-size picture (float [-1, 1], (H, W, 3)) scaled to its box and pasted into the photo."""
    top, left, h, w = framing.box
    tile = np.asarray(Image.fromarray(visualize.to_uint8(np.asarray(image)[None])[0]).resize((w, h), Image.BICUBIC))
    photo = framing.photo.copy()
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + h, photo.shape[0]), min(left + w, photo.shape[1])
    photo[y0:y1, x0:x1] = tile[y0 - top:y1 - top, x0 - left:x1 - left]
    return photo
