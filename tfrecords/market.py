"""Market-1501 reader (the synthetic set is written in its layout too).

The layout's folder and file names are `keras_disentangle.data.layouts`' (`bounding_box_{train,test}/`,
`query/`, `market-annotation-{split}.csv`, `market-pairs-{split}.csv`). A split is converted when
its annotation CSV exists. The re-ID evaluation (`metrics/suite/reid.py`) matches the query split
against the test split (the gallery). The public pose-transfer annotations
cover `bounding_box_train/` and `bounding_box_test/` only; the encoders need keypoints of the queries
too, so for real Market-1501 write the query CSV with our estimator and rename it:
`python -m keras_disentangle.pose.keypoints Market-1501/query/*.jpg --out=DIR` then move `DIR/keypoints.csv`
to `market-annotation-query.csv` (the synthetic writer annotates its queries from the true pose).

Person id = the first 4 characters of the file name (`-1` for Market's junk images, `0000` for its
distractors, kept as such for the re-ID protocol), camera = the digit after `_c`
(`0002_c1s1_069056_02.jpg` -> person 2, camera 1). The CSV formats are
`keras_disentangle.data.annotations`', the reader machinery is in `common.py`.
"""

from __future__ import annotations

import pathlib
import re
from typing import Callable

from keras_disentangle import configs
from keras_disentangle.data import layouts
from tfrecords.common import Annotation, Reason, Split, open_split, read_annotation_csv

# The layout's names are the package's (`layouts`); these are the readers' and writers' short names.
QUERY_DIR = layouts.MARKET_QUERY_DIR
SPLITS = layouts.MARKET_SPLITS
IMAGE_DIRS = layouts.MARKET_IMAGE_DIRS
image_dir = layouts.market_image_dir
annotation_csv = layouts.market_annotation_csv
pairs_csv = layouts.market_pairs_csv
image_name = layouts.market_image_name
available_splits = layouts.market_splits
_MARKET_NAME = re.compile(r"(\d{4}|-1)_c(\d)")


def market_labels(annotation: Annotation) -> dict:
    """Person id (first 4 characters; -1 junk, 0 distractor) and camera (the digit after `_c`) of a
    Market file name.

    Raises:
      BadInput: if the name does not start `PPPP_cC` or `-1_cC`.
    """
    match = _MARKET_NAME.match(annotation.name)
    if match is None:
        raise annotation.bad(f"name {annotation.name!r} does not start with a 4-digit person id (or -1) "
                             "and '_c' + camera digit (e.g. 0002_c1s1_000451_03.jpg)", Reason.BAD_NAME)
    return {"person_id": int(match.group(1)), "camera": int(match.group(2))}


def read_split(
    root,
    split: str,
    height: int | None = None,
    width: int | None = None,
    extra_labels: Callable[[Annotation], dict] | None = None,
) -> Split:
    """Opens a split of a Market-1501 layout.

    Args:
      root: str or path. The dataset folder (see the module docstring for its layout).
      split: str. `train`, `test` or `query`.
      height, width: int or None. Required image size; defaults to Market-1501's stored size
        (128x64, `configs`' `stored_height`/`stored_width`).
      extra_labels: callable or None. Returns fields to add to `market_labels`' (the synthetic
        set's factors); raises BadInput.

    Returns:
      Split.

    Raises:
      ValueError: for a split other than `train`, `test` or `query`.
      BadInput: for a missing folder or annotation CSV, or a CSV with a wrong header.
    """
    if split not in SPLITS:
        raise ValueError(f"split={split!r}; expected one of {', '.join(SPLITS)}.")
    root = pathlib.Path(root)
    stored = configs.get_config("market").data

    def labels(annotation: Annotation) -> dict:
        extra = extra_labels(annotation) if extra_labels is not None else {}
        return {**market_labels(annotation), **extra}

    return open_split(split, image_dir(root, split), read_annotation_csv(annotation_csv(root, split)),
                      pairs_csv(root, split), height or stored.stored_height, width or stored.stored_width, labels)
