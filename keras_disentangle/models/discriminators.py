"""The discriminators: D1 (stage I, DCGAN on images) and D2 (stage II, FC critic on embeddings).

D1 returns a logit for the BCE losses of paper Eq. 1-2; D2 returns an unbounded Wasserstein score
for Eq. 4-5. Both outputs are float32 under a mixed precision policy.
"""

from __future__ import annotations

import math

import keras

from keras_disentangle.configs import Config, Factor
from keras_disentangle.configs.choices import CRITIC_INITIALIZERS, D1_INITIALIZERS, D1Normalization

# tflib's `set_weights_stdev(0.02)`, under which the authors' `DCGANDiscriminator` builds D1: uniform
# weights of standard deviation 0.02, i.e. on +-0.02 * sqrt(3).
_DCGAN_STDDEV = 0.02


def _initializers(name: str, field: str, choices: tuple[str, ...]):
    """A factory of fresh kernel initializers named `name` (a layer each: an unseeded Keras initializer
    called twice returns the same values).

    Raises:
      ValueError: naming `field` when `name` is not one of `choices`.
    """
    if name not in choices:
        raise ValueError(f"{field}={name!r}; expected one of {', '.join(choices)}.")
    if name == "dcgan_uniform":
        limit = _DCGAN_STDDEV * math.sqrt(3.0)
        return lambda: keras.initializers.RandomUniform(-limit, limit)
    return lambda: keras.initializers.get(name)


def factor_embedding_dim(cfg: Config, factor: Factor | str) -> int:
    """K, the size of the stage-II embedding of `factor` (224 FG, 128 BG, 32 pose for Market).

    Args:
      cfg: Config. Uses `data.has_background` and the model's embedding sizes.
      factor: Factor or its value (`fg`, `bg`, `pose`).

    Returns:
      int, the embedding size.

    Raises:
      ValueError: for an unknown factor, or `bg` when the dataset has no background factor.
    """
    try:
        factor = Factor(factor)
    except ValueError:
        raise ValueError(
            f"Unknown factor {factor!r}; expected one of {', '.join(f.value for f in Factor)}.") from None
    if factor is Factor.BACKGROUND and not cfg.data.has_background:
        raise ValueError(
            f"factor='bg' but dataset {cfg.data.name!r} has no background factor (has_background=False); "
            "expected 'fg' or 'pose'.")
    return cfg.model.embedding_dim(factor)


def build_d1(cfg: Config) -> keras.Model:
    """The stage-I image discriminator D1 (DCGAN).

    5x5 stride-2 convs of `d1_channels` widths, batch normalization on all but the first (or none,
    or spectral normalization of every layer: `model.d1_normalization`), LeakyReLU 0.2, then a dense logit.
    Every kernel starts from `model.d1_initializer`.

    Args:
      cfg: Config. Uses `data.height/width`, `model.d1_channels`, `model.d1_normalization`,
        `model.d1_initializer`.

    Returns:
      keras.Model `d1`: `image` `(batch, 128, 64, 3)` in [-1, 1] -> `logit` `(batch, 1)` float32.

    Raises:
      ValueError: for an unknown `model.d1_normalization` or `model.d1_initializer`.

    Reference:
      Radford et al., "Unsupervised representation learning with deep convolutional GANs", 2016;
      Ma et al., CVPR 2018, Sec. 3.5 (D1); Miyato et al., "Spectral normalization for GANs", 2018.
    """
    normalization = cfg.model.d1_normalization  # a D1Normalization: ModelConfig refuses other values
    kernel = _initializers(cfg.model.d1_initializer, "d1_initializer", D1_INITIALIZERS)
    image = keras.Input((cfg.data.height, cfg.data.width, 3), name="image")
    logit = _spectral(keras.layers.Dense(1, dtype="float32", kernel_initializer=kernel(), name="logit"),
                      normalization)(dcgan_features(image, cfg.model.d1_channels, normalization,
                                                    cfg.model.d1_initializer))
    return keras.Model(image, logit, name="d1")


def _spectral(layer: keras.layers.Layer, normalization: D1Normalization | str) -> keras.layers.Layer:
    if normalization != D1Normalization.SPECTRAL:
        return layer
    return keras.layers.SpectralNormalization(layer, dtype=layer.dtype_policy, name=f"sn_{layer.name}")


def dcgan_features(image, channels: tuple[int, ...], normalization: D1Normalization | str = D1Normalization.BATCH,
                   initializer: str = "glorot_uniform"):
    """D1's conv stack on an image tensor, flattened (also the VAE baseline's encoder).

    5x5 stride-2 convs of `channels` widths, LeakyReLU 0.2; `normalization` (`D1Normalization`):
    batch normalization on all but the first conv, none, or spectral normalization of every conv;
    kernels from `initializer` (`D1_INITIALIZERS`).
    """
    kernel = _initializers(initializer, "d1_initializer", D1_INITIALIZERS)
    x = image
    for index, width in enumerate(channels):
        normalize = index > 0 and normalization == D1Normalization.BATCH
        # A bias before batch normalization is cancelled by its mean subtraction.
        x = _spectral(keras.layers.Conv2D(width, 5, strides=2, padding="same", use_bias=not normalize,
                                          kernel_initializer=kernel(), name=f"conv{index}"), normalization)(x)
        if normalize:
            x = keras.layers.BatchNormalization(name=f"bn{index}")(x)
        x = keras.layers.LeakyReLU(negative_slope=0.2, name=f"lrelu{index}")(x)
    return keras.layers.Flatten(name="flatten")(x)


def build_critic(cfg: Config, factor: Factor | str) -> keras.Model:
    """The stage-II critic D2 of one factor: `critic_num_layers` FC LeakyReLU(0.2) layers, then a score.

    The hidden kernels start from `model.critic_initializer`, the score's from Glorot uniform (as the
    authors' `FCDiscriminator`: He for its `LeakyReLULayer`s, tflib's default for the output).

    Args:
      cfg: Config. Uses `model.critic_hidden_dim`, `model.critic_num_layers`, `model.critic_initializer`
        and the embedding size.
      factor: Factor or its value (`fg`, `bg`, `pose`).

    Returns:
      keras.Model `d2_<factor>`: `<factor>_embedding` `(batch, K)` -> `score` `(batch, 1)` float32,
      K = 224 / 128 / 32 for fg / bg / pose (Market, full scale).

    Raises:
      ValueError: see `factor_embedding_dim`; for an unknown `model.critic_initializer`.
    """
    dim = factor_embedding_dim(cfg, factor)
    kernel = _initializers(cfg.model.critic_initializer, "critic_initializer", CRITIC_INITIALIZERS)
    factor = Factor(factor).value
    embedding = keras.Input((dim,), name=f"{factor}_embedding")
    x = embedding
    for index in range(cfg.model.critic_num_layers):
        x = keras.layers.Dense(cfg.model.critic_hidden_dim, kernel_initializer=kernel(), name=f"dense{index}")(x)
        x = keras.layers.LeakyReLU(negative_slope=0.2, name=f"lrelu{index}")(x)
    score = keras.layers.Dense(1, dtype="float32", name="score")(x)
    return keras.Model(embedding, score, name=f"d2_{factor}")
