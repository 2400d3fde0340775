"""Saliency and Grad-CAM maps of D1 and of the appearance encoders, for inspection.

Scores explained:
  * D1: its real/fake logit.
  * the appearance encoder: the L2 norm of each code block (`leakage.code_blocks`: the 7 ROI codes
    and the BG code), i.e. which input pixels make that code large.

Vanilla saliency is |d score / d image|, max over the colour channels, scaled to [0, 1] per image
(the convention of tf-keras-vis' `Saliency`). Grad-CAM (Selvaraju et al., ICCV 2017) weights a
feature map A by the spatial mean of d score / dA, sums over channels, keeps the positive part and
scales to [0, 1] per image. The feature maps: D1's last LeakyReLU, and for the encoders the masked
first-block features each branch reads (`fg_mask`, `bg_mask`), which are at image resolution.

Both are written here with `tf.GradientTape` rather than through tf-keras-vis 0.8.7: that package
imports and runs under Keras 3 for D1 (its saliency matches this module's, see
tests/test_leakage.py), but its Grad-CAM fails on the appearance encoder, because it rebuilds the
model around the chosen layer and Keras 3 rejects the result ("The name "image" is used 2 times":
the nested `first_block` has an input named like the outer one). One implementation serves both
networks.
"""

from __future__ import annotations

from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from keras_disentangle import configs
from keras_disentangle.data.visualize import to_uint8
from keras_disentangle.metrics.leakage import BACKGROUND, code_blocks, heat_image
from keras_disentangle.models.encoders import FG_FEATURES_LAYER
from keras_disentangle.models.stage1 import Stage1, appearance_embedding

_ENCODER_INPUTS = ("image", "body_mask", "roi_boxes", "roi_visibility")


