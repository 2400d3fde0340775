"""`python -m keras_disentangle.apps.virtual_market`: a Virtual Market, generated people in the Market-1501 layout.

    python -m keras_disentangle.apps.virtual_market --stage2_dir=RUN_FG --stage2_dir=RUN_BG --data_dir=RECORDS \
        --out=DIR [--ids=500] [--images_per_id=24] [--seed=0] [--stage1_dir=RUN]

As in the paper (Sec. 5.4, "Virtual Market"): each identity is one FG code sampled by the FG mapper,
rendered `images_per_id` times, each time with a BG code sampled by the BG mapper and a real pose
drawn from the `train` split of `--data_dir` (the stage-I run's training records). Writes

  bounding_box_train/             JPEGs `PPPP_cC s1_FFFFFF_01.jpg`, upsampled to Market's 128x64 so the
                                  converter reads the folder like any Market folder;
  market-annotation-train.csv     the keypoints of the pose each image was rendered in (stored size);
  market-pairs-train.csv          each image with the next one of its identity (pose-transfer pairs);
  virtual_market.json             what made it: runs, seed, counts.

`python -m tfrecords.build --dataset=market --root=DIR --out=RECORDS` converts it; the re-ID trainer
(`keras_disentangle.reid.train`) trains on those records. The same runs, data and seed give the same
images. Stands on `runtime` (loading and sampling), never on training code.
"""

from __future__ import annotations

import json
import pathlib
import shutil
from typing import Sequence

import numpy as np
import tensorflow as tf
from absl import flags
from PIL import Image

from keras_disentangle import cli, configs, data, progress
from keras_disentangle.data import geometry, layouts, records
from keras_disentangle.serving import runtime
from keras_disentangle.data.annotations import annotation_row, write_annotation_csv, write_pairs_csv

INFO_FILE = "virtual_market.json"
# Pose draws and BG codes come from streams of their own so that changing one never changes another.
_POSE_STREAM = 7


def training_keypoints(data_dir: str) -> np.ndarray:
    """The keypoints of every `train` record, as stored (pixels of the stored photo, -1 missing).

    Returns:
      int `(n, 18, 2)`, and the stored `(height, width)`.

    Raises:
      ValueError: if `data_dir` has no train shards or they are empty.
    """
    dataset = tf.data.TFRecordDataset(data.shard_files(data_dir, "train")).map(records.parse_image)
    keypoints, sizes = [], set()
    for record in dataset:
        keypoints.append(record["keypoints"].numpy())
        sizes.add((int(record["height"]), int(record["width"])))
    if not keypoints:
        raise ValueError(f"--data_dir={data_dir}: the train split has no records to take poses from.")
    if len(sizes) != 1:
        raise ValueError(f"--data_dir={data_dir}: train images of several sizes {sorted(sizes)}; expected one.")
    return np.stack(keypoints), sizes.pop()


def _prepare_out_dir(out: pathlib.Path) -> None:
    """Creates the layout; replaces an earlier Virtual Market but never a foreign dataset."""
    folder = layouts.market_image_dir(out, "train")
    if folder.is_dir() and any(folder.iterdir()) and not (out / INFO_FILE).is_file():
        raise ValueError(f"--out={out}: {folder} already holds images but no {INFO_FILE}; expected an empty "
                         "directory or an earlier Virtual Market.")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)


