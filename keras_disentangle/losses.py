"""The losses of both stages, as pure functions of tensors.

Every loss returns one value per example, shape `(batch,)`, float32. The reduction is the caller's:
`tf.nn.compute_average_loss(per_example, global_batch_size=...)` in the train step, which stays
correct under `tf.distribute`. Names follow TF-GAN (`<kind>_generator_loss`,
`<kind>_discriminator_loss`, `wasserstein_gradient_penalty`).

Paper equations (Ma et al., "Disentangled Person Image Generation", CVPR 2018,
https://arxiv.org/abs/1712.02621), written as the quantities each player *maximizes*:
  Eq. 1  L_D1  = E_x log D1(x) + E_x log(1 - D1(G1(x, h)))
  Eq. 2  L_G1  = E_x log D1(G1(x, h)) + lambda ||G1(x, h) - x||_1
  Eq. 3  L_pose = E ||G(gamma, alpha) - (gamma, alpha)||_2^2
  Eq. 4  L_D2  = E_e D2(e) - E_z D2(Phi(z))
  Eq. 5  L_Phi = E_z D2(Phi(z))
The functions below are the minimized forms (TF-GAN's conventions); each docstring says how it
relates to its equation.
"""

from __future__ import annotations

from typing import Callable, Iterable

import tensorflow as tf

from keras_disentangle.configs import NUM_KEYPOINTS

# Keeps the gradient norm differentiable where the critic's gradient vanishes (TF-GAN uses 1e-10).
_NORM_EPSILON = 1e-10


def _per_example_mean(x: tf.Tensor) -> tf.Tensor:
    """Mean over every axis but the first: `(batch, ...)` -> `(batch,)`."""
    x = tf.convert_to_tensor(x)
    return tf.reduce_mean(tf.reshape(x, [tf.shape(x)[0], -1]), axis=1)


def _per_example_sum(x: tf.Tensor) -> tf.Tensor:
    """Sum over every axis but the first: `(batch, ...)` -> `(batch,)`."""
    return tf.reduce_sum(tf.reshape(x, [tf.shape(x)[0], -1]), axis=1)


def _float32(x) -> tf.Tensor:
    return tf.cast(tf.convert_to_tensor(x), tf.float32)


def l1_reconstruction_loss(real: tf.Tensor, fake: tf.Tensor, mask: tf.Tensor | None = None) -> tf.Tensor:
    """Mean absolute error per image, over all pixels or over the masked ones (paper Eq. 2, L1 term).

    `||G1(x, h) - x||_1` averaged over pixels and channels, so that lambda does not depend on the
    image size. With `mask`, the mean runs over the pixels where the mask is on, weighted by its
    values: `sum(mask * |fake - real|) / sum(mask)` with the mask broadcast to the channels; an
    example whose mask is all zero gets 0.

    Args:
      real: float tensor `(batch, 128, 64, 3)`, images in [-1, 1].
      fake: float tensor, same shape as `real`.
      mask: optional float tensor `(batch, 128, 64, 1)` (or the images' shape), weights in [0, 1].

    Returns:
      float32 tensor `(batch,)`.
    """
    error = tf.abs(_float32(fake) - _float32(real))
    if mask is None:
        return _per_example_mean(error)
    mask = tf.broadcast_to(_float32(mask), tf.shape(error))
    return tf.math.divide_no_nan(_per_example_sum(mask * error), _per_example_sum(mask))


def bce_generator_loss(fake_logits: tf.Tensor) -> tf.Tensor:
    """Non-saturating BCE generator loss: `-log sigmoid(D1(G1(x, h)))` (paper Eq. 2, adversarial term).

    Eq. 2 writes the generator's objective as maximizing `log D1(G1(x, h))`; minimizing its negative
    is the non-saturating form of Goodfellow et al. (2014) that PG2 and the authors' code use.

    Args:
      fake_logits: float tensor `(batch,)` or `(batch, ...)`, D1 logits on generated images; extra
        axes (e.g. `(batch, 1)`) are averaged.

    Returns:
      float32 tensor `(batch,)`.
    """
    logits = _float32(fake_logits)
    return _per_example_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.ones_like(logits), logits=logits))


def bce_discriminator_loss(real_logits: tf.Tensor, fake_logits: tf.Tensor, real_label: float = 1.0) -> tf.Tensor:
    """BCE discriminator loss `0.5 * (-log sigmoid(D1(x)) - log(1 - sigmoid(D1(G1(x, h)))))` (Eq. 1).

    The negative of Eq. 1, halved as in PG2 and the authors' code so that D1 learns at the pace of
    G1. Real and fake logits are paired by example.

    Args:
      real_logits: float tensor `(batch,)` or `(batch, ...)`, D1 logits on real images.
      fake_logits: float tensor, same shape, D1 logits on generated images.
      real_label: float. Target of the real images; below 1 is one-sided label smoothing (Salimans
        et al., "Improved techniques for training GANs", 2016), not in the paper.

    Returns:
      float32 tensor `(batch,)`.
    """
    real = _float32(real_logits)
    fake = _float32(fake_logits)
    real_loss = tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.fill(tf.shape(real), real_label),
                                                        logits=real)
    fake_loss = tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.zeros_like(fake), logits=fake)
    return 0.5 * (_per_example_mean(real_loss) + _per_example_mean(fake_loss))


