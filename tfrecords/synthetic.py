"""`python -m tfrecords.synthetic`: writes the embedded synthetic people in the Market-1501 layout.

    python -m tfrecords.synthetic --out=DIR [--ids=20] [--images_per_id=8] [--cameras=6] \
        [--height=128] [--width=64] [--seed=0]

Writes `bounding_box_train/`, `bounding_box_test/`, `query/`, `market-annotation-{train,test}.csv`,
`market-pairs-test.csv` and `factors.json` (see `keras_disentangle.synthetic.generate`), printing a
progress line, the count per folder and the rendering speed. The same seed gives byte-identical
files. `python -m tfrecords.build --dataset=synthetic` turns the folder into TFRecords.
"""

from __future__ import annotations

from typing import Sequence

from absl import flags

from keras_disentangle import cli, synthetic

FLAGS = flags.FLAGS


def define_flags() -> None:
    flags.DEFINE_string("out", None, "Dataset root to write (created; an earlier synthetic set is replaced).")
    flags.mark_flag_as_required("out")
    flags.DEFINE_integer("ids", 20, "Number of identities, split half train, half test.")
    flags.DEFINE_integer("images_per_id", 8, "Images per identity.")
    flags.DEFINE_integer("cameras", 6, "Number of cameras (1..9), each with 2-3 sequences.")
    flags.DEFINE_integer("height", 128, "Image height in pixels.")
    flags.DEFINE_integer("width", 64, "Image width in pixels.")
    flags.DEFINE_integer("seed", 0, "Seed of every random choice.")


def _progress(done: int, total: int) -> None:
    if done == total or done % max(1, total // 10) == 0:
        print(f"rendered {done}/{total} images", flush=True)


def main(argv: Sequence[str]) -> None:
    cli.no_positional(argv)
    summary = synthetic.generate(FLAGS.out, ids=FLAGS.ids, images_per_id=FLAGS.images_per_id, cameras=FLAGS.cameras,
                                 height=FLAGS.height, width=FLAGS.width, seed=FLAGS.seed, progress=_progress)
    for folder, count in summary["counts"].items():
        print(f"{folder}: {count} images")
    print(f"market-pairs-test.csv: {summary['pairs']} pairs")
    print(f"{summary['images']} images in {summary['seconds']:.2f} s: {summary['images_per_second']:.0f} "
          f"images/s ({summary['images_per_cpu_second']:.0f} images per CPU second)")


if __name__ == "__main__":
    cli.run(main, define_flags)
