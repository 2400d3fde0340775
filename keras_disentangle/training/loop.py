"""The single training loop every stage runs in: strategy, distributed steps, progress, summaries,
checkpoints, NaN stop, and saving on Ctrl-C / SIGTERM.

Steps run in chunks of up to `steps_per_execution` per `tf.function` call (ending on log, image
and checkpoint steps); the NaN check stays on the device and losses are fetched at log steps only.

A stage supplies a *replica step*: a function of one per-replica batch that updates its networks
and returns a dict of scalar losses already averaged over the global batch
(`tf.nn.compute_average_loss`), so that summing over replicas gives the global value.
"""

from __future__ import annotations

import contextlib
import math
import signal
import time
from typing import Callable, Iterator

import numpy as np
import tensorflow as tf

from keras_disentangle import configs, progress
from keras_disentangle.training.checkpoint import CheckpointKeeper



class TrainingDiverged(RuntimeError):
    """A loss became NaN or Inf. The message names the step and the last good checkpoint."""


class TrainingInterrupted(Exception):
    """SIGTERM arrived; raised inside the loop so the `finally` clause can save."""


class TrainingPreempted(TrainingInterrupted):
    """A worker of a multi-worker run got SIGTERM; every worker saved the same step, then raised this."""


def make_strategy(name: str) -> tf.distribute.Strategy:
    """Returns the tf.distribute strategy named by `--strategy`.

    `default` runs on one device; `mirrored` on all local devices; `multi_worker` on the cluster
    described by the `TF_CONFIG` environment variable (one process per worker).

    Raises:
      ValueError: for an unknown name.
    """
    if name == configs.Strategy.DEFAULT:
        return tf.distribute.get_strategy()
    if name == configs.Strategy.MIRRORED:
        return tf.distribute.MirroredStrategy()
    if name == configs.Strategy.MULTI_WORKER:
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"Unknown strategy {name!r}; expected one of {', '.join(configs.Strategy)}.")


