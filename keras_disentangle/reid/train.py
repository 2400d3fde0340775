"""`python -m keras_disentangle.reid.train`: trains the re-ID network on the `train` split of a Market-layout set.

    python -m keras_disentangle.reid.train --data_dir=RECORDS --logdir=RUN [--preset=full|small] \
        [--backbone=resnet50|small] [--steps=N] [--triplet_weight=1] [--weights=FILE] [--max_minutes=M]

`--data_dir` holds the TFRecords of a Market-layout folder (`python -m tfrecords.build --dataset=market`,
or `--dataset=synthetic`): real Market-1501, the synthetic people, or a Virtual Market
(`keras_disentangle.apps.virtual_market`). Identities > 0 of the train split are the classes (junk and
distractors left out). Batches are P identities x K images (`ReidConfig.batch_ids`, `images_per_id`),
randomly mirrored; the loss is label-smoothed softmax cross-entropy plus, with `--triplet_weight`,
the batch-hard triplet loss on the pre-BN feature.

The run directory follows the project's layout (`rundir`): `reid.json` (the config and the class
count), `checkpoints/` (every weight, the optimizer and the step: a rerun resumes), `commands.json`.
`python -m keras_disentangle.reid.evaluate --logdir=RUN` scores it.
"""

from __future__ import annotations

import json
import pathlib
import sys
import time
from typing import Sequence

import keras
import numpy as np
import tensorflow as tf
from absl import flags

from keras_disentangle import cli, configs, rundir
from keras_disentangle.reid import images
from keras_disentangle.reid.model import build_reid_model

CONFIG_FILE = "reid.json"


def read_run(logdir) -> tuple[configs.ReidConfig, int]:
    """The config and class count of a re-ID run.

    Raises:
      rundir.RunDirectoryError: if `logdir` has no `reid.json`.
    """
    path = pathlib.Path(logdir) / CONFIG_FILE
    if not path.exists():
        raise rundir.RunDirectoryError(f"{logdir} is not a re-ID run directory: {path} is missing.")
    raw = json.loads(path.read_text())
    return configs.reid_config_from_json(json.dumps(raw["config"])), int(raw["num_classes"])


def _write_run(logdir, cfg: configs.ReidConfig, num_classes: int) -> None:
    """Writes `reid.json`, refusing a run whose network (backbone, sizes, classes) differs."""
    path = pathlib.Path(logdir) / CONFIG_FILE
    if path.exists():
        old, old_classes = read_run(logdir)
        network = ("backbone", "height", "width", "small_channels", "feature_dim")
        if old_classes != num_classes or any(getattr(old, k) != getattr(cfg, k) for k in network):
            raise rundir.RunDirectoryError(f"{path} describes another network ({old.backbone.value}, {old_classes} "
                                           "classes); use a new --logdir or the same data and flags.")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"config": json.loads(configs.reid_config_to_json(cfg)),
                                "num_classes": num_classes}, indent=2))


def batch_hard_triplet(features: tf.Tensor, labels: tf.Tensor, margin: float) -> tf.Tensor:
    """Hermans et al. (2017): per anchor, the farthest positive against the nearest negative."""
    squared = tf.reduce_sum(features ** 2, axis=1)
    distances = tf.sqrt(tf.maximum(squared[:, None] + squared[None, :] - 2 * features @ tf.transpose(features), 1e-12))
    same = tf.equal(labels[:, None], labels[None, :])
    hardest_positive = tf.reduce_max(tf.where(same, distances, 0.0), axis=1)
    hardest_negative = tf.reduce_min(tf.where(same, tf.reduce_max(distances) + 1.0, distances), axis=1)
    return tf.reduce_mean(tf.nn.relu(hardest_positive - hardest_negative + margin))


def pk_batches(labels: np.ndarray, batch_ids: int, images_per_id: int, rng: np.random.Generator):
    """Endless index batches of `batch_ids` identities x `images_per_id` images (with replacement only
    where an identity has fewer images, or the set fewer identities)."""
    by_label = [np.flatnonzero(labels == label) for label in np.unique(labels)]
    while True:
        chosen = rng.choice(len(by_label), batch_ids, replace=len(by_label) < batch_ids)
        yield np.concatenate([rng.choice(by_label[c], images_per_id, replace=len(by_label[c]) < images_per_id)
                              for c in chosen])


