"""The named presets (dataset x scale), overriding their fields, and a run's config.json."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from keras_disentangle.configs.choices import Dataset, Factor, Scale
from keras_disentangle.configs.fields import Config, DataConfig, ModelConfig, TrainConfig

# A missing joint enters the pose vector as (-1, -1), the authors' (docs/differences.md); every preset.
_MARKET_DATA = DataConfig(name="market", height=128, width=64, stored_height=128, stored_width=64,
                          pose_missing_coordinate=-1.0)
# The ROI paddings and head raise are the authors' DeepFashion conversion's (docs/differences.md).
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
    pose_missing_coordinate=-1.0,
)
# The same geometry at 64x64 and 32x32 (the 256x256 pixel values / 4 and / 8, rounded up).
_DEEPFASHION_TINY_GEOMETRY = dict(height=64, width=64, heatmap_radius=2, mask_radius=2, mask_close_size=3,
                                  roi_pad=3, roi_pad_single=5, roi_head_raise=3, roi_pad_close_up=5,
                                  roi_pad_single_close_up=10, roi_head_raise_close_up=7)
_DEEPFASHION_MICRO_GEOMETRY = dict(height=32, width=32, heatmap_radius=1, mask_radius=1, mask_close_size=3,
                                   roi_pad=2, roi_pad_single=3, roi_head_raise=2, roi_pad_close_up=3,
                                   roi_pad_single_close_up=5, roi_head_raise_close_up=4)

# The authors' pose auto-encoder (docs/differences.md): LeakyReLU 0.2, a linear first decoder layer.
_AUTHORS_POSE_AUTOENCODER = dict(pose_leaky_slope=0.2, pose_decoder_linear_input=True)
# The authors' discriminator initializers (docs/differences.md); tiny and micro keep Keras' defaults,
# with which their figures were measured (their presets train without D1).
_FULL_MODEL = ModelConfig(d1_initializer="dcgan_uniform", critic_initializer="he_uniform",
                          **_AUTHORS_POSE_AUTOENCODER)

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
    **_AUTHORS_POSE_AUTOENCODER,
)

_TINY_TRAIN = TrainConfig(
    learning_rate=3e-4,
    # L1 only (below), so with Adam lambda only scales the gradient, which Adam normalizes away
    # (up to its epsilon): 20 would train the same. 10 is kept so that the figures measured with it
    # (docs/experiments/demo-cpu-kinds.md, test_learning) stay reproducible bit for bit.
    l1_weight=10.0,
    # L1 only: a 15-minute CPU run with the paper's adversarial term (weight 1, D1 at this learning
    # rate) collapsed and lost to the trivial baselines; L1 alone disentangles (docs/training.md, presets).
    # --adversarial_weight=1 restores the paper's loss; with --l1_weight=20 --d1_learning_rate (a tenth of
    # G1's) --d1_joint_batch --adversarial_start_step=300 it no longer collapses at micro scale, sharpens,
    # but loses 28% on BG swap region L1. With --d1_normalization=spectral (not in the paper) and D1 at
    # G1's rate, tiny 15-minute pairs sharpen and lower FID on every seed, but lose 6% / 12% / 15% on BG
    # swap over seeds 0 / 1 / 2 (over the 10% bound on average), so the presets stay L1 only
    # (docs/experiments/adversarial-term.md).
    adversarial_weight=0.0,
    pose_learning_rate=1e-3,
    mapper_learning_rate=1e-3,  # with clipping at 0.01: FD of fg embeddings falls ~100x in 1,000 steps
    steps=6000,
    checkpoint_every=250,
    log_every=25,
    image_every=250,
)


# Sized by measurement (docs/experiments/demo-cpu-kinds.md): per step ~25x cheaper than tiny (16 channels at 32x16, 8x8
# ROI crops, batch 8), and per CPU-second the fastest of the variants tried to beat the trivial
# baselines on gt_swap FG and BG swap; a 12x12 ROI costs 1.4x per step, batch 16 2x.
# The up path reads the appearance code at every level: through the paper's 16-channel stem alone the
# clothes came out grey (garment dE76 30 / 35, chroma 0.2 of the target's at 2,000 steps), and even a
# code holding each ROI's mean colour did not get through it (docs/experiments/colour.md).
_MICRO_MODEL = dataclasses.replace(
    _TINY_MODEL,
    first_block_channels=16,
    encoder_channels=(16, 32, 64),
    roi_size=8,
    generator_channels=(16, 32, 64),
    appearance_in_up_path=True,
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


# The paper's schedule on GPUs (supplementary B; the authors' scripts halve every 50k steps), the pose
# auto-encoder's budget of the authors' scripts, and TF1's optimizers as the authors ran them.
_FULL_TRAIN = TrainConfig(
    lr_halving_steps=50_000,
    pose_steps=60_000,
    adam_epsilon=1e-8,
    stage2_rmsprop="tf1",
    mapper_batch_sizes=(("fg", 32), ("bg", 32), ("pose", 32)),
    mapper_steps=(("fg", 30_000), ("bg", 30_000), ("pose", 60_000)),
)
_FULL_DF_TRAIN = dataclasses.replace(
    _FULL_TRAIN, batch_size=6, steps=100_000, pose_batch_size=16, pose_steps=120_000, d1_joint_batch=True,
    mapper_batch_sizes=(("fg", 16), ("pose", 32)), mapper_steps=(("fg", 60_000), ("pose", 60_000)))


def _presets() -> dict[tuple[str, str], Config]:
    # The authors' DeepFashion code: a 7-level ROI encoder and a 5-level U-Net (the paper says
    # N = 7 for both; the code made the published figures), and the ROIs read unmasked features.
    full_df_model = dataclasses.replace(
        _FULL_MODEL,
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
        ("market", "full"): Config(_MARKET_DATA, _FULL_MODEL, _FULL_TRAIN, "full"),
        ("market", "tiny"): Config(
            dataclasses.replace(_MARKET_DATA, height=64, width=32, heatmap_radius=2, mask_radius=4,
                                mask_close_size=3, roi_pad=3, roi_pad_single=5),
            _TINY_MODEL, _TINY_TRAIN, "tiny"),
        ("synthetic", "full"): Config(
            dataclasses.replace(_MARKET_DATA, name="synthetic"), _FULL_MODEL, _FULL_TRAIN, "full"),
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


DATASETS = tuple(dataset.value for dataset in Dataset)
SCALES = tuple(scale.value for scale in Scale)
# The preset the tools pick when no --dataset / --scale is given.
DEFAULT_DATASET = Dataset.SYNTHETIC
DEFAULT_SCALE = Scale.FULL


def get_config(dataset: Dataset | str, scale: Scale | str = DEFAULT_SCALE) -> Config:
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

    Example: `override(cfg, batch_size=4, fg_encoder="whole")`: a choice may be given as its string.
    `None` values are ignored so that unset flags can be passed straight through.

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
    """Serializes `cfg` (written beside every run, so later stages rebuild the same models); a choice
    (`StrEnum`) is written as its string."""
    return json.dumps(
        {"scale": cfg.scale, **{part: dataclasses.asdict(getattr(cfg, part)) for part in ("data", "model", "train")}},
        indent=2, sort_keys=True)


def from_json(text: str) -> Config:
    """Inverse of `to_json`: the configs' `__post_init__` turn the choices' strings into members."""
    raw = json.loads(text)

    def tuples(values: dict) -> dict:
        # JSON has no tuples; the dataclasses keep them hashable.
        return {k: tuple(tuple(x) if isinstance(x, list) else x for x in v) if isinstance(v, list) else v
                for k, v in values.items()}

    return Config(DataConfig(**raw["data"]), ModelConfig(**tuples(raw["model"])), TrainConfig(**tuples(raw["train"])),
                  raw["scale"])
