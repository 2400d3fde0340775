"""Defaults of the tools beside training: evaluation, generation, the Virtual Market, the re-ID trainer."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from keras_disentangle.configs.choices import Factor, StrEnum, coerce_choices

# Gradient steps of one inversion z* = argmin ||Φ(z) - e|| (`apps.invert`), evaluated or generated.
_INVERT_STEPS = 300


class Task(StrEnum):
    """What `evaluate.py` scores (`metrics.report`)."""

    RECONSTRUCT = "reconstruct"
    TRANSFER = "transfer"  # pose transfer on the split's pairs
    SAMPLE = "sample"  # every factor from stage II's mappers (or a baseline's code)


class Pairs(StrEnum):
    CSV = "csv"
    RANDOM = "random"


class Protocol(StrEnum):
    CUSTOM = "custom"
    PAPER = "paper"


class SamplePose(StrEnum):
    SAMPLED = "sampled"
    REAL = "real"


class SsimProtocol(StrEnum):
    ORIGINAL = "original"  # the paper's: gray, 7x7 uniform window
    GAUSSIAN = "gaussian"  # the Pose-Transfer toolkit's


class MaskFrom(StrEnum):
    TARGET = "target"
    SOURCE = "source"  # the original code's bug, to reproduce its numbers


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """The evaluation protocol: `evaluate.py`'s defaults (its report records every value used).

    Attributes:
      metrics: tuple of str. Registered metric names (`metrics/registry.py`).
      task: Task. `reconstruct`, `transfer` (the split's pairs) or `sample` (stage II).
      n: int. Images (or pairs) scored.
      seed: int. Seed of every random draw (gt_swap pairs, leakage tangents, ...).
      split: str. Records split.
      batch_size: int. Images per model call.
      ssim_protocol: SsimProtocol. `original` (the paper's: gray, 7x7 uniform window) or `gaussian`.
      mask_from: MaskFrom. Whose body mask mask_ssim / mask_is use: `target`, or `source` (the original
        code's bug, to reproduce its numbers).
      leakage_n: int. Images the leakage maps are computed on.
      leakage_projections: int. 0: exact Jacobian norms; K: Hutchinson estimate with K tangents.
      saliency_n: int. Images in the saliency grid.
      sampling_n: int. Sampled embeddings per factor (stage-II sampling metric).
      inversions: int. Test image pairs inverted (stage-II inversion metric).
      invert_steps: int. Gradient steps per inversion.
      pairs: Pairs. `csv`: the split's pairs file in file order; `random`: `n` same-identity pairs
        (two different images) drawn with `seed`, as PG2's and the paper's 12,800 test pairs.
      allow_fewer: bool. Score fewer than `n` pairs/images when fewer exist (else an error).
      pair_min_person_id: tuple of (dataset, int). `--pairs=random` skips identities below this
        (Market-1501: 0 = distractors, -1 = junk); a dataset not listed skips only negative ids.
      crop: str. Folder scoring: `i/k` takes the i-th (from 1) of k equal-width panels of each
        generated file (PATN saves 5-panel strips: `5/5`); empty: the whole image.
      sample_pose: SamplePose. `--task=sample` with stage II: `sampled` (every factor from its mapper) or
        `real` (FG and BG sampled, poses drawn from the training poses: the paper's "BodyROI7 + real pose").
      protocol: Protocol. `custom`: every setting from its flag, and without an explicit `--n` whatever
        exists up to `n` is scored (a folder: every file); `paper`: the published tables' settings
        (`paper_settings`, `paper_mask_radius`), with `n` strict.
      paper_settings: tuple of (flag, value). What `--protocol=paper` fixes: pose transfer on 12,800
        same-identity test pairs drawn with the seed (paper Sec. 4.1, on both datasets), the
        original SSIM rule, and the source image's mask, which the authors' tester saved for
        `score_mask.py` (docs/evaluation.md).
      paper_mask_radius: tuple of (dataset, int). The radius of the metrics body masks under
        `--protocol=paper`, in pixels at the stored size: Market's published masks are the
        radius-7 `pose_mask_r6` field of the authors' records, DeepFashion's tester reads the
        radius-4 `pose_mask_r4` field. `custom` uses radius 4 (`metrics.report.METRIC_MASK_RADIUS`).
    """

    metrics: tuple[str, ...] = ("ssim", "mask_ssim")
    task: Task = Task.TRANSFER
    n: int = 200
    seed: int = 0
    split: str = "test"
    batch_size: int = 32
    ssim_protocol: SsimProtocol = SsimProtocol.ORIGINAL
    mask_from: MaskFrom = MaskFrom.TARGET
    leakage_n: int = 8
    leakage_projections: int = 0
    saliency_n: int = 8
    sampling_n: int = 1000
    inversions: int = 16
    invert_steps: int = _INVERT_STEPS
    pairs: Pairs = Pairs.CSV
    allow_fewer: bool = False
    pair_min_person_id: tuple[tuple[str, int], ...] = (("market", 1), ("synthetic", 1))
    crop: str = ""
    sample_pose: SamplePose = SamplePose.SAMPLED
    protocol: Protocol = Protocol.CUSTOM
    paper_settings: tuple[tuple[str, object], ...] = (
        ("task", "transfer"), ("n", 12_800), ("pairs", "random"), ("ssim_protocol", "original"),
        ("mask_from", "source"), ("allow_fewer", False))
    paper_mask_radius: tuple[tuple[str, int], ...] = (("market", 7), ("synthetic", 7), ("deepfashion", 4))

    def __post_init__(self) -> None:
        coerce_choices(self)


@dataclasses.dataclass(frozen=True)
class GenerateConfig:
    """What `python -m keras_disentangle.apps.generate` makes by default.

    Attributes:
      n: int. Images (sample) or rows (interpolate).
      seed: int.
      factors: tuple of str. Sampled (sample) or swapped (swap) factors.
      factor: Factor. Interpolated factor.
      frames: int. Images per interpolation, endpoints included.
      method: str. `linear`, `slerp` or `both`.
      invert_steps: int. Gradient steps per inversion (invert_interpolate).
    """

    n: int = 8
    seed: int = 0
    factors: tuple[str, ...] = ("fg", "bg", "pose")
    factor: Factor = Factor.FOREGROUND
    frames: int = 8
    method: str = "both"
    invert_steps: int = _INVERT_STEPS

    def __post_init__(self) -> None:
        coerce_choices(self)


@dataclasses.dataclass(frozen=True)
class VirtualMarketConfig:
    """What `python -m keras_disentangle.apps.virtual_market` writes by default (the paper's VM: 500 x 24).

    Attributes:
      ids: int. Identities, each one sampled FG code.
      images_per_id: int. Images per identity, each with its own sampled BG and a real training pose.
      seed: int. Seed of the noise and of the pose draw.
      cameras: int. Camera digits the file names cycle through (Market has 6; re-ID training ignores them).
      batch_size: int. Images per generator call.
    """

    ids: int = 500
    images_per_id: int = 24
    seed: int = 0
    cameras: int = 6
    batch_size: int = 256


class ReidBackbone(StrEnum):
    """The re-ID network's trunk (`keras_disentangle/reid/model.py`)."""

    RESNET50 = "resnet50"  # keras.applications.ResNet50, the field's baseline (ImageNet weights via --weights).
    SMALL = "small"  # three residual stages, a CPU trains it in minutes on the micro / synthetic sets.


@dataclasses.dataclass(frozen=True)
class ReidConfig:
    """The re-ID trainer (`python -m keras_disentangle.reid.train`).

    Attributes:
      backbone: ReidBackbone.
      height, width: int. Input size; records are resized to it.
      small_channels: tuple of int. Widths of the small backbone's residual stages.
      feature_dim: int. The embedding (after the trunk's global pooling and a Dense + BN) that
        re-ID matches; the softmax classifier sits on it.
      batch_ids, images_per_id: int. A batch holds `batch_ids` identities x `images_per_id` images
        (P x K sampling, which the triplet loss needs).
      steps: int. Training steps.
      learning_rate: float. Adam.
      triplet_weight: float. Weight of the batch-hard triplet loss beside softmax (0: softmax only).
      triplet_margin: float.
      label_smoothing: float. Of the softmax cross-entropy.
      checkpoint_every: int. Steps between checkpoints.
      log_every: int. Steps between progress lines.
      seed: int.
      kissme_pca_dims: int. PCA dimensions before KISSME in the evaluation (`reid/evaluate.py`).
    """

    backbone: ReidBackbone = ReidBackbone.RESNET50
    height: int = 128
    width: int = 64
    small_channels: tuple[int, ...] = (32, 64, 128)
    feature_dim: int = 256
    batch_ids: int = 16
    images_per_id: int = 4
    steps: int = 20_000
    learning_rate: float = 3.5e-4
    triplet_weight: float = 0.0
    triplet_margin: float = 0.3
    label_smoothing: float = 0.1
    checkpoint_every: int = 500
    log_every: int = 100
    seed: int = 0
    kissme_pca_dims: int = 64

    def __post_init__(self) -> None:
        coerce_choices(self)


REID_PRESETS = {
    "full": ReidConfig(),
    # The synthetic / micro scale: 64x32 input, the small trunk (1,500 steps took ~20 min on a loaded 2-vCPU
    # machine, docs/experiments/virtual-market.md).
    "small": ReidConfig(backbone=ReidBackbone.SMALL, height=64, width=32, feature_dim=64, batch_ids=16,
                        images_per_id=4, steps=1500, learning_rate=1e-3),
}


def reid_config(preset: str, **fields: Any) -> ReidConfig:
    """The re-ID preset `preset` with the non-None `fields` replaced.

    Raises:
      ValueError: naming an unknown preset.
    """
    if preset not in REID_PRESETS:
        raise ValueError(f"Unknown re-ID preset {preset!r}; expected one of {', '.join(REID_PRESETS)}.")
    return dataclasses.replace(REID_PRESETS[preset], **{k: v for k, v in fields.items() if v is not None})


def reid_config_to_json(cfg: ReidConfig) -> str:
    return json.dumps(dataclasses.asdict(cfg), indent=2, sort_keys=True)


def reid_config_from_json(text: str) -> ReidConfig:
    raw = json.loads(text)
    raw["small_channels"] = tuple(raw["small_channels"])
    return ReidConfig(**raw)
