"""`python -m tfrecords.synthetic`: writes the embedded synthetic people in the Market-1501 layout.

    python -m tfrecords.synthetic --out=DIR [--ids=20] [--images_per_id=8] [--cameras=6] \
        [--height=128] [--width=64] [--seed=0]

Writes `bounding_box_train/`, `bounding_box_test/`, `query/`, `market-annotation-{train,test,query}.csv`,
`market-pairs-test.csv` and `factors.json` (`generate`; the people are `keras_disentangle.synthetic`),
printing a progress line, the count per folder and the rendering speed. The same seed gives byte-identical
files. `python -m tfrecords.build --dataset=synthetic` turns the folder into TFRecords.
"""

from __future__ import annotations

import pathlib
import shutil
import time
from typing import Callable, Sequence

import numpy as np
from absl import flags
from PIL import Image

from keras_disentangle import cli, progress, synthetic
from keras_disentangle.data.annotations import annotation_row, write_annotation_csv, write_pairs_csv
from tfrecords import market, synthetic_reader

# Joints the pair recipe (Ma et al.'s and PG2's `check_valid`) requires: Rsho, Lsho, Rhip, Lhip.
PAIR_JOINTS = (2, 5, 8, 11)
# The range of each size argument of `generate` (and of its flag), inclusive.
LIMITS = {"ids": (2, 9999), "images_per_id": (1, 99), "cameras": (1, 9), "height": (16, 4096), "width": (8, 4096)}


def same_person_pairs(keypoints_by_name: dict, person) -> list[tuple[str, str]]:
    """Ordered pairs of different images of one `person(name)`, both showing every PAIR_JOINTS joint."""
    valid = sorted(n for n, kp in keypoints_by_name.items() if (kp[list(PAIR_JOINTS)] >= 0).all())
    return [(a, b) for a in valid for b in valid if a != b and person(a) == person(b)]


def _prepare_out_dir(out: pathlib.Path) -> None:
    """Creates the layout; replaces an earlier synthetic set but never a foreign dataset."""
    used = [d for d in market.IMAGE_DIRS if (out / d).is_dir() and any((out / d).iterdir())]
    if used and not (out / synthetic_reader.FACTORS_FILE).is_file():
        raise ValueError(f"`out_dir` {str(out)!r} already holds images in {used} but no {synthetic_reader.FACTORS_FILE}; "
                         "expected an empty directory or an earlier synthetic dataset.")
    for d in market.IMAGE_DIRS:
        shutil.rmtree(out / d, ignore_errors=True)
        (out / d).mkdir(parents=True)


