"""Stage II: trains a mapper Phi (Fig. 9) from Gaussian noise to one factor's embedding space.

The stage-I networks are loaded from their run directory and frozen: they only encode the real
embeddings the critic D2 sees (Eq. 4-5) and decode preview images. The stage-II checkpoint holds
the mapper, the critic and their optimizers, never stage-I weights. What the run directory holds
besides (`stage2.json`, the embedding cache) is described in `rundir`.
"""

from __future__ import annotations

import functools
import os
import pathlib

import keras
import numpy as np
import tensorflow as tf

from keras_disentangle import configs, data, losses, precision, rundir
from keras_disentangle.data import geometry
from keras_disentangle.models.discriminators import build_critic
from keras_disentangle.models.mapper import build_mapper
from keras_disentangle.models.stage1 import Stage1, appearance_embedding, encoder_inputs
from keras_disentangle.serving.runtime import encode_factor, load_frozen_stage1, sample_noise
from keras_disentangle.training import checkpoint, runner, schedule
from keras_disentangle.training.optimizers import rmsprop

def real_embeddings(stage1: Stage1, cfg: configs.Config, data_dir: str, factor: configs.Factor,
                    split: str = "train", cache: str | None = None, cache_key: str = "") -> np.ndarray:
    """Encodes every image of `split` once (unmirrored).

    Args:
      stage1, cfg: the frozen stage-I networks and their config.
      data_dir: str. TFRecords.
      factor: Factor.
      split: str. Shard prefix.
      cache: optional .npz path: reused when it was written with the same `cache_key`.
      cache_key: str. Identifies the stage-I weights and the data (e.g. checkpoint + data_dir).

    Returns:
      float32 `(images, K)`.

    Raises:
      ValueError: if `data_dir` has no shard of `split`.
    """
    if cache and os.path.exists(cache):
        stored = np.load(cache)
        if str(stored["key"]) == cache_key:
            return stored["embeddings"]
    encode = tf.function(lambda batch: encode_factor(stage1, batch, factor))
    chunks = [encode(batch).numpy() for batch in data.eval_dataset(data_dir, cfg, split=split, batch_size=64)]
    embeddings = np.concatenate(chunks).astype(np.float32)
    if cache:
        np.savez(cache, embeddings=embeddings, key=np.array(cache_key))
    return embeddings


def mapper_step(mapper: keras.Model, critic: keras.Model, mapper_optimizer, critic_optimizer,
                train_cfg: configs.TrainConfig, noise_dim: int, global_batch_size: int):
    """WGAN update: `critic_steps` critic updates (clipped or gradient-penalised), then one of Phi.

    The replica batch holds `critic_steps` consecutive slices of real embeddings, one per critic
    update, so every critic step sees fresh real samples.

    Args:
      mapper: Phi, `(batch, K)` -> `(batch, K)`.
      critic: D2, `(batch, K)` -> `(batch, 1)`.
      mapper_optimizer, critic_optimizer: built over the respective trainable variables.
      train_cfg: TrainConfig. Uses `critic_steps`, `critic_clip`, `gradient_penalty_weight`,
        `noise_stddev`.
      noise_dim: int. K.
      global_batch_size: int. Embeddings per critic update over all replicas.

    Returns:
      A replica step: `{"real": (critic_steps * batch, K)}` -> `loss/d2/wasserstein_estimate`
      (of the last critic update) and `loss/phi/wasserstein`.
    """
    critic_steps = train_cfg.critic_steps

    def mean(per_example):
        return tf.nn.compute_average_loss(tf.cast(per_example, tf.float32), global_batch_size=global_batch_size)

    def step(batch: dict) -> dict:
        reals = tf.split(batch["real"], critic_steps, axis=0)
        batch_size = tf.shape(reals[0])[0]
        for real in reals:
            fake = mapper(sample_noise(batch_size, noise_dim, train_cfg.noise_stddev), training=False)
            with tf.GradientTape() as tape:
                real_scores, fake_scores = critic(real, training=True), critic(fake, training=True)
                critic_loss = mean(losses.wasserstein_critic_loss(real_scores, fake_scores))
                total = critic_loss
                if train_cfg.gradient_penalty_weight > 0:
                    penalty = mean(losses.wasserstein_gradient_penalty(critic, real, fake))
                    total += train_cfg.gradient_penalty_weight * penalty
                # In the tape: a LossScaleOptimizer's scaling is an op the gradient must go through.
                scaled_total = critic_optimizer.scale_loss(total)
            gradients = tape.gradient(scaled_total, critic.trainable_variables)
            critic_optimizer.apply_gradients(zip(gradients, critic.trainable_variables))
            if train_cfg.gradient_penalty_weight <= 0:
                losses.clip_weights(critic.trainable_variables, train_cfg.critic_clip)
        with tf.GradientTape() as tape:
            fake = mapper(sample_noise(batch_size, noise_dim, train_cfg.noise_stddev), training=True)
            mapper_loss = mean(losses.wasserstein_generator_loss(critic(fake, training=False)))
            scaled_mapper_loss = mapper_optimizer.scale_loss(mapper_loss)
        gradients = tape.gradient(scaled_mapper_loss, mapper.trainable_variables)
        mapper_optimizer.apply_gradients(zip(gradients, mapper.trainable_variables))
        # -critic loss estimates the Wasserstein distance (up to the clipping's Lipschitz constant).
        return {"loss/d2/wasserstein_estimate": -critic_loss, "loss/phi/wasserstein": mapper_loss}

    return step


