"""Frozen configuration dataclasses and the named presets (dataset x scale).

This module is the only home of defaults. A preset is looked up with `get_config(dataset, scale)`
and fields are overridden with `override(cfg, **fields)` (train.py maps absl flags onto it).

Datasets:
  * `market`      Market-1501, 128x64, three factors (foreground, background, pose).
  * `deepfashion` DeepFashion In-shop, 256x256, two factors (appearance, pose): no background branch.
  * `synthetic`   the embedded procedural people (`tfrecords.synthetic`), laid out like Market-1501.

Scales:
  * `full` the paper's sizes (a GPU job).
  * `tiny` small images (64x32) and narrow channels so that a CPU trains it in minutes.
  * `micro` 32x16 images (DeepFashion 32x32) and narrower channels: several times cheaper per step
    than `tiny`, so that `make demo` and the learning test show disentanglement within
    minutes even on a CPU without bf16 units (README, demo).
"""

from __future__ import annotations

import dataclasses
import enum
import json
from typing import Any


class FgEncoderKind(str, enum.Enum):
    """How the foreground branch reads the masked feature map (paper Sec. 3.1)."""

    BODY_ROI7 = "roi7"  # 7 body ROIs cropped and resized, one shared encoder, 7 x D concatenated.
    WHOLE_BODY = "whole"  # the whole masked feature map encoded at once (the paper's ablation).


class Factor(str, enum.Enum):
    FOREGROUND = "fg"
    BACKGROUND = "bg"
    POSE = "pose"


class Baseline(str, enum.Enum):
    """The paper's sampling baselines (Sec. 4.5, Fig. 7): whole images from one Gaussian code."""

    VAE = "vae"  # Kingma & Welling 2014: conv encoder -> (mean, log variance), decoder = the generator below.
    DCGAN = "dcgan"  # Radford et al. 2016: the generator below against D1 (`build_d1`) as discriminator.


