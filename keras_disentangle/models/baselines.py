"""The paper's sampling baselines (Sec. 4.5, Fig. 7): a vanilla VAE and a vanilla DCGAN on whole images.

Both draw an image from one Gaussian code, with no factors: the point of the comparison. They share
one image generator (the DCGAN generator of Radford et al. 2016: a dense layer to the smallest map,
then 5x5 stride-2 transposed convs with batch normalization and ReLU, tanh out), sized like D1 so
that it mirrors the discriminator: as many upsamplings as D1 has stride-2 convs. The DCGAN's
discriminator is D1 itself (`build_d1`); the VAE's encoder is D1's conv stack (`dcgan_features`)
with two dense heads.
"""

from __future__ import annotations

import keras

from keras_disentangle.configs import Baseline, Config
from keras_disentangle.models.discriminators import build_d1, dcgan_features


def _check_divisible(cfg: Config) -> tuple[int, int]:
    levels = len(cfg.model.baseline_channels)
    factor = 2 ** levels
    height, width = cfg.data.height, cfg.data.width
    if height % factor or width % factor:
        raise ValueError(f"baseline_channels: {levels} upsamplings need the image size {height}x{width} to be a "
                         f"multiple of {factor}.")
    return height // factor, width // factor


def build_image_generator(cfg: Config, name: str) -> keras.Model:
    """The baselines' generator: a code `(batch, latent)` -> image `(batch, H, W, 3)` in [-1, 1].

    Args:
      cfg: Config. Uses `data.height/width`, `model.baseline_latent_dim`, `model.baseline_channels`.
      name: str. `vae_decoder` or `dcgan_generator`.

    Returns:
      keras.Model `name`: `code` -> `image` float32.

    Raises:
      ValueError: if the image size is not divisible by 2 ** len(baseline_channels).

    Reference:
      Radford et al., "Unsupervised representation learning with deep convolutional GANs", 2016.
    """
    height, width = _check_divisible(cfg)
    channels = cfg.model.baseline_channels
    code = keras.Input((cfg.model.baseline_latent_dim,), name="code")
    x = keras.layers.Dense(height * width * channels[-1], use_bias=False, name="project")(code)
    x = keras.layers.Reshape((height, width, channels[-1]), name="reshape")(x)
    x = keras.layers.BatchNormalization(name="bn_project")(x)
    x = keras.layers.ReLU(name="relu_project")(x)
    for index, width_out in enumerate(reversed(channels[:-1])):
        x = keras.layers.Conv2DTranspose(width_out, 5, strides=2, padding="same", use_bias=False,
                                         name=f"deconv{index}")(x)
        x = keras.layers.BatchNormalization(name=f"bn{index}")(x)
        x = keras.layers.ReLU(name=f"relu{index}")(x)
    x = keras.layers.Conv2DTranspose(3, 5, strides=2, padding="same", name="to_rgb")(x)
    image = keras.layers.Activation("tanh", dtype="float32", name="image")(x)
    return keras.Model(code, image, name=name)


def build_vae_encoder(cfg: Config) -> keras.Model:
    """The VAE's encoder q(z | x): D1's conv stack, then dense mean and log-variance heads.

    Returns:
      keras.Model `vae_encoder`: `image` `(batch, H, W, 3)` -> {`mean`, `log_variance`} `(batch, latent)`
      float32.
    """
    image = keras.Input((cfg.data.height, cfg.data.width, 3), name="image")
    features = dcgan_features(image, cfg.model.d1_channels)
    latent = cfg.model.baseline_latent_dim
    mean = keras.layers.Dense(latent, dtype="float32", name="mean")(features)
    log_variance = keras.layers.Dense(latent, dtype="float32", name="log_variance")(features)
    return keras.Model(image, {"mean": mean, "log_variance": log_variance}, name="vae_encoder")


# The network each baseline samples with (the others only train it).
SAMPLER = {Baseline.VAE: "vae_decoder", Baseline.DCGAN: "dcgan_generator"}


def build_baseline(cfg: Config, model: Baseline | str) -> dict[str, keras.Model]:
    """The networks of one baseline by their checkpoint names.

    Returns:
      VAE: {`vae_encoder`, `vae_decoder`}; DCGAN: {`dcgan_generator`, `d1`} (D1 of stage I, `build_d1`).
    """
    model = Baseline(model)
    generator = build_image_generator(cfg, SAMPLER[model])
    if model == Baseline.VAE:
        return {"vae_encoder": build_vae_encoder(cfg), "vae_decoder": generator}
    return {"dcgan_generator": generator, "d1": build_d1(cfg)}