def sample_grid(stage1: Stage1, cfg: configs.Config, factor: configs.Factor, mapper: keras.Model,
                batch: dict, seed: int = 0) -> tf.Tensor:
    """Preview: per example, the real image | the same with `factor` sampled from noise.

    A sampled pose embedding is decoded by the frozen pose decoder and drawn as heatmaps.

    Returns:
      float32 `(1, batch * H, 2 * W, 3)` in [0, 1].
    """
    n = tf.shape(batch["image"])[0]
    sampled = mapper(sample_noise(n, cfg.model.embedding_dim(factor), cfg.train.noise_stddev, seed=seed),
                     training=False)
    embeddings = stage1.appearance_encoder(encoder_inputs(batch), training=False)
    heatmaps = batch["heatmaps"]
    if factor == configs.Factor.POSE:
        pose_vector = stage1.pose_decoder(sampled, training=False)
        heatmaps = geometry.heatmaps_from_pose_vector(pose_vector, cfg.data.height, cfg.data.width,
                                                      cfg.data.heatmap_radius)
    else:
        embeddings = dict(embeddings, **{f"{factor.value}_embedding": sampled})
    images = stage1.generator({"appearance_embedding": appearance_embedding(embeddings), "heatmaps": heatmaps},
                              training=False)
    rows = tf.concat([batch["image"], tf.clip_by_value(images, -1.0, 1.0)], axis=2)
    shape = tf.shape(rows)
    return tf.reshape((rows + 1.0) / 2.0, [1, shape[0] * shape[1], shape[2], 3])


def build_optimizers(train_cfg: configs.TrainConfig) -> dict[str, keras.optimizers.Optimizer]:
    """RMSProp for Phi (`phi`) and D2 (`d2`): Keras' or TF1's (`stage2_rmsprop`, `training.optimizers`),
    on the halving schedule (D2 updates `critic_steps` times per step); loss-scaled under mixed_float16
    (GPUs; untested)."""

    def optimizer(name: str, updates_per_step: int) -> keras.optimizers.Optimizer:
        rate = schedule.halving(train_cfg.mapper_learning_rate, train_cfg.lr_halving_steps, updates_per_step)
        return precision.loss_scaled(rmsprop(train_cfg.stage2_rmsprop, rate, name=f"{name}_rmsprop"))

    return {"phi": optimizer("phi", 1), "d2": optimizer("d2", train_cfg.critic_steps)}


def _parse_factor(factor) -> configs.Factor:
    try:
        return configs.Factor(factor)
    except ValueError:
        raise ValueError(f"Unknown --factor={factor}; expected fg, bg or pose.") from None


def training_state(cfg: configs.Config, factor: configs.Factor, logdir: str, strategy: tf.distribute.Strategy
                   ) -> tuple[keras.Model, keras.Model, dict[str, keras.optimizers.Optimizer],
                              checkpoint.CheckpointKeeper]:
    """What a stage-II checkpoint holds, freshly initialized (seeded), and its keeper: (Phi, D2,
    optimizers by name, CheckpointKeeper); `keeper.restore_latest()` loads a run into them."""
    keras.utils.set_random_seed(cfg.train.seed)
    with strategy.scope():
        mapper = build_mapper(cfg, factor)
        critic = build_critic(cfg, factor)
        optimizers = build_optimizers(cfg.train)
        optimizers["phi"].build(mapper.trainable_variables)
        optimizers["d2"].build(critic.trainable_variables)
        step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
    keeper = checkpoint.CheckpointKeeper(
        logdir, step, keep=cfg.train.keep_checkpoints, strategy=strategy, mapper=mapper, critic=critic,
        phi_optimizer=optimizers["phi"], d2_optimizer=optimizers["d2"])
    return mapper, critic, optimizers, keeper


