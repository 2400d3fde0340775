"""One function per kind of training step. Each returns a *replica step*: batch -> scalar losses.

Phases are written out in the order the paper trains them, one tape per network group, each
optimizer applied only to its own networks' variables. Losses come per example from
`keras_disentangle.losses` and are reduced once here with `tf.nn.compute_average_loss`, so the
values stay right under tf.distribute (summing replicas gives the global mean). Gradients are taken
of `optimizer.scale_loss(loss)`: the loss itself except under a LossScaleOptimizer (mixed_float16),
whose scaling is an op that the tape must record, so it is taken inside the tape.
"""

from __future__ import annotations

import contextlib
from typing import Callable

import keras
import tensorflow as tf

from keras_disentangle import configs, losses
from keras_disentangle.models.stage1 import Stage1, reconstruct


# Which stage-I networks `--model` trains; a config choice since train.py defines its flag from it.
Stage1Part = configs.Stage1Part


def _mean(per_example: tf.Tensor, global_batch_size: int) -> tf.Tensor:
    return tf.nn.compute_average_loss(tf.cast(per_example, tf.float32), global_batch_size=global_batch_size)


def _d1_logits(d1: keras.Model, real: tf.Tensor, fake: tf.Tensor, joint_batch: bool) -> tuple[tf.Tensor, tf.Tensor]:
    """D1's logits of the real and the generated images: two calls, or one on both (`d1_joint_batch`)."""
    if not joint_batch:
        return d1(real, training=True), d1(fake, training=True)
    logits = d1(tf.concat([real, tf.cast(fake, real.dtype)], axis=0), training=True)
    return tf.split(logits, 2, axis=0)


def _d1_loss(d1: keras.Model, real: tf.Tensor, fake: tf.Tensor, train_cfg: configs.TrainConfig,
             global_batch_size: int) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """D1's loss (BCE of Eq. 1 or hinge, plus `d1_r1_weight` * R1) and its real and fake logits.

    Runs under the caller's tape; the R1 penalty, a gradient with respect to the real images, is taken
    on a tape of its own, which the caller's tape records.
    """
    r1 = train_cfg.d1_r1_weight > 0
    with tf.GradientTape(watch_accessed_variables=False) if r1 else contextlib.nullcontext() as r1_tape:
        if r1:
            r1_tape.watch(real)
        real_logits, fake_logits = _d1_logits(d1, real, fake, train_cfg.d1_joint_batch)
        real_sum = tf.reduce_sum(tf.cast(real_logits, tf.float32))  # recorded by r1_tape
    if train_cfg.d1_loss == configs.D1Loss.HINGE:
        per_example = losses.hinge_discriminator_loss(real_logits, fake_logits)
    else:
        per_example = losses.bce_discriminator_loss(real_logits, fake_logits, train_cfg.real_label)
    if r1:
        per_example += train_cfg.d1_r1_weight * losses.r1_penalty(r1_tape.gradient(real_sum, real))
    return _mean(per_example, global_batch_size), real_logits, fake_logits


