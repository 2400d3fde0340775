"""DeepFashion In-shop reader, in the layout of the pose-transfer code bases.

The layout's folder and file names, both CSV families included, are `keras_disentangle.data.layouts`'
(`train/`, `test/`, `fasion-annotation-{split}.csv`, `fasion-pairs-{split}.csv`). Images are 256x256
(the Deformable-GAN / PG2 files) or 256x176 (the PATN / GFLA release, which cut 40 px off each side
of the 256x256 photos; its keypoints are in the 256x176 frame). A record keeps the file and its
keypoints as they are; `data.prepare_example` edge-pads a 256x176 photo back to 256x256 (x + 40), so
one preset serves both releases.

Person id: the index of the image's garment key (`layouts.garment_key`) in the sorted list of the
distinct keys that the split's annotation CSV names (malformed rows included, so that skipping a bad
row or image with `--skip_bad` renumbers nothing). Ids are therefore numbered per split from 0 and are not comparable
across splits. Camera: -1 (DeepFashion has none).

A root with a `factors.json` (the synthetic people of `tfrecords.synthetic_fashion`; DeepFashion itself
has none) also gives each record `fg_id`, `bg_id` and `factors`, as `tfrecords.synthetic_reader` does.
"""

from __future__ import annotations

import pathlib

from keras_disentangle import configs
from keras_disentangle.data import layouts
from tfrecords import synthetic_reader
from tfrecords.common import SPLITS, Annotation, Reason, Split, open_split, read_annotation_csv

# The layout's names are the package's (`layouts`); these are the readers' and writers' short names.
garment_key = layouts.garment_key
annotation_csv = layouts.deepfashion_annotation_csv
available_splits = layouts.deepfashion_splits
# The 256x176 release (see the module docstring).
NARROW_SIZE = (256, 176)


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
    return open_split(split, layouts.deepfashion_image_dir(root, split), annotations,
                      layouts.deepfashion_pairs_csv(root, split), stored.stored_height, stored.stored_width, labels,
                      other_sizes=(NARROW_SIZE,))
