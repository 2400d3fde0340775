"""Trains keras-disentangle.

Stage I (reconstruction; Fig. 3 of the paper):
  python train.py --stage=1 --dataset=synthetic --data_dir=out/records --logdir=runs/s1 --scale=tiny

Stage II (a mapper per factor on the frozen stage-I encoders; Fig. 9):
  python train.py --stage=2 --factor=fg --dataset=synthetic --data_dir=out/records \
      --stage1_dir=runs/s1 --logdir=runs/s2-fg --scale=tiny

The sampling baselines of Fig. 7 (a vanilla VAE or DCGAN on whole images, no factors):
  python train.py --stage=baseline --model=vae --dataset=synthetic --data_dir=out/records \
      --logdir=runs/vae --scale=tiny

Running the same command again resumes from the last checkpoint. Ctrl-C and SIGTERM save one.
TensorBoard: `tensorboard --logdir=runs`.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import flags, logging  # noqa: E402

from keras_disentangle import cli, configs, precision  # noqa: E402 (none loads TensorFlow)

FLAGS = flags.FLAGS


def define_flags() -> None:
    cli.define_enum("stage", configs.Stage.STAGE1, configs.Stage,
                    "1: reconstruction network; 2: a stage-II mapper; baseline: the VAE or DCGAN of Fig. 7.")
    cli.define_shared("dataset", default=configs.DEFAULT_DATASET)
    cli.define_shared("data_dir", required=True)
    cli.define_shared("logdir", note="Config, checkpoints, TensorBoard events.", required=True)
    cli.define_shared("scale", default=configs.DEFAULT_SCALE, note="Stage II takes it, and every data and training "
                      "setting, from the stage-I run's config.json.")
    cli.define_enum("model", None, configs.TrainedModel,
                    "Stage I: which networks to train (appearance, pose, both; default both); "
                    "--stage=baseline: vae or dcgan (required).")
    cli.define_enum("fg_encoder", None, configs.FgEncoderKind,
                    "roi7 (BodyROI7) or whole (WholeBody); default: the preset's.")
    cli.define_shared("factor", note="Stage II: the factor to sample.")
    cli.define_shared("stage1_dir", note="Stage II: the run to load, frozen.")
    cli.define_enum("strategy", configs.Strategy.DEFAULT, configs.Strategy,
                    "tf.distribute strategy (multi_worker reads TF_CONFIG).")
    cli.define_shared("precision", note="Default: the preset's, auto (mixed_bfloat16 where the CPU/GPU/TPU has bf16 "
                      "arithmetic, else float32); mixed_float16: GPUs, loss scaling.")
    flags.DEFINE_integer("steps_per_execution", None, "Override: training steps per tf.function call (losses are "
                         "fetched only at log steps).", lower_bound=1)
    flags.DEFINE_bool("jit_compile", False, "Compile the training step with XLA.")
    cli.define_shared("max_minutes")
    cli.define_shared("steps", note="Override: total training steps.")
    cli.define_shared("batch_size", note="Override: global batch size.")
    cli.define_shared("learning_rate", note="Override: stage I's.")
    flags.DEFINE_float("baseline_learning_rate", None, "Override: the VAE / DCGAN baselines' Adam learning rate.")
    flags.DEFINE_float("l1_weight", None, "Override: lambda, the L1 weight of the stage-I loss.")
    cli.define_shared("adversarial_weight", note="Override.")
    flags.DEFINE_integer("lr_halving_steps", None, "Override: halve every learning rate every this many steps "
                         "(0: constant).", lower_bound=0)
    flags.DEFINE_integer("mapper_batch_size", None, "Override: stage-II batch.", lower_bound=1)
    flags.DEFINE_float("mapper_learning_rate", None, "Override: stage-II RMSProp learning rate.")
    flags.DEFINE_float("critic_clip", None, "Override: stage-II critic weight clipping bound.")
    flags.DEFINE_float("gradient_penalty_weight", None, "Override: stage-II WGAN-GP weight (0: clipping).")
    flags.DEFINE_float("d1_learning_rate", None, "Override: D1's Adam learning rate (0: the G1 rate).")
    flags.DEFINE_bool("d1_joint_batch", None, "Override: D1 scores real and generated images in one batch.")
    flags.DEFINE_integer("adversarial_start_step", None, "Override: L1-only warm-up steps before D1 starts.")
    flags.DEFINE_float("real_label", None, "Override: D1's target for real images (<1: one-sided smoothing).")
    flags.DEFINE_integer("d1_every", None, "Override: update D1 on every k-th step only (k:1 G1:D1); needs "
                         "--strategy=default.", lower_bound=1)
    flags.DEFINE_integer("d1_steps", None, "Override: D1 updates per step (1:n G1:D1).", lower_bound=1)
    cli.define_enum("d1_normalization", None, configs.D1Normalization,
                    "Override: D1's normalization: batch (the paper), none, spectral (not in the paper).")
    cli.define_enum("d1_loss", None, configs.D1Loss, "Override: bce (the paper) or hinge (not in the paper).")
    flags.DEFINE_float("d1_r1_weight", None, "Override: R1 penalty weight on D1 (not in the paper; 0: none).")
    flags.DEFINE_bool("appearance_in_up_path", None, "Override: every up-path level of the U-Net also reads the "
                      "tiled appearance embedding (not in the paper; the micro presets' default).")
    flags.DEFINE_integer("checkpoint_every", None, "Override: steps between checkpoints.")
    flags.DEFINE_integer("log_every", None, "Override: steps between TensorBoard scalars.")
    flags.DEFINE_integer("image_every", None, "Override: steps between TensorBoard image grids.")
    cli.define_shared("seed", note="Override.")
    flags.DEFINE_float("progress_seconds", None, "When stdout is not a terminal: seconds between progress lines "
                       "(default 30).")


def _config() -> configs.Config:
    stage1_cfg = _stage1_config() if FLAGS.stage == configs.Stage.STAGE2 else None
    try:
        cfg = stage1_cfg or configs.get_config(FLAGS.dataset, FLAGS.scale)
        return configs.override(
            cfg, fg_encoder=FLAGS.fg_encoder, steps=FLAGS.steps, batch_size=FLAGS.batch_size,
            precision=FLAGS.precision, learning_rate=FLAGS.learning_rate, l1_weight=FLAGS.l1_weight,
            adversarial_weight=FLAGS.adversarial_weight, d1_learning_rate=FLAGS.d1_learning_rate,
            d1_joint_batch=FLAGS.d1_joint_batch, adversarial_start_step=FLAGS.adversarial_start_step,
            real_label=FLAGS.real_label, d1_every=FLAGS.d1_every, d1_steps=FLAGS.d1_steps,
            d1_normalization=FLAGS.d1_normalization, d1_loss=FLAGS.d1_loss, d1_r1_weight=FLAGS.d1_r1_weight,
            appearance_in_up_path=FLAGS.appearance_in_up_path, checkpoint_every=FLAGS.checkpoint_every,
            log_every=FLAGS.log_every, image_every=FLAGS.image_every, seed=FLAGS.seed,
            steps_per_execution=FLAGS.steps_per_execution, lr_halving_steps=FLAGS.lr_halving_steps,
            mapper_batch_size=FLAGS.mapper_batch_size, mapper_learning_rate=FLAGS.mapper_learning_rate,
            critic_clip=FLAGS.critic_clip, gradient_penalty_weight=FLAGS.gradient_penalty_weight,
            baseline_learning_rate=FLAGS.baseline_learning_rate)
    except ValueError as error:
        raise cli.UsageError(str(error)) from None


def _stage1_config() -> configs.Config:
    """Stage II's config: the stage-I run's own (its config.json), with the factor's budget resolved.

    A preset of another scale would silently mix, e.g., the full preset's 2e-5 rate into a tiny
    run; so --dataset and --scale, when given, must name the stage-I run's. The precision is the
    machine's business, not the run's: `auto` unless --precision says otherwise.
    """
    from keras_disentangle import rundir  # noqa: PLC0415 (loads no TensorFlow)

    factor, stage1_dir = _require("factor"), _require("stage1_dir")
    cfg = rundir.load_config(stage1_dir)
    for flag, value in (("dataset", cfg.data.name), ("scale", cfg.scale)):
        if FLAGS[flag].present and FLAGS[flag].value != value:
            raise cli.UsageError(f"--{flag}={FLAGS[flag].value}: the stage-I run {stage1_dir} is {flag} {value!r}; "
                                 f"omit --{flag} (stage II reads it from {stage1_dir}/config.json).")
    train = dataclasses.replace(configs.stage2_train(cfg.train, factor), precision=configs.Precision.AUTO)
    return dataclasses.replace(cfg, train=train)


def warn_full_on_cpu(cfg: configs.Config, device_types: list[str]) -> None:
    """One line on stderr when the full preset (the paper's sizes, a GPU job) is about to train on a
    machine with neither GPU nor TPU: a forgotten --scale would otherwise just seem to hang."""
    if cfg.scale == configs.Scale.FULL and not {"GPU", "TPU"} & set(device_types):
        print("train.py: warning: the full preset (the paper's sizes, a GPU job) runs on a CPU; --scale=tiny or "
              "micro trains in minutes.", file=sys.stderr)


def _require(flag: str) -> str:
    value = getattr(FLAGS, flag)
    if not value:
        raise cli.UsageError(f"--{flag} is required with --stage={FLAGS.stage}.")
    return value


def _check_data_dir(data_dir: str) -> None:
    """Fails early, in one line, on a data directory that cannot feed training."""
    from keras_disentangle.data import records  # noqa: PLC0415

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
    cfg = _config()  # with --stage=2 it requires --factor and --stage1_dir
    allowed = configs.Baseline if FLAGS.stage == configs.Stage.BASELINE else configs.Stage1Part
    if FLAGS.stage == configs.Stage.BASELINE:
        _require("model")
    if FLAGS.model and (FLAGS.stage == configs.Stage.STAGE2 or FLAGS.model not in tuple(allowed)):
        expected = "" if FLAGS.stage == configs.Stage.STAGE2 else f" (expected one of {', '.join(allowed)})"
        raise cli.UsageError(f"--model={FLAGS.model} does not go with --stage={FLAGS.stage}{expected}.")

    if cfg.train.d1_every > 1 and FLAGS.strategy != configs.Strategy.DEFAULT:
        raise cli.UsageError(f"--d1_every={cfg.train.d1_every} needs --strategy=default: its skipped D1 update is a "
                             "tf.cond, which cannot hold the cross-replica gradient sum.")

    import tensorflow as tf  # noqa: PLC0415 (TensorFlow loads once the command line is good)

    from keras_disentangle.training import loop, runner  # noqa: PLC0415

    # MultiWorkerMirroredStrategy configures the runtime, which must happen before any TF op runs
    # (the data check below reads a record).
    strategy = loop.make_strategy(FLAGS.strategy)
    _check_data_dir(FLAGS.data_dir)

    warn_full_on_cpu(cfg, [d.device_type for d in tf.config.list_physical_devices()])
    try:
        # config.json records the resolved policy, not `auto`.
        cfg = configs.override(cfg, precision=precision.apply(cfg.train.precision))
    except ValueError as error:
        raise cli.UsageError(str(error)) from None
    # Flags that are not config fields change the run too: the run records them all.
    command = (sys.argv, {flag.name: flag.value for flag in FLAGS.get_key_flags_for_module(__name__)})
    options = runner.Options(strategy, jit_compile=FLAGS.jit_compile, max_minutes=FLAGS.max_minutes,
                             progress_seconds=FLAGS.progress_seconds, command=command)
    runner.train(_job(cfg), options)


def _job(cfg: configs.Config):
    """The `runner.Job` of `--stage` (its recipe checks the stage's own flags)."""
    if FLAGS.stage == configs.Stage.STAGE1:
        from keras_disentangle.training import stage1, steps  # noqa: PLC0415

        part = steps.Stage1Part(FLAGS.model or steps.Stage1Part.BOTH)
        return stage1.job(cfg, data_dir=FLAGS.data_dir, logdir=FLAGS.logdir, part=part)
    if FLAGS.stage == configs.Stage.BASELINE:
        from keras_disentangle.training import baselines  # noqa: PLC0415

        return baselines.job(cfg, model=FLAGS.model, data_dir=FLAGS.data_dir, logdir=FLAGS.logdir)
    from keras_disentangle.training import stage2  # noqa: PLC0415

    return stage2.job(cfg, factor=FLAGS.factor, data_dir=FLAGS.data_dir, stage1_dir=FLAGS.stage1_dir,
                      logdir=FLAGS.logdir)


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
