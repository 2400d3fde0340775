"""The stage-I decoder G1: a PG2-style U-Net from the tiled appearance embedding and the pose heatmaps.

The appearance embedding (FG + BG, 352-d for Market) is tiled over the image grid and concatenated
with the 18 pose heatmaps (370 channels), so the network learns where on the body each appearance
feature goes (paper Sec. 3.1, pose branch; Fig. 10c). The U-Net follows PG2's G1: a conv to the
first level's width; per level a residual block whose output is kept as a skip and a stride-2 conv
to the next level; at the bottom a linear FC bottleneck and a linear FC back to a
`h_bottom x w_bottom x channels[0]` map; on the way up the skip is concatenated, a residual block
keeps the concatenated width, then nearest upsampling and a 1x1 conv to the next level's width; a
final linear 3x3 conv gives the image.
"""

from __future__ import annotations

import keras

from keras_disentangle.configs import NUM_KEYPOINTS, Config
from keras_disentangle.models.layers import TiledInputConv2D, TileEmbedding, residual_conv_block


def _appearance_residual_block(x: keras.KerasTensor, embedding: keras.KerasTensor, name: str) -> keras.KerasTensor:
    """`residual_conv_block` of `x` whose first conv also reads the embedding tiled over the map.

    The tiled channels cost one small matmul, not a convolution (`TiledInputConv2D`), so every level
    of the up path reads the whole appearance code for the price of its own features.
    """
    channels = x.shape[-1]
    tiled = TileEmbedding(x.shape[1], x.shape[2], name=f"{name}_tile_appearance")(embedding)
    h = keras.layers.Concatenate(name=f"{name}_appearance")([tiled, x])
    h = TiledInputConv2D(embedding.shape[-1], channels, 3, activation="relu", name=f"{name}_conv1")(h)
    h = keras.layers.Conv2D(channels, 3, padding="same", activation="relu", name=f"{name}_conv2")(h)
    return keras.layers.Add(name=f"{name}_add")([x, h])


def build_generator(cfg: Config) -> keras.Model:
    """Builds the U-Net generator G1.

    Args:
      cfg: Config. Uses `data.height/width`, `model.appearance_embedding_dim`,
        `model.generator_channels`, `model.generator_bottleneck_dim`.

    Returns:
      keras.Model `generator`: dict of `appearance_embedding` `(batch, 352)` and `heatmaps`
      `(batch, 128, 64, 18)` in {-1, +1} -> `generated_image` `(batch, 128, 64, 3)` float32, linear
      (the training target is in [-1, 1]) (Market, full scale).

    Raises:
      ValueError: when the image size is not divisible by `2 ** (len(generator_channels) - 1)`, so
        that the up path would not meet the skips.
    """
    height, width = cfg.data.height, cfg.data.width
    channels = cfg.model.generator_channels
    factor = 2 ** (len(channels) - 1)
    if height % factor or width % factor:
        raise ValueError(
            f"Image size {height}x{width} (cfg.data.height x width) must be divisible by {factor} for a "
            f"{len(channels)}-level generator (cfg.model.generator_channels={channels}).")
    inputs = {
        "appearance_embedding": keras.Input((cfg.model.appearance_embedding_dim,), name="appearance_embedding"),
        "heatmaps": keras.Input((height, width, NUM_KEYPOINTS), name="heatmaps"),
    }
    tiled = TileEmbedding(height, width, name="tile_appearance")(inputs["appearance_embedding"])
    x = keras.layers.Concatenate(name="appearance_and_pose")([tiled, inputs["heatmaps"]])
    # A Conv2D (same variables, same checkpoint) that skips convolving the tiled channels.
    x = TiledInputConv2D(cfg.model.appearance_embedding_dim, channels[0], 3, activation="relu", name="stem")(x)

    skips = []
    for level, width_level in enumerate(channels):
        x = residual_conv_block(x, width_level, name=f"down{level}")
        skips.append(x)
        if level + 1 < len(channels):
            x = keras.layers.Conv2D(channels[level + 1], 3, strides=2, padding="same", activation="relu",
                                    name=f"down{level}_stride2")(x)

    bottom_h, bottom_w = height // factor, width // factor
    x = keras.layers.Flatten(name="bottleneck_flatten")(x)
    x = keras.layers.Dense(cfg.model.generator_bottleneck_dim, name="bottleneck")(x)
    x = keras.layers.Dense(bottom_h * bottom_w * channels[0], name="bottleneck_expand")(x)
    x = keras.layers.Reshape((bottom_h, bottom_w, channels[0]), name="bottleneck_map")(x)

    for level in reversed(range(len(channels))):
        x = keras.layers.Concatenate(name=f"up{level}_skip")([x, skips[level]])
        if cfg.model.appearance_in_up_path:
            x = _appearance_residual_block(x, inputs["appearance_embedding"], name=f"up{level}")
        else:
            x = residual_conv_block(x, x.shape[-1], name=f"up{level}")
        if level > 0:
            x = keras.layers.UpSampling2D(2, interpolation="nearest", name=f"up{level}_upsample")(x)
            x = keras.layers.Conv2D(channels[level - 1], 1, activation="relu", name=f"up{level}_1x1")(x)
    image = keras.layers.Conv2D(3, 3, padding="same", dtype="float32", name="generated_image")(x)
    return keras.Model(inputs, image, name="generator")
