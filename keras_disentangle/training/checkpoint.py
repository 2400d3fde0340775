"""Checkpoints: the only module that knows how a run directory is laid out.

A run directory (`--logdir`) holds:
  config.json      the resolved configuration, so later stages and tools rebuild the same models;
  checkpoints/     `tf.train.CheckpointManager` files (weights, optimizer slots, the step);
  train/           TensorBoard event files.

Multi-worker runs: every worker must take part in a save (the variables are mirrored), but only
the chief may write to the real directory; the others write to a scratch directory that is
removed afterwards, as the tf.distribute guide prescribes.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import sys

import tensorflow as tf

from keras_disentangle import configs

CONFIG_FILE = "config.json"
CHECKPOINT_DIR = "checkpoints"
SUMMARY_DIR = "train"


class RunDirectoryError(ValueError):
    """A run directory that cannot be used as asked (missing, or made with another config)."""


def save_config(logdir: str | os.PathLike, cfg: configs.Config) -> None:
    """Writes `cfg` to `logdir/config.json`, refusing to mix two model configs in one directory.

    Training may be resumed with different `train` fields (e.g. more steps), but the data and
    model fields must match the run that wrote the checkpoints.

    Raises:
      RunDirectoryError: if the directory holds a run with other data or model fields.
    """
    path = pathlib.Path(logdir) / CONFIG_FILE
    if path.exists():
        previous = configs.from_json(path.read_text())
        if (previous.data, previous.model) != (cfg.data, cfg.model):
            raise RunDirectoryError(
                f"{path} describes a run with another dataset or model config; "
                "use a new --logdir or the same flags as that run.")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(configs.to_json(cfg))


def load_config(logdir: str | os.PathLike) -> configs.Config:
    """Reads the config of a finished or running run.

    Raises:
      RunDirectoryError: if `logdir` has no config.json (it is not a run directory).
    """
    path = pathlib.Path(logdir) / CONFIG_FILE
    if not path.exists():
        raise RunDirectoryError(f"{logdir} is not a training run directory: {path} is missing.")
    return configs.from_json(path.read_text())


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes checkpoints, config and summaries (always, outside multi-worker)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    return task_type in (None, "chief") or (task_type == "worker" and task_id == 0
                                           and "chief" not in resolver.cluster_spec().as_dict())


class CheckpointKeeper:
    """Saves and restores a training state with `tf.train.CheckpointManager`.

    Args:
      logdir: str. The run directory; checkpoints go to `logdir/checkpoints`.
      step: tf.Variable (int64). The global step, saved with the state.
      keep: int. How many checkpoints to keep. Defaults to 3.
      strategy: tf.distribute.Strategy or None. Decides who writes (see module docstring).
      **trackables: models and optimizers to save, by name.
    """

    def __init__(self, logdir, step: tf.Variable, keep: int = 3, strategy=None, **trackables):
        self.step = step
        self._checkpoint = tf.train.Checkpoint(step=step, **trackables)
        directory = pathlib.Path(logdir) / CHECKPOINT_DIR
        self._chief_directory = str(directory)
        self._scratch = None
        if strategy is not None and not is_chief(strategy):
            self._scratch = pathlib.Path(logdir) / f".worker-{strategy.cluster_resolver.task_id}-scratch"
            directory = self._scratch
        self.directory = directory
        self._manager = tf.train.CheckpointManager(self._checkpoint, str(directory), max_to_keep=keep)
        # Every worker restores the chief's checkpoints; a non-chief only writes its share to scratch.
        self._read_manager = self._manager if self._scratch is None else tf.train.CheckpointManager(
            self._checkpoint, self._chief_directory, max_to_keep=keep)

    @property
    def manager(self) -> tf.train.CheckpointManager:
        """The manager writing this process's checkpoints (a scratch directory on non-chief workers)."""
        return self._manager

    @property
    def latest(self) -> str | None:
        """Path prefix of the newest checkpoint (the chief's), or None."""
        if self._scratch is None:
            return self._manager.latest_checkpoint
        return tf.train.latest_checkpoint(self._chief_directory)

    def restore_latest(self) -> int:
        """Restores the newest readable checkpoint if there is one; returns the step to continue from.

        A checkpoint that cannot be read (truncated or corrupted by a crash mid-write, or a file
        missing) is skipped for the one before it, with one line on stderr saying so.

        Raises:
          RunDirectoryError: if there are checkpoints but none of them can be read (rather than
            silently starting over).
        """
        restore_newest_readable(self._checkpoint, self._read_manager.checkpoints,
                                lambda status: status.assert_existing_objects_matched())
        return int(self.step.numpy())

    def save(self) -> str:
        """Writes a checkpoint at the current step; returns its path (the chief's)."""
        path = self._manager.save(checkpoint_number=int(self.step.numpy()))
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
        return path


def restore_weights(logdir: str | os.PathLike, **trackables) -> str:
    """Restores the named models' weights from the newest checkpoint of a run, ignoring the rest.

    Used by stage II, export and evaluation, which need a run's networks but not its optimizers.

    Returns:
      The checkpoint path that was read.

    Raises:
      RunDirectoryError: if the run has no checkpoint.
    """
    directory = pathlib.Path(logdir) / CHECKPOINT_DIR
    state = tf.train.get_checkpoint_state(str(directory))
    if state is None or not state.all_model_checkpoint_paths:
        raise RunDirectoryError(f"{logdir} has no checkpoint under {CHECKPOINT_DIR}/; train it first.")
    paths = [p if os.path.isabs(p) else str(directory / p) for p in state.all_model_checkpoint_paths]
    return restore_newest_readable(tf.train.Checkpoint(**trackables), paths,
                                   lambda status: status.expect_partial())


def restore_newest_readable(checkpoint: tf.train.Checkpoint, paths: list[str], check) -> str | None:
    """Restores the newest of `paths` (oldest first) that can be read; None when `paths` is empty.

    `check` is applied to the restore status (e.g. `assert_existing_objects_matched`). A mismatch
    it raises is a programming error and propagates; only unreadable files fall back.

    Raises:
      RunDirectoryError: when every checkpoint is unreadable.
    """
    failures = []
    for path in reversed(paths):
        try:
            check(checkpoint.restore(path))
        except (tf.errors.OpError, ValueError, IndexError, OSError) as error:
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            failures.append(f"{path} ({reason[:200]})")
            continue
        if failures:
            print(f"Checkpoint {'; '.join(failures)} cannot be read; resuming from {path} instead.", file=sys.stderr)
        return path
    if failures:
        raise RunDirectoryError(f"no checkpoint can be read: {'; '.join(failures)}")
    return None
