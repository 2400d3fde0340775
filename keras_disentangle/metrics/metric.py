"""What one metric module of `metrics/suite/` declares: `METRIC = Metric(...)` with its `Needs`, its own
`Flag`s and its computation over `Inputs`; the helpers several metrics share.

The registry (`metrics.registry`) stands above the suite: it lists the metric modules and runs them.
This module stands below it, so a metric module imports it without an import cycle. Like the
registry, it loads no TensorFlow at import.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import os
from collections.abc import Callable
from typing import Any

from keras_disentangle import configs

# The protocol's defaults live in configs.EvalConfig; flags and options take them from here.
DEFAULTS = configs.EvalConfig()
# An evaluation's settings, `registry.EvalOptions`: it stands above the suite (its check reads every metric), so
# a metric names it by this alias and reads its fields.
Options = Any


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


@dataclasses.dataclass
class Inputs:
    """What the metrics of one evaluation read (None where the evaluation has no such thing).

    Attributes:
      options: registry.EvalOptions.
      images: `report.ImageSet` or None.
      real_images: () -> uint8 `(n, H, W, 3)`, the real set of FID (called on a cache miss).
      real_key: dict. Identifies the real set in the FID cache.
      cfg: Config of the stage-I run.
      stage1: its `Stage1` networks.
      stage2: `runtime.Stage2Serving` or None.
      data_dir: str. TFRecords.
    """

    options: Options
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
      check: optional registry.EvalOptions -> None raising ValueError, for what only this metric requires.
      table: optional result -> lines of the plain-text report (default: one line with `value`).
    """

    name: str
    help: str
    needs: tuple[Needs, ...]
    compute: Callable[[Inputs], dict]
    flags: tuple[Flag, ...] = ()
    check: Callable[[Options], None] | None = None
    table: Callable[[dict], list[str]] | None = None


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