NUM_KEYPOINTS = 18
NUM_ROIS = 7
POSE_VECTOR_DIM = 3 * NUM_KEYPOINTS  # 18 x (y, x) + 18 visibility flags = 54.


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """What the input pipeline produces.

    Attributes:
      name: str. Dataset name, one of `market`, `deepfashion`, `synthetic`.
      height, width: int. Size of the images fed to the models. Records are resized to it, and
        keypoints are scaled with them.
      stored_height, stored_width: int. The size the dataset's photos and annotations use (Market
        128x64, DeepFashion 256x256). Converters reject records of another size, except DeepFashion's
        256x176 release, which `data.frame_photo` pads back to 256x256.
      heatmap_radius: int. Radius in pixels (at `height x width`) of the binary pose disks.
      mask_radius: int. Radius of the limb disks of the coarse body mask that splits FG from BG.
      mask_close_size: int. Side of the square structuring element of the morphological close.
      roi_pad: int. Padding in pixels around the joints of a body ROI (`roi_pad_single` when only
        one joint of the ROI is present).
      roi_head_raise: int. Pixels the nose is moved up before the head ROI is boxed, so that the
        box holds the hair (the authors' DeepFashion conversion: 10 at 256x256; Market: 0).
      roi_pad_close_up, roi_pad_single_close_up, roi_head_raise_close_up: int or None. The same
        three values for a close-up, a photo in which the lower legs are not both seen (no knee or
        ankle of one leg): the authors' DeepFashion conversion pads such photos 20 / 40 and raises
        the nose 25 px (their whole-body values 10 / 20 / 10). None: as for a whole body.
      has_background: bool. Whether the background is a factor of its own (Market) or part of the
        appearance (DeepFashion's clean studio backgrounds).
    """

    name: str
    height: int
    width: int
    stored_height: int
    stored_width: int
    heatmap_radius: int = 4
    mask_radius: int = 7
    mask_close_size: int = 5
    roi_pad: int = 6
    roi_pad_single: int = 10
    has_background: bool = True
    roi_head_raise: int = 0
    roi_pad_close_up: int | None = None
    roi_pad_single_close_up: int | None = None
    roi_head_raise_close_up: int | None = None

    @property
    def roi_options(self) -> dict:
        """The keyword arguments of `geometry.roi_boxes` after this config."""
        whole = (self.roi_pad, self.roi_pad_single, self.roi_head_raise)
        close_up = (self.roi_pad_close_up, self.roi_pad_single_close_up, self.roi_head_raise_close_up)
        return {"pad": whole[0], "pad_single": whole[1], "head_raise": whole[2],
                "close_up": tuple(w if c is None else c for w, c in zip(whole, close_up))}


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Sizes of every network. Channel tuples list one entry per residual level.

    Attributes:
      first_block_channels: int. Width of the first conv + residual block applied to the image.
      encoder_channels: tuple of int. Levels of the FG (shared ROI) and BG encoders; a stride-2
        conv sits between consecutive levels.
      roi_size: int. Side of each ROI crop (crop-and-resize output).
      roi_embedding_dim: int. Embedding size per body ROI; the FG embedding is 7 x this.
      bg_embedding_dim: int. Size of the background embedding (0 when the dataset has no BG).
      fg_encoder: FgEncoderKind. BodyROI7 or WholeBody.
      fg_features_masked: bool. Whether the FG encoder reads the first-block features times the
        body mask (the paper; the authors' Market code) or the unmasked features (the authors'
        DeepFashion code, which has no BG branch to lose anything to: hair and loose clothes
        outside the limb mask stay visible to the ROIs).
      generator_channels: tuple of int. Levels of the U-Net generator.
      generator_bottleneck_dim: int. Width of the fully connected bottleneck of the U-Net.
      d1_channels: tuple of int. DCGAN discriminator conv widths (5x5, stride 2).
      pose_hidden_dim: int. Width of the pose auto-encoder's FC residual blocks.
      pose_num_blocks: int. FC residual blocks in each half of the pose auto-encoder.
      pose_embedding_dim: int. The pose embedding (the auto-encoder's bottleneck).
      mapper_hidden_dims: dict factor -> int. Width of each stage-II mapper (as a tuple of pairs so
        the dataclass stays hashable).
      mapper_num_blocks: int. FC residual blocks in a mapper.
      critic_hidden_dim: int. Width of the stage-II critic D2.
      critic_num_layers: int. Hidden FC layers of D2.
      baseline_latent_dim: int. Size of the Gaussian code of the VAE / DCGAN baselines (DCGAN: 100).
      baseline_channels: tuple of int. Widths of the baselines' image generator (the VAE decoder and
        the DCGAN generator), deepest last; the VAE encoder is D1's conv stack (`d1_channels`).
    """

    first_block_channels: int = 128
    encoder_channels: tuple[int, ...] = (128, 256, 384, 512, 640)
    roi_size: int = 48
    roi_embedding_dim: int = 32
    bg_embedding_dim: int = 128
    fg_encoder: FgEncoderKind = FgEncoderKind.BODY_ROI7
    fg_features_masked: bool = True
    generator_channels: tuple[int, ...] = (128, 256, 384, 512, 640)
    generator_bottleneck_dim: int = 64
    d1_channels: tuple[int, ...] = (64, 128, 256, 512)
    pose_hidden_dim: int = 512
    pose_num_blocks: int = 4
    pose_embedding_dim: int = 32
    mapper_hidden_dims: tuple[tuple[str, int], ...] = (("fg", 512), ("bg", 256), ("pose", 512))
    mapper_num_blocks: int = 4
    critic_hidden_dim: int = 512
    critic_num_layers: int = 4
    baseline_latent_dim: int = 100
    baseline_channels: tuple[int, ...] = (64, 128, 256, 512)

    @property
    def fg_embedding_dim(self) -> int:
        return NUM_ROIS * self.roi_embedding_dim

    @property
    def appearance_embedding_dim(self) -> int:
        """FG + BG: what the generator is conditioned on besides the heatmaps (352 for Market)."""
        return self.fg_embedding_dim + self.bg_embedding_dim

    def embedding_dim(self, factor: Factor | str) -> int:
        """K of the stage-II mapper for `factor` (224 FG, 128 BG, 32 pose at full Market scale)."""
        factor = Factor(factor)
        return {
            Factor.FOREGROUND: self.fg_embedding_dim,
            Factor.BACKGROUND: self.bg_embedding_dim,
            Factor.POSE: self.pose_embedding_dim,
        }[factor]

    def mapper_hidden_dim(self, factor: Factor | str) -> int:
        return dict(self.mapper_hidden_dims)[Factor(factor).value]


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimisation and bookkeeping of the training loops.

    Attributes:
      batch_size: int. Global batch size (split over replicas by tf.distribute).
      learning_rate: float. Adam learning rate of stage I (the paper uses 2e-5 on GPUs for ~70k
        steps; the tiny scale uses 3e-4 so that minutes suffice).
      beta_1, beta_2: float. Adam moments.
      l1_weight: float. lambda of the L1 term of the stage-I generator loss (Eq. 2); the authors'
        code uses 20 (`L1Loss_weight`), the paper gives no value.
      lr_halving_steps: int. Every optimizer's learning rate is halved every this many training
        steps (the authors' `lr_update_step`, 50k in their scripts); 0 keeps it constant. A
        staircase `keras.optimizers.schedules.ExponentialDecay` driven by `optimizer.iterations`,
        so a resumed run continues on the schedule.
      adversarial_weight: float. Weight of the BCE adversarial term (0 trains L1 only).
      d1_learning_rate: float. Adam learning rate of D1; 0 uses `learning_rate` (the paper and the
        authors' code use one rate for G1 and D1).
      d1_joint_batch: bool. D1 scores real and generated images in one call, so its batch
        normalization pools both (the authors' code concatenates the pair); False: two calls.
      adversarial_start_step: int. Steps of L1 only before D1 and the adversarial term start (a
        warm-up; not in the paper).
      real_label: float. BCE target of real images for D1; below 1 is one-sided label smoothing
        (Salimans et al. 2016; not in the paper).
      steps: int. Training steps to run (the loop stops there; resuming continues to it).
      checkpoint_every: int. Steps between checkpoints (one is also written on exit).
      log_every: int. Steps between TensorBoard scalar summaries.
      image_every: int. Steps between TensorBoard image grids.
      keep_checkpoints: int. How many checkpoints CheckpointManager keeps.
      pose_batch_size: int. Batch of the pose auto-encoder, whether it trains alone or beside the
        appearance networks (`--model=both` draws its own batch of poses). Market 64 (the paper);
        DeepFashion 16 (the authors' script; the paper says 32).
      pose_learning_rate: float. Adam learning rate of the pose auto-encoder.
      mapper_batch_size: int. Stage-II batch of a factor not in `mapper_batch_sizes`.
      mapper_learning_rate: float. RMSProp learning rate of stage II (paper 2e-5) of a factor not in
        `mapper_learning_rates`.
      mapper_batch_sizes, mapper_steps, mapper_learning_rates: tuple of (factor, value) pairs. The
        stage-II budget per factor (the paper, supplementary B: Market FG/BG batch 32 x ~30k, pose
        32 x ~60k; DeepFashion appearance 16 x ~60k, pose 32 x ~60k). A factor not listed uses
        `mapper_batch_size`, `steps` and `mapper_learning_rate`; `stage2_train` resolves them.
      critic_steps: int. Critic updates per mapper update (the paper: 5).
      critic_clip: float. WGAN weight clipping bound (the paper: 0.01).
      gradient_penalty_weight: float. WGAN-GP weight; 0 uses clipping instead.
      noise_stddev: float. Stddev of the mapper's Gaussian input z (the authors' code: 0.2).
      seed: int. Seed of weights, shuffling and noise.
      precision: str. Keras dtype policy (`keras_disentangle.precision.POLICIES`); `auto` picks
        mixed_bfloat16 where the hardware has bf16 arithmetic, float32 elsewhere. A run's
        config.json records the resolved policy (files written before this field read as `auto`).
      steps_per_execution: int. Training steps per `tf.function` call; losses reach the host only
        at log steps, so an accelerator is not idled by a host round trip every step.
      baseline_learning_rate: float. Adam learning rate of the VAE / DCGAN baselines (DCGAN's 2e-4).
      vae_kl_weight: float. Weight of the VAE's KL term against its summed squared error (1: the
        ELBO of a unit-variance Gaussian decoder up to a factor 2).
    """

    batch_size: int = 16
    learning_rate: float = 2e-5
    beta_1: float = 0.5
    beta_2: float = 0.999
    l1_weight: float = 20.0
    lr_halving_steps: int = 0
    adversarial_weight: float = 1.0
    d1_learning_rate: float = 0.0
    d1_joint_batch: bool = False
    adversarial_start_step: int = 0
    real_label: float = 1.0
    steps: int = 70_000
    checkpoint_every: int = 1000
    log_every: int = 100
    image_every: int = 1000
    keep_checkpoints: int = 3
    pose_batch_size: int = 64
    pose_learning_rate: float = 2e-5
    mapper_batch_size: int = 32
    mapper_learning_rate: float = 2e-5
    mapper_batch_sizes: tuple[tuple[str, int], ...] = ()
    mapper_steps: tuple[tuple[str, int], ...] = ()
    mapper_learning_rates: tuple[tuple[str, float], ...] = ()
    critic_steps: int = 5
    critic_clip: float = 0.01
    gradient_penalty_weight: float = 0.0
    noise_stddev: float = 0.2
    seed: int = 0
    precision: str = "auto"
    steps_per_execution: int = 1
    baseline_learning_rate: float = 2e-4
    vae_kl_weight: float = 1.0


