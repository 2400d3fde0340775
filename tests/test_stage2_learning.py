"""Stage II learns: the mapper/critic pair moves Phi(z) onto a known Gaussian, and WGAN-GP acts.

The target is a fixed Gaussian with a known mean and a full covariance in the tiny preset's pose
embedding size, so the Frechet distance of the samples to it is exact up to sampling noise and
the test needs no stage-I model.
"""

import numpy as np
import pytest

DIM = 16  # the tiny preset's pose embedding size
BATCH = 64


def _tiny_cfg(**fields):
    from keras_disentangle import configs

    return configs.override(configs.get_config("synthetic", "tiny"), **fields)


def _target(seed=0):
    rng = np.random.default_rng(seed)
    mean = rng.normal(0.0, 1.0, DIM).astype(np.float32)
    a = rng.normal(0.0, 1.0, (DIM, DIM)) / np.sqrt(DIM)
    cov = a @ a.T + 0.1 * np.eye(DIM)
    return mean, np.linalg.cholesky(cov).astype(np.float32)


def _models(cfg, mapper_lr, critic_lr):
    import keras
    import tensorflow as tf

    from keras_disentangle.models.discriminators import build_critic
    from keras_disentangle.models.mapper import build_mapper
    from keras_disentangle.training.stage2 import mapper_step

    keras.utils.set_random_seed(0)
    mapper, critic = build_mapper(cfg, "pose"), build_critic(cfg, "pose")
    critic_optimizer = keras.optimizers.RMSprop(critic_lr)
    replica_step = mapper_step(mapper, critic, keras.optimizers.RMSprop(mapper_lr), critic_optimizer,
                               cfg.train, DIM, BATCH)
    mean, chol = (tf.constant(x) for x in _target())

    @tf.function
    def train(steps):
        # One graph for many steps: the step itself is tiny, Python dispatch would dominate.
        for _ in tf.range(steps):
            replica_step({"real": tf.random.normal([cfg.train.critic_steps * BATCH, DIM]) @ tf.transpose(chol)
                          + mean})

    return mapper, critic, train


def test_mapper_cuts_the_frechet_distance_to_a_known_gaussian_5x():
    """The preset's stage-II loss (weight clipping, RMSProp at the preset's rate, 5 critic steps)."""
    import tensorflow as tf

    from keras_disentangle.metrics.sampling import embedding_frechet_distance
    from keras_disentangle.serving.runtime import sample_noise

    cfg = _tiny_cfg()
    assert cfg.train.gradient_penalty_weight == 0 and cfg.train.critic_steps == 5
    mean, chol = _target()
    mapper, _, train = _models(cfg, cfg.train.mapper_learning_rate, cfg.train.mapper_learning_rate)
    reference = np.random.default_rng(1).normal(size=(4000, DIM)).astype(np.float32) @ chol.T + mean

    def distance():
        sampled = mapper(sample_noise(4000, DIM, cfg.train.noise_stddev, seed=7), training=False).numpy()
        return embedding_frechet_distance(sampled, reference)

    before = distance()
    train(tf.constant(1200))
    after = distance()
    assert np.isfinite(after) and after * 5 <= before, (before, after)


def _critic_gradient_norms(weight, steps=10):
    """Mean ||grad D2|| on real/fake interpolates after `steps` mapper steps (clipping made a no-op)."""
    import tensorflow as tf

    from keras_disentangle.serving.runtime import sample_noise

    cfg = _tiny_cfg(gradient_penalty_weight=weight, critic_clip=1e9, critic_steps=2)
    mean, chol = _target()
    mapper, critic, train = _models(cfg, 0.0, 1e-3)
    train(tf.constant(steps))
    real = tf.constant(np.random.default_rng(2).normal(size=(512, DIM)).astype(np.float32) @ chol.T + mean)
    fake = mapper(sample_noise(512, DIM, cfg.train.noise_stddev, seed=3), training=False)
    eps = tf.random.stateless_uniform([512, 1], seed=[4, 0])
    points = fake + eps * (real - fake)
    with tf.GradientTape() as tape:
        tape.watch(points)
        scores = critic(points, training=False)
    return critic, float(tf.reduce_mean(tf.norm(tape.gradient(scores, points), axis=1)))


def test_gradient_penalty_acts_on_the_critic():
    """Same seeds, clipping disabled: weight 10 gives other critic weights than weight 0, and holds
    the critic's gradient norm near 1 where the unconstrained critic's grows without bound."""
    free, free_norm = _critic_gradient_norms(0.0)
    penalised, penalised_norm = _critic_gradient_norms(10.0)
    differences = [np.abs(a.numpy() - b.numpy()).max()
                   for a, b in zip(free.trainable_variables, penalised.trainable_variables)]
    assert max(differences) > 1e-3
    assert abs(penalised_norm - 1.0) < 0.5, penalised_norm
    assert free_norm > 10.0, free_norm