def generate(out_dir, ids: int = 20, images_per_id: int = 8, cameras: int = 6, height: int = 128,
             width: int = 64, seed: int = 0,
             progress: Callable[[int, int], None] | None = None) -> dict:
    """Writes a synthetic dataset in the Market-1501 layout with its ground-truth factors.

    Identities `0001..ids` are split into disjoint train and test halves. Each image picks a
    camera and one of its 2-3 sequences, so every background id serves train and test people.
    Each test identity gives about a quarter of its images (at least one, keeping one) to
    `query/` (box index 00, annotated in `market-annotation-query.csv` like the splits, since the
    encoders need the keypoints of a query too), the rest to `bounding_box_test/`.
    Output for a given seed is byte-identical across runs.

    Files: `bounding_box_train/`, `bounding_box_test/`, `query/` (JPEG quality 95, names
    `PPPP_cCsS_FFFFFF_NN.jpg`), `market-annotation-{train,test,query}.csv`, `market-pairs-test.csv`
    (ordered same-identity test pairs with Rsho, Lsho, Rhip, Lhip present) and `factors.json`.

    Args:
      out_dir: str or path, the dataset root (created; an earlier synthetic set there is replaced).
      ids: int >= 2, number of identities. Defaults to 20.
      images_per_id: int >= 1, images per identity. Defaults to 8.
      cameras: int in 1..9, number of cameras. Defaults to 6.
      height: int >= 16, image height. Defaults to 128.
      width: int >= 8, image width. Defaults to 64.
      seed: int, the seed of everything. Defaults to 0.
      progress: optional callable `(done, total)` called after every image.

    Returns:
      dict with `counts` (images per folder), `pairs`, `images`, `seconds`, `images_per_second`
      (wall clock) and `images_per_cpu_second` (this process's CPU time, which shared machines
      do not distort).

    Raises:
      ValueError: naming an argument out of range or a non-empty foreign `out_dir`.
    """
    values = {"ids": ids, "images_per_id": images_per_id, "cameras": cameras, "height": height, "width": width}
    for name, (low, high) in LIMITS.items():
        value = values[name]
        if not low <= value <= high:
            raise ValueError(f"`{name}` must be in [{low}, {high}], got {value!r}.")
    start, start_cpu = time.perf_counter(), time.process_time()
    out = pathlib.Path(out_dir)
    _prepare_out_dir(out)
    rng = np.random.default_rng(seed)
    backgrounds = {}
    for camera in range(1, cameras + 1):
        base = synthetic.sample_camera(rng, camera)
        for sequence in range(1, int(rng.integers(2, 4)) + 1):
            backgrounds[10 * camera + sequence] = synthetic.sample_background(rng, base, sequence)
    scenes = sorted(backgrounds)
    person_ids = list(range(1, ids + 1))
    test_ids = set(rng.permutation(person_ids)[: ids // 2].tolist())
    identities = {pid: synthetic.sample_identity(rng) for pid in person_ids}
    frames = {bg_id: int(rng.integers(0, 5000)) for bg_id in scenes}
    images, rows = {}, {split: [] for split in market.SPLITS}
    counts = dict.fromkeys(market.IMAGE_DIRS, 0)
    test_keypoints = {}
    total, done = ids * images_per_id, 0
    for pid in person_ids:
        queries = min(max(1, images_per_id // 4), images_per_id - 1) if pid in test_ids else 0
        for k in range(images_per_id):
            bg_id = scenes[int(rng.integers(len(scenes)))]
            frames[bg_id] += int(rng.integers(1, 400))
            split = "test" if pid in test_ids else "train"
            folder = market.QUERY_DIR if k < queries else market.image_dir(out, split).name
            box = 0 if folder == market.QUERY_DIR else int(rng.integers(1, 9))
            name = market.image_name(pid, bg_id // 10, bg_id % 10, frames[bg_id], box)
            pose = synthetic.sample_pose(rng, height, width)
            image = synthetic.render(identities[pid], backgrounds[bg_id], pose, (height, width))
            # Full-resolution chroma (4:4:4) keeps the stored photo within ~2 grey levels (mean) of its render.
            Image.fromarray(image).save(out / folder / name, format="JPEG", quality=95, subsampling=0)
            images[name] = {"fg_id": pid, "bg_id": bg_id, "pose": pose}
            counts[folder] += 1
            keypoints = synthetic.annotate(pose)
            rows["query" if folder == market.QUERY_DIR else split].append(annotation_row(name, keypoints))
            if folder == market.image_dir(out, "test").name:
                test_keypoints[name] = keypoints
            done += 1
            if progress is not None:
                progress(done, total)
    for split in market.SPLITS:
        write_annotation_csv(market.annotation_csv(out, split), sorted(rows[split]))
    pairs = same_person_pairs(test_keypoints, person=lambda name: name[:4])
    write_pairs_csv(market.pairs_csv(out, "test"), pairs)
    synthetic_reader.write_factors(out, seed, height, width, identities, backgrounds, images)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - start_cpu
    return {"counts": counts, "pairs": len(pairs), "images": done, "seconds": seconds,
            "images_per_second": done / max(seconds, 1e-9),
            "images_per_cpu_second": done / max(cpu_seconds, 1e-9)}


FLAGS = flags.FLAGS


def define_flags() -> None:
    cli.define_shared("out", note="The dataset root (created; an earlier synthetic set is replaced).", required=True)
    # Out-of-range values are usage errors (exit 2, naming the flag), checked before anything is written.
    cli.define_shared("ids", default=20, note="Split half train, half test.", lower_bound=LIMITS["ids"][0],
                      upper_bound=LIMITS["ids"][1])
    cli.define_shared("images_per_id", default=8, lower_bound=LIMITS["images_per_id"][0],
                      upper_bound=LIMITS["images_per_id"][1])
    for name, default, help_text in (("cameras", 6, "Number of cameras, each with 2-3 sequences."),
                                     ("height", 128, "Image height in pixels."),
                                     ("width", 64, "Image width in pixels.")):
        low, high = LIMITS[name]
        flags.DEFINE_integer(name, default, help_text, lower_bound=low, upper_bound=high)
    cli.define_shared("seed", default=0, note="Of every random choice.")


def main(argv: Sequence[str]) -> None:
    cli.no_positional(argv)
    shown = None

    def report(done: int, total: int) -> None:
        # A line per tenth (and at least every 30 s in a log); a bar on a terminal.
        nonlocal shown
        shown = shown or progress.Progress(total, unit="image", label="rendered")
        shown.update(done, force=done % max(1, total // 10) == 0)

    summary = generate(FLAGS.out, ids=FLAGS.ids, images_per_id=FLAGS.images_per_id, cameras=FLAGS.cameras,
                       height=FLAGS.height, width=FLAGS.width, seed=FLAGS.seed, progress=report)
    for folder, count in summary["counts"].items():
        print(f"{folder}: {count} images")
    print(f"market-pairs-test.csv: {summary['pairs']} pairs")
    print(f"{summary['images']} images in {summary['seconds']:.2f} s: {summary['images_per_second']:.0f} "
          f"images/s ({summary['images_per_cpu_second']:.0f} images per CPU second)")


if __name__ == "__main__":
    cli.run(main, define_flags)