@dataclasses.dataclass(frozen=True)
class Config:
    data: DataConfig
    model: ModelConfig
    train: TrainConfig
    scale: str = "full"


# Gradient steps of one inversion z* = argmin ||Φ(z) - e|| (`apps.invert`), evaluated or generated.
_INVERT_STEPS = 300


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """The evaluation protocol: `evaluate.py`'s defaults (its report records every value used).

    Attributes:
      metrics: tuple of str. Registered metric names (`metrics/registry.py`).
      task: str. `reconstruct`, `transfer` (the split's pairs) or `sample` (stage II).
      n: int. Images (or pairs) scored.
      seed: int. Seed of every random draw (gt_swap pairs, leakage tangents, ...).
      split: str. Records split.
      batch_size: int. Images per model call.
      ssim_protocol: str. `original` (the paper's: gray, 7x7 uniform window) or `gaussian`.
      mask_from: str. Whose body mask mask_ssim / mask_is use: `target`, or `source` (the original
        code's bug, to reproduce its numbers).
      leakage_n: int. Images the leakage maps are computed on.
      leakage_projections: int. 0: exact Jacobian norms; K: Hutchinson estimate with K tangents.
      saliency_n: int. Images in the saliency grid.
      sampling_n: int. Sampled embeddings per factor (stage-II sampling metric).
      inversions: int. Test image pairs inverted (stage-II inversion metric).
      invert_steps: int. Gradient steps per inversion.
      pairs: str. `csv`: the split's pairs file in file order; `random`: `n` same-identity pairs
        (two different images) drawn with `seed`, as PG2's and the paper's 12,800 test pairs.
      allow_fewer: bool. Score fewer than `n` pairs/images when fewer exist (else an error).
      pair_min_person_id: tuple of (dataset, int). `--pairs=random` skips identities below this
        (Market-1501: 0 = distractors, -1 = junk); a dataset not listed skips only negative ids.
      crop: str. Folder scoring: `i/k` takes the i-th (from 1) of k equal-width panels of each
        generated file (PATN saves 5-panel strips: `5/5`); empty: the whole image.
      sample_pose: str. `--task=sample` with stage II: `sampled` (every factor from its mapper) or
        `real` (FG and BG sampled, poses drawn from the training poses: the paper's "BodyROI7 + real pose").
    """

    metrics: tuple[str, ...] = ("ssim", "mask_ssim")
    task: str = "transfer"
    n: int = 200
    seed: int = 0
    split: str = "test"
    batch_size: int = 32
    ssim_protocol: str = "original"
    mask_from: str = "target"
    leakage_n: int = 8
    leakage_projections: int = 0
    saliency_n: int = 8
    sampling_n: int = 1000
    inversions: int = 16
    invert_steps: int = _INVERT_STEPS
    pairs: str = "csv"
    allow_fewer: bool = False
    pair_min_person_id: tuple[tuple[str, int], ...] = (("market", 1), ("synthetic", 1))
    crop: str = ""
    sample_pose: str = "sampled"