def appearance_step(stage1: Stage1, g_optimizer: keras.optimizers.Optimizer,
                    d_optimizer: keras.optimizers.Optimizer, train_cfg: configs.TrainConfig,
                    global_batch_size: int) -> Callable[[dict], dict]:
    """The stage-I appearance update: D1 on (real, G1(x, h)), then G1 on lambda*L1 + adversarial.

    Both updates use the same forward pass (the fake images of this step), recorded by one tape per
    network: a second forward pass would update D1's batch-norm statistics twice. With
    `adversarial_weight == 0` D1 is neither run nor trained (an L1-only auto-encoder). Before
    `adversarial_start_step` (counted by G1's optimizer, so a resumed run keeps its place) the
    adversarial term and D1's gradients are multiplied by 0: Adam's moments stay 0, so D1 does not
    move until then. Its step counter runs on, though, so Adam's bias correction is spent by then
    and D1's first steps after the warm-up are larger than its learning rate (up to ~8x at 300
    warm-up steps) until the second moment fills, over a few hundred steps.

    The D1 update ratio: `d1_steps` updates on the same batch, on every `d1_every`-th step only (a
    `tf.cond`, so D1's Adam state is untouched on the other steps). `d1_loss` and `d1_r1_weight`
    choose the non-paper hinge loss and R1 penalty.

    Raises:
      ValueError: for `d1_every` / `d1_steps` below 1 (the config refuses an unknown `d1_loss`).
    """
    if train_cfg.d1_every < 1 or train_cfg.d1_steps < 1:
        raise ValueError(f"d1_every={train_cfg.d1_every}, d1_steps={train_cfg.d1_steps}: both must be >= 1.")
    adversarial = train_cfg.adversarial_weight > 0
    hinge = train_cfg.d1_loss == configs.D1Loss.HINGE
    generator_loss = losses.hinge_generator_loss if hinge else losses.bce_generator_loss
    g_variables = stage1.appearance_encoder.trainable_variables + stage1.generator.trainable_variables
    d_variables = stage1.d1.trainable_variables

    def mean(per_example: tf.Tensor) -> tf.Tensor:
        return _mean(per_example, global_batch_size)

    def update_d1(scaled_d_loss: tf.Tensor, tape: tf.GradientTape, on: tf.Tensor) -> None:
        gradients = [on * g for g in tape.gradient(scaled_d_loss, d_variables)]
        if train_cfg.d1_every == 1:
            d_optimizer.apply_gradients(zip(gradients, d_variables))
            return

        def update() -> tf.Tensor:
            d_optimizer.apply_gradients(zip(gradients, d_variables))
            return tf.constant(True)

        tf.cond(tf.equal(g_optimizer.iterations % train_cfg.d1_every, 0), update, lambda: tf.constant(False))

    def step(batch: dict) -> dict:
        image = batch["image"]
        # 1. One forward pass, recorded by a tape per network: G1 reconstructs, D1 scores both sides.
        with tf.GradientTape() as g_tape, tf.GradientTape() as d_tape:
            fake = reconstruct(stage1, batch, training=True)
            l1 = mean(losses.l1_reconstruction_loss(image, fake))
            g_loss = train_cfg.l1_weight * l1
            if adversarial:
                on = tf.cast(g_optimizer.iterations >= train_cfg.adversarial_start_step, tf.float32)
                d_loss, real_logits, fake_logits = _d1_loss(stage1.d1, image, fake, train_cfg, global_batch_size)
                g_adversarial = mean(generator_loss(fake_logits))
                g_loss += on * train_cfg.adversarial_weight * g_adversarial
                scaled_d_loss = d_optimizer.scale_loss(d_loss)
            scaled_g_loss = g_optimizer.scale_loss(g_loss)
        logs = {"loss/g1/l1": l1}
        if adversarial:
            # 2. D1: once on this pass, then `d1_steps - 1` more times on the same generated images.
            update_d1(scaled_d_loss, d_tape, on)
            for _ in range(train_cfg.d1_steps - 1):
                with tf.GradientTape() as again_tape:
                    again = _d1_loss(stage1.d1, image, tf.stop_gradient(fake), train_cfg, global_batch_size)[0]
                    scaled_again = d_optimizer.scale_loss(again)
                update_d1(scaled_again, again_tape, on)
            logs.update({"loss/g1/adversarial": g_adversarial, "loss/d1": d_loss,
                         # D1's mean belief that each side is real: 1 vs 0 means D1 wins outright.
                         "d1/real_probability": mean(tf.sigmoid(tf.reshape(real_logits, [-1]))),
                         "d1/fake_probability": mean(tf.sigmoid(tf.reshape(fake_logits, [-1])))})
        # 3. G1 on lambda * L1 + the adversarial term, through D1 as this pass saw it.
        g_optimizer.apply_gradients(zip(g_tape.gradient(scaled_g_loss, g_variables), g_variables))
        logs["loss/g1/total"] = g_loss
        return logs

    return step


def pose_step(stage1: Stage1, optimizer: keras.optimizers.Optimizer,
              global_batch_size: int) -> Callable[[dict], dict]:
    """The pose auto-encoder update: L2 between the 54-d pose vector and its reconstruction (Eq. 3)."""
    variables = stage1.pose_encoder.trainable_variables + stage1.pose_decoder.trainable_variables

    def step(batch: dict) -> dict:
        with tf.GradientTape() as tape:
            embedding = stage1.pose_encoder(batch["pose_vector"], training=True)
            decoded = stage1.pose_decoder(embedding, training=True)
            loss = _mean(losses.pose_reconstruction_loss(batch["pose_vector"], decoded), global_batch_size)
            scaled_loss = optimizer.scale_loss(loss)
        optimizer.apply_gradients(zip(tape.gradient(scaled_loss, variables), variables))
        return {"loss/pose/l2": loss}

    return step


def stage1_step(part: Stage1Part, stage1: Stage1, optimizers: dict, train_cfg: configs.TrainConfig,
                global_batch_size: int) -> Callable[[dict], dict]:
    """The replica step of `--stage=1 --model=part`; `optimizers` holds `g1`, `d1` and/or `pose`.

    `global_batch_size` is the batch of the part trained; with BOTH it is the image batch, the
    batch is `{"appearance": images, "pose": poses}` and the pose batch `train_cfg.pose_batch_size`
    (each part at its preset's batch, `data.pose_dataset`).
    """
    if part == Stage1Part.APPEARANCE:
        return appearance_step(stage1, optimizers["g1"], optimizers["d1"], train_cfg, global_batch_size)
    if part == Stage1Part.POSE:
        return pose_step(stage1, optimizers["pose"], global_batch_size)
    appearance = appearance_step(stage1, optimizers["g1"], optimizers["d1"], train_cfg, global_batch_size)
    pose = pose_step(stage1, optimizers["pose"], train_cfg.pose_batch_size)

    def step(batch: dict) -> dict:
        return {**appearance(batch["appearance"]), **pose(batch["pose"])}

    return step