def _normalize(maps: tf.Tensor) -> np.ndarray:
    maps = maps.numpy().astype(np.float64)
    low = maps.min(axis=(1, 2), keepdims=True)
    high = maps.max(axis=(1, 2), keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(high > low, (maps - low) / (high - low), 0.0).astype(np.float32)


def _grad_cam(features: tf.Tensor, gradients: tf.Tensor, size) -> tf.Tensor:
    weights = tf.reduce_mean(gradients, axis=[1, 2], keepdims=True)
    cam = tf.nn.relu(tf.reduce_sum(weights * features, axis=-1, keepdims=True))
    return tf.image.resize(cam, size, method="bilinear")[..., 0]


def d1_maps(d1: keras.Model, images) -> dict[str, np.ndarray]:
    """Saliency and Grad-CAM of D1's logit on a batch of images.

    Args:
      d1: keras.Model. The stage-I discriminator (`models.discriminators.build_d1`).
      images: `(batch, H, W, 3)` float in [-1, 1].

    Returns:
      {"saliency", "grad_cam"}: float32 `(batch, H, W)` in [0, 1].
    """
    last = [layer.name for layer in d1.layers if layer.name.startswith("lrelu")][-1]
    probe = keras.Model(d1.input, [d1.get_layer(last).output, d1.output])
    images = tf.convert_to_tensor(np.asarray(images, np.float32))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(images)
        features, logit = probe(images, training=False)
        score = tf.reduce_sum(logit)
    saliency = tf.reduce_max(tf.abs(tape.gradient(score, images)), axis=-1)
    cam = _grad_cam(features, tape.gradient(score, features), images.shape[1:3])
    return {"saliency": _normalize(saliency), "grad_cam": _normalize(cam)}


def encoder_maps(cfg: configs.Config, stage1: Stage1, batch: dict,
                 progress: Callable[[int], Callable] = lambda total: iter) -> dict[str, dict[str, np.ndarray]]:
    """Saliency of each code block and Grad-CAM of each branch, for a batch of input images.

    Args:
      cfg: Config of the run.
      stage1: Stage1. Its `appearance_encoder` is explained.
      batch: numpy batch dict with the encoder inputs (`image` `(batch, H, W, 3)`, `body_mask`,
        `roi_boxes`, `roi_visibility`).
      progress: total -> a wrapper of the loop over code blocks (e.g. a progress bar).

    Returns:
      {"saliency": {block name: (batch, H, W)}, "grad_cam": {block name: (batch, H, W)}}, float32
      in [0, 1]; Grad-CAM of an ROI code reads the FG branch's masked features, of the BG code
      the BG branch's.
    """
    encoder = stage1.appearance_encoder
    branch_layers = {"fg": FG_FEATURES_LAYER[cfg.model.fg_features_masked]}
    if cfg.data.has_background:
        branch_layers["bg"] = "bg_mask"
    probe = keras.Model(encoder.input, {"codes": encoder.output,
                                        **{k: encoder.get_layer(v).output for k, v in branch_layers.items()}})
    inputs = {k: tf.convert_to_tensor(np.asarray(batch[k], np.float32)) for k in _ENCODER_INPUTS}
    size = inputs["image"].shape[1:3]
    saliency, grad_cam = {}, {}
    blocks = code_blocks(cfg)
    for name, block in progress(len(blocks))(blocks):
        branch = "bg" if name == BACKGROUND else "fg"
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(inputs["image"])
            outputs = probe(inputs, training=False)
            code = appearance_embedding(outputs["codes"])[:, block]
            # The epsilon keeps the gradient finite for an invisible ROI, whose code is all zero.
            score = tf.reduce_sum(tf.sqrt(tf.reduce_sum(tf.square(code), axis=-1) + 1e-12))
        saliency[name] = _normalize(tf.reduce_max(tf.abs(tape.gradient(score, inputs["image"])), axis=-1))
        features = outputs[branch]
        grad_cam[name] = _normalize(_grad_cam(features, tape.gradient(score, features), size))
        del tape
    return {"saliency": saliency, "grad_cam": grad_cam}


def mask_share(maps: np.ndarray, masks) -> np.ndarray:
    """Share of each map's mass inside a mask, per image (NaN for an empty map).

    Args:
      maps: `(batch, H, W)` non-negative.
      masks: `(batch, H, W)` or `(batch, H, W, 1)` in [0, 1].

    Returns:
      float64 `(batch,)`.
    """
    maps = np.asarray(maps, np.float64)
    masks = np.asarray(masks, np.float64).reshape(maps.shape)
    mass = maps.sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(mass > 0, (maps * masks).sum(axis=(1, 2)) / mass, np.nan)


def saliency_report(cfg: configs.Config, stage1: Stage1, batch: dict,
                    progress: Callable[[int], Callable] = lambda total: iter) -> tuple[dict, list, list]:
    """All maps of a batch, the share of each encoder map inside the body mask, and a PNG grid.

    Args:
      cfg: Config of the run.
      stage1: Stage1.
      batch: numpy batch dict of input images (encoder inputs).
      progress: see `encoder_maps`.

    Returns:
      (summary, rows, column_titles): summary {"body_share": {"saliency"|"grad_cam": {block: mean
      share of the map inside the body mask}}, "n"}; rows and titles for `visualize.image_grid`,
      one row per image: the image, D1 saliency and Grad-CAM, then each code block's saliency
      and Grad-CAM.
    """
    d1 = d1_maps(stage1.d1, batch["image"])
    encoder = encoder_maps(cfg, stage1, batch, progress)
    summary = {"n": int(len(batch["image"])), "body_share": {
        kind: {name: float(np.nanmean(mask_share(m, batch["body_mask"]))) for name, m in by_block.items()}
        for kind, by_block in encoder.items()}}
    titles = ["input", "D1 sal", "D1 cam"]
    columns = [d1["saliency"], d1["grad_cam"]]
    for name in encoder["saliency"]:
        titles += [f"{name} sal", f"{name} cam"]
        columns += [encoder["saliency"][name], encoder["grad_cam"][name]]
    rows = [[image] + [heat_image(column[i]) for column in columns]
            for i, image in enumerate(to_uint8(batch["image"]))]
    return summary, rows, titles