@dataclasses.dataclass(frozen=True)
class GenerateConfig:
    """What `python -m keras_disentangle.generate` makes by default.

    Attributes:
      n: int. Images (sample) or rows (interpolate).
      seed: int.
      factors: tuple of str. Sampled (sample) or swapped (swap) factors.
      factor: str. Interpolated factor.
      frames: int. Images per interpolation, endpoints included.
      method: str. `linear`, `slerp` or `both`.
      invert_steps: int. Gradient steps per inversion (invert_interpolate).
    """

    n: int = 8
    seed: int = 0
    factors: tuple[str, ...] = ("fg", "bg", "pose")
    factor: str = "fg"
    frames: int = 8
    method: str = "both"
    invert_steps: int = _INVERT_STEPS


_MARKET_DATA = DataConfig(name="market", height=128, width=64, stored_height=128, stored_width=64)
# The ROI paddings and head raise are the authors' DeepFashion conversion's (README, Differences).
_DEEPFASHION_DATA = DataConfig(
    name="deepfashion",
    height=256,
    width=256,
    stored_height=256,
    stored_width=256,
    mask_radius=8,
    has_background=False,
    roi_pad=10,
    roi_pad_single=20,
    roi_head_raise=10,
    roi_pad_close_up=20,
    roi_pad_single_close_up=40,
    roi_head_raise_close_up=25,
)
# The same geometry at 64x64 and 32x32 (the 256x256 pixel values / 4 and / 8, rounded up).
_DEEPFASHION_TINY_GEOMETRY = dict(height=64, width=64, heatmap_radius=2, mask_radius=2, mask_close_size=3,
                                  roi_pad=3, roi_pad_single=5, roi_head_raise=3, roi_pad_close_up=5,
                                  roi_pad_single_close_up=10, roi_head_raise_close_up=7)
