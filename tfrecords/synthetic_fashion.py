"""`python -m tfrecords.synthetic_fashion`: the synthetic people in the DeepFashion layout.

    python -m tfrecords.synthetic_fashion --out=DIR [--ids=20] [--images_per_id=4] [--seed=0]

DeepFashion-shaped data with two factors, appearance and pose: 256x256 photos (1:1) of one person
each on one plain studio backdrop, in `train/` and `test/` with `fasion-annotation-{train,test}.csv`
and `fasion-pairs-test.csv` (ordered same-person test pairs with Rsho, Lsho, Rhip and Lhip present),
named `fashionSYNTHETICPeopleid<10-digit person>_<k>view.jpg` so that the garment key is the person,
plus the ground-truth factors in `factors.json` (the synthetic set's format, `tfrecords.synthetic_reader`:
fg_id = the person, bg_id 0 = `STUDIO`, the pose per image), from which `gt_swap` renders the exact
target of a pose transfer. `python -m tfrecords.build --dataset=deepfashion` converts it, as it converts
DeepFashion itself, storing the factors in the records (`make demo-deepfashion`). The same seed gives
byte-identical files.
"""

from __future__ import annotations

import pathlib
import shutil
from typing import Sequence

import numpy as np
from absl import flags
from PIL import Image

from keras_disentangle import cli, synthetic
from keras_disentangle.data.annotations import annotation_row, write_annotation_csv, write_pairs_csv
from keras_disentangle.data.layouts import SPLITS
from tfrecords import deepfashion, synthetic_reader
from tfrecords.synthetic import same_person_pairs

SIZE = 256
# A light grey studio wall, lit evenly, filling the frame (the horizon just below the bottom row;
# at exactly 1 the floor's shading would divide by zero).
STUDIO = {"camera": 0, "seed": 0, "horizon": 0.9999, "sequence": 1, "shapes": [], "tint": [1.0, 1.0, 1.0],
          "light": 0.0, "wall": {"top": [238, 236, 232], "bottom": [222, 220, 216], "texture": "plain", "cell": 0.05},
          "floor": {"far": [210, 210, 210], "near": [200, 200, 200], "texture": "planks", "cell": 1.0}}

STUDIO_ID = 0  # the backdrop's bg_id in factors.json


def image_name(person: int, view: int) -> str:
    return f"fashionSYNTHETICPeopleid{person:010d}_{view}view.jpg"


def generate(out_dir, ids: int = 20, images_per_id: int = 4, seed: int = 0) -> dict:
    """Writes the set (see the module docstring); an earlier one in `out_dir` is replaced.

    Returns:
      dict with the `images` per split and the test `pairs`.

    Raises:
      ValueError: for fewer than 2 identities or images per identity, or an `out_dir` that holds
        another DeepFashion folder (an annotation CSV this module did not write).
    """
    if ids < 2 or images_per_id < 2:
        raise ValueError(f"ids={ids}, images_per_id={images_per_id}: expected at least 2 of each.")
    out = pathlib.Path(out_dir)
    for split in SPLITS:
        csv = deepfashion.annotation_csv(out, split)
        first_row = csv.read_text().splitlines()[1:2] if csv.exists() else []
        if first_row and "SYNTHETIC" not in first_row[0]:
            raise ValueError(f"{csv} is not a synthetic set's; expected an empty directory or an earlier "
                             "synthetic set.")
        shutil.rmtree(out / split, ignore_errors=True)
        (out / split).mkdir(parents=True)
    rng = np.random.default_rng(seed)
    test_ids = set(rng.permutation(np.arange(1, ids + 1))[: ids // 2].tolist())
    rows, counts, test_keypoints = {split: [] for split in SPLITS}, dict.fromkeys(SPLITS, 0), {}
    identities, images = {}, {}
    for person in range(1, ids + 1):
        identity = identities[person] = synthetic.sample_identity(rng)
        split = "test" if person in test_ids else "train"
        for view in range(1, images_per_id + 1):
            pose = synthetic.sample_pose(rng, SIZE, SIZE)
            name = image_name(person, view)
            image = synthetic.render(identity, STUDIO, pose, (SIZE, SIZE))
            Image.fromarray(image).save(out / split / name, format="JPEG", quality=95, subsampling=0)
            images[name] = {"fg_id": person, "bg_id": STUDIO_ID, "pose": pose}
            keypoints = synthetic.annotate(pose)
            rows[split].append(annotation_row(name, keypoints))
            counts[split] += 1
            if split == "test":
                test_keypoints[name] = keypoints
    for split in SPLITS:
        write_annotation_csv(deepfashion.annotation_csv(out, split), sorted(rows[split]))
    pairs = same_person_pairs(test_keypoints, person=deepfashion.garment_key)
    write_pairs_csv(out / "fasion-pairs-test.csv", pairs)
    synthetic_reader.write_factors(out, seed, SIZE, SIZE, identities, {STUDIO_ID: STUDIO}, images)
    return {"images": counts, "pairs": len(pairs)}


FLAGS = flags.FLAGS


def define_flags() -> None:
    cli.define_shared("out", note="The dataset root (an earlier synthetic set there is replaced).", required=True)
    cli.define_shared("ids", default=20, note="People, split half train, half test.")
    cli.define_shared("images_per_id", default=4, note="Photos per person.")
    cli.define_shared("seed", default=0, note="Of every random choice.")


def main(argv: Sequence[str]) -> None:
    cli.no_positional(argv)
    try:
        summary = generate(FLAGS.out, ids=FLAGS.ids, images_per_id=FLAGS.images_per_id, seed=FLAGS.seed)
    except ValueError as error:
        raise cli.UsageError(str(error)) from None
    for split, count in summary["images"].items():
        print(f"{split}: {count} images")
    print(f"fasion-pairs-test.csv: {summary['pairs']} pairs")


if __name__ == "__main__":
    cli.run(main, define_flags)
