"""The one training runner: every trainer (stage I, stage II, the baselines) describes its run as a `Job`,
and `train` runs it.

A trainer is a recipe: it checks its arguments and returns a frozen `Job` naming the run directory,
the files the run records, and how to build the rest (networks and their checkpoint, the replica step,
the dataset factory, the image writer, the batch size). `train` owns what every run shares, in the
order every run needs it:

1. the chief writes the run's records (`config.json` and the stage's own file) and appends the
   command to `commands.json`, before anything is built, so that a run directory of another run is
   refused before it is touched;
2. the job is built under the strategy (a missing split fails here, before any network);
3. each phase runs in `loop.run`, the one place that trains, with its dataset sharded by element.

How a run is driven beyond its config (strategy, XLA, time budget, progress) comes in one `Options`.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from typing import Any, Callable

import keras
import tensorflow as tf

from keras_disentangle import configs, rundir
from keras_disentangle.training import checkpoint, loop


@dataclasses.dataclass(frozen=True)
class Options:
    """How to run a job; none of it is part of the run's config.

    Attributes:
      strategy: tf.distribute.Strategy. The job's networks are built under it and its steps run on it.
      jit_compile: bool. Compile the replica step with XLA.
      max_minutes: float or None. Stop (and checkpoint) after this much training time, over all phases;
        rerunning continues. None or 0: no limit.
      verbose: bool. Show progress (on the chief only).
      progress_seconds: float or None. Seconds between progress lines when stdout is not a terminal.
      command: (argv, flag values) or None. Recorded in the run (`rundir.record_command`).
    """

    strategy: tf.distribute.Strategy
    jit_compile: bool = False
    max_minutes: float | None = None
    verbose: bool = True
    progress_seconds: float | None = None
    command: tuple[list[str], dict] | None = None


@dataclasses.dataclass(frozen=True)
class Phase:
    """A stretch of training with one replica step, up to step `end` of the run's one step counter.

    Attributes:
      replica_step: batch -> dict of scalar losses (`loop` module docstring).
      make_dataset: seed -> infinite dataset of global batches; `train` shards it by element.
      batch_size: int. Images (or embeddings) per step over all replicas.
      end: int. The step this phase trains up to.
      write_images: step -> None, writes TensorBoard image grids (the chief calls it); None: no images.
      note: str or None. Printed when the phase starts, in a run of several phases.
    """

    replica_step: Callable[[dict], dict]
    make_dataset: Callable[[int], tf.data.Dataset]
    batch_size: int
    end: int
    write_images: Callable[[int], None] | None = None
    note: str | None = None


@dataclasses.dataclass(frozen=True)
class Built:
    """A job's networks, built: their checkpoint, optimizers and phases.

    Attributes:
      keeper: CheckpointKeeper. The networks and optimizers saved, and the step counter.
      optimizers: name -> optimizer; their learning rates go to TensorBoard as `learning_rate/<name>`.
      phases: the phases, in order.
      result: what `train` returns beside the losses (the trained networks).
    """

    keeper: checkpoint.CheckpointKeeper
    optimizers: dict[str, keras.optimizers.Optimizer]
    phases: tuple[Phase, ...]
    result: Any


@dataclasses.dataclass(frozen=True)
class Job:
    """A training run as a trainer describes it.

    Attributes:
      logdir: str. The run directory (resumed if it holds a checkpoint).
      train_cfg: TrainConfig. The seed, the periods and `steps_per_execution`.
      records: logdir -> None functions writing the run's files, in order (`config_json` is one); the
        chief calls them before anything is built. Each refuses a directory that holds another run.
      build: strategy -> Built. Builds the networks (seeded) under the strategy's scope, after the
        records; it reads the data first, so that a missing split fails before any network is built.
    """

    logdir: str
    train_cfg: configs.TrainConfig
    records: tuple[Callable[[str], None], ...]
    build: Callable[[tf.distribute.Strategy], Built]


def config_json(cfg: configs.Config) -> Callable[[str], None]:
    """The record writing `cfg` to `config.json` (`rundir.save_config`)."""
    return functools.partial(rundir.save_config, cfg=cfg)


def _sharded_by_element(make_dataset: Callable[[int], tf.data.Dataset]) -> Callable[[int], tf.data.Dataset]:
    options = tf.data.Options()
    # One shard file per split is common at tiny scale, and stage II's embeddings are one in-memory
    # tensor: shard by element, not by file.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return lambda seed: make_dataset(seed).with_options(options)


def train(job: Job, options: Options) -> tuple[Any, dict[str, float]]:
    """Runs `job` from the last checkpoint in its run directory through its phases.

    A phase already done (a rerun) is skipped; the time budget spans all phases, and a phase that
    stops before its end (the budget ran out) ends the run.

    Returns:
      The job's result (its trained networks) and the last losses of each phase.

    Raises:
      rundir.RunDirectoryError: if the run directory holds another run.
      loop.TrainingDiverged, loop.TrainingInterrupted, KeyboardInterrupt: as `loop.run`.
    """
    strategy = options.strategy
    chief = checkpoint.is_chief(strategy)
    if chief:
        for record in job.records:
            record(job.logdir)
        if options.command is not None:
            rundir.record_command(job.logdir, *options.command)
    built = job.build(strategy)
    keeper, train_cfg = built.keeper, job.train_cfg
    deadline = time.perf_counter() + 60 * options.max_minutes if options.max_minutes else None
    logs: dict[str, float] = {}
    for phase in built.phases:
        minutes = None if deadline is None else (deadline - time.perf_counter()) / 60
        if minutes is not None and minutes <= 0:
            break
        if len(built.phases) > 1:
            if keeper.restore_latest() >= phase.end:
                continue
            if options.verbose and chief and phase.note:
                print(phase.note)
        logs.update(loop.run(
            strategy=strategy, replica_step=phase.replica_step, make_dataset=_sharded_by_element(phase.make_dataset),
            keeper=keeper, seed=train_cfg.seed, total_steps=phase.end, global_batch_size=phase.batch_size,
            checkpoint_every=train_cfg.checkpoint_every, log_every=train_cfg.log_every,
            image_every=train_cfg.image_every, summary_dir=rundir.summary_dir(job.logdir) if chief else None,
            write_images=phase.write_images if chief else None,
            learning_rates={k: (lambda o=o: float(o.learning_rate.numpy())) for k, o in built.optimizers.items()},
            jit_compile=options.jit_compile, max_minutes=minutes, steps_per_execution=train_cfg.steps_per_execution,
            verbose=options.verbose and chief, progress_seconds=options.progress_seconds))
        if int(keeper.step.numpy()) < phase.end:  # the time budget ran out
            break
    return built.result, logs