def train(data_dir: str, logdir: str, cfg: configs.ReidConfig, weights: str | None = None,
          max_minutes: float | None = None, log=print) -> dict:
    """Trains (or resumes) a re-ID run; returns `step`, `loss`, `classes`, `images`, `seconds`.

    Raises:
      ValueError: for a split without identities; rundir.RunDirectoryError for a mismatched run.
    """
    split = images.load_split(data_dir, "train", cfg.height, cfg.width)
    keep = split["person_id"] > 0
    if not keep.any():
        raise ValueError(f"--data_dir={data_dir}: the train split has no identity > 0 to learn.")
    classes, labels = np.unique(split["person_id"][keep], return_inverse=True)
    pictures = split["image"][keep]
    _write_run(logdir, cfg, len(classes))
    keras.utils.set_random_seed(cfg.seed)
    model = build_reid_model(cfg, len(classes), weights)
    optimizer = keras.optimizers.Adam(cfg.learning_rate)
    step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, step=step)
    manager = tf.train.CheckpointManager(checkpoint, rundir.checkpoint_dir(logdir), max_to_keep=3)
    restored = rundir.restore_newest_readable(checkpoint, list(manager.checkpoints),
                                              lambda status: status.assert_existing_objects_matched())
    if restored:
        log(f"Resumed from {restored} (step {int(step.numpy())}).")
    cross_entropy = keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=cfg.label_smoothing)

    @tf.function
    def train_step(image, label):
        flip = tf.random.uniform([tf.shape(image)[0], 1, 1, 1]) < 0.5
        image = tf.where(flip, tf.reverse(image, axis=[2]), image)
        with tf.GradientTape() as tape:
            out = model(image, training=True)
            loss = cross_entropy(tf.one_hot(label, len(classes)), out["logits"])
            if cfg.triplet_weight:
                loss += cfg.triplet_weight * batch_hard_triplet(out["raw"], label, cfg.triplet_margin)
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
        step.assign_add(1)
        return loss

    rng = np.random.default_rng([cfg.seed, int(step.numpy())])
    batches = pk_batches(labels, cfg.batch_ids, cfg.images_per_id, rng)
    start, loss, first = time.perf_counter(), float("nan"), int(step.numpy())
    while int(step.numpy()) < cfg.steps:
        index = next(batches)
        loss = float(train_step(tf.constant(pictures[index]), tf.constant(labels[index])))
        done = int(step.numpy())
        if done % cfg.log_every == 0 or done == cfg.steps:
            rate = (done - first) / max(time.perf_counter() - start, 1e-9)
            log(f"step {done}/{cfg.steps} | loss {loss:.4f} | {rate:.1f} step/s")
        if done % cfg.checkpoint_every == 0:
            manager.save(checkpoint_number=done)
        if max_minutes is not None and time.perf_counter() - start > 60 * max_minutes:
            log(f"--max_minutes={max_minutes} reached at step {done}; rerun to continue.")
            break
    path = manager.save(checkpoint_number=int(step.numpy()))
    log(f"Saved checkpoint {path}.")
    return {"step": int(step.numpy()), "loss": loss, "classes": len(classes), "images": len(pictures),
            "seconds": time.perf_counter() - start}


FLAGS = flags.FLAGS
_FIELDS = ("backbone", "steps", "batch_ids", "images_per_id", "learning_rate", "triplet_weight", "feature_dim",
           "seed")


def define_flags() -> None:
    cli.define_shared("data_dir", note="A Market-layout set (its train split is learned).", required=True)
    cli.define_shared("logdir", note="reid.json, checkpoints; a rerun resumes.", required=True)
    flags.DEFINE_enum("preset", "full", list(configs.REID_PRESETS), "full: ResNet50 at 128x64; small: the small "
                      "trunk at 64x32 (synthetic / micro scale).")
    cli.define_enum("backbone", None, configs.ReidBackbone, "Override: the trunk.")
    cli.define_shared("steps", note="Override: total training steps.", lower_bound=1)
    flags.DEFINE_integer("batch_ids", None, "Override: identities per batch (P).", lower_bound=1)
    cli.define_shared("images_per_id", note="Override: in a batch (K).", lower_bound=1)
    cli.define_shared("learning_rate", note="Override.")
    flags.DEFINE_float("triplet_weight", None, "Override: batch-hard triplet loss weight (0: softmax only).")
    flags.DEFINE_integer("feature_dim", None, "Override: size of the matched feature.", lower_bound=1)
    cli.define_shared("seed", note="Override.")
    flags.DEFINE_string("weights", None, "A weights file for the resnet50 trunk (e.g. ImageNet, notop).")
    cli.define_shared("max_minutes")


def main(argv: Sequence[str]) -> None:
    cli.no_positional(argv)
    if FLAGS.weights and not pathlib.Path(FLAGS.weights).is_file():
        raise ValueError(f"--weights={FLAGS.weights}: no such file.")
    cfg = configs.reid_config(FLAGS.preset, **{name: FLAGS[name].value for name in _FIELDS})
    rundir.record_command(FLAGS.logdir, sys.argv, {name: FLAGS[name].value for name in
                                                   (*_FIELDS, "data_dir", "logdir", "preset", "weights",
                                                    "max_minutes")})
    summary = train(FLAGS.data_dir, FLAGS.logdir, cfg, FLAGS.weights, FLAGS.max_minutes)
    print(f"{summary['classes']} identities, {summary['images']} images; step {summary['step']}, "
          f"loss {summary['loss']:.4f}, {summary['seconds']:.0f} s")


if __name__ == "__main__":
    cli.run(main, define_flags)
