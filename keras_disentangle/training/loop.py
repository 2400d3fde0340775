"""The single training loop every stage runs in: strategy, distributed steps, progress, summaries,
checkpoints, NaN stop, and saving on Ctrl-C / SIGTERM.

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

import keras
import tensorflow as tf

from keras_disentangle.training.checkpoint import CheckpointKeeper

STRATEGIES = ("default", "mirrored", "multi_worker")


class TrainingDiverged(RuntimeError):
    """A loss became NaN or Inf. The message names the step and the last good checkpoint."""


class TrainingInterrupted(Exception):
    """SIGTERM arrived; raised inside the loop so the `finally` clause can save."""


def make_strategy(name: str) -> tf.distribute.Strategy:
    """Returns the tf.distribute strategy named by `--strategy`.

    `default` runs on one device; `mirrored` on all local devices; `multi_worker` on the cluster
    described by the `TF_CONFIG` environment variable (one process per worker).

    Raises:
      ValueError: for an unknown name.
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"Unknown strategy {name!r}; expected one of {', '.join(STRATEGIES)}.")


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


def distributed_step(strategy: tf.distribute.Strategy, replica_step: Callable, jit_compile: bool = False):
    """Wraps a replica step into one `tf.function` that runs it on every replica and sums the logs."""
    replica_fn = replica_step
    if jit_compile:
        compiled = tf.function(replica_step, jit_compile=True)

        def replica_fn(batch):
            # XLA has no string type: the batch's names and factor strings stay outside the cluster.
            return compiled({k: v for k, v in batch.items() if v.dtype != tf.string})

    @tf.function
    def step(batch):
        logs = strategy.run(replica_fn, args=(batch,))
        return {k: strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None) for k, v in logs.items()}

    return step


def run(
    *,
    strategy: tf.distribute.Strategy,
    replica_step: Callable[[dict], dict],
    dataset: tf.data.Dataset,
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
    verbose: bool = True,
) -> dict[str, float]:
    """Trains from the last checkpoint (or step 0) up to `total_steps`.

    Args:
      strategy: the tf.distribute strategy the networks were built under.
      replica_step: per-replica update, batch dict -> dict of scalar losses (see module docstring).
      dataset: an infinite, batched dataset of global batches.
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
      verbose: show the progress bar.

    Returns:
      The last step's losses as floats ({} when there was nothing left to train).

    Raises:
      TrainingDiverged: when a loss is NaN or Inf (no checkpoint is written for that state).
      KeyboardInterrupt, TrainingInterrupted: after saving a checkpoint.
    """
    start = keeper.restore_latest()
    if start >= total_steps:
        print(f"Already at step {start} of {total_steps}; nothing to train.")
        return {}
    if start:
        print(f"Resuming from step {start} ({keeper.latest}).")
    step_fn = distributed_step(strategy, replica_step, jit_compile)
    batches: Iterator = iter(strategy.experimental_distribute_dataset(dataset))
    writer = tf.summary.create_file_writer(summary_dir) if summary_dir else tf.summary.create_noop_writer()
    progbar = keras.utils.Progbar(total_steps, verbose=1 if verbose else 0, unit_name="step")
    progbar.update(start)
    logs: dict[str, float] = {}
    window_start, window_images = time.perf_counter(), 0
    diverged = False
    deadline = time.perf_counter() + 60 * max_minutes if max_minutes else float("inf")
    try:
        with _sigterm_raises(), writer.as_default():
            for step in range(start + 1, total_steps + 1):
                logs = {k: float(v) for k, v in step_fn(next(batches)).items()}
                bad = [k for k, v in logs.items() if not math.isfinite(v)]
                if bad:
                    diverged = True
                    raise TrainingDiverged(
                        f"Loss {', '.join(bad)} is {logs[bad[0]]} at step {step}; stopped. "
                        f"Last good checkpoint: {keeper.latest or 'none (nothing saved yet)'}.")
                keeper.step.assign(step)
                window_images += global_batch_size
                if step % log_every == 0 or step == total_steps:
                    images_per_sec = window_images / max(time.perf_counter() - window_start, 1e-9)
                    window_start, window_images = time.perf_counter(), 0
                    for name, value in logs.items():
                        tf.summary.scalar(name, value, step=step)
                    tf.summary.scalar("time/images_per_sec", images_per_sec, step=step)
                    for name, rate in (learning_rates or {}).items():
                        tf.summary.scalar(f"learning_rate/{name}", rate(), step=step)
                    logs_shown = [(k.split("/", 1)[-1], v) for k, v in logs.items()]
                    # Show the latest values, not Progbar's running average since step 0.
                    progbar.stateful_metrics.update(name for name, _ in logs_shown + [("img/s", 0)])
                    progbar.update(step, values=logs_shown + [("img/s", images_per_sec)], finalize=False)
                if write_images is not None and (step % image_every == 0 or step == start + 1):
                    write_images(step)
                if step % checkpoint_every == 0:
                    keeper.save()
                if time.perf_counter() > deadline:
                    print(f"\nTime budget of {max_minutes} minutes reached at step {step}.")
                    break
            else:
                progbar.update(total_steps, finalize=True)
    finally:
        if not diverged and int(keeper.step.numpy()) > start:
            path = keeper.save()
            print(f"\nSaved checkpoint {path}.")
        writer.flush()
    return logs
