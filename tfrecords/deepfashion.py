"""DeepFashion In-shop reader, in the layout of the pose-transfer code bases.

Layout under the root (the `fasion` spelling is the public files'):

| split | images | annotations | pairs |
|---|---|---|---|
| train | `train/` | `fasion-annotation-train.csv` | `fasion-pairs-train.csv` (optional) |
| test | `test/` | `fasion-annotation-test.csv` | `fasion-pairs-test.csv` (optional) |

Images are 256x256. File names look like `fashionMENShirts_Polosid0000186605_1front.jpg`: the
garment key is `id` plus 10 digits (`id0000186605`), shared by every view of one garment.

Person id: the index of the image's garment key in the sorted list of the distinct keys that the
split's annotation CSV names (malformed rows included, so that skipping a bad row or image with
`--skip_bad` renumbers nothing). Ids are therefore numbered per split from 0 and are not comparable
across splits. Camera: -1 (DeepFashion has none).
"""

from __future__ import annotations

import pathlib
import re

from keras_disentangle import configs
from tfrecords.common import SPLITS, Annotation, Reason, Split, open_split, read_annotation_csv

_GARMENT_KEY = re.compile(r"id\d{10}(?=_)")


def garment_key(name: str) -> str | None:
    """`id` + 10 digits from a DeepFashion file name, or None if the name has none."""
    match = _GARMENT_KEY.search(name)
    return match.group(0) if match else None


def annotation_csv(root: pathlib.Path, split: str) -> pathlib.Path:
    return root / f"fasion-annotation-{split}.csv"


def available_splits(root) -> tuple[str, ...]:
    """The splits of `root` that have an annotation CSV, in `SPLITS` order."""
    return tuple(split for split in SPLITS if annotation_csv(pathlib.Path(root), split).exists())


def read_split(root, split: str) -> Split:
    """Opens a split of a DeepFashion layout (see the module docstring).

    Args:
      root: str or path. The dataset folder.
      split: str. `train` or `test`.

    Returns:
      Split, whose examples carry the garment index as `person_id` and camera -1.

    Raises:
      ValueError: for a split other than `train` or `test`.
      BadInput: for a missing folder or annotation CSV, or a CSV with a wrong header.
    """
    if split not in SPLITS:
        raise ValueError(f"split={split!r}; expected one of {', '.join(SPLITS)}.")
    root = pathlib.Path(root)
    annotations = read_annotation_csv(annotation_csv(root, split))
    keys = sorted({key for key in map(garment_key, annotations.names) if key is not None})
    index = {key: position for position, key in enumerate(keys)}

    def labels(annotation: Annotation) -> dict:
        key = garment_key(annotation.name)
        if key is None:
            raise annotation.bad(f"name {annotation.name!r} has no garment key ('id' + 10 digits + '_', "
                                 "e.g. fashionMENShirts_Polosid0000186605_1front.jpg)", Reason.BAD_NAME)
        return {"person_id": index[key], "camera": -1}

    stored = configs.get_config("deepfashion").data
    return open_split(split, root / split, annotations, root / f"fasion-pairs-{split}.csv",
                      stored.stored_height, stored.stored_width, labels)
