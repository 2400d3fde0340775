"""DeepFashion In-shop reader, in the layout of the pose-transfer code bases.

Layout under the root (the `fasion` spelling is the public files'):

| split | images | annotations | pairs |
|---|---|---|---|
| train | `train/` | `fasion-annotation-train.csv` | `fasion-pairs-train.csv` (optional) |
| test | `test/` | `fasion-annotation-test.csv` | `fasion-pairs-test.csv` (optional) |

The PATN / GFLA release names its CSVs `fasion-resize-annotation-{split}.csv` and
`fasion-resize-pairs-{split}.csv`; either family is read (a split with both is refused, as the
choice would be a guess). Images are 256x256 (the Deformable-GAN / PG2 files) or 256x176 (the
PATN / GFLA release, which cut 40 px off each side of the 256x256 photos; its keypoints are in the
256x176 frame). A record keeps the file and its keypoints as they are; `data.prepare_example`
edge-pads a 256x176 photo back to 256x256 (x + 40), so one preset serves both releases.
File names look like `fashionMENShirts_Polosid0000186605_1front.jpg`: the
garment key is `id` plus 10 digits (`id0000186605`), shared by every view of one garment.

Person id: the index of the image's garment key in the sorted list of the distinct keys that the
split's annotation CSV names (malformed rows included, so that skipping a bad row or image with
`--skip_bad` renumbers nothing). Ids are therefore numbered per split from 0 and are not comparable
across splits. Camera: -1 (DeepFashion has none).

A root with a `factors.json` (the synthetic people of `tfrecords.synthetic_fashion`; DeepFashion itself
has none) also gives each record `fg_id`, `bg_id` and `factors`, as `tfrecords.synthetic_reader` does.
"""

from __future__ import annotations

import pathlib
import re

from keras_disentangle import configs
from tfrecords import synthetic_reader
from tfrecords.common import SPLITS, Annotation, BadInput, Reason, Split, open_split, read_annotation_csv

_GARMENT_KEY = re.compile(r"id\d{10}(?=_)")


def garment_key(name: str) -> str | None:
    """`id` + 10 digits from a DeepFashion file name, or None if the name has none."""
    match = _GARMENT_KEY.search(name)
    return match.group(0) if match else None


# The CSV name prefixes: the Deformable-GAN files', then the PATN / GFLA release's.
_CSV_PREFIXES = ("fasion-", "fasion-resize-")
# The 256x176 release (see the module docstring).
NARROW_SIZE = (256, 176)


def _csv_prefix(root: pathlib.Path, split: str) -> str | None:
    """The CSV prefix of `split` under `root`, or None when it has no annotation CSV.

    Raises:
      BadInput: when both families' annotation CSVs exist.
    """
    found = [prefix for prefix in _CSV_PREFIXES if (root / f"{prefix}annotation-{split}.csv").exists()]
    if len(found) > 1:
        names = " and ".join(f"{prefix}annotation-{split}.csv" for prefix in found)
        raise BadInput(root, None, f"both {names} exist; keep the one that matches the {split}/ images",
                       Reason.BAD_FILE)
    return found[0] if found else None


def annotation_csv(root: pathlib.Path, split: str) -> pathlib.Path:
    """The split's annotation CSV (`fasion-annotation-{split}.csv` unless only the PATN name exists)."""
    root = pathlib.Path(root)
    return root / f"{_csv_prefix(root, split) or _CSV_PREFIXES[0]}annotation-{split}.csv"


def available_splits(root) -> tuple[str, ...]:
    """The splits of `root` that have an annotation CSV, in `SPLITS` order."""
    return tuple(split for split in SPLITS if _csv_prefix(pathlib.Path(root), split) is not None)


def read_split(root, split: str) -> Split:
    """Opens a split of a DeepFashion layout (see the module docstring).

    Args:
      root: str or path. The dataset folder.
      split: str. `train` or `test`.

    Returns:
      Split, whose examples carry the garment index as `person_id` and camera -1 (and the factors,
      see the module docstring).

    Raises:
      ValueError: for a split other than `train` or `test`.
      BadInput: for a missing folder or annotation CSV, a CSV with a wrong header, or a bad factors.json.
    """
    if split not in SPLITS:
        raise ValueError(f"split={split!r}; expected one of {', '.join(SPLITS)}.")
    root = pathlib.Path(root)
    annotations = read_annotation_csv(annotation_csv(root, split))
    keys = sorted({key for key in map(garment_key, annotations.names) if key is not None})
    index = {key: position for position, key in enumerate(keys)}
    factors = (synthetic_reader.factor_labels(root) if (root / synthetic_reader.FACTORS_FILE).exists()
               else lambda annotation: {})

    def labels(annotation: Annotation) -> dict:
        key = garment_key(annotation.name)
        if key is None:
            raise annotation.bad(f"name {annotation.name!r} has no garment key ('id' + 10 digits + '_', "
                                 "e.g. fashionMENShirts_Polosid0000186605_1front.jpg)", Reason.BAD_NAME)
        return {"person_id": index[key], "camera": -1, **factors(annotation)}

    stored = configs.get_config("deepfashion").data
    pairs = root / f"{_csv_prefix(root, split) or _CSV_PREFIXES[0]}pairs-{split}.csv"
    return open_split(split, root / split, annotations, pairs, stored.stored_height, stored.stored_width, labels,
                      other_sizes=(NARROW_SIZE,))
