"""The metrics `evaluate.py` can run: one module per metric in `metrics/suite/`, listed in `modules()`.

A metric module declares `METRIC = metric.Metric(...)` (see `metrics.metric`): its name, what it needs
(`Needs`), its own flags (`Flag`, defined by `evaluate.py` for every registered metric), a check of
the settings that runs before anything heavy, and its computation `compute(inputs) -> dict` (`value`,
`n`, `protocol`, and whatever else it reports). Adding a metric is one module in `suite/` and its
import in `modules()`. This module stands above the suite: it imports every metric module, checks an
evaluation's settings against them (`EvalOptions`), runs them (`evaluate`) and prints their report
(`format_table`); the metric modules import `metrics.metric`, below them, never this one.

This module and the metric modules load no TensorFlow at import: `evaluate.py` reads the registry to
define its flags before it parses them. The computations import what they use.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from keras_disentangle import configs
# The metric modules' contract; its names stay importable from here (`registry.Inputs`, ...).
from keras_disentangle.metrics.metric import (  # noqa: F401
    DEFAULTS,
    INCEPTION_WEIGHTS,
    MASK_FROM,
    SSIM_PROTOCOL,
    Flag,
    Inputs,
    Metric,
    Needs,
    existing_file,
    json_table,
)
from keras_disentangle.metrics.suite import (
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


def modules() -> tuple:
    """The metric modules of `keras_disentangle.metrics.suite`, in the order `--help` and the report list them."""
    return (ssim, mask_ssim, inception_score, mask_inception_score, fid, sharpness, gt_swap, colour_probe, leakage,
            saliency, sampling, inversion, reid, probe, sample_check)


def metrics() -> dict[str, Metric]:
    """Every registered metric by name, in `modules()` order."""
    return {module.METRIC.name: module.METRIC for module in modules()}


def metric_flags() -> dict[str, Flag]:
    """The metrics' own flags by name; metrics that share a flag share its `Flag`."""
    return {flag.name: flag for metric in metrics().values() for flag in metric.flags}


def evaluate(inputs: Inputs) -> dict:
    """Runs every metric of `inputs.options`; returns the report's `metrics` dict."""
    registered = metrics()
    results = {}
    for name in inputs.options.metrics:
        print(f"\n{name}:")
        results[name] = registered[name].compute(inputs)
    return results


def format_table(report: dict) -> str:
    """The report as plain-text tables: one line per scalar metric, then each metric's own table."""
    from keras_disentangle.metrics.report import number  # noqa: PLC0415 (loads TensorFlow)

    registered = metrics()
    lines = [f"\n{report['description']}"]
    if report.get("protocol"):
        lines.append(f"Protocol: {report['protocol']}.")
    if report.get("scored") is not None:
        asked = "every file" if report["n"] is None else f"--n={report['n']}"
        lines.append(f"Scored {report['scored']} ({asked}).")
    lines.append(f"{'metric':<11}{'value':>9}{'std':>9}{'n':>7}  protocol")
    for name, result in report["metrics"].items():
        if result.get("value") is not None:
            lines.append(f"{name:<11}{number(result['value']):>9}{number(result.get('std')):>9}"
                         f"{result['n']:>7}  {result['protocol']}")
    for name, result in report["metrics"].items():
        if registered[name].table is not None:
            lines += registered[name].table(result)
    pictures = [r["png"] for r in report["metrics"].values() if r.get("png")]
    if pictures:
        lines += [""] + [f"Wrote {path}" for path in pictures]
    return "\n".join(lines)
