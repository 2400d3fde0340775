"""The sampling baselines of Fig. 7 (`train.py --stage=baseline --model=vae|dcgan`).

A recipe for the one runner (`runner.train`: checkpoints, TensorBoard, time budget, NaN stop,
SIGTERM), as stage I is: data, the networks of `models.baselines`, Adam and a replica step.
"""

from __future__ import annotations

import functools
from typing import Callable

import keras
import tensorflow as tf

from keras_disentangle import configs, data, losses, precision, rundir
from keras_disentangle.models.baselines import SAMPLER, build_baseline
from keras_disentangle.serving.runtime import sample_noise
from keras_disentangle.training import checkpoint, runner

# Codes of the TensorBoard sample grid, fixed so that successive grids show the same draws.
_PREVIEW_SEED = 1234
_PREVIEW_IMAGES = 8


def _mean(per_example: tf.Tensor, global_batch_size: int) -> tf.Tensor:
    return tf.nn.compute_average_loss(tf.cast(per_example, tf.float32), global_batch_size=global_batch_size)


def vae_step(networks: dict, optimizer: keras.optimizers.Optimizer, train_cfg: configs.TrainConfig,
             global_batch_size: int) -> Callable[[dict], dict]:
    """One VAE update on the negative ELBO: summed squared error + `vae_kl_weight` * KL(q(z|x) || N(0, I)).

    Returns:
      A replica step logging `loss/vae/reconstruction`, `loss/vae/kl` and `loss/vae/total` (per image).
    """
    encoder, decoder = networks["vae_encoder"], networks["vae_decoder"]
    variables = encoder.trainable_variables + decoder.trainable_variables

    def step(batch: dict) -> dict:
        image = batch["image"]
        with tf.GradientTape() as tape:
            posterior = encoder(image, training=True)
            mean, log_variance = posterior["mean"], posterior["log_variance"]
            # The reparameterisation trick: z = mean + sigma * eps keeps the draw differentiable.
            code = mean + tf.exp(0.5 * log_variance) * tf.random.normal(tf.shape(mean))
            decoded = decoder(code, training=True)
            reconstruction = _mean(losses.squared_error_sum(image, decoded), global_batch_size)
            kl = _mean(losses.gaussian_kl_divergence(mean, log_variance), global_batch_size)
            total = reconstruction + train_cfg.vae_kl_weight * kl
            # In the tape: a LossScaleOptimizer's scaling is an op the gradient must go through.
            scaled_total = optimizer.scale_loss(total)
        optimizer.apply_gradients(zip(tape.gradient(scaled_total, variables), variables))
        return {"loss/vae/reconstruction": reconstruction, "loss/vae/kl": kl, "loss/vae/total": total}

    return step


def dcgan_step(networks: dict, g_optimizer: keras.optimizers.Optimizer, d_optimizer: keras.optimizers.Optimizer,
               latent_dim: int, global_batch_size: int) -> Callable[[dict], dict]:
    """One DCGAN update: D1 on (real, G(z)) with BCE, then G on the non-saturating BCE (paper Eq. 1)."""
    generator, discriminator = networks["dcgan_generator"], networks["d1"]

    def step(batch: dict) -> dict:
        image = batch["image"]
        code = sample_noise(tf.shape(image)[0], latent_dim, 1.0)
        with tf.GradientTape(persistent=True) as tape:
            fake = generator(code, training=True)
            real_logits = discriminator(image, training=True)
            fake_logits = discriminator(fake, training=True)
            d_loss = _mean(losses.bce_discriminator_loss(real_logits, fake_logits), global_batch_size)
            g_loss = _mean(losses.bce_generator_loss(fake_logits), global_batch_size)
            scaled_d_loss, scaled_g_loss = d_optimizer.scale_loss(d_loss), g_optimizer.scale_loss(g_loss)
        d_variables = discriminator.trainable_variables
        g_variables = generator.trainable_variables
        d_optimizer.apply_gradients(zip(tape.gradient(scaled_d_loss, d_variables), d_variables))
        g_optimizer.apply_gradients(zip(tape.gradient(scaled_g_loss, g_variables), g_variables))
        return {"loss/dcgan/g": g_loss, "loss/dcgan/d": d_loss}

    return step