_DEEPFASHION_MICRO_GEOMETRY = dict(height=32, width=32, heatmap_radius=1, mask_radius=1, mask_close_size=3,
                                   roi_pad=2, roi_pad_single=3, roi_head_raise=2, roi_pad_close_up=3,
                                   roi_pad_single_close_up=5, roi_head_raise_close_up=4)

_TINY_MODEL = ModelConfig(
    first_block_channels=32,
    encoder_channels=(32, 64, 96, 128),
    roi_size=24,
    roi_embedding_dim=8,
    bg_embedding_dim=32,
    generator_channels=(32, 64, 96, 128),
    generator_bottleneck_dim=64,
    d1_channels=(16, 32, 64, 128),
    pose_hidden_dim=128,
    pose_embedding_dim=16,
    mapper_hidden_dims=(("fg", 128), ("bg", 64), ("pose", 128)),
    critic_hidden_dim=128,
    baseline_latent_dim=32,
    baseline_channels=(16, 32, 64, 128),
)

_TINY_TRAIN = TrainConfig(
    learning_rate=3e-4,
    # L1 only (below), so with Adam lambda only scales the gradient, which Adam normalizes away
    # (up to its epsilon): 20 would train the same. 10 is kept so that the figures measured with it
    # (README, demo, test_learning) stay reproducible bit for bit.
    l1_weight=10.0,
    # L1 only: a 15-minute CPU run with the paper's adversarial term (weight 1, D1 at this learning
    # rate) collapsed and lost to the trivial baselines; L1 alone disentangles (README, gt_swap).
    # --adversarial_weight=1 restores the paper's loss; with --l1_weight=20 --d1_learning_rate (a tenth of
    # G1's) --d1_joint_batch --adversarial_start_step=300 it no longer collapses at micro scale, sharpens,
    # but loses 28% on BG swap region L1 (README, "The adversarial term: L1 vs L1 + GAN").
    adversarial_weight=0.0,
    pose_learning_rate=1e-3,
    mapper_learning_rate=1e-3,  # with clipping at 0.01: FD of fg embeddings falls ~100x in 1,000 steps
    steps=6000,
    checkpoint_every=250,
    log_every=25,
    image_every=250,
)


# Sized by measurement (README, demo): per step ~25x cheaper than tiny (16 channels at 32x16, 8x8
# ROI crops, batch 8), and per CPU-second the fastest of the variants tried to beat the trivial
# baselines on gt_swap FG and BG swap; a 12x12 ROI costs 1.4x per step, batch 16 2x.
_MICRO_MODEL = dataclasses.replace(
    _TINY_MODEL,
    first_block_channels=16,
    encoder_channels=(16, 32, 64),
    roi_size=8,
    generator_channels=(16, 32, 64),
    d1_channels=(16, 32, 64),
    baseline_channels=(16, 32, 64),
)

_MICRO_TRAIN = dataclasses.replace(
    _TINY_TRAIN,
    batch_size=8,
    learning_rate=1e-3,
    steps=6000,
    checkpoint_every=500,
    log_every=50,
    image_every=500,
)

