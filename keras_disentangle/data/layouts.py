"""Where each dataset keeps its images and CSVs: the folder and file names of the Market-1501 and
DeepFashion layouts, which the converters (`tfrecords/`) read and the package's writers
(`virtual_market`, and `tfrecords.synthetic`) write. The CSVs' syntax is `annotations`'.

Market-1501 under its root:

| split | images | annotations | pairs |
|---|---|---|---|
| train | `bounding_box_train/` | `market-annotation-train.csv` | `market-pairs-train.csv` (optional) |
| test | `bounding_box_test/` | `market-annotation-test.csv` | `market-pairs-test.csv` (optional) |
| query | `query/` | `market-annotation-query.csv` (optional) | none |

File names are `PPPP_cCsS_FFFFFF_NN.jpg` (person, camera, sequence, frame, box).

DeepFashion In-shop under its root (the `fasion` spelling is the public files'):

| split | images | annotations | pairs |
|---|---|---|---|
| train | `train/` | `fasion-annotation-train.csv` | `fasion-pairs-train.csv` (optional) |
| test | `test/` | `fasion-annotation-test.csv` | `fasion-pairs-test.csv` (optional) |

The PATN / GFLA release names its CSVs `fasion-resize-annotation-{split}.csv` and
`fasion-resize-pairs-{split}.csv`; either family is read (a split with both is refused, as the
choice would be a guess). File names look like `fashionMENShirts_Polosid0000186605_1front.jpg`: the
garment key is `id` plus 10 digits (`id0000186605`), shared by every view of one garment.
"""

from __future__ import annotations

import pathlib
import re

from keras_disentangle.data.annotations import BadInput, Reason

# The pose-transfer splits every layout has.
SPLITS = ("train", "test")

# Market-1501.
MARKET_QUERY_DIR = "query"
# The splits of the layout: the pose-transfer splits, then the re-ID queries.
MARKET_SPLITS = (*SPLITS, "query")
# The image folders of the layout: the two splits', then the query folder.
MARKET_IMAGE_DIRS = ("bounding_box_train", "bounding_box_test", MARKET_QUERY_DIR)


def market_image_dir(root, split: str) -> pathlib.Path:
    return pathlib.Path(root) / (MARKET_QUERY_DIR if split == "query" else f"bounding_box_{split}")


def market_annotation_csv(root, split: str) -> pathlib.Path:
    return pathlib.Path(root) / f"market-annotation-{split}.csv"


def market_pairs_csv(root, split: str) -> pathlib.Path:
    return pathlib.Path(root) / f"market-pairs-{split}.csv"


def market_image_name(person_id: int, camera: int, sequence: int, frame: int, box: int) -> str:
    """The Market-1501 file name `PPPP_cCsS_FFFFFF_NN.jpg`."""
    return f"{person_id:04d}_c{camera}s{sequence}_{frame:06d}_{box:02d}.jpg"


def market_splits(root) -> tuple[str, ...]:
    """The splits of `root` that have an annotation CSV, in `MARKET_SPLITS` order."""
    return tuple(split for split in MARKET_SPLITS if market_annotation_csv(pathlib.Path(root), split).exists())


# DeepFashion. The CSV name prefixes: the Deformable-GAN files', then the PATN / GFLA release's.
DEEPFASHION_CSV_PREFIXES = ("fasion-", "fasion-resize-")
_GARMENT_KEY = re.compile(r"id\d{10}(?=_)")


def garment_key(name: str) -> str | None:
    """`id` + 10 digits from a DeepFashion file name, or None if the name has none."""
    match = _GARMENT_KEY.search(name)
    return match.group(0) if match else None


def deepfashion_csv_prefix(root, split: str) -> str | None:
    """The CSV prefix of `split` under `root`, or None when it has no annotation CSV.

    Raises:
      BadInput: when both families' annotation CSVs exist.
    """
    root = pathlib.Path(root)
    found = [prefix for prefix in DEEPFASHION_CSV_PREFIXES if (root / f"{prefix}annotation-{split}.csv").exists()]
    if len(found) > 1:
        names = " and ".join(f"{prefix}annotation-{split}.csv" for prefix in found)
        raise BadInput(root, None, f"both {names} exist; keep the one that matches the {split}/ images",
                       Reason.BAD_FILE)
    return found[0] if found else None


def deepfashion_annotation_csv(root, split: str) -> pathlib.Path:
    """The split's annotation CSV (`fasion-annotation-{split}.csv` unless only the PATN name exists)."""
    root = pathlib.Path(root)
    return root / f"{deepfashion_csv_prefix(root, split) or DEEPFASHION_CSV_PREFIXES[0]}annotation-{split}.csv"


def deepfashion_pairs_csv(root, split: str) -> pathlib.Path:
    """The split's pairs CSV, of the same family as its annotation CSV."""
    root = pathlib.Path(root)
    return root / f"{deepfashion_csv_prefix(root, split) or DEEPFASHION_CSV_PREFIXES[0]}pairs-{split}.csv"


def deepfashion_image_dir(root, split: str) -> pathlib.Path:
    return pathlib.Path(root) / split


def deepfashion_splits(root) -> tuple[str, ...]:
    """The splits of `root` that have an annotation CSV, in `SPLITS` order."""
    return tuple(split for split in SPLITS if deepfashion_csv_prefix(root, split) is not None)
