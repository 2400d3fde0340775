"""Training checkpoints: saving and resuming a training state in a run directory (`rundir`).

Multi-worker runs: every worker must take part in a save (the variables are mirrored), but only
the chief may write to the real directory; the others write to a scratch directory that is
removed afterwards, as the tf.distribute guide prescribes.
"""

from __future__ import annotations

import pathlib
import shutil

import tensorflow as tf

from keras_disentangle import rundir


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
        directory = pathlib.Path(rundir.checkpoint_dir(logdir))
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
        rundir.restore_newest_readable(self._checkpoint, self._read_manager.checkpoints,
                                lambda status: status.assert_existing_objects_matched())
        return int(self.step.numpy())

    def save(self) -> str:
        """Writes a checkpoint at the current step; returns its path (the chief's)."""
        path = self._manager.save(checkpoint_number=int(self.step.numpy()))
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
        return path
