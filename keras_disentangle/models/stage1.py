"""The stage-I networks bundled together, and the reconstruction path G1(x, h) composed from them."""

from __future__ import annotations

import dataclasses

import keras

from keras_disentangle.configs import Config
from keras_disentangle.models.discriminators import build_d1
from keras_disentangle.models.encoders import build_appearance_encoder
from keras_disentangle.models.generator import build_generator
from keras_disentangle.models.pose_autoencoder import build_pose_decoder, build_pose_encoder


@dataclasses.dataclass(frozen=True)
class Stage1:
    """The five stage-I networks (paper Fig. 3).

    Attributes:
      appearance_encoder: keras.Model. Image, mask and ROIs -> `fg_embedding` (+ `bg_embedding`).
      generator: keras.Model. Appearance embedding + heatmaps -> image (G1's decoder).
      d1: keras.Model. Image -> real/fake logit.
      pose_encoder: keras.Model. 54-d pose vector -> pose embedding.
      pose_decoder: keras.Model. Pose embedding -> 54-d pose vector.
    """

    appearance_encoder: keras.Model
    generator: keras.Model
    d1: keras.Model
    pose_encoder: keras.Model
    pose_decoder: keras.Model


def build_stage1(cfg: Config) -> Stage1:
    """Builds every stage-I network from `cfg` (weights freshly initialized).

    Args:
      cfg: Config.

    Returns:
      Stage1.
    """
    return Stage1(
        appearance_encoder=build_appearance_encoder(cfg),
        generator=build_generator(cfg),
        d1=build_d1(cfg),
        pose_encoder=build_pose_encoder(cfg),
        pose_decoder=build_pose_decoder(cfg),
    )


def appearance_embedding(embeddings: dict) -> keras.KerasTensor:
    """The generator's appearance input: `fg_embedding` concatenated with `bg_embedding` if present.

    Works on the appearance encoder's output dict, symbolic or eager.

    Args:
      embeddings: dict with `fg_embedding` `(batch, 224)` and optionally `bg_embedding`
        `(batch, 128)`.

    Returns:
      Tensor `(batch, 352)` (`(batch, 224)` without a background).
    """
    parts = [embeddings["fg_embedding"]]
    if "bg_embedding" in embeddings:
        parts.append(embeddings["bg_embedding"])
    return keras.ops.concatenate(parts, axis=-1)


def encoder_inputs(batch: dict) -> dict:
    """The appearance encoder's inputs, taken from a batch of `data.py` (or `runtime.model_inputs`)."""
    return {k: batch[k] for k in ("image", "body_mask", "roi_boxes", "roi_visibility")}


def reconstruct(stage1: Stage1, batch: dict, training: bool | None = False):
    """Stage-I reconstruction G1(x, h): encode appearance, decode it in the batch's own pose.

    The one reconstruction path: training steps, serving and `build_reconstructor` all use it.

    Args:
      stage1: Stage1.
      batch: dict with the `encoder_inputs` keys and `heatmaps`, eager or symbolic.
      training: passed to the networks (None leaves it to the caller of a functional model).

    Returns:
      The generated image `(batch, H, W, 3)`.
    """
    embeddings = stage1.appearance_encoder(encoder_inputs(batch), training=training)
    return stage1.generator(
        {"appearance_embedding": appearance_embedding(embeddings), "heatmaps": batch["heatmaps"]},
        training=training)


def build_reconstructor(stage1: Stage1) -> keras.Model:
    """The stage-I reconstruction path (`reconstruct`) as one model, sharing the weights of `stage1`.

    Args:
      stage1: Stage1.

    Returns:
      keras.Model `reconstructor`: dict of `image` `(batch, 128, 64, 3)`, `body_mask`
      `(batch, 128, 64, 1)`, `roi_boxes` `(batch, 7, 4)`, `roi_visibility` `(batch, 7)`, `heatmaps`
      `(batch, 128, 64, 18)` -> reconstructed image `(batch, 128, 64, 3)` float32.
    """
    inputs = {name: keras.Input(tensor.shape[1:], name=name)
              for name, tensor in stage1.appearance_encoder.input.items()}
    inputs["heatmaps"] = keras.Input(stage1.generator.input["heatmaps"].shape[1:], name="heatmaps")
    return keras.Model(inputs, reconstruct(stage1, inputs, training=None), name="reconstructor")