@contextlib.contextmanager
def _sigterm_raises():
    """Turns SIGTERM into an exception for the duration, so a killed job still checkpoints."""

    def handler(signum, frame):
        raise TrainingInterrupted(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _preemption_handler(strategy: tf.distribute.Strategy, keeper: CheckpointKeeper):
    """A multi-worker run's coordinated save on SIGTERM, or None for a single process.

    One worker's own SIGTERM handler would save alone, but a multi-worker save needs every worker:
    `PreemptionCheckpointHandler` agrees on a step through the coordination service, every worker
    saves there, then each raises `TrainingPreempted`.
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return None

    def preempted():
        print(f"\nSaved the checkpoint of step {int(keeper.step.numpy())} with every worker (preempted).")
        raise TrainingPreempted(f"preempted at step {int(keeper.step.numpy())}")

    config = tf.distribute.experimental.TerminationConfig(exit_fn=preempted, save_fn=lambda: keeper.save())
    return tf.distribute.experimental.PreemptionCheckpointHandler(resolver, keeper.manager, termination_config=config)


def distributed_step(strategy: tf.distribute.Strategy, replica_step: Callable, jit_compile: bool = False):
    """Wraps a replica step into one `tf.function` that runs it on every replica and sums the logs."""
    step = _global_step(strategy, replica_step, jit_compile)
    return tf.function(step)


def _global_step(strategy: tf.distribute.Strategy, replica_step: Callable, jit_compile: bool) -> Callable:
    if jit_compile:
        compiled = tf.function(replica_step, jit_compile=True)

        def replica_fn(batch):
            # XLA has no string type: the batch's names and factor strings stay outside the cluster.
            return compiled({k: v for k, v in batch.items() if v.dtype != tf.string})
    else:
        replica_fn = replica_step

    def step(batch):
        logs = strategy.run(replica_fn, args=(batch,))
        return {k: strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None) for k, v in logs.items()}

    return step


def _all_finite(logs: dict) -> tf.Tensor:
    return tf.reduce_all([tf.reduce_all(tf.math.is_finite(v)) for v in logs.values()])


def multi_step(strategy: tf.distribute.Strategy, replica_step: Callable, jit_compile: bool = False):
    """Wraps a replica step into one `tf.function` that runs up to `count` steps per call.

    As Keras `fit(steps_per_execution=k)`: the batches are drawn from the iterator inside the
    function and nothing returns to the host between steps. The NaN check runs on the device: the
    call stops after the first step whose losses are not all finite.

    Returns:
      `run(iterator, count) -> (steps_run, logs, finite)`: int32 steps run (1..count), the last
      step's logs and whether they are finite.
    """
    step = _global_step(strategy, replica_step, jit_compile)

    @tf.function
    def run(iterator, count):
        logs = step(next(iterator))
        done = tf.constant(1, tf.int32)
        finite = _all_finite(logs)
        while tf.logical_and(done < count, finite):
            logs = step(next(iterator))
            done += 1
            finite = _all_finite(logs)
        return done, logs, finite

    return run


def resume_seed(seed: int, start_step: int) -> int:
    """The seed of the data order and of the step's random draws for a run that starts at `start_step`.

    A rerun after a preemption must not replay the first run: with the run's own seed its shuffled
    order (and its noise) would start over, so a job preempted every few hundred steps would train on
    the head of one order again and again. Step 0 keeps `seed`, so a fresh run is unchanged.
    """
    if start_step == 0:
        return seed
    return int(np.random.SeedSequence([seed, start_step]).generate_state(1)[0])


def chunk_end(step: int, limit: int, periods: tuple[int, ...]) -> int:
    """The last step of the chunk that starts after `step`: at most `limit`, ending on the first
    multiple of any period, so that logs, images and checkpoints fall on their own steps."""
    return min([limit] + [(step // period + 1) * period for period in periods if period > 0])


def run(
    *,
    strategy: tf.distribute.Strategy,
    replica_step: Callable[[dict], dict],
    make_dataset: Callable[[int], tf.data.Dataset],
    seed: int,
    keeper: CheckpointKeeper,
    total_steps: int,
    global_batch_size: int,
    checkpoint_every: int,
    log_every: int,
    image_every: int,
    summary_dir: str | None,
    write_images: Callable[[int], None] | None = None,
    learning_rates: dict[str, Callable[[], float]] | None = None,
    jit_compile: bool = False,
    max_minutes: float | None = None,
    steps_per_execution: int = 1,
    verbose: bool = True,
    progress_seconds: float | None = None,
) -> dict[str, float]:
    """Trains from the last checkpoint (or step 0) up to `total_steps`.

    Args:
      strategy: the tf.distribute strategy the networks were built under.
      replica_step: per-replica update, batch dict -> dict of scalar losses (see module docstring).
      make_dataset: seed -> an infinite, batched dataset of global batches, shuffled by that seed.
      seed: int. The run's seed. A resumed run draws its data order and reseeds TensorFlow's random
        ops with `resume_seed(seed, start)`: it continues with a fresh order, never a replay.
      keeper: the checkpoint keeper holding the step counter and the state to save.
      total_steps: where to stop; resuming continues towards it.
      global_batch_size: images per step over all replicas (for images/s).
      checkpoint_every, log_every, image_every: int. Periods in steps.
      summary_dir: TensorBoard directory; None writes no summaries (non-chief workers).
      write_images: called with the step every `image_every` steps (and at the first step), inside
        the summary writer's default context, to write image grids.
      learning_rates: name -> callable returning the current learning rate, for TensorBoard.
      jit_compile: compile the replica step with XLA.
      max_minutes: stop (and checkpoint) after this much wall-clock training time even before
        `total_steps`; rerunning continues. None: no limit.
      steps_per_execution: steps per `tf.function` call at most; a call also ends on every log,
        image and checkpoint step. Losses reach the host only at log steps and progress lines.
      verbose: show progress (a bar on a terminal, plain lines in a log; `keras_disentangle.progress`).
      progress_seconds: seconds between plain progress lines (default `progress.INTERVAL_SECONDS`).

    Returns:
      The losses of the last step fetched as floats ({} when there was nothing left to train).

    Raises:
      TrainingDiverged: when a loss is NaN or Inf (no checkpoint is written for that state).
      KeyboardInterrupt, TrainingInterrupted: after saving a checkpoint.
    """
    start = keeper.restore_latest()
    if start >= total_steps:
        print(f"Already at step {start} of {total_steps}; nothing to train.")
        return {}
    stream_seed = resume_seed(seed, start)
    if start:
        print(f"Resuming from step {start} ({keeper.latest}).")
        # Before the step is traced: its random ops take their seeds from the global one then.
        tf.random.set_seed(stream_seed)
    steps_fn = multi_step(strategy, replica_step, jit_compile)
    dataset = make_dataset(stream_seed)
    batches: Iterator = iter(strategy.experimental_distribute_dataset(dataset))
    writer = tf.summary.create_file_writer(summary_dir) if summary_dir else tf.summary.create_noop_writer()
    shown = progress.Progress(total_steps, unit="step", start=start, verbose=verbose, interval=progress_seconds)
    logs: dict[str, float] = {}
    window_start, window_step = time.perf_counter(), start
    images_per_sec = None
    diverged = False
    deadline = time.perf_counter() + 60 * max_minutes if max_minutes else float("inf")
    periods = (log_every, checkpoint_every) + ((image_every,) if write_images is not None else ())
    step = start
    preemption = _preemption_handler(strategy, keeper)
    preempted = False
    try:
        # With a preemption handler, SIGTERM is its own (it installed a handler); else it raises here.
        with contextlib.nullcontext() if preemption else _sigterm_raises(), writer.as_default():
            while step < total_steps:
                end = chunk_end(step, min(total_steps, step + steps_per_execution), periods)
                if write_images is not None and step == start:
                    end = start + 1  # the first image grid shows the step-1 state
                ran, device_logs, finite = steps_fn(batches, tf.constant(end - step, tf.int32))
                step += int(ran)
                if not bool(finite):
                    diverged = True
                    values = {k: float(v) for k, v in device_logs.items()}
                    bad = [k for k, v in values.items() if not math.isfinite(v)]
                    raise TrainingDiverged(
                        f"Loss {', '.join(bad)} is {values[bad[0]]} at step {step}; stopped. "
                        f"Last good checkpoint: {keeper.latest or 'none (nothing saved yet)'}.")
                keeper.step.assign(step)
                if preemption:
                    preemption.save_checkpoint_if_preempted()
                if step % log_every == 0 or step == total_steps or shown.due():
                    logs = {k: float(v) for k, v in device_logs.items()}  # waits for the step
                    now = time.perf_counter()
                    images_per_sec = (step - window_step) * global_batch_size / max(now - window_start, 1e-9)
                    window_start, window_step = now, step
                    if step % log_every == 0 or step == total_steps:
                        for name, value in logs.items():
                            tf.summary.scalar(name, value, step=step)
                        tf.summary.scalar("time/images_per_sec", images_per_sec, step=step)
                        for name, rate in (learning_rates or {}).items():
                            tf.summary.scalar(f"learning_rate/{name}", rate(), step=step)
                    shown.update(step, [(k.split("/", 1)[-1], v) for k, v in logs.items()]
                                 + [("img/s", images_per_sec)], finish=step == total_steps)
                else:
                    shown.update(step)
                if write_images is not None and (step % image_every == 0 or step == start + 1):
                    write_images(step)
                if step % checkpoint_every == 0:
                    keeper.save()
                if time.perf_counter() > deadline:
                    print(f"\nTime budget of {max_minutes} minutes reached at step {step}.")
                    break
    except TrainingPreempted:
        preempted = True  # every worker saved the agreed step already: no second (collective) save
        raise
    finally:
        if not (diverged or preempted) and int(keeper.step.numpy()) > start:
            path = keeper.save()
            print(f"\nSaved checkpoint {path}.")
        writer.flush()
    return logs
