"""Trains keras-disentangle.

Stage I (reconstruction; Fig. 3 of the paper):
  python train.py --stage=1 --dataset=synthetic --data_dir=out/records --logdir=runs/s1 --scale=tiny

Stage II (a mapper per factor on the frozen stage-I encoders; Fig. 9):
  python train.py --stage=2 --factor=fg --dataset=synthetic --data_dir=out/records \
      --stage1_dir=runs/s1 --logdir=runs/s2-fg --scale=tiny

Running the same command again resumes from the last checkpoint. Ctrl-C and SIGTERM save one.
TensorBoard: `tensorboard --logdir=runs`.
"""

from __future__ import annotations

import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import flags, logging  # noqa: E402

from keras_disentangle import cli, configs, precision  # noqa: E402 (none loads TensorFlow)

FLAGS = flags.FLAGS


def define_flags() -> None:
    flags.DEFINE_integer("stage", 1, "1: reconstruction network; 2: a stage-II mapper.", lower_bound=1, upper_bound=2)
    flags.DEFINE_enum("dataset", configs.DEFAULT_DATASET, list(configs.DATASETS), "The dataset preset.")
    flags.DEFINE_string("data_dir", None, "Directory of TFRecords written by `python -m tfrecords.build`.")
    flags.mark_flag_as_required("data_dir")
    flags.DEFINE_string("logdir", None, "Run directory: config, checkpoints, TensorBoard events.")
    flags.mark_flag_as_required("logdir")
    flags.DEFINE_enum("scale", configs.DEFAULT_SCALE, list(configs.SCALES),
                      "full (the paper's sizes), tiny (CPU minutes) or micro (the demo, CI).")
    flags.DEFINE_enum("model", "both", ["appearance", "pose", "both"], "Stage I: which networks to train.")
    flags.DEFINE_enum("fg_encoder", None, [k.value for k in configs.FgEncoderKind],
                      "roi7 (BodyROI7) or whole (WholeBody); default: the preset's.")
    flags.DEFINE_enum("factor", None, [f.value for f in configs.Factor], "Stage II: the factor to sample.")
    flags.DEFINE_string("stage1_dir", None, "Stage II: the stage-I run directory to load, frozen.")
    flags.DEFINE_enum("strategy", "default", ["default", "mirrored", "multi_worker"],
                      "tf.distribute strategy (multi_worker reads TF_CONFIG).")
    flags.DEFINE_enum("precision", None, list(precision.POLICIES),
                      "auto (the preset's default: mixed_bfloat16 where the CPU/GPU/TPU has bf16 arithmetic, else "
                      "float32), float32, mixed_bfloat16 or mixed_float16 (GPUs; loss scaling).")
    flags.DEFINE_integer("steps_per_execution", None, "Override: training steps per tf.function call (losses are "
                         "fetched only at log steps).", lower_bound=1)
    flags.DEFINE_bool("jit_compile", False, "Compile the training step with XLA.")
    flags.DEFINE_float("max_minutes", None, "Stop after this much training time (checkpointed; rerun continues).")
    flags.DEFINE_integer("steps", None, "Override: total training steps.")
    flags.DEFINE_integer("batch_size", None, "Override: global batch size.")
    flags.DEFINE_float("learning_rate", None, "Override: stage-I Adam learning rate.")
    flags.DEFINE_float("l1_weight", None, "Override: lambda, the L1 weight of the stage-I loss.")
    flags.DEFINE_float("adversarial_weight", None, "Override: weight of the stage-I adversarial loss.")
    flags.DEFINE_float("d1_learning_rate", None, "Override: D1's Adam learning rate (0: the G1 rate).")
    flags.DEFINE_bool("d1_joint_batch", None, "Override: D1 scores real and generated images in one batch.")
    flags.DEFINE_integer("adversarial_start_step", None, "Override: L1-only warm-up steps before D1 starts.")
    flags.DEFINE_float("real_label", None, "Override: D1's target for real images (<1: one-sided smoothing).")
    flags.DEFINE_integer("checkpoint_every", None, "Override: steps between checkpoints.")
    flags.DEFINE_integer("log_every", None, "Override: steps between TensorBoard scalars.")
    flags.DEFINE_integer("image_every", None, "Override: steps between TensorBoard image grids.")
    flags.DEFINE_integer("seed", None, "Override: random seed.")
    flags.DEFINE_float("progress_seconds", None, "When stdout is not a terminal: seconds between progress lines "
                       "(default 30).")


