"""The run directory: the only module that knows where a run keeps what.

A run directory (`train.py --logdir`) holds:
  config.json               the resolved configuration, so later stages and tools rebuild the same
                            models (`configs.to_json`);
  commands.json             every `train.py` invocation on the run, oldest first: the command line
                            and the value of each of its flags (`record_command`);
  checkpoints/              `tf.train.CheckpointManager` files (weights, optimizer slots, the step);
  train/                    TensorBoard event files;
and a stage-II run also
  stage2.json               `{"factor": "fg" | "bg" | "pose", "stage1_dir": "<absolute path>"}`;
  embeddings-<factor>.npz   the real training embeddings, cached with the stage-I checkpoint and
                            data directory they came from (recomputed when either changes);
a sampling-baseline run (`train.py --stage=baseline`) also
  baseline.json             `{"model": "vae" | "dcgan"}`;
and, once evaluated,
  report.json               `evaluate.py`'s report (PNG grids beside it);
  fid_stats/                FID statistics of real image sets, cached by a hash of the set.

Training writes (`training/`), everything else reads; both go through these functions.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import pathlib
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from keras_disentangle import configs

CONFIG_FILE = "config.json"
COMMANDS_FILE = "commands.json"
CHECKPOINT_DIR = "checkpoints"
SUMMARY_DIR = "train"
STAGE2_FILE = "stage2.json"
BASELINE_FILE = "baseline.json"
REPORT_FILE = "report.json"
FID_CACHE_DIR = "fid_stats"


class RunDirectoryError(ValueError):
    """A run directory that cannot be used as asked (missing, or made with another config)."""


def checkpoint_dir(logdir: str | os.PathLike) -> str:
    return os.path.join(logdir, CHECKPOINT_DIR)


def summary_dir(logdir: str | os.PathLike) -> str:
    return os.path.join(logdir, SUMMARY_DIR)


def embeddings_path(logdir: str | os.PathLike, factor: configs.Factor) -> str:
    """The real-embedding cache of a stage-II run of `factor`."""
    return os.path.join(logdir, f"embeddings-{configs.Factor(factor).value}.npz")


def report_path(logdir: str | os.PathLike) -> str:
    return os.path.join(logdir, REPORT_FILE)


def fid_cache_dir(logdir: str | os.PathLike) -> str:
    return os.path.join(logdir, FID_CACHE_DIR)


def save_config(logdir: str | os.PathLike, cfg: configs.Config) -> None:
    """Writes `cfg` to `logdir/config.json`, refusing to mix two model configs in one directory.

    Training may be resumed with different `train` fields (e.g. more steps), but the data and
    model fields must match the run that wrote the checkpoints, and `lr_halving_steps` may not
    switch between 0 and a period (the optimizers' checkpoints differ).

    Raises:
      RunDirectoryError: if the directory holds a run with other data or model fields, or
        checkpoints of the other kind of learning rate.
    """
    path = pathlib.Path(logdir) / CONFIG_FILE
    if path.exists():
        previous = configs.from_json(path.read_text())
        if (previous.data, previous.model) != (cfg.data, cfg.model):
            raise RunDirectoryError(
                f"{path} describes a run with another dataset or model config; "
                "use a new --logdir or the same flags as that run.")
        # A constant rate is a variable of the optimizer, a schedule is none: their checkpoints differ.
        before, now = previous.train.lr_halving_steps, cfg.train.lr_halving_steps
        if (before > 0) != (now > 0) and any(pathlib.Path(checkpoint_dir(logdir)).glob("ckpt-*.index")):
            raise RunDirectoryError(
                f"--lr_halving_steps={now}: the checkpoints in {logdir} were trained with {before}, and a run "
                "cannot switch between a constant rate (0) and a halving one; use the run's value or a new --logdir.")
    _write_whole(path, configs.to_json(cfg))


def _write_whole(path: pathlib.Path, text: str) -> None:
    """Writes `text` to a sibling file and renames it over `path`.

    Another worker of a multi-worker run may read a run file at any moment (a half-written config.json
    failed a non-chief's load_config with a JSONDecodeError), and a run killed mid-write must not leave
    a truncated file that refuses the rerun.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text)
    os.replace(partial, path)


def record_command(logdir: str | os.PathLike, argv: Sequence[str], flag_values: Mapping[str, Any]) -> None:
    """Appends one training invocation to `logdir/commands.json`.

    config.json holds the config a run resolved to; flags that are not config fields change a run
    too (`--max_minutes`, `--strategy`, `--jit_compile`, `--model`, `--precision=auto` before it
    resolved), and a resumed run may be started with other ones, so each invocation is kept.

    Args:
      logdir: the run directory.
      argv: the command line.
      flag_values: every flag of the tool by name, with the value it ran with (JSON-serializable).
    """
    path = pathlib.Path(logdir) / COMMANDS_FILE
    entries = json.loads(path.read_text()) if path.exists() else []
    entries.append({"command": " ".join(argv),
                    "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                    "flags": dict(flag_values)})
    _write_whole(path, json.dumps(entries, indent=2))


def load_config(logdir: str | os.PathLike) -> configs.Config:
    """Reads the config of a finished or running run.

    Raises:
      RunDirectoryError: if `logdir` has no config.json (it is not a run directory).
    """
    path = pathlib.Path(logdir) / CONFIG_FILE
    if not path.exists():
        raise RunDirectoryError(f"{logdir} is not a training run directory: {path} is missing.")
    return configs.from_json(path.read_text())


def restore_weights(logdir: str | os.PathLike, **trackables) -> str:
    """Restores the named models' weights from the newest readable checkpoint of a run, ignoring the rest.

    Used by stage II, export and evaluation, which need a run's networks but not its optimizers.

    Returns:
      The checkpoint path that was read.

    Raises:
      RunDirectoryError: if the run has no checkpoint, or none that can be read.
    """
    import tensorflow as tf  # noqa: PLC0415 (command lines read the layout before TensorFlow loads)

    # get_checkpoint_state already resolves relative paths against the directory.
    state = tf.train.get_checkpoint_state(checkpoint_dir(logdir))
    if state is None or not state.all_model_checkpoint_paths:
        raise RunDirectoryError(f"{logdir} has no checkpoint under {CHECKPOINT_DIR}/; train it first.")
    return restore_newest_readable(tf.train.Checkpoint(**trackables), list(state.all_model_checkpoint_paths),
                                   lambda status: status.expect_partial())


def restore_newest_readable(checkpoint, paths: list[str], check) -> str | None:
    """Restores the newest of `paths` (oldest first) that can be read; None when `paths` is empty.

    `check` is applied to the restore status (e.g. `assert_existing_objects_matched`). A mismatch
    it raises is a programming error and propagates; only unreadable files fall back, with one line
    on stderr naming what was skipped.

    Raises:
      RunDirectoryError: when every checkpoint is unreadable (rather than silently starting over).
    """
    import tensorflow as tf  # noqa: PLC0415

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


@dataclasses.dataclass(frozen=True)
class Stage2Record:
    """What `stage2.json` says: the factor a stage-II run samples and the stage-I run it stands on."""

    factor: configs.Factor
    stage1_dir: str


def write_stage2_record(logdir: str | os.PathLike, factor: configs.Factor, stage1_dir: str) -> None:
    """Writes `stage2.json`, refusing a directory that holds a run of another factor.

    Raises:
      RunDirectoryError: if `logdir` holds a stage-II run of another factor.
    """
    factor = configs.Factor(factor)
    check_stage2_factor(logdir, factor)
    path = pathlib.Path(logdir) / STAGE2_FILE
    _write_whole(path, json.dumps({"factor": factor.value, "stage1_dir": str(pathlib.Path(stage1_dir).resolve())},
                                  indent=2))


def check_stage2_factor(logdir: str | os.PathLike, factor: configs.Factor) -> None:
    """Raises RunDirectoryError if `logdir` holds a stage-II run of a factor other than `factor`."""
    factor = configs.Factor(factor)
    path = pathlib.Path(logdir) / STAGE2_FILE
    if path.exists() and json.loads(path.read_text())["factor"] != factor.value:
        raise RunDirectoryError(
            f"{path} describes a stage-II run of another factor; use a new --logdir for {factor.value}.")


def read_stage2_record(logdir: str | os.PathLike) -> Stage2Record:
    """Reads `stage2.json`.

    Raises:
      RunDirectoryError: if `logdir` has no `stage2.json` or names an unknown factor.
    """
    path = pathlib.Path(logdir) / STAGE2_FILE
    if not path.exists():
        raise RunDirectoryError(f"{logdir} is not a stage-II run directory: {path} is missing.")
    record = json.loads(path.read_text())
    try:
        factor = configs.Factor(record["factor"])
    except ValueError:
        raise RunDirectoryError(f"{path}: unknown factor {record['factor']!r}; expected fg, bg or pose.") from None
    return Stage2Record(factor, record["stage1_dir"])


def write_baseline_record(logdir: str | os.PathLike, model: configs.Baseline) -> None:
    """Writes `baseline.json`, refusing a directory that holds a run of another kind.

    Raises:
      RunDirectoryError: if `logdir` holds a baseline run of another model, or a stage-I/II run.
    """
    model = configs.Baseline(model)
    path = pathlib.Path(logdir) / BASELINE_FILE
    if path.exists() and json.loads(path.read_text())["model"] != model.value:
        raise RunDirectoryError(f"{path} describes a baseline run of another model; use a new --logdir for "
                                f"{model.value}.")
    if not path.exists() and (pathlib.Path(logdir) / CHECKPOINT_DIR).exists():
        raise RunDirectoryError(f"{logdir} holds checkpoints of a run that is not a {model.value} baseline; use a "
                                "new --logdir.")
    _write_whole(path, json.dumps({"model": model.value}, indent=2))


def read_baseline_record(logdir: str | os.PathLike) -> configs.Baseline:
    """The model of a baseline run.

    Raises:
      RunDirectoryError: if `logdir` has no `baseline.json` or names an unknown model.
    """
    path = pathlib.Path(logdir) / BASELINE_FILE
    if not path.exists():
        raise RunDirectoryError(f"{logdir} is not a baseline run directory: {path} is missing.")
    model = json.loads(path.read_text())["model"]
    try:
        return configs.Baseline(model)
    except ValueError:
        raise RunDirectoryError(f"{path}: unknown model {model!r}; expected vae or dcgan.") from None