def write(models: runtime.Stage2Serving, keypoints: np.ndarray, stored_hw: tuple[int, int], out_dir,
          vm: configs.VirtualMarketConfig = configs.VirtualMarketConfig(), report=None) -> dict:
    """Renders and writes a Virtual Market (module docstring).

    Args:
      models: Stage2Serving with the FG mapper (and the BG mapper when the dataset has a background).
      keypoints: int `(n, 18, 2)` real poses at `stored_hw`, drawn with replacement.
      stored_hw: (height, width) of the written JPEGs, the size the keypoints refer to.
      out_dir: str or path. The dataset root.
      vm: VirtualMarketConfig. Counts, seed, cameras, batch size.
      report: optional callable `(done, total)`.

    Returns:
      dict: `images`, `ids`, `pairs`.

    Raises:
      ValueError: for counts out of range, a missing mapper, or a foreign `out_dir`.
    """
    for name, value, low, high in (("ids", vm.ids, 1, 9999), ("images_per_id", vm.images_per_id, 1, 999999),
                                   ("cameras", vm.cameras, 1, 9)):
        if not low <= value <= high:
            raise ValueError(f"--{name}={value}: expected an integer in [{low}, {high}].")
    models.mapper(configs.Factor.FOREGROUND)
    if models.cfg.data.has_background:
        models.mapper(configs.Factor.BACKGROUND)
    out = pathlib.Path(out_dir)
    _prepare_out_dir(out)
    data_cfg = models.cfg.data
    total = vm.ids * vm.images_per_id
    fg = models.sample_embedding(configs.Factor.FOREGROUND, vm.ids, vm.seed).numpy()
    bg = (models.sample_embedding(configs.Factor.BACKGROUND, total, vm.seed).numpy()
          if data_cfg.has_background else None)
    poses = np.random.default_rng([vm.seed, _POSE_STREAM]).integers(len(keypoints), size=total)
    names, rows = [], []
    for start in range(0, total, vm.batch_size):
        index = np.arange(start, min(start + vm.batch_size, total))
        stored = keypoints[poses[index]]
        heatmaps = models.heatmaps(geometry.scale_keypoints(stored, stored_hw, (data_cfg.height, data_cfg.width)))
        images = models.generate(fg[index // vm.images_per_id], None if bg is None else bg[index], heatmaps)
        images = tf.image.resize(tf.cast(images, tf.float32), stored_hw)
        pixels = tf.cast(tf.round(tf.clip_by_value(images * 127.5 + 127.5, 0, 255)), tf.uint8).numpy()
        for i, pixel in zip(index, pixels):
            person, k = divmod(int(i), vm.images_per_id)
            name = layouts.market_image_name(person + 1, k % vm.cameras + 1, 1, k, 1)
            Image.fromarray(pixel).save(layouts.market_image_dir(out, "train") / name, format="JPEG", quality=95,
                                        subsampling=0)
            names.append(name)
            rows.append(annotation_row(name, keypoints[poses[i]]))
        if report is not None:
            report(int(index[-1]) + 1, total)
    write_annotation_csv(layouts.market_annotation_csv(out, "train"), rows)
    pairs = [(names[i], names[i - i % vm.images_per_id + (i + 1) % vm.images_per_id])
             for i in range(total) if vm.images_per_id > 1]
    write_pairs_csv(layouts.market_pairs_csv(out, "train"), pairs)
    return {"images": total, "ids": vm.ids, "pairs": len(pairs)}


FLAGS = flags.FLAGS
_DEFAULTS = configs.VirtualMarketConfig()


def define_flags() -> None:
    cli.define_shared("stage2_dir", note="Give the FG run and (Market, synthetic) the BG run.", required=True)
    cli.define_shared("stage1_dir", note="Default: the one the stage-II runs name.")
    cli.define_shared("data_dir", note="Its train split gives the real poses.", required=True)
    cli.define_shared("out", note="The dataset root (an earlier Virtual Market there is replaced).", required=True)
    cli.define_shared("ids", default=_DEFAULTS.ids, note="One sampled FG code each.", lower_bound=1)
    cli.define_shared("images_per_id", default=_DEFAULTS.images_per_id, lower_bound=1)
    cli.define_shared("seed", default=_DEFAULTS.seed, note="Of the noise and of the pose draw.")


def main(argv: Sequence[str]) -> None:
    cli.no_positional(argv)
    models = runtime.load_stage2(FLAGS.stage2_dir, FLAGS.stage1_dir)
    keypoints, stored_hw = training_keypoints(FLAGS.data_dir)
    vm = configs.VirtualMarketConfig(ids=FLAGS.ids, images_per_id=FLAGS.images_per_id, seed=FLAGS.seed)
    shown = None

    def report(done: int, total: int) -> None:
        nonlocal shown
        shown = shown or progress.Progress(total, unit="image", label="rendered")
        shown.update(done)

    summary = write(models, keypoints, stored_hw, FLAGS.out, vm, report)
    info = {"stage2_dirs": [str(pathlib.Path(d).resolve()) for d in FLAGS.stage2_dir],
            "data_dir": str(pathlib.Path(FLAGS.data_dir).resolve()), "poses_from": len(keypoints),
            "seed": vm.seed, **summary}
    (pathlib.Path(FLAGS.out) / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n")
    print(f"{summary['images']} images of {summary['ids']} identities in {layouts.market_image_dir(FLAGS.out, 'train')}, "
          f"{summary['pairs']} pairs; convert with python -m tfrecords.build --dataset=market --root={FLAGS.out}")


if __name__ == "__main__":
    cli.run(main, define_flags)