# Half the tiny geometry: radii and paddings scale with the image.
_MICRO_GEOMETRY = dict(height=32, width=16, heatmap_radius=1, mask_radius=2, mask_close_size=3, roi_pad=2,
                       roi_pad_single=3)


# The paper's schedule on GPUs (supplementary B; the authors' scripts halve every 50k steps).
_FULL_TRAIN = TrainConfig(
    lr_halving_steps=50_000,
    mapper_batch_sizes=(("fg", 32), ("bg", 32), ("pose", 32)),
    mapper_steps=(("fg", 30_000), ("bg", 30_000), ("pose", 60_000)),
)
_FULL_DF_TRAIN = dataclasses.replace(
    _FULL_TRAIN, batch_size=6, steps=100_000, pose_batch_size=16, mapper_batch_sizes=(("fg", 16), ("pose", 32)),
    mapper_steps=(("fg", 60_000), ("pose", 60_000)))


def _presets() -> dict[tuple[str, str], Config]:
    # The authors' DeepFashion code: a 7-level ROI encoder and a 5-level U-Net (the paper says
    # N = 7 for both; the code made the published figures), and the ROIs read unmasked features.
    full_df_model = ModelConfig(
        roi_size=64,
        encoder_channels=(128, 256, 384, 512, 640, 768, 896),
        generator_channels=(128, 256, 384, 512, 640),
        bg_embedding_dim=0,
        fg_features_masked=False,
    )
    tiny_df_model = dataclasses.replace(
        _TINY_MODEL, roi_size=32, encoder_channels=(32, 64, 96, 128, 160), bg_embedding_dim=0,
        generator_channels=(32, 64, 96, 128, 160), fg_features_masked=False,
    )
    return {
        ("market", "full"): Config(_MARKET_DATA, ModelConfig(), _FULL_TRAIN, "full"),
        ("market", "tiny"): Config(
            dataclasses.replace(_MARKET_DATA, height=64, width=32, heatmap_radius=2, mask_radius=4,
                                mask_close_size=3, roi_pad=3, roi_pad_single=5),
            _TINY_MODEL, _TINY_TRAIN, "tiny"),
        ("synthetic", "full"): Config(
            dataclasses.replace(_MARKET_DATA, name="synthetic"), ModelConfig(), _FULL_TRAIN, "full"),
        ("synthetic", "tiny"): Config(
            dataclasses.replace(_MARKET_DATA, name="synthetic", height=64, width=32, heatmap_radius=2,
                                mask_radius=4, mask_close_size=3, roi_pad=3, roi_pad_single=5),
            _TINY_MODEL, _TINY_TRAIN, "tiny"),
        ("market", "micro"): Config(
            dataclasses.replace(_MARKET_DATA, **_MICRO_GEOMETRY), _MICRO_MODEL, _MICRO_TRAIN, "micro"),
        ("synthetic", "micro"): Config(
            dataclasses.replace(_MARKET_DATA, name="synthetic", **_MICRO_GEOMETRY), _MICRO_MODEL, _MICRO_TRAIN,
            "micro"),
        ("deepfashion", "full"): Config(
            _DEEPFASHION_DATA, full_df_model, _FULL_DF_TRAIN, "full"),
        ("deepfashion", "tiny"): Config(
            dataclasses.replace(_DEEPFASHION_DATA, **_DEEPFASHION_TINY_GEOMETRY), tiny_df_model, _TINY_TRAIN, "tiny"),
        ("deepfashion", "micro"): Config(
            dataclasses.replace(_DEEPFASHION_DATA, **_DEEPFASHION_MICRO_GEOMETRY),
            dataclasses.replace(_MICRO_MODEL, bg_embedding_dim=0, fg_features_masked=False), _MICRO_TRAIN, "micro"),
    }


DATASETS = ("market", "deepfashion", "synthetic")
SCALES = ("full", "tiny", "micro")
# The preset the tools pick when no --dataset / --scale is given.
DEFAULT_DATASET = "synthetic"
DEFAULT_SCALE = "full"


