"""The stage-I pose auto-encoder: 54-d pose vector -> pose embedding -> 54-d pose vector.

The pose vector is the 36 keypoint coordinates (y, x per joint, scaled to [-1, 1]) followed by the
18 visibility flags (paper Sec. 3.1, pose branch; Fig. 10d). Both halves are an FC layer plus FC
residual blocks with LeakyReLU (`model.pose_leaky_slope`: the authors' 0.2) and a linear FC at the end;
the decoder's first FC is linear in the authors' code (`model.pose_decoder_linear_input`). The
decoder emits the coordinates
linearly and the visibility as a sigmoid binarized with a straight-through estimator, so that a
decoded (or stage-II sampled) pose always says which joints to draw. The coordinates of joints the
decoder marks invisible carry no meaning; `losses.pose_reconstruction_loss` ignores them.
"""

from __future__ import annotations

import functools

import keras

from keras_disentangle.configs import NUM_KEYPOINTS, POSE_VECTOR_DIM, Config
from keras_disentangle.models.layers import StraightThroughRound, residual_fc_block


def _fc_trunk(x: keras.KerasTensor, cfg: Config, activate_input: bool = True) -> keras.KerasTensor:
    activation = functools.partial(keras.layers.LeakyReLU, negative_slope=cfg.model.pose_leaky_slope)
    x = keras.layers.Dense(cfg.model.pose_hidden_dim, name="dense_in")(x)
    if activate_input:
        x = activation(name="act_in")(x)
    for index in range(cfg.model.pose_num_blocks):
        x = residual_fc_block(x, cfg.model.pose_hidden_dim, activation, name=f"block{index}")
    return x


def build_pose_encoder(cfg: Config) -> keras.Model:
    """The pose encoder: FC `pose_hidden_dim` + `pose_num_blocks` residual blocks -> linear FC.

    Args:
      cfg: Config. Uses `model.pose_hidden_dim`, `model.pose_num_blocks`, `model.pose_embedding_dim`,
        `model.pose_leaky_slope`.

    Returns:
      keras.Model `pose_encoder`: `pose_vector` `(batch, 54)` -> `pose_embedding` `(batch, 32)`
      float32 (full scale).
    """
    pose_vector = keras.Input((POSE_VECTOR_DIM,), name="pose_vector")
    x = _fc_trunk(pose_vector, cfg)
    embedding = keras.layers.Dense(cfg.model.pose_embedding_dim, dtype="float32", name="pose_embedding")(x)
    return keras.Model(pose_vector, embedding, name="pose_encoder")


def build_pose_decoder(cfg: Config) -> keras.Model:
    """The pose decoder: mirrors the encoder, then 36 linear coordinates + 18 binary visibility flags.

    Args:
      cfg: Config. Uses `model.pose_hidden_dim`, `model.pose_num_blocks`, `model.pose_embedding_dim`,
        `model.pose_leaky_slope`, `model.pose_decoder_linear_input` (no activation after the first FC).

    Returns:
      keras.Model `pose_decoder`: `pose_embedding` `(batch, 32)` -> `pose_vector` `(batch, 54)`
      float32: `[y0, x0, ..., y17, x17]` then 18 flags in {0, 1} whose gradient passes straight to
      the sigmoid probabilities.
    """
    embedding = keras.Input((cfg.model.pose_embedding_dim,), name="pose_embedding")
    x = _fc_trunk(embedding, cfg, activate_input=not cfg.model.pose_decoder_linear_input)
    coordinates = keras.layers.Dense(2 * NUM_KEYPOINTS, dtype="float32", name="coordinates")(x)
    probabilities = keras.layers.Dense(NUM_KEYPOINTS, activation="sigmoid", dtype="float32",
                                       name="visibility_probability")(x)
    visibility = StraightThroughRound(dtype="float32", name="visibility")(probabilities)
    pose_vector = keras.layers.Concatenate(dtype="float32", name="pose_vector")([coordinates, visibility])
    return keras.Model(embedding, pose_vector, name="pose_decoder")