def job(cfg: configs.Config, *, factor: str, data_dir: str, stage1_dir: str, logdir: str,
        cache_embeddings: bool = True) -> runner.Job:
    """Stage II as a job for `runner.train`: the mapper of `factor` on the frozen stage-I run in `stage1_dir`.

    The data and model fields come from the stage-I run (the mapper must fit its embeddings);
    the train fields from `cfg`, with the factor's budget (`configs.stage2_train`); train.py passes
    the stage-I run's own train fields with the flags given applied. TensorBoard gets the critic's
    Wasserstein estimate every `log_every` steps and `sampled_<factor>` grids (`sample_grid`) every
    `image_every` steps.

    Args:
      cfg: Config. Its `train` part (`mapper_batch_size`, `mapper_learning_rate`, `critic_*`,
        `steps`, periods) drives the run.
      factor: str. `fg`, `bg` or `pose`.
      data_dir: str. TFRecords; the train split is encoded once into real embeddings.
      stage1_dir: str. A stage-I run directory.
      logdir: str. The stage-II run directory (resumed if it holds a checkpoint).
      cache_embeddings: bool. Keep the real embeddings in `logdir` for resumed runs.

    Raises:
      ValueError: for an unknown factor, or `bg` on a dataset without a background factor.
      rundir.RunDirectoryError: if `stage1_dir` is not a stage-I run with a checkpoint, or
        `logdir` holds a run of another factor or stage-I model.
    """
    factor = _parse_factor(factor)
    stage1_cfg, stage1, restored = load_frozen_stage1(stage1_dir)
    if factor == configs.Factor.BACKGROUND and not stage1_cfg.data.has_background:
        raise ValueError(f"--factor=bg: the {stage1_cfg.data.name} model has no background factor.")
    cfg = configs.Config(stage1_cfg.data, stage1_cfg.model, configs.stage2_train(cfg.train, factor),
                         stage1_cfg.scale)
    rundir.check_stage2_factor(logdir, factor)

    def build(strategy: tf.distribute.Strategy) -> runner.Built:
        train_cfg = cfg.train
        cache = rundir.embeddings_path(logdir, factor) if checkpoint.is_chief(strategy) and cache_embeddings else None
        key = f"{pathlib.Path(restored).resolve()}|{pathlib.Path(data_dir).resolve()}"
        embeddings = real_embeddings(stage1, cfg, data_dir, factor, cache=cache, cache_key=key)

        def make_dataset(seed: int) -> tf.data.Dataset:
            return (tf.data.Dataset.from_tensor_slices({"real": embeddings}).shuffle(len(embeddings), seed=seed)
                    .repeat().batch(train_cfg.mapper_batch_size * train_cfg.critic_steps, drop_remainder=True)
                    .prefetch(tf.data.AUTOTUNE))

        preview = next(iter(data.eval_dataset(data_dir, cfg, split="train", batch_size=4).take(1)))
        mapper, critic, optimizers, keeper = training_state(cfg, factor, logdir, strategy)

        def write_images(at_step: int) -> None:
            tf.summary.image(f"sampled_{factor.value}", sample_grid(stage1, cfg, factor, mapper, preview),
                             step=at_step)

        replica_step = mapper_step(mapper, critic, optimizers["phi"], optimizers["d2"], train_cfg,
                                   cfg.model.embedding_dim(factor), train_cfg.mapper_batch_size)
        return runner.Built(keeper, optimizers, (runner.Phase(
            replica_step, make_dataset, train_cfg.mapper_batch_size, train_cfg.steps, write_images),), result=mapper)

    records = (runner.config_json(cfg), functools.partial(rundir.write_stage2_record, factor=factor,
                                                          stage1_dir=stage1_dir))
    return runner.Job(logdir, cfg.train, records, build)


def train_stage2(cfg: configs.Config, *, factor: str, data_dir: str, stage1_dir: str, logdir: str,
                 cache_embeddings: bool = True, **options) -> tuple[keras.Model, dict[str, float]]:
    """Trains the mapper of `factor` on the frozen stage-I run in `stage1_dir` (`job`).

    `options` are the fields of `runner.Options` (`strategy` is required).

    Returns:
      The trained mapper and the last step's losses.
    """
    return runner.train(job(cfg, factor=factor, data_dir=data_dir, stage1_dir=stage1_dir, logdir=logdir,
                            cache_embeddings=cache_embeddings), runner.Options(**options))
