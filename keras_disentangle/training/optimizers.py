"""Stage II's RMSProp as the authors' TF1 code ran it (`TrainConfig.stage2_rmsprop`).

TF1's `tf.train.RMSPropOptimizer` (decay 0.9, no momentum) keeps the mean square of the gradients in
an accumulator that starts at 1.0 and divides by `sqrt(ms + 1e-10)`. Keras' RMSprop has the same rule
but starts the accumulator at 0 with epsilon 1e-7, so its first step is `lr * g / sqrt(0.1 g^2)`,
about 3.2 lr sign(g) whatever the gradient's size, where TF1's first steps are about lr g: with
gradients far below 1, as a clipped WGAN critic's are, TF1's start is much gentler.
"""

from __future__ import annotations

import keras

from keras_disentangle import configs

# tf.train.RMSPropOptimizer's defaults (tensorflow/python/training/rmsprop.py).
TF1_RHO = 0.9
TF1_EPSILON = 1e-10
TF1_ACCUMULATOR_START = 1.0


class TF1RMSprop(keras.optimizers.RMSprop):
    """Keras' RMSprop with TF1's accumulator start (1.0) and epsilon (1e-10, inside the square root).

    Args:
      learning_rate: float or a `keras.optimizers.schedules.LearningRateSchedule`.
      name: str. The optimizer's name.
    """

    def __init__(self, learning_rate, name: str | None = None, **kwargs):
        kwargs.setdefault("rho", TF1_RHO)
        kwargs.setdefault("epsilon", TF1_EPSILON)
        super().__init__(learning_rate, name=name, **kwargs)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        for velocity in self._velocities:
            # None stands for a variable the optimizer does not update (overwrite_with_gradient).
            if velocity is not None:
                velocity.assign(keras.ops.full_like(velocity, TF1_ACCUMULATOR_START))


def rmsprop(kind: str, learning_rate, name: str) -> keras.optimizers.Optimizer:
    """The stage-II RMSProp of `kind` (`configs.Stage2Rmsprop`: `keras` or `tf1`).

    Raises:
      ValueError: naming `stage2_rmsprop` for another kind.
    """
    if kind not in tuple(configs.Stage2Rmsprop):
        raise ValueError(f"stage2_rmsprop={kind!r}; expected one of {', '.join(configs.Stage2Rmsprop)}.")
    if kind == configs.Stage2Rmsprop.TF1:
        return TF1RMSprop(learning_rate, name=name)
    return keras.optimizers.RMSprop(learning_rate, name=name)
