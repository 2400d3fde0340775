"""Stage-I appearance encoders: first block + mask split, FG encoder (BodyROI7 or WholeBody), BG encoder.

The image goes through one conv + residual block (`first_block`); the coarse body mask then splits
its features into FG = features * M and BG = features * (1 - M) (paper Sec. 3.1: masking features
rather than pixels tolerates an inaccurate mask). Without a background branch (DeepFashion) the FG
branch reads the unmasked features by default, as the authors' code does (`fg_features_masked`).
The FG branch crops the 7 body ROIs and encodes each with one shared encoder (BodyROI7), or encodes
the whole masked map (WholeBody); the BG branch encodes the inverse-masked map. Each encoder is a
stack of residual levels with a stride-2 conv between levels, flattened into a linear FC bottleneck
(paper Sec. 3.4, Fig. 10a-b).

Model and sub-model names: `appearance_encoder` holds `first_block`, `fg_encoder` (which holds
`roi_encoder` in the BodyROI7 variant) and `bg_encoder`.
"""

from __future__ import annotations

import keras

from keras_disentangle.configs import NUM_ROIS, Config, FgEncoderKind
from keras_disentangle.models.layers import RoiAlign, residual_conv_block

# The layer whose output the FG branch reads, by `cfg.model.fg_features_masked` (saliency probes it).
FG_FEATURES_LAYER = {True: "fg_mask", False: "fg_features"}


def _conv_encoder(x: keras.KerasTensor, channels: tuple[int, ...], name: str) -> keras.KerasTensor:
    """Residual levels with a stride-2 3x3 ReLU conv between consecutive levels, then flatten.

    Returns:
      KerasTensor `(batch, h * w * channels[-1])`, where h and w are the input size halved
      `len(channels) - 1` times (rounded up).
    """
    for level, width in enumerate(channels):
        if level > 0:
            x = keras.layers.Conv2D(width, 3, strides=2, padding="same", activation="relu",
                                    name=f"{name}_down{level}")(x)
        x = residual_conv_block(x, width, name=f"{name}_level{level}")
    return keras.layers.Flatten(name=f"{name}_flatten")(x)


def _features_shape(cfg: Config) -> tuple[int, int, int]:
    return (cfg.data.height, cfg.data.width, cfg.model.first_block_channels)


def build_first_block(cfg: Config) -> keras.Model:
    """The image stem: a 3x3 ReLU conv to `first_block_channels` and one residual block.

    Args:
      cfg: Config. Uses `data.height`, `data.width`, `model.first_block_channels`.

    Returns:
      keras.Model `first_block`: `image` `(batch, 128, 64, 3)` in [-1, 1] -> `features`
      `(batch, 128, 64, 128)` (Market, full scale).
    """
    channels = cfg.model.first_block_channels
    image = keras.Input((cfg.data.height, cfg.data.width, 3), name="image")
    x = keras.layers.Conv2D(channels, 3, padding="same", activation="relu", name="conv")(image)
    features = residual_conv_block(x, channels, name="residual")
    return keras.Model(image, features, name="first_block")


def _build_roi_encoder(cfg: Config, channels: int) -> keras.Model:
    """The encoder shared by the 7 ROIs: `(batch, S, S, C)` crop -> `(batch, roi_embedding_dim)`."""
    size = cfg.model.roi_size
    crop = keras.Input((size, size, channels), name="roi_features")
    x = _conv_encoder(crop, cfg.model.encoder_channels, name="encoder")
    embedding = keras.layers.Dense(cfg.model.roi_embedding_dim, dtype="float32", name="roi_embedding")(x)
    return keras.Model(crop, embedding, name="roi_encoder")


def _fg_inputs(cfg: Config) -> dict[str, keras.KerasTensor]:
    return {
        "fg_features": keras.Input(_features_shape(cfg), name="fg_features"),
        "roi_boxes": keras.Input((NUM_ROIS, 4), name="roi_boxes"),
        "roi_visibility": keras.Input((NUM_ROIS,), name="roi_visibility"),
    }


def _build_body_roi7_encoder(cfg: Config) -> keras.Model:
    inputs = _fg_inputs(cfg)
    size, dim = cfg.model.roi_size, cfg.model.roi_embedding_dim
    channels = cfg.model.first_block_channels
    crops = RoiAlign(size, name="roi_align")([inputs["fg_features"], inputs["roi_boxes"]])
    # The 7 crops of an example become 7 batch entries, so the shared encoder runs once per step.
    per_roi = _build_roi_encoder(cfg, channels)(keras.ops.reshape(crops, (-1, size, size, channels)))
    per_roi = keras.ops.reshape(per_roi, (-1, NUM_ROIS, dim))
    # An ROI without any joint is a [0, 0, 1, 1] crop of the whole map; zero its code instead.
    visibility = keras.layers.Reshape((NUM_ROIS, 1), name="visibility_column")(inputs["roi_visibility"])
    gated = keras.layers.Multiply(dtype="float32", name="visibility_gate")([per_roi, visibility])
    embedding = keras.layers.Reshape((NUM_ROIS * dim,), dtype="float32", name="fg_embedding")(gated)
    return keras.Model(inputs, embedding, name="fg_encoder")


