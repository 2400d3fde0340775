"""The stage-II mapping function Phi: Gaussian noise -> the embedding space of one factor.

Phi is an FC layer plus FC residual blocks (ReLU) and a linear FC to K, trained against the
critic D2 on the embeddings the frozen stage-I encoders produce (paper Sec. 3.2, Eq. 4-5). Sampling
then runs z -> Phi(z) -> stage-I decoder (Sec. 3.3).
"""

from __future__ import annotations

import keras

from keras_disentangle.configs import Config, Factor
from keras_disentangle.models.discriminators import factor_embedding_dim
from keras_disentangle.models.layers import residual_fc_block


def build_mapper(cfg: Config, factor: Factor | str) -> keras.Model:
    """Builds Phi for `factor`: noise `(batch, K)` -> embedding `(batch, K)`.

    The noise has the embedding's size K, as in the paper ("K-dim Gaussian noise z to K-dim
    embedding features").

    Args:
      cfg: Config. Uses `model.mapper_hidden_dim(factor)`, `model.mapper_num_blocks` and the
        embedding size.
      factor: Factor or its value (`fg`, `bg`, `pose`).

    Returns:
      keras.Model `phi_<factor>`: `noise` `(batch, K)` -> `<factor>_embedding` `(batch, K)` float32,
      K = 224 / 128 / 32 for fg / bg / pose (Market, full scale).

    Raises:
      ValueError: for an unknown factor, or `bg` when the dataset has no background factor.
    """
    dim = factor_embedding_dim(cfg, factor)
    factor = Factor(factor)
    hidden = cfg.model.mapper_hidden_dim(factor)
    noise = keras.Input((dim,), name="noise")
    x = keras.layers.Dense(hidden, activation="relu", name="dense_in")(noise)
    for index in range(cfg.model.mapper_num_blocks):
        x = residual_fc_block(x, hidden, keras.layers.ReLU, name=f"block{index}")
    embedding = keras.layers.Dense(dim, dtype="float32", name=f"{factor.value}_embedding")(x)
    return keras.Model(noise, embedding, name=f"phi_{factor.value}")
