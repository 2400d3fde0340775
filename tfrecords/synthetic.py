"""`python -m tfrecords.synthetic`: writes the embedded synthetic people in the Market-1501 layout.

    python -m tfrecords.synthetic --out=DIR [--ids=20] [--images_per_id=8] [--cameras=6] \
        [--height=128] [--width=64] [--seed=0]

Writes `bounding_box_train/`, `bounding_box_test/`, `query/`, `market-annotation-{train,test}.csv`,
`market-pairs-test.csv` and `factors.json` (see `keras_disentangle.synthetic.generate`), printing a
progress line, the count per folder and the rendering speed. The same seed gives byte-identical
files. `python -m tfrecords.build --dataset=synthetic` turns the folder into TFRecords.
"""

from __future__ import annotations

import sys
from typing import Sequence

from absl import app, flags

from keras_disentangle import progress, synthetic

_OUT = flags.DEFINE_string("out", None, "Dataset root to write (created; an earlier synthetic set is replaced).")
_IDS = flags.DEFINE_integer("ids", 20, "Number of identities, split half train, half test.")
_IMAGES_PER_ID = flags.DEFINE_integer("images_per_id", 8, "Images per identity.")
_CAMERAS = flags.DEFINE_integer("cameras", 6, "Number of cameras (1..9), each with 2-3 sequences.")
_HEIGHT = flags.DEFINE_integer("height", 128, "Image height in pixels.")
_WIDTH = flags.DEFINE_integer("width", 64, "Image width in pixels.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of every random choice.")


def main(argv: Sequence[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    shown = None

    def report(done: int, total: int) -> None:
        # A line per tenth (and at least every 30 s in a log); a bar on a terminal.
        nonlocal shown
        shown = shown or progress.Progress(total, unit="image", label="rendered")
        shown.update(done, force=done % max(1, total // 10) == 0)

    try:
        summary = synthetic.generate(_OUT.value, ids=_IDS.value, images_per_id=_IMAGES_PER_ID.value,
                                     cameras=_CAMERAS.value, height=_HEIGHT.value, width=_WIDTH.value,
                                     seed=_SEED.value, progress=report)
    except ValueError as error:
        sys.exit(f"error: {error}")
    for folder, count in summary["counts"].items():
        print(f"{folder}: {count} images")
    print(f"market-pairs-test.csv: {summary['pairs']} pairs")
    print(f"{summary['images']} images in {summary['seconds']:.2f} s: {summary['images_per_second']:.0f} "
          f"images/s ({summary['images_per_cpu_second']:.0f} images per CPU second)")


if __name__ == "__main__":
    flags.mark_flag_as_required("out")
    app.run(main)