def training_state(cfg: configs.Config, model: configs.Baseline, logdir: str, strategy: tf.distribute.Strategy):
    """The networks, optimizers (Adam, beta_1 0.5 as DCGAN) and checkpoint keeper of a baseline run,
    freshly initialized (seeded); `keeper.restore_latest()` loads a run into them.

    Returns:
      (networks by name, optimizers by name, CheckpointKeeper).
    """
    train_cfg = cfg.train
    keras.utils.set_random_seed(train_cfg.seed)
    model = configs.Baseline(model)
    with strategy.scope():
        networks = build_baseline(cfg, model)
        groups = ({"vae": list(networks.values())} if model == configs.Baseline.VAE
                  else {"g": [networks["dcgan_generator"]], "d": [networks["d1"]]})
        optimizers = {}
        for name, members in groups.items():
            optimizers[name] = precision.loss_scaled(keras.optimizers.Adam(
                train_cfg.baseline_learning_rate, beta_1=train_cfg.beta_1, beta_2=train_cfg.beta_2,
                name=f"{model.value}_{name}_adam"))
            # Slots now, so that a resumed run restores them before its first step.
            optimizers[name].build([v for member in members for v in member.trainable_variables])
        step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
    keeper = checkpoint.CheckpointKeeper(
        logdir, step, keep=train_cfg.keep_checkpoints, strategy=strategy, **networks,
        **{f"{k}_optimizer": v for k, v in optimizers.items()})
    return networks, optimizers, keeper


def sample_grid(cfg: configs.Config, model: configs.Baseline, networks: dict) -> tf.Tensor:
    """TensorBoard grid: `_PREVIEW_IMAGES` samples from fixed codes, side by side, in [0, 1]."""
    code = sample_noise(_PREVIEW_IMAGES, cfg.model.baseline_latent_dim, 1.0, seed=_PREVIEW_SEED)
    images = tf.clip_by_value(networks[SAMPLER[model]](code, training=False), -1.0, 1.0)
    row = tf.concat(tf.unstack(images), axis=1)
    return ((row + 1.0) / 2.0)[tf.newaxis]


def job(cfg: configs.Config, *, model: str, data_dir: str, logdir: str) -> runner.Job:
    """The VAE or DCGAN baseline as a job for `runner.train`, up to `cfg.train.steps`.

    Uses `cfg.train.batch_size`, `baseline_learning_rate`, `vae_kl_weight` and the loop's periods; the
    images only (mirrored at random), not the poses.

    Raises:
      ValueError: for an unknown model.
    """
    try:
        model = configs.Baseline(model)
    except ValueError:
        raise ValueError(f"Unknown --model={model}; expected vae or dcgan.") from None
    train_cfg = cfg.train
    batch_size = train_cfg.batch_size

    def make_dataset(seed: int) -> tf.data.Dataset:
        dataset = data.train_dataset(data_dir, cfg, batch_size=batch_size, seed=seed)
        return dataset.map(lambda batch: {"image": batch["image"]})

    def build(strategy: tf.distribute.Strategy) -> runner.Built:
        make_dataset(train_cfg.seed)  # a missing split or damaged shard fails here, before any network is built
        networks, optimizers, keeper = training_state(cfg, model, logdir, strategy)
        if model == configs.Baseline.VAE:
            replica_step = vae_step(networks, optimizers["vae"], train_cfg, batch_size)
        else:
            replica_step = dcgan_step(networks, optimizers["g"], optimizers["d"], cfg.model.baseline_latent_dim,
                                      batch_size)

        def write_images(at_step: int) -> None:
            tf.summary.image(f"{model.value}_samples", sample_grid(cfg, model, networks), step=at_step)

        return runner.Built(keeper, optimizers, (runner.Phase(
            replica_step, make_dataset, batch_size, train_cfg.steps, write_images),), result=networks)

    # baseline.json first: it refuses a stage-I/II run directory before config.json is overwritten.
    records = (functools.partial(rundir.write_baseline_record, model=model), runner.config_json(cfg))
    return runner.Job(logdir, train_cfg, records, build)


def train_baseline(cfg: configs.Config, *, model: str, data_dir: str, logdir: str,
                   **options) -> tuple[dict, dict[str, float]]:
    """Trains the VAE or DCGAN baseline from the last checkpoint in `logdir` (`job`).

    `options` are the fields of `runner.Options` (`strategy` is required).

    Returns:
      The networks by name and the last step's losses.

    Raises:
      ValueError: for an unknown model or `data_dir` without train records.
      rundir.RunDirectoryError: if `logdir` holds a run of another model or config.
    """
    return runner.train(job(cfg, model=model, data_dir=data_dir, logdir=logdir), runner.Options(**options))
