"""The learning-rate schedule every optimizer of both stages runs on (`TrainConfig.lr_halving_steps`)."""

from __future__ import annotations

import keras


def halving(rate: float, halving_steps: int, updates_per_step: int = 1):
    """`rate`, halved every `halving_steps` training steps; a constant when `halving_steps` is 0.

    A staircase `ExponentialDecay` reads `optimizer.iterations`, which checkpoints hold, so a
    resumed run continues on the schedule. The authors halve per training step (`lr_update_step`);
    an optimizer that updates several times per step (the stage-II critic: `critic_steps`) passes
    `updates_per_step` so that it halves at the same training steps.

    Returns:
      float or `keras.optimizers.schedules.ExponentialDecay`, for an optimizer's `learning_rate`.
    """
    if halving_steps <= 0:
        return rate
    return keras.optimizers.schedules.ExponentialDecay(
        rate, decay_steps=halving_steps * updates_per_step, decay_rate=0.5, staircase=True)