def hinge_generator_loss(fake_logits: tf.Tensor) -> tf.Tensor:
    """Hinge-GAN generator loss `-D1(G1(x, h))` (Lim & Ye 2017; not in the paper: `d1_loss=hinge`).

    Args:
      fake_logits: float tensor `(batch,)` or `(batch, ...)`, D1 scores of generated images.

    Returns:
      float32 tensor `(batch,)`.
    """
    return _per_example_mean(-_float32(fake_logits))


def hinge_discriminator_loss(real_logits: tf.Tensor, fake_logits: tf.Tensor) -> tf.Tensor:
    """Hinge-GAN D1 loss `0.5 * (relu(1 - D1(x)) + relu(1 + D1(G1(x, h))))`, halved like the BCE one.

    Args:
      real_logits, fake_logits: float tensors, same shape, D1 scores of real and generated images.

    Returns:
      float32 tensor `(batch,)`.
    """
    return 0.5 * (_per_example_mean(tf.nn.relu(1.0 - _float32(real_logits)))
                  + _per_example_mean(tf.nn.relu(1.0 + _float32(fake_logits))))


def r1_penalty(real_gradients: tf.Tensor) -> tf.Tensor:
    """R1 `0.5 * |grad_x D1(x)|^2` per real image (Mescheder et al. 2018; not in the paper), unweighted.

    Args:
      real_gradients: float tensor `(batch, H, W, C)`, the gradient of D1's logits w.r.t. real images.

    Returns:
      float32 tensor `(batch,)`.
    """
    return 0.5 * _per_example_sum(tf.square(_float32(real_gradients)))


def pose_reconstruction_loss(real_vector: tf.Tensor, fake_vector: tf.Tensor) -> tf.Tensor:
    """Squared L2 error of the pose vector, coordinates counted only for visible joints (paper Eq. 3).

    Eq. 3 is `||G(gamma, alpha) - (gamma, alpha)||_2^2` over the whole 54-d vector. We sum the
    squared error of the 18 visibility flags alpha, but of the 36 coordinates gamma only where the
    *real* pose shows the joint: an invisible joint's stored coordinates (0) are a placeholder, and
    fitting them would spend capacity on a value nothing draws. The decoder's coordinates for
    invisible joints are therefore unconstrained.

    Args:
      real_vector: float tensor `(batch, 54)`: `[y0, x0, ..., y17, x17]` in [-1, 1] then 18 flags in
        {0, 1} (the `pose_vector` batch key).
      fake_vector: float tensor `(batch, 54)`, the pose decoder's output.

    Returns:
      float32 tensor `(batch,)`.
    """
    real = _float32(real_vector)
    fake = _float32(fake_vector)
    coordinates = 2 * NUM_KEYPOINTS
    visible = real[:, coordinates:]
    squared = tf.square(fake - real)
    coordinate_error = tf.reshape(squared[:, :coordinates], [-1, NUM_KEYPOINTS, 2]) * visible[:, :, None]
    return _per_example_sum(coordinate_error) + _per_example_sum(squared[:, coordinates:])


def wasserstein_generator_loss(fake_scores: tf.Tensor) -> tf.Tensor:
    """Wasserstein loss of the mapper Phi: `-D2(Phi(z))` (paper Eq. 5, negated).

    Eq. 5's `E_z D2(Phi(z))` is what Phi maximizes; we minimize its negative (TF-GAN's
    `wasserstein_generator_loss`).

    Args:
      fake_scores: float tensor `(batch,)` or `(batch, ...)`, critic scores of mapped noise.

    Returns:
      float32 tensor `(batch,)`.
    """
    return -_per_example_mean(_float32(fake_scores))


def wasserstein_critic_loss(real_scores: tf.Tensor, fake_scores: tf.Tensor) -> tf.Tensor:
    """Wasserstein critic loss `D2(Phi(z)) - D2(e)` (paper Eq. 4, negated).

    Eq. 4's `L_D2 = E_e D2(e) - E_z D2(Phi(z))` is the Wasserstein estimate the critic *maximizes*;
    read as a loss to minimize it would push real scores down, so we return its negative (Arjovsky
    et al. 2017; TF-GAN's `wasserstein_discriminator_loss`). Real and fake scores are paired by
    example.

    Args:
      real_scores: float tensor `(batch,)` or `(batch, ...)`, critic scores of stage-I embeddings.
      fake_scores: float tensor, same shape, critic scores of mapped noise.

    Returns:
      float32 tensor `(batch,)`.
    """
    return _per_example_mean(_float32(fake_scores)) - _per_example_mean(_float32(real_scores))