def _build_whole_body_encoder(cfg: Config) -> keras.Model:
    # Same inputs as BodyROI7 (the boxes go unused) so that the variants are interchangeable.
    inputs = _fg_inputs(cfg)
    x = _conv_encoder(inputs["fg_features"], cfg.model.encoder_channels, name="encoder")
    embedding = keras.layers.Dense(cfg.model.fg_embedding_dim, dtype="float32", name="fg_embedding")(x)
    return keras.Model(inputs, embedding, name="fg_encoder")


def build_fg_encoder(cfg: Config) -> keras.Model:
    """The foreground encoder, BodyROI7 or WholeBody after `cfg.model.fg_encoder`.

    BodyROI7 crops the 7 body ROIs from the masked features (`RoiAlign`, `roi_size` square), encodes
    each with one shared residual encoder (`roi_encoder`) into `roi_embedding_dim` features,
    multiplies each ROI's code by its visibility and concatenates them in ROI order. WholeBody
    encodes the whole masked map into the same `7 * roi_embedding_dim` features.

    Args:
      cfg: Config. Uses `data.height/width`, `model.first_block_channels`, `model.fg_encoder`,
        `model.encoder_channels`, `model.roi_size`, `model.roi_embedding_dim`.

    Returns:
      keras.Model `fg_encoder`: dict of `fg_features` `(batch, 128, 64, 128)`, `roi_boxes`
      `(batch, 7, 4)`, `roi_visibility` `(batch, 7)` -> `fg_embedding` `(batch, 224)` float32
      (Market, full scale).

    Raises:
      ValueError: for an unknown `cfg.model.fg_encoder`.
    """
    kind = cfg.model.fg_encoder
    if kind == FgEncoderKind.BODY_ROI7:
        return _build_body_roi7_encoder(cfg)
    if kind == FgEncoderKind.WHOLE_BODY:
        return _build_whole_body_encoder(cfg)
    raise ValueError(
        f"cfg.model.fg_encoder={kind!r} is not one of {', '.join(k.value for k in FgEncoderKind)}.")


def build_bg_encoder(cfg: Config) -> keras.Model:
    """The background encoder: residual levels on the inverse-masked features, FC to `bg_embedding_dim`.

    Args:
      cfg: Config. Uses `data.height/width`, `data.has_background`, `model.first_block_channels`,
        `model.encoder_channels`, `model.bg_embedding_dim`.

    Returns:
      keras.Model `bg_encoder`: `bg_features` `(batch, 128, 64, 128)` -> `bg_embedding`
      `(batch, 128)` float32 (Market, full scale).

    Raises:
      ValueError: when the dataset has no background factor or `bg_embedding_dim` is not positive.
    """
    if not cfg.data.has_background or cfg.model.bg_embedding_dim < 1:
        raise ValueError(
            f"Dataset {cfg.data.name!r} has no background branch (has_background={cfg.data.has_background}, "
            f"bg_embedding_dim={cfg.model.bg_embedding_dim}); expected has_background=True and bg_embedding_dim > 0.")
    features = keras.Input(_features_shape(cfg), name="bg_features")
    x = _conv_encoder(features, cfg.model.encoder_channels, name="encoder")
    embedding = keras.layers.Dense(cfg.model.bg_embedding_dim, dtype="float32", name="bg_embedding")(x)
    return keras.Model(features, embedding, name="bg_encoder")


def build_appearance_encoder(cfg: Config) -> keras.Model:
    """The stage-I appearance branch: first block, mask split, FG encoder and (if any) BG encoder.

    Args:
      cfg: Config. See `build_first_block`, `build_fg_encoder` and `build_bg_encoder`.

    Returns:
      keras.Model `appearance_encoder`: dict of `image` `(batch, 128, 64, 3)` in [-1, 1],
      `body_mask` `(batch, 128, 64, 1)` in {0, 1}, `roi_boxes` `(batch, 7, 4)`, `roi_visibility`
      `(batch, 7)` -> dict of `fg_embedding` `(batch, 224)` and `bg_embedding` `(batch, 128)`, both
      float32 (Market, full scale). Without a background (DeepFashion) the dict has only
      `fg_embedding`.
    """
    height, width = cfg.data.height, cfg.data.width
    inputs = {
        "image": keras.Input((height, width, 3), name="image"),
        "body_mask": keras.Input((height, width, 1), name="body_mask"),
        "roi_boxes": keras.Input((NUM_ROIS, 4), name="roi_boxes"),
        "roi_visibility": keras.Input((NUM_ROIS,), name="roi_visibility"),
    }
    features = build_first_block(cfg)(inputs["image"])
    mask = inputs["body_mask"]
    # Unmasked on DeepFashion, as the authors' code: without a BG branch the mask would only lose
    # hair and loose clothes outside the limb disks (ModelConfig.fg_features_masked).
    if cfg.model.fg_features_masked:
        fg_features = keras.layers.Multiply(name=FG_FEATURES_LAYER[True])([features, mask])
    else:
        fg_features = keras.layers.Identity(name=FG_FEATURES_LAYER[False])(features)
    outputs = {
        "fg_embedding": build_fg_encoder(cfg)({
            "fg_features": fg_features,
            "roi_boxes": inputs["roi_boxes"],
            "roi_visibility": inputs["roi_visibility"],
        })
    }
    if cfg.data.has_background:
        inverse_mask = keras.layers.Rescaling(-1.0, offset=1.0, name="inverse_mask")(mask)
        bg_features = keras.layers.Multiply(name="bg_mask")([features, inverse_mask])
        outputs["bg_embedding"] = build_bg_encoder(cfg)(bg_features)
    return keras.Model(inputs, outputs, name="appearance_encoder")