def _config() -> configs.Config:
    try:
        cfg = configs.get_config(FLAGS.dataset, FLAGS.scale)
        return configs.override(
            cfg, fg_encoder=FLAGS.fg_encoder, steps=FLAGS.steps, batch_size=FLAGS.batch_size,
            precision=FLAGS.precision, learning_rate=FLAGS.learning_rate, l1_weight=FLAGS.l1_weight,
            adversarial_weight=FLAGS.adversarial_weight, d1_learning_rate=FLAGS.d1_learning_rate,
            d1_joint_batch=FLAGS.d1_joint_batch, adversarial_start_step=FLAGS.adversarial_start_step,
            real_label=FLAGS.real_label, checkpoint_every=FLAGS.checkpoint_every,
            log_every=FLAGS.log_every, image_every=FLAGS.image_every, seed=FLAGS.seed,
            steps_per_execution=FLAGS.steps_per_execution)
    except ValueError as error:
        raise cli.UsageError(str(error)) from None


def _require(flag: str) -> str:
    value = getattr(FLAGS, flag)
    if not value:
        raise cli.UsageError(f"--{flag} is required with --stage={FLAGS.stage}.")
    return value


def _check_data_dir(data_dir: str) -> None:
    """Fails early, in one line, on a data directory that cannot feed training."""
    from keras_disentangle import records  # noqa: PLC0415

    path = pathlib.Path(data_dir)
    hint = "write it with `python -m tfrecords.build`"
    if not path.is_dir():
        raise ValueError(f"--data_dir={data_dir} does not exist; {hint}.")
    shards = sorted(path.glob(records.shard_pattern("train")))
    if not shards:
        raise ValueError(f"--data_dir={data_dir} has no {records.shard_pattern('train')} files; {hint}.")
    import tensorflow as tf  # noqa: PLC0415

    if not any(True for _ in tf.data.TFRecordDataset([str(s) for s in shards]).take(1)):
        raise ValueError(f"--data_dir={data_dir}: the train TFRecords hold no records; {hint}.")


def run() -> None:
    cfg = _config()
    data_dir, logdir = FLAGS.data_dir, FLAGS.logdir
    if FLAGS.stage == 2:
        factor, stage1_dir = _require("factor"), _require("stage1_dir")

    from keras_disentangle.training import loop  # noqa: PLC0415 (TensorFlow loads once the command line is good)

    # MultiWorkerMirroredStrategy configures the runtime, which must happen before any TF op runs
    # (the data check below reads a record).
    strategy = loop.make_strategy(FLAGS.strategy)
    _check_data_dir(data_dir)

    try:
        # config.json records the resolved policy, not `auto`.
        cfg = configs.override(cfg, precision=precision.apply(cfg.train.precision))
    except ValueError as error:
        raise cli.UsageError(str(error)) from None
    # Flags that are not config fields change the run too: the run records them all.
    command = (sys.argv, {flag.name: flag.value for flag in FLAGS.get_key_flags_for_module(__name__)})
    if FLAGS.stage == 1:
        from keras_disentangle.training import stage1, steps  # noqa: PLC0415

        stage1.train_stage1(cfg, data_dir=data_dir, logdir=logdir, part=steps.Stage1Part(FLAGS.model),
                            strategy=strategy, jit_compile=FLAGS.jit_compile, max_minutes=FLAGS.max_minutes,
                            progress_seconds=FLAGS.progress_seconds, command=command)
    else:
        from keras_disentangle.training import stage2  # noqa: PLC0415

        stage2.train_stage2(cfg, factor=factor, data_dir=data_dir, stage1_dir=stage1_dir, logdir=logdir,
                            strategy=strategy, jit_compile=FLAGS.jit_compile, max_minutes=FLAGS.max_minutes,
                            progress_seconds=FLAGS.progress_seconds, command=command)


def main(argv):
    cli.no_positional(argv)
    # TensorFlow's savers log every checkpoint at INFO, which would break the progress bar.
    logging.set_verbosity(logging.WARNING)
    from tensorflow.errors import DataLossError  # noqa: PLC0415

    from keras_disentangle import data  # noqa: PLC0415
    from keras_disentangle.training.loop import TrainingDiverged, TrainingInterrupted  # noqa: PLC0415

    try:
        run()
    except (TrainingDiverged, data.DamagedShardError) as error:
        print(f"train.py: {error}", file=sys.stderr)
        sys.exit(1)
    except DataLossError as error:
        # tf.data names no file when a record fails to read mid-training: find the shard.
        damaged = data.find_damaged_shard(FLAGS.data_dir, "train")
        reason = str(error).strip().splitlines()[0]
        print(f"train.py: {damaged or f'reading --data_dir={FLAGS.data_dir} failed: {reason}'}", file=sys.stderr)
        sys.exit(1)
    except (KeyboardInterrupt, TrainingInterrupted):
        print("train.py: interrupted; the checkpoint above holds the progress.", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    cli.run(main, define_flags)
