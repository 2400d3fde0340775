"""Stage I: trains the disentangled reconstruction network (Fig. 3) and/or the pose auto-encoder.

A recipe for the one runner (`runner.train`): data, networks, optimizers and the replica step of each
phase; owns nothing else.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from keras_disentangle import configs, data, precision
from keras_disentangle.models.stage1 import Stage1, build_stage1, reconstruct
from keras_disentangle.serving.runtime import stage1_trackables
from keras_disentangle.training import checkpoint, runner, schedule, steps


def build_optimizers(train_cfg: configs.TrainConfig) -> dict[str, keras.optimizers.Optimizer]:
    """Adam for G1, D1 and the pose auto-encoder, as the paper (beta_1 0.5; epsilon `adam_epsilon`, TF1's
    1e-8 in the full presets), on the halving schedule (`schedule.halving`); loss-scaled under
    mixed_float16."""

    def adam(rate: float, name: str) -> keras.optimizers.Optimizer:
        return precision.loss_scaled(keras.optimizers.Adam(
            schedule.halving(rate, train_cfg.lr_halving_steps), beta_1=train_cfg.beta_1, beta_2=train_cfg.beta_2,
            epsilon=train_cfg.adam_epsilon, name=name))

    return {"g1": adam(train_cfg.learning_rate, "g1_adam"), "d1": adam(train_cfg.d1_learning_rate or train_cfg.learning_rate, "d1_adam"),
            "pose": adam(train_cfg.pose_learning_rate, "pose_adam")}


def preview_grid(stage1: Stage1, batch: dict) -> tf.Tensor:
    """TensorBoard grid, one row per example: input | body mask | heatmaps | reconstruction.

    Returns:
      float32 tensor `(1, batch * H, 4 * W, 3)` in [0, 1].
    """
    reconstruction = tf.clip_by_value(reconstruct(stage1, batch), -1.0, 1.0)
    mask = tf.tile(batch["body_mask"] * 2.0 - 1.0, [1, 1, 1, 3])
    heatmaps = tf.tile(tf.reduce_max(batch["heatmaps"], axis=-1, keepdims=True), [1, 1, 1, 3])
    rows = tf.concat([batch["image"], mask, heatmaps, reconstruction], axis=2)
    shape = tf.shape(rows)
    return tf.reshape((rows + 1.0) / 2.0, [1, shape[0] * shape[1], shape[2], 3])


def training_state(cfg: configs.Config, logdir: str, strategy: tf.distribute.Strategy
                   ) -> tuple[Stage1, dict[str, keras.optimizers.Optimizer], checkpoint.CheckpointKeeper]:
    """Everything a stage-I checkpoint holds, freshly initialized (seeded), and its keeper.

    `keeper.restore_latest()` then loads a run's state into it, as `train_stage1` does on resume.
    """
    train_cfg = cfg.train
    keras.utils.set_random_seed(train_cfg.seed)
    with strategy.scope():
        stage1 = build_stage1(cfg)
        optimizers = build_optimizers(train_cfg)
        # Build the slots now, so that a resumed run restores them before its first step.
        optimizers["g1"].build(stage1.appearance_encoder.trainable_variables
                               + stage1.generator.trainable_variables)
        optimizers["d1"].build(stage1.d1.trainable_variables)
        optimizers["pose"].build(stage1.pose_encoder.trainable_variables
                                 + stage1.pose_decoder.trainable_variables)
        step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
    keeper = checkpoint.CheckpointKeeper(
        logdir, step, keep=train_cfg.keep_checkpoints, strategy=strategy,
        **stage1_trackables(stage1), **{f"{k}_optimizer": v for k, v in optimizers.items()})
    return stage1, optimizers, keeper


def phases(part: steps.Stage1Part, train_cfg: configs.TrainConfig) -> list[tuple[steps.Stage1Part, int]]:
    """The runs of `--model=part` as (part trained, last step), in order.

    The appearance networks train for `steps`, the pose auto-encoder for `pose_steps` (0: `steps`).
    `--model=both` trains both in each step up to the smaller budget, then the part with steps left
    alone up to the larger: on DeepFashion (100k / 120k) the last 20k steps train the pose
    auto-encoder only, on Market (70k / 60k) the last 10k the appearance networks only. One step
    counter serves all parts, so a rerun resumes in whichever phase it stopped.
    """
    budgets = {steps.Stage1Part.APPEARANCE: train_cfg.steps,
               steps.Stage1Part.POSE: train_cfg.pose_steps or train_cfg.steps}
    if part != steps.Stage1Part.BOTH:
        return [(part, budgets[part])]
    shared = min(budgets.values())
    return [(steps.Stage1Part.BOTH, shared)] + [(alone, end) for alone, end in budgets.items() if end > shared]


def batch_size(train_cfg: configs.TrainConfig, trained: steps.Stage1Part) -> int:
    """The global batch of a phase training `trained`: each part trains at its own batch from the preset
    (the paper trains them separately); with `--model=both` every step draws an image batch and a pose batch."""
    return train_cfg.pose_batch_size if trained == steps.Stage1Part.POSE else train_cfg.batch_size


def dataset_factory(cfg: configs.Config, data_dir: str, trained: steps.Stage1Part):
    """seed -> the batches of a phase training `trained` (`{"appearance": ..., "pose": ...}` for BOTH)."""

    def make_dataset(seed: int) -> tf.data.Dataset:
        if trained == steps.Stage1Part.POSE:
            return data.pose_dataset(data_dir, cfg, batch_size=batch_size(cfg.train, trained), seed=seed)
        dataset = data.train_dataset(data_dir, cfg, batch_size=batch_size(cfg.train, trained), seed=seed)
        if trained == steps.Stage1Part.BOTH:
            poses = data.pose_dataset(data_dir, cfg, batch_size=cfg.train.pose_batch_size, seed=seed)
            dataset = tf.data.Dataset.zip({"appearance": dataset, "pose": poses})
        return dataset

    return make_dataset


def job(cfg: configs.Config, *, data_dir: str, logdir: str, part: steps.Stage1Part) -> runner.Job:
    """Stage I as a job for `runner.train`: the networks of `part`, trained up to its budgets (`phases`)."""
    train_cfg = cfg.train

    def build(strategy: tf.distribute.Strategy) -> runner.Built:
        # Fail on a missing split or a damaged shard now, before the networks are built.
        dataset_factory(cfg, data_dir, part)(train_cfg.seed)
        preview = next(iter(_preview_dataset(data_dir, cfg)))
        stage1, optimizers, keeper = training_state(cfg, logdir, strategy)

        def write_images(at_step: int) -> None:
            tf.summary.image("reconstruction", preview_grid(stage1, preview), step=at_step)

        def phase(trained: steps.Stage1Part, end: int) -> runner.Phase:
            alone = (f"steps={train_cfg.steps}, pose_steps={train_cfg.pose_steps}: the {trained.value} part "
                     f"trains alone up to step {end}.")
            return runner.Phase(
                steps.stage1_step(trained, stage1, optimizers, train_cfg, batch_size(train_cfg, trained)),
                dataset_factory(cfg, data_dir, trained), batch_size(train_cfg, trained), end,
                write_images=None if trained == steps.Stage1Part.POSE else write_images,
                note=None if trained == part else alone)

        return runner.Built(keeper, optimizers, tuple(phase(*p) for p in phases(part, train_cfg)), result=stage1)

    return runner.Job(logdir, train_cfg, (runner.config_json(cfg),), build)


def train_stage1(cfg: configs.Config, *, data_dir: str, logdir: str, part: steps.Stage1Part,
                 **options) -> tuple[Stage1, dict[str, float]]:
    """Trains stage I from the last checkpoint in `logdir` up to the budgets of `part` (`phases`).

    `options` are the fields of `runner.Options` (`strategy` is required).

    Returns:
      The trained networks and the last losses of each part.

    Raises:
      ValueError: if `data_dir` holds no records for the train split.
      rundir.RunDirectoryError: if `logdir` holds a run with another config.
    """
    return runner.train(job(cfg, data_dir=data_dir, logdir=logdir, part=part), runner.Options(**options))


def _preview_dataset(data_dir: str, cfg: configs.Config) -> tf.data.Dataset:
    """A fixed batch of 4 held-out images (train images when the set has no test split)."""
    for split in ("test", "train"):
        try:
            return data.eval_dataset(data_dir, cfg, split=split, batch_size=4).take(1)
        except ValueError:
            continue
    raise ValueError(f"{data_dir} holds no records.")