def _interpolation_epsilon(seed_or_eps, shape: tf.Tensor) -> tf.Tensor:
    """`eps` of the gradient penalty, `shape` = `(batch, 1, ...)`; see `wasserstein_gradient_penalty`."""
    if seed_or_eps is None:
        return tf.random.uniform(shape)
    seed_or_eps = tf.convert_to_tensor(seed_or_eps)
    if not seed_or_eps.dtype.is_integer:
        return tf.reshape(_float32(seed_or_eps), shape)
    seed = seed_or_eps if seed_or_eps.shape.rank == 1 else tf.stack([seed_or_eps, tf.zeros_like(seed_or_eps)])
    return tf.random.stateless_uniform(shape, seed=seed)


def wasserstein_gradient_penalty(
    critic: Callable[..., tf.Tensor],
    real: tf.Tensor,
    fake: tf.Tensor,
    seed_or_eps: int | tf.Tensor | None = None,
) -> tf.Tensor:
    """WGAN-GP penalty `(||grad D2(x_hat)||_2 - 1)^2` at `x_hat = eps * real + (1 - eps) * fake`.

    An alternative to the paper's weight clipping (Gulrajani et al., 2017,
    https://arxiv.org/abs/1704.00028), used when `train.gradient_penalty_weight > 0`. Call it inside
    the critic's tape: the inner gradient is differentiated again.

    Args:
      critic: callable `(batch, K) -> (batch, 1)`, e.g. the D2 model; called with `training=True`.
      real: float tensor `(batch, K)` (any `(batch, ...)` shape works), stage-I embeddings.
      fake: float tensor, same shape, mapped noise.
      seed_or_eps: an int or an integer tensor of shape `(2,)`: the stateless seed of
        `eps ~ U[0, 1)`, one per example; or a float tensor `(batch,)` giving `eps` itself; or
        None (the default) to draw `eps` from TensorFlow's global random state.

    Returns:
      float32 tensor `(batch,)`.

    Raises:
      ValueError: when `real` and `fake` have different static shapes.
    """
    real = _float32(real)
    fake = _float32(fake)
    if real.shape.is_fully_defined() and fake.shape.is_fully_defined() and real.shape != fake.shape:
        raise ValueError(
            f"wasserstein_gradient_penalty: `real` has shape {real.shape} but `fake` has shape "
            f"{fake.shape}; expected equal shapes.")
    batch = tf.shape(real)[0]
    broadcast_shape = tf.concat([[batch], tf.ones([tf.rank(real) - 1], tf.int32)], axis=0)
    eps = _interpolation_epsilon(seed_or_eps, broadcast_shape)
    interpolated = fake + eps * (real - fake)
    with tf.GradientTape() as tape:
        tape.watch(interpolated)
        scores = critic(interpolated, training=True)
    gradients = tf.cast(tape.gradient(scores, interpolated), tf.float32)
    norms = tf.sqrt(_per_example_sum(tf.square(gradients)) + _NORM_EPSILON)
    return tf.square(norms - 1.0)


def clip_weights(variables: Iterable[tf.Variable], bound: float) -> list:
    """Clips every variable to `[-bound, bound]` in place: the paper's WGAN weight clipping of D2.

    Args:
      variables: iterable of variables, e.g. `critic.trainable_variables`.
      bound: float. Positive clipping bound (the paper: 0.01).

    Returns:
      list of the assign results, one per variable (useful as control dependencies in graph code).

    Raises:
      ValueError: when `bound` is not positive.
    """
    if not bound > 0:
        raise ValueError(f"clip_weights: `bound` must be positive; received bound={bound}.")
    return [variable.assign(tf.clip_by_value(variable, -bound, bound)) for variable in variables]


def squared_error_sum(real: tf.Tensor, fake: tf.Tensor) -> tf.Tensor:
    """Summed squared error per image: the VAE's reconstruction term (a unit-variance Gaussian
    decoder's negative log-likelihood, times 2, up to a constant).

    Returns:
      float32 tensor `(batch,)`.
    """
    return _per_example_sum(tf.square(_float32(fake) - _float32(real)))


def gaussian_kl_divergence(mean: tf.Tensor, log_variance: tf.Tensor) -> tf.Tensor:
    """KL(N(mean, exp(log_variance)) || N(0, I)) per example, the VAE's prior term (Kingma & Welling 2014).

    Returns:
      float32 tensor `(batch,)`.
    """
    mean, log_variance = _float32(mean), _float32(log_variance)
    return 0.5 * _per_example_sum(tf.square(mean) + tf.exp(log_variance) - 1.0 - log_variance)
