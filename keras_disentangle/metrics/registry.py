"""The metrics `evaluate.py` can run: one module per metric in `metrics/suite/`, listed in `modules()`.

A metric module declares `METRIC = Metric(...)`: its name, what it needs (`Needs`), its own flags
(`Flag`, defined by `evaluate.py` for every registered metric), a check of the settings that runs
before anything heavy, and its computation `compute(inputs) -> dict` (`value`, `n`, `protocol`, and
whatever else it reports). Adding a metric is one module in `suite/` and its import in `modules()`.

This module and the metric modules load no TensorFlow at import: `evaluate.py` reads the registry to
define its flags before it parses them. The computations import what they use.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import os
from collections.abc import Callable, Mapping
from typing import Any

from keras_disentangle import configs

# The protocol's defaults live in configs.EvalConfig; flags and options take them from here.
DEFAULTS = configs.EvalConfig()
TASKS = tuple(task.value for task in configs.Task)
PAIRS = tuple(pairs.value for pairs in configs.Pairs)
PROTOCOLS = tuple(protocol.value for protocol in configs.Protocol)
# Settings of `--protocol=paper` that only a model's images have: a folder brings its own pairs and masks.
_MODEL_ONLY_SETTINGS = ("pairs", "mask_from")


def protocol_settings(protocol: str, folders: bool) -> dict[str, Any]:
    """The flag values `protocol` fixes (`EvalConfig.paper_settings`; none for `custom`).

    Raises:
      ValueError: for an unknown protocol.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"--protocol={protocol}: expected one of {', '.join(PROTOCOLS)}.")
    if protocol == configs.Protocol.CUSTOM:
        return {}
    return {name: value for name, value in DEFAULTS.paper_settings
            if not (folders and name in _MODEL_ONLY_SETTINGS)}


def crop_panel(crop: str) -> tuple[int, int]:
    """Parses `--crop=i/k` into (i, k), 1 <= i <= k.

    Raises:
      ValueError: naming the flag and the expected form.
    """
    try:
        index, count = (int(part) for part in crop.split("/"))
    except ValueError:
        index = count = 0
    if not 1 <= index <= count:
        raise ValueError(f"--crop={crop}: expected i/k, the i-th of k equal-width panels counted from 1 (PATN's "
                         "5-panel strips: --crop=5/5).")
    return index, count


class Needs(str, enum.Enum):
    """What a metric reads besides the settings."""

    IMAGES = "images"  # an image set: a model's output (--task) or --generated_dir;
    TARGETS = "targets"  # ... with a real target photo per image (not --task=sample);
    STAGE1 = "stage1"  # a stage-I run (--stage1_dir), not folders;
    STAGE2 = "stage2"  # stage-II runs (--stage2_dir, one per factor).


@dataclasses.dataclass(frozen=True)
class Flag:
    """A metric's own command-line flag (absl `DEFINE_<kind>`); `choices`, a `configs.StrEnum` class, makes
    it a choice (`cli.define_enum`)."""

    name: str
    kind: str  # "string", "integer" or "enum"
    default: Any
    help: str
    choices: type[configs.StrEnum] | None = None
    lower_bound: int | None = None


