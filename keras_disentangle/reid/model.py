"""The re-ID network: trunk -> global average pooling -> Dense + BN (the matched feature) -> softmax.

The full-size trunk is keras.applications.ResNet50 (weights=None: ImageNet weights cannot be fetched
at run time; `weights` takes a file for users who have one, e.g. Keras' `resnet50 ... notop.h5`).
The small trunk is three residual stages for the synthetic set on a CPU. The feature after BN is the
one matched at test time (the "BNNeck" of Luo et al. 2019: the classifier reads the normalised
feature, the triplet loss the raw one).
"""

from __future__ import annotations

import keras

from keras_disentangle import configs


def _residual_stage(x, channels: int, stride: int, name: str):
    shortcut = x
    if stride != 1 or x.shape[-1] != channels:
        shortcut = keras.layers.Conv2D(channels, 1, strides=stride, use_bias=False, name=f"{name}_proj")(x)
        shortcut = keras.layers.BatchNormalization(name=f"{name}_proj_bn")(shortcut)
    y = keras.layers.Conv2D(channels, 3, strides=stride, padding="same", use_bias=False, name=f"{name}_conv1")(x)
    y = keras.layers.ReLU()(keras.layers.BatchNormalization(name=f"{name}_bn1")(y))
    y = keras.layers.Conv2D(channels, 3, padding="same", use_bias=False, name=f"{name}_conv2")(y)
    y = keras.layers.BatchNormalization(name=f"{name}_bn2")(y)
    return keras.layers.ReLU()(keras.layers.Add()([shortcut, y]))


def build_trunk(cfg: configs.ReidConfig, weights: str | None = None) -> keras.Model:
    """The trunk, `(batch, H, W, 3)` uint8-range floats -> `(batch, C)` pooled features."""
    image = keras.Input((cfg.height, cfg.width, 3), name="image")
    if cfg.backbone == configs.ReidBackbone.RESNET50:
        # Caffe-style preprocessing, what ResNet50's published weights expect.
        x = keras.layers.Lambda(keras.applications.resnet50.preprocess_input, name="preprocess")(image)
        trunk = keras.applications.ResNet50(include_top=False, weights=weights, input_shape=(cfg.height, cfg.width, 3),
                                            pooling="avg")
        return keras.Model(image, trunk(x), name="trunk")
    if weights is not None:
        raise ValueError(f"--weights={weights}: only the resnet50 backbone loads published weights.")
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0)(image)
    x = keras.layers.Conv2D(cfg.small_channels[0], 3, padding="same", use_bias=False, name="stem")(x)
    x = keras.layers.ReLU()(keras.layers.BatchNormalization(name="stem_bn")(x))
    for level, channels in enumerate(cfg.small_channels):
        x = _residual_stage(x, channels, 1 if level == 0 else 2, f"stage{level + 1}")
    return keras.Model(image, keras.layers.GlobalAveragePooling2D()(x), name="trunk")


def build_reid_model(cfg: configs.ReidConfig, num_classes: int, weights: str | None = None) -> keras.Model:
    """The whole network: image -> {"raw": pre-BN feature, "features": matched feature, "logits"}.

    Args:
      cfg: ReidConfig. Backbone, input size, feature size.
      num_classes: int. Training identities (the softmax's width).
      weights: str or None. A weights file of the resnet50 trunk.
    """
    image = keras.Input((cfg.height, cfg.width, 3), name="image")
    raw = keras.layers.Dense(cfg.feature_dim, name="feature")(build_trunk(cfg, weights)(image))
    features = keras.layers.BatchNormalization(name="feature_bn")(raw)
    logits = keras.layers.Dense(num_classes, use_bias=False, name="classifier")(features)
    return keras.Model(image, {"raw": raw, "features": features, "logits": logits}, name="reid")
