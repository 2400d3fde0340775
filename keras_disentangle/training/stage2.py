"""Stage II: trains a mapper Phi (Fig. 9) from Gaussian noise to one factor's embedding space.

The stage-I networks are loaded from their run directory and frozen: they only encode the real
embeddings the critic D2 sees (Eq. 4-5) and decode preview images. The stage-II checkpoint holds
the mapper, the critic and their optimizers, never stage-I weights.

A run directory of stage II holds, besides the shared layout of `checkpoint` (config.json,
checkpoints/, train/):
  stage2.json               `{"factor": "fg" | "bg" | "pose", "stage1_dir": "<absolute path>"}`;
  embeddings-<factor>.npz   the real training embeddings, cached with the stage-I checkpoint and
                            data directory they came from (recomputed when either changes).
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib

import keras
import numpy as np
import tensorflow as tf

from keras_disentangle import configs, data, geometry, losses
from keras_disentangle.models.discriminators import build_critic
from keras_disentangle.models.mapper import build_mapper
from keras_disentangle.models.stage1 import Stage1, appearance_embedding, build_stage1
from keras_disentangle.training import checkpoint, loop, steps
from keras_disentangle.training.stage1 import stage1_trackables

STAGE2_FILE = "stage2.json"


def load_frozen_stage1(stage1_dir: str) -> tuple[configs.Config, Stage1, str]:
    """Builds a stage-I run's networks, restores its newest weights and freezes them.

    Returns:
      The run's config, its networks (every one with `trainable = False`) and the checkpoint read.

    Raises:
      checkpoint.RunDirectoryError: if `stage1_dir` is not a stage-I run with a checkpoint.
    """
    cfg = checkpoint.load_config(stage1_dir)
    stage1 = build_stage1(cfg)
    restored = checkpoint.restore_weights(stage1_dir, **stage1_trackables(stage1))
    for model in stage1_trackables(stage1).values():
        model.trainable = False
    return cfg, stage1, restored


def encode_factor(stage1: Stage1, batch: dict, factor: configs.Factor) -> tf.Tensor:
    """The real embedding of `factor` for a data batch, by the frozen stage-I encoders.

    Returns:
      float32 `(batch, K)`, K = `cfg.model.embedding_dim(factor)`.
    """
    if factor == configs.Factor.POSE:
        return stage1.pose_encoder(batch["pose_vector"], training=False)
    embeddings = stage1.appearance_encoder(steps.encoder_inputs(batch), training=False)
    return embeddings["fg_embedding" if factor == configs.Factor.FOREGROUND else "bg_embedding"]


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


def sample_noise(batch_size, dim: int, stddev: float, seed=None) -> tf.Tensor:
    """z ~ N(0, stddev^2 I), the mappers' input (the authors' code uses stddev 0.2).

    Args:
      batch_size: int or scalar int tensor.
      dim: int. K, the mapper's input size.
      stddev: float.
      seed: None draws from TensorFlow's global random state (training); an int, or an int
        tensor of shape `(2,)`, draws statelessly, so the same seed gives the same z in any
        process and inside a SavedModel.

    Returns:
      float32 `(batch_size, dim)`.
    """
    if seed is None:
        return tf.random.normal([batch_size, dim], stddev=stddev)
    seed = tf.convert_to_tensor(seed)
    if seed.shape.rank == 0:
        seed = tf.stack([seed, tf.zeros_like(seed)])
    return tf.random.stateless_normal([batch_size, dim], seed=seed, stddev=stddev)


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
            critic_optimizer.apply_gradients(zip(tape.gradient(total, critic.trainable_variables),
                                                 critic.trainable_variables))
            if train_cfg.gradient_penalty_weight <= 0:
                losses.clip_weights(critic.trainable_variables, train_cfg.critic_clip)
        with tf.GradientTape() as tape:
            fake = mapper(sample_noise(batch_size, noise_dim, train_cfg.noise_stddev), training=True)
            mapper_loss = mean(losses.wasserstein_generator_loss(critic(fake, training=False)))
        mapper_optimizer.apply_gradients(zip(tape.gradient(mapper_loss, mapper.trainable_variables),
                                             mapper.trainable_variables))
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
    embeddings = stage1.appearance_encoder(steps.encoder_inputs(batch), training=False)
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


def _parse_factor(factor) -> configs.Factor:
    try:
        return configs.Factor(factor)
    except ValueError:
        raise ValueError(f"Unknown --factor={factor}; expected fg, bg or pose.") from None


def train_stage2(cfg: configs.Config, *, factor: str, data_dir: str, stage1_dir: str, logdir: str,
                 strategy: tf.distribute.Strategy, jit_compile: bool = False, cache_embeddings: bool = True,
                 verbose: bool = True, progress_seconds: float | None = None
                 ) -> tuple[keras.Model, dict[str, float]]:
    """Trains the mapper of `factor` on the frozen stage-I run in `stage1_dir`.

    The data and model fields come from the stage-I run (the mapper must fit its embeddings);
    the train fields from `cfg`. TensorBoard gets the critic's Wasserstein estimate every
    `log_every` steps and `sampled_<factor>` grids (`sample_grid`) every `image_every` steps.

    Args:
      cfg: Config. Its `train` part (`mapper_batch_size`, `mapper_learning_rate`, `critic_*`,
        `steps`, periods) drives the run.
      factor: str. `fg`, `bg` or `pose`.
      data_dir: str. TFRecords; the train split is encoded once into real embeddings.
      stage1_dir: str. A stage-I run directory.
      logdir: str. The stage-II run directory (resumed if it holds a checkpoint).
      strategy: tf.distribute.Strategy.
      jit_compile: bool. Compile the replica step with XLA.
      cache_embeddings: bool. Keep the real embeddings in `logdir` for resumed runs.
      verbose: bool. Show the progress bar.

    Returns:
      The trained mapper and the last step's losses.

    Raises:
      ValueError: for an unknown factor, or `bg` on a dataset without a background factor.
      checkpoint.RunDirectoryError: if `stage1_dir` is not a stage-I run with a checkpoint, or
        `logdir` holds a run of another factor or stage-I model.
    """
    factor = _parse_factor(factor)
    stage1_cfg, stage1, restored = load_frozen_stage1(stage1_dir)
    if factor == configs.Factor.BACKGROUND and not stage1_cfg.data.has_background:
        raise ValueError(f"--factor=bg: the {stage1_cfg.data.name} model has no background factor.")
    cfg = configs.Config(stage1_cfg.data, stage1_cfg.model, cfg.train, stage1_cfg.scale)
    train_cfg = cfg.train
    chief = checkpoint.is_chief(strategy)
    record_path = pathlib.Path(logdir) / STAGE2_FILE
    if record_path.exists() and json.loads(record_path.read_text())["factor"] != factor.value:
        raise checkpoint.RunDirectoryError(
            f"{record_path} describes a stage-II run of another factor; use a new --logdir for {factor.value}.")
    if chief:
        checkpoint.save_config(logdir, cfg)
        record = {"factor": factor.value, "stage1_dir": str(pathlib.Path(stage1_dir).resolve())}
        record_path.write_text(json.dumps(record, indent=2))

    cache = os.path.join(logdir, f"embeddings-{factor.value}.npz") if chief and cache_embeddings else None
    key = f"{pathlib.Path(restored).resolve()}|{pathlib.Path(data_dir).resolve()}"
    embeddings = real_embeddings(stage1, cfg, data_dir, factor, cache=cache, cache_key=key)
    global_batch = train_cfg.mapper_batch_size * train_cfg.critic_steps
    options = tf.data.Options()
    # The embeddings are one in-memory tensor, not files: shard by element.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    dataset = (tf.data.Dataset.from_tensor_slices({"real": embeddings})
               .shuffle(len(embeddings), seed=train_cfg.seed).repeat()
               .batch(global_batch, drop_remainder=True).prefetch(tf.data.AUTOTUNE).with_options(options))
    preview = next(iter(data.eval_dataset(data_dir, cfg, split="train", batch_size=4).take(1)))

    noise_dim = cfg.model.embedding_dim(factor)
    keras.utils.set_random_seed(train_cfg.seed)
    with strategy.scope():
        mapper = build_mapper(cfg, factor)
        critic = build_critic(cfg, factor)
        optimizers = {
            "phi": keras.optimizers.RMSprop(train_cfg.mapper_learning_rate, name="phi_rmsprop"),
            "d2": keras.optimizers.RMSprop(train_cfg.mapper_learning_rate, name="d2_rmsprop"),
        }
        optimizers["phi"].build(mapper.trainable_variables)
        optimizers["d2"].build(critic.trainable_variables)
        step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
    keeper = checkpoint.CheckpointKeeper(
        logdir, step, keep=train_cfg.keep_checkpoints, strategy=strategy, mapper=mapper, critic=critic,
        phi_optimizer=optimizers["phi"], d2_optimizer=optimizers["d2"])

    def write_images(at_step: int) -> None:
        tf.summary.image(f"sampled_{factor.value}", sample_grid(stage1, cfg, factor, mapper, preview), step=at_step)

    replica_step = mapper_step(mapper, critic, optimizers["phi"], optimizers["d2"], train_cfg, noise_dim,
                               train_cfg.mapper_batch_size)
    logs = loop.run(
        strategy=strategy, replica_step=replica_step, dataset=dataset, keeper=keeper,
        total_steps=train_cfg.steps, global_batch_size=train_cfg.mapper_batch_size,
        checkpoint_every=train_cfg.checkpoint_every, log_every=train_cfg.log_every,
        image_every=train_cfg.image_every,
        summary_dir=os.path.join(logdir, checkpoint.SUMMARY_DIR) if chief else None,
        write_images=write_images if chief else None,
        learning_rates={k: (lambda o=o: float(o.learning_rate.numpy())) for k, o in optimizers.items()},
        jit_compile=jit_compile, steps_per_execution=train_cfg.steps_per_execution,
        verbose=verbose and chief, progress_seconds=progress_seconds)
    return mapper, logs


@dataclasses.dataclass(frozen=True)
class Stage2Run:
    """A trained stage-II run, loaded.

    Attributes:
      factor: Factor. What the mapper samples.
      stage1_dir: str. The stage-I run it was trained on (as recorded in `stage2.json`).
      cfg: Config. The run's config (data and model fields equal the stage-I run's).
      mapper: keras.Model. Phi with its newest weights, `(batch, K)` -> `(batch, K)`.
    """

    factor: configs.Factor
    stage1_dir: str
    cfg: configs.Config
    mapper: keras.Model


def load_stage2_run(stage2_dir: str) -> Stage2Run:
    """Reads `stage2.json` and config.json of a stage-II run and restores its mapper.

    Raises:
      checkpoint.RunDirectoryError: if `stage2_dir` is not a stage-II run with a checkpoint.
    """
    record_path = pathlib.Path(stage2_dir) / STAGE2_FILE
    if not record_path.exists():
        raise checkpoint.RunDirectoryError(f"{stage2_dir} is not a stage-II run directory: {record_path} is missing.")
    record = json.loads(record_path.read_text())
    cfg = checkpoint.load_config(stage2_dir)
    factor = _parse_factor(record["factor"])
    mapper = build_mapper(cfg, factor)
    checkpoint.restore_weights(stage2_dir, mapper=mapper)
    return Stage2Run(factor, record["stage1_dir"], cfg, mapper)