@dataclasses.dataclass(frozen=True)
class EvalOptions:
    """The settings of one evaluation.

    Attributes:
      metrics: tuple of str. Registered metric names.
      task: configs.Task. `reconstruct`, `transfer` or `sample` (see `metrics.report`).
      n: int. Images (or pairs) to score.
      seed: int. Seed of every random draw.
      split: str. Records split.
      batch_size: int. Images per model call.
      cache_dir: str or None. Where FID real statistics are cached (None: not cached).
      out_dir: str. Where PNG grids are written.
      params: the metrics' own flags by name (`Flag.default` for those not given).
      pairs: configs.Pairs. `csv` (the pairs file in order) or `random` (seeded same-identity pairs).
      allow_fewer: bool. Score what exists when fewer than `n` pairs/images do.
      crop: str. Folders: `i/k`, the i-th of k equal-width panels of each generated file.
      sample_pose: configs.SamplePose. `--task=sample` with stage II: `sampled` or `real` (training poses).
      protocol: configs.Protocol. `custom` or `paper` (`EvalConfig.protocol`); `paper` also sets the metrics masks'
        radius (`report.metrics_mask_radius`).
    """

    metrics: tuple[str, ...]
    task: configs.Task = DEFAULTS.task
    n: int = DEFAULTS.n
    seed: int = DEFAULTS.seed
    split: str = DEFAULTS.split
    batch_size: int = DEFAULTS.batch_size
    cache_dir: str | None = None
    out_dir: str = "."
    params: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    pairs: configs.Pairs = DEFAULTS.pairs
    allow_fewer: bool = DEFAULTS.allow_fewer
    crop: str = DEFAULTS.crop
    sample_pose: configs.SamplePose = DEFAULTS.sample_pose
    protocol: configs.Protocol = DEFAULTS.protocol

    def __getattr__(self, name: str) -> Any:
        # A metric's flag reads like a field: options.ssim_protocol.
        flag = metric_flags().get(name)
        if flag is None:
            raise AttributeError(name)
        return self.params.get(name, flag.default)

    def validate(self, folders: bool, stage2: bool = False, baseline: bool = False) -> None:
        """Checks the settings before anything heavy runs.

        Args:
          folders: bool. Whether images come from `--generated_dir/--target_dir` (no model).
          stage2: bool. Whether stage-II runs are loaded (`--stage2_dir`).
          baseline: bool. Whether a VAE / DCGAN baseline run is loaded (`--baseline_dir`).

        Raises:
          ValueError: one line naming the setting, the value and what is expected.
        """
        registered = metrics()
        unknown = [m for m in self.metrics if m not in registered]
        if unknown or not self.metrics:
            raise ValueError(f"--metrics: unknown or empty {','.join(unknown)!r}; expected a comma-separated "
                             f"subset of {','.join(registered)}.")
        protocol_settings(self.protocol, folders)
        if self.task not in TASKS:
            raise ValueError(f"--task={self.task}: expected one of {', '.join(TASKS)}.")
        for name in ("n", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name}={getattr(self, name)}: expected a positive integer.")
        if self.pairs not in PAIRS:
            raise ValueError(f"--pairs={self.pairs}: expected one of {', '.join(PAIRS)}.")
        if self.pairs == configs.Pairs.RANDOM and (folders or self.task != configs.Task.TRANSFER):
            raise ValueError("--pairs=random draws pose-transfer pairs of a model's split: it needs --task=transfer "
                             "and --stage1_dir.")
        if self.crop:
            if not folders:
                raise ValueError(f"--crop={self.crop}: crops files of --generated_dir; a model's images need none.")
            crop_panel(self.crop)
        chosen = [registered[m] for m in self.metrics]
        for flag in {f.name: f for metric in chosen for f in metric.flags}.values():
            value = getattr(self, flag.name)
            if flag.choices and value not in tuple(flag.choices):
                raise ValueError(f"--{flag.name}={value}: expected one of {', '.join(flag.choices)}.")
            if flag.lower_bound is not None and value < flag.lower_bound:
                raise ValueError(f"--{flag.name}={value}: expected at least {flag.lower_bound}.")
        model_only = [m.name for m in chosen if {Needs.STAGE1, Needs.STAGE2} & set(m.needs)]
        if folders and model_only:
            raise ValueError(f"--metrics={','.join(model_only)} need a model (--stage1_dir); with "
                             "--generated_dir/--target_dir only image metrics run.")
        if baseline and (stage2 or self.task != configs.Task.SAMPLE):
            raise ValueError("--baseline_dir: a VAE / DCGAN baseline only samples; use it with --task=sample and "
                             "without --stage2_dir.")
        if baseline and model_only:
            raise ValueError(f"--metrics={','.join(model_only)} need the disentangled model; a --baseline_dir "
                             "has no stage-I or stage-II networks.")
        if self.task == configs.Task.SAMPLE and (folders or not (stage2 or baseline)):
            raise ValueError("--task=sample: stage-II sampling evaluation needs --stage1_dir and --stage2_dir "
                             "(one stage-II run per factor), or a --baseline_dir.")
        if self.sample_pose not in tuple(configs.SamplePose):
            raise ValueError(f"--sample_pose={self.sample_pose}: expected sampled or real.")
        if self.sample_pose == configs.SamplePose.REAL and not (stage2 and self.task == configs.Task.SAMPLE):
            raise ValueError("--sample_pose=real: training poses replace sampled ones only with --task=sample "
                             "and --stage2_dir.")
        for metric in chosen:
            if Needs.STAGE2 in metric.needs and not stage2:
                raise ValueError(f"--metrics={metric.name} scores stage II: pass --stage2_dir once per factor.")
            if Needs.TARGETS in metric.needs and self.task == configs.Task.SAMPLE:
                raise ValueError(f"--metrics={metric.name}: sampled images have no target photo; with "
                                 "--task=sample use metrics without a target.")
            if metric.check is not None:
                metric.check(self)