def get_config(dataset: str, scale: str = DEFAULT_SCALE) -> Config:
    """Returns the preset for `dataset` at `scale`.

    Raises:
      ValueError: naming the unknown dataset or scale and the accepted values.
    """
    if dataset not in DATASETS:
        raise ValueError(f"Unknown dataset {dataset!r}; expected one of {', '.join(DATASETS)}.")
    if scale not in SCALES:
        raise ValueError(f"Unknown scale {scale!r}; expected one of {', '.join(SCALES)}.")
    return _presets()[(dataset, scale)]


def override(cfg: Config, **fields: Any) -> Config:
    """Returns `cfg` with the named fields replaced, wherever they live (data, model or train).

    Example: `override(cfg, batch_size=4, fg_encoder="whole")`. `None` values are ignored so that
    unset flags can be passed straight through.

    Raises:
      ValueError: for a field that no sub-config has.
    """
    parts = {"data": cfg.data, "model": cfg.model, "train": cfg.train}
    updates: dict[str, dict[str, Any]] = {k: {} for k in parts}
    for name, value in fields.items():
        if value is None:
            continue
        owner = next((k for k, part in parts.items() if name in {f.name for f in dataclasses.fields(part)}), None)
        if owner is None:
            raise ValueError(f"Unknown config field {name!r}.")
        if name == "fg_encoder":
            value = FgEncoderKind(value)
        updates[owner][name] = value
    return dataclasses.replace(
        cfg, **{k: dataclasses.replace(part, **updates[k]) for k, part in parts.items()})


def stage2_train(train: TrainConfig, factor: Factor | str) -> TrainConfig:
    """`train` with `mapper_batch_size`, `steps` and `mapper_learning_rate` set to `factor`'s budget.

    The per-factor tables are emptied, so resolving twice changes nothing and a stage-II run's
    config.json holds the values it ran with.
    """
    factor = Factor(factor).value
    return dataclasses.replace(
        train,
        mapper_batch_size=dict(train.mapper_batch_sizes).get(factor, train.mapper_batch_size),
        steps=dict(train.mapper_steps).get(factor, train.steps),
        mapper_learning_rate=dict(train.mapper_learning_rates).get(factor, train.mapper_learning_rate),
        mapper_batch_sizes=(), mapper_steps=(), mapper_learning_rates=())


def to_json(cfg: Config) -> str:
    """Serializes `cfg` (written beside every run, so later stages rebuild the same models)."""
    def encode(value):
        return value.value if isinstance(value, enum.Enum) else value

    return json.dumps(
        {"scale": cfg.scale, **{part: {k: encode(v) for k, v in dataclasses.asdict(getattr(cfg, part)).items()}
                                for part in ("data", "model", "train")}},
        indent=2, sort_keys=True)


def from_json(text: str) -> Config:
    """Inverse of `to_json`."""
    raw = json.loads(text)

    def tuples(values: dict) -> dict:
        # JSON has no tuples; the dataclasses keep them hashable.
        return {k: tuple(tuple(x) if isinstance(x, list) else x for x in v) if isinstance(v, list) else v
                for k, v in values.items()}

    model = tuples(raw["model"])
    model["fg_encoder"] = FgEncoderKind(model["fg_encoder"])
    return Config(DataConfig(**raw["data"]), ModelConfig(**model), TrainConfig(**tuples(raw["train"])), raw["scale"])


@dataclasses.dataclass(frozen=True)
class VirtualMarketConfig:
    """What `python -m keras_disentangle.virtual_market` writes by default (the paper's VM: 500 x 24).

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


class ReidBackbone(str, enum.Enum):
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


REID_PRESETS = {
    "full": ReidConfig(),
    # The synthetic / micro scale: 64x32 input, the small trunk (1,500 steps took ~20 min on a loaded 2-vCPU
    # machine, README "Virtual Market").
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
    fields = {k: v for k, v in fields.items() if v is not None}
    if "backbone" in fields:
        fields["backbone"] = ReidBackbone(fields["backbone"])
    return dataclasses.replace(REID_PRESETS[preset], **fields)


def reid_config_to_json(cfg: ReidConfig) -> str:
    return json.dumps({k: v.value if isinstance(v, enum.Enum) else v for k, v in dataclasses.asdict(cfg).items()},
                      indent=2, sort_keys=True)


def reid_config_from_json(text: str) -> ReidConfig:
    raw = json.loads(text)
    raw["backbone"] = ReidBackbone(raw["backbone"])
    raw["small_channels"] = tuple(raw["small_channels"])
    return ReidConfig(**raw)