@dataclasses.dataclass
class Inputs:
    """What the metrics of one evaluation read (None where the evaluation has no such thing).

    Attributes:
      options: EvalOptions.
      images: `report.ImageSet` or None.
      real_images: () -> uint8 `(n, H, W, 3)`, the real set of FID (called on a cache miss).
      real_key: dict. Identifies the real set in the FID cache.
      cfg: Config of the stage-I run.
      stage1: its `Stage1` networks.
      stage2: `runtime.Stage2Serving` or None.
      data_dir: str. TFRecords.
    """

    options: EvalOptions
    images: Any = None
    real_images: Callable[[], Any] | None = None
    real_key: dict | None = None
    cfg: Any = None
    stage1: Any = None
    stage2: Any = None
    data_dir: str | None = None


@dataclasses.dataclass(frozen=True)
class Metric:
    """One registered metric (see the module docstring).

    Attributes:
      name: str. Its `--metrics` name and its key in the report.
      help: str. One line for `--help`.
      needs: tuple of Needs.
      compute: Inputs -> dict with at least `value` (None for a table or a picture), `n`, `protocol`.
      flags: its own flags.
      check: optional EvalOptions -> None raising ValueError, for what only this metric requires.
      table: optional result -> lines of the plain-text report (default: one line with `value`).
    """

    name: str
    help: str
    needs: tuple[Needs, ...]
    compute: Callable[[Inputs], dict]
    flags: tuple[Flag, ...] = ()
    check: Callable[[EvalOptions], None] | None = None
    table: Callable[[dict], list[str]] | None = None


def modules() -> tuple:
    """The metric modules of `keras_disentangle.metrics.suite`, in the order `--help` and the report list them."""
    # Imported here: each of them imports this module for `Metric`.
    from keras_disentangle.metrics.suite import (  # noqa: PLC0415
        colour_probe,
        fid,
        gt_swap,
        inception_score,
        inversion,
        leakage,
        mask_inception_score,
        mask_ssim,
        probe,
        reid,
        saliency,
        sample_check,
        sampling,
        sharpness,
        ssim,
    )

    return (ssim, mask_ssim, inception_score, mask_inception_score, fid, sharpness, gt_swap, colour_probe, leakage,
            saliency, sampling, inversion, reid, probe, sample_check)


def metrics() -> dict[str, Metric]:
    """Every registered metric by name, in `modules()` order."""
    return {module.METRIC.name: module.METRIC for module in modules()}


def metric_flags() -> dict[str, Flag]:
    """The metrics' own flags by name; metrics that share a flag share its `Flag`."""
    return {flag.name: flag for metric in metrics().values() for flag in metric.flags}


def json_table(heading: str) -> Callable[[dict], list[str]]:
    """A `Metric.table` that prints `heading` (formatted with the result) and the result's own fields."""

    def table(result: dict) -> list[str]:
        shown = {k: v for k, v in result.items() if k not in ("value", "n", "protocol")}
        return ["\n" + heading.format(**result), json.dumps(shown, indent=2)]

    return table


def existing_file(flag: str, path: str | None, how: str) -> None:
    """Raises ValueError naming `--flag` when `path` is not a file; `how` says how to get it."""
    if not path or not os.path.isfile(path):
        raise ValueError(f"--{flag}={path or ''}: {how}")


# Flags that several metrics read.
SSIM_PROTOCOL = Flag("ssim_protocol", "enum", DEFAULTS.ssim_protocol,
                     "original (the paper's: gray, 7x7 uniform window) or gaussian (Pose-Transfer toolkit).",
                     choices=configs.SsimProtocol)
MASK_FROM = Flag("mask_from", "enum", DEFAULTS.mask_from, "Whose body mask mask_ssim/mask_is use: target, or "
                 "source (the original code's bug, to reproduce its numbers).", choices=configs.MaskFrom)
INCEPTION_WEIGHTS = Flag("inception_weights", "string", None,
                         "Keras InceptionV3 ImageNet weights (.h5), for is/mask_is.")
