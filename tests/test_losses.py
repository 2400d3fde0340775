"""Hand-computed values of every loss in keras_disentangle.losses."""

import math
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_disentangle import losses


def softplus(x):
    return math.log1p(math.exp(x))


# --- BCE (paper Eq. 1-2) --------------------------------------------------------------------------


def test_bce_generator_loss_on_known_logits():
    # -log sigmoid(1) = log(1 + e^-1); -log sigmoid(-1) = log(1 + e).
    loss = losses.bce_generator_loss(tf.constant([1.0, -1.0]))
    np.testing.assert_allclose(loss.numpy(), [softplus(-1.0), softplus(1.0)], rtol=1e-6)
    np.testing.assert_allclose(loss.numpy(), [0.3132617, 1.3132617], rtol=1e-6)


def test_bce_losses_average_extra_axes_per_example():
    loss = losses.bce_generator_loss(tf.constant([[0.0, 0.0], [100.0, 100.0]]))
    np.testing.assert_allclose(loss.numpy(), [math.log(2.0), 0.0], atol=1e-6)
    column = losses.bce_generator_loss(tf.constant([[1.0], [-1.0]]))
    np.testing.assert_allclose(column.numpy(), [0.3132617, 1.3132617], rtol=1e-6)


def test_bce_discriminator_loss_is_half_the_sum():
    real = tf.constant([2.0, 0.0])
    fake = tf.constant([-2.0, 0.0])
    loss = losses.bce_discriminator_loss(real, fake)
    # Example 0: 0.5 * (softplus(-2) + softplus(-2)); example 1: 0.5 * (log 2 + log 2).
    np.testing.assert_allclose(loss.numpy(), [softplus(-2.0), math.log(2.0)], rtol=1e-6)
    swapped = losses.bce_discriminator_loss(fake, real)
    np.testing.assert_allclose(swapped.numpy(), [softplus(2.0), math.log(2.0)], rtol=1e-6)


def test_bce_discriminator_loss_smooths_only_the_real_label():
    # One-sided label smoothing: real logit 0 costs log 2 whatever the label; a real logit of +2
    # costs more with target 0.9 than with 1, a fake one the same.
    real, fake = tf.constant([2.0]), tf.constant([-2.0])
    smoothed = losses.bce_discriminator_loss(real, fake, real_label=0.9)
    expected = 0.5 * (0.9 * softplus(-2.0) + 0.1 * softplus(2.0) + softplus(-2.0))
    np.testing.assert_allclose(smoothed.numpy(), [expected], rtol=1e-6)


def test_bce_losses_accept_bfloat16_logits():
    loss = losses.bce_discriminator_loss(tf.constant([0.0], tf.bfloat16), tf.constant([0.0], tf.bfloat16))
    assert loss.dtype == tf.float32
    np.testing.assert_allclose(loss.numpy(), [math.log(2.0)], rtol=1e-6)


# --- L1 (paper Eq. 2) -----------------------------------------------------------------------------


def test_l1_reconstruction_loss_is_the_mean_absolute_error_per_image():
    real = np.zeros((2, 2, 2, 1), "float32")
    fake = np.array([[[[1.0], [-2.0]], [[3.0], [-4.0]]], [[[0.5], [0.5]], [[0.5], [0.5]]]], "float32")
    np.testing.assert_allclose(losses.l1_reconstruction_loss(real, fake).numpy(), [2.5, 0.5])
    # The error is the difference (not the sum) of two nonzero images: (1.0 + 0.25) / 2.
    real = np.full((1, 1, 2, 1), 0.75, "float32")
    fake = np.array([[[[-0.25], [0.5]]]], "float32")
    np.testing.assert_allclose(losses.l1_reconstruction_loss(real, fake).numpy(), [0.625])


def test_masked_l1_averages_over_the_masked_pixels_and_channels():
    real = np.zeros((1, 2, 2, 3), "float32")
    fake = np.broadcast_to(np.array([1.0, 2.0, 3.0], "float32"), (1, 2, 2, 3)).copy()
    fake[0, 1, 1] = 10.0
    mask = np.array([[[[1.0], [0.0]], [[0.0], [1.0]]]], "float32")
    # Pixels (0, 0) and (1, 1): (1 + 2 + 3 + 10 + 10 + 10) / 6 = 6.
    np.testing.assert_allclose(losses.l1_reconstruction_loss(real, fake, mask).numpy(), [6.0])
    inverse = 1.0 - mask
    # Pixels (0, 1) and (1, 0): (1 + 2 + 3) * 2 / 6 = 2.
    np.testing.assert_allclose(losses.l1_reconstruction_loss(real, fake, inverse).numpy(), [2.0])


def test_masked_l1_is_zero_for_an_empty_mask():
    real = np.zeros((2, 2, 2, 3), "float32")
    fake = np.ones((2, 2, 2, 3), "float32")
    mask = np.zeros((2, 2, 2, 1), "float32")
    mask[1, 0, 0] = 1.0
    np.testing.assert_array_equal(losses.l1_reconstruction_loss(real, fake, mask).numpy(), [0.0, 1.0])


# --- pose (paper Eq. 3) ---------------------------------------------------------------------------


def test_pose_reconstruction_loss_ignores_coordinates_of_invisible_joints():
    real = np.zeros((1, 54), "float32")
    fake = np.zeros((1, 54), "float32")
    real[0, 0:2] = [0.5, -0.5]  # joint 0 visible
    real[0, 36] = 1.0
    fake[0, 0:2] = [0.6, -0.7]  # (0.1)^2 + (0.2)^2 = 0.05
    fake[0, 2:4] = [3.0, 4.0]  # joint 1 is invisible in the real pose: ignored
    fake[0, 36:38] = [1.0, 1.0]  # joint 1 wrongly visible: (1 - 0)^2 = 1
    np.testing.assert_allclose(losses.pose_reconstruction_loss(real, fake).numpy(), [1.05], rtol=1e-5)


def test_pose_reconstruction_loss_counts_visible_joints_per_example():
    real = np.zeros((2, 54), "float32")
    real[:, 36:] = 1.0
    fake = real.copy()
    fake[0, :36] = 0.5  # 36 coordinates off by 0.5: 36 * 0.25 = 9
    fake[1, 36:] = 0.0  # 18 flags off by 1
    np.testing.assert_allclose(losses.pose_reconstruction_loss(real, fake).numpy(), [9.0, 18.0])


# --- Wasserstein (paper Eq. 4-5) ------------------------------------------------------------------


def test_wasserstein_losses_on_small_arrays():
    fake = tf.constant([[1.0], [-2.0], [0.5]])
    real = tf.constant([[3.0], [0.0], [0.5]])
    np.testing.assert_allclose(losses.wasserstein_generator_loss(fake).numpy(), [-1.0, 2.0, -0.5])
    np.testing.assert_allclose(losses.wasserstein_critic_loss(real, fake).numpy(), [-2.0, -2.0, 0.0])
    # The batch means are Eq. 5 and Eq. 4 negated: -E D(fake) = 1/6, E D(fake) - E D(real) = -4/3.
    np.testing.assert_allclose(tf.nn.compute_average_loss(losses.wasserstein_generator_loss(fake)).numpy(),
                               1.0 / 6.0, rtol=1e-6)
    np.testing.assert_allclose(tf.nn.compute_average_loss(losses.wasserstein_critic_loss(real, fake)).numpy(),
                               -4.0 / 3.0, rtol=1e-6)


def _linear_critic(weights):
    weights = tf.constant(weights, tf.float32)
    return lambda x, training=False: tf.reduce_sum(x * weights, axis=-1, keepdims=True)


def _half_squared_norm_critic(x, training=False):
    return 0.5 * tf.reduce_sum(tf.square(x), axis=-1, keepdims=True)


def test_gradient_penalty_of_a_linear_critic_is_set_by_its_weight_norm(rng):
    real = rng.normal(size=(4, 2)).astype("float32")
    fake = rng.normal(size=(4, 2)).astype("float32")
    unit = losses.wasserstein_gradient_penalty(_linear_critic([0.6, 0.8]), real, fake, 3)
    np.testing.assert_allclose(unit.numpy(), np.zeros(4), atol=1e-6)
    norm_two = losses.wasserstein_gradient_penalty(_linear_critic([1.2, 1.6]), real, fake, 3)
    np.testing.assert_allclose(norm_two.numpy(), np.ones(4), rtol=1e-5)


def test_gradient_penalty_interpolates_with_the_given_epsilon():
    # D(x) = |x|^2 / 2 has gradient x: at x_hat = 0.5 * (3, 4) the norm is 2.5, penalty 1.5^2.
    real = tf.constant([[3.0, 4.0], [3.0, 4.0], [4.0, 6.0]])
    fake = tf.constant([[0.0, 0.0], [0.0, 0.0], [2.0, 2.0]])
    penalty = losses.wasserstein_gradient_penalty(_half_squared_norm_critic, real, fake,
                                                  tf.constant([0.5, 0.0, 0.5]))
    # At eps = 0 the gradient vanishes; the norm's 1e-10 stabilizer makes the penalty (1e-5 - 1)^2.
    # Between two nonzero points: x_hat = (2, 2) + 0.5 * (2, 4) = (3, 4), norm 5, penalty 4^2.
    np.testing.assert_allclose(penalty.numpy(), [2.25, (1e-5 - 1.0) ** 2, 16.0], rtol=1e-6)


def test_gradient_penalty_calls_the_critic_in_training_mode():
    modes = []

    def critic(x, training=False):
        modes.append(training)
        return _half_squared_norm_critic(x)

    losses.wasserstein_gradient_penalty(critic, tf.ones((2, 2)), tf.zeros((2, 2)), 0)
    assert modes == [True]


def test_gradient_penalty_seeds_are_reproducible_and_epsilon_is_uniform():
    # With real = (1, 0) and fake = 0 the gradient norm is eps itself: penalty (eps - 1)^2 in (0, 1].
    real = tf.tile(tf.constant([[1.0, 0.0]]), [256, 1])
    fake = tf.zeros_like(real)
    first = losses.wasserstein_gradient_penalty(_half_squared_norm_critic, real, fake, 7).numpy()
    again = losses.wasserstein_gradient_penalty(_half_squared_norm_critic, real, fake, tf.constant([7, 0])).numpy()
    other = losses.wasserstein_gradient_penalty(_half_squared_norm_critic, real, fake, 8).numpy()
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    eps = 1.0 - np.sqrt(first)
    assert eps.min() >= 0.0 and eps.max() < 1.0
    assert abs(eps.mean() - 0.5) < 0.1


def test_gradient_penalty_without_a_seed_draws_epsilon_in_the_unit_interval():
    real = tf.tile(tf.constant([[1.0, 0.0]]), [64, 1])
    penalty = losses.wasserstein_gradient_penalty(_half_squared_norm_critic, real, tf.zeros_like(real)).numpy()
    eps = 1.0 - np.sqrt(penalty)
    assert eps.min() >= 0.0 and eps.max() < 1.0 and np.unique(eps).size > 1


def test_gradient_penalty_is_differentiable_with_respect_to_the_critic():
    critic = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="tanh"), keras.layers.Dense(1)])
    real = tf.ones((2, 3))
    fake = -tf.ones((2, 3))
    with tf.GradientTape() as tape:
        penalty = tf.reduce_mean(losses.wasserstein_gradient_penalty(critic, real, fake, 0))
    kernels = [layer.kernel for layer in critic.layers]
    # The gradient with respect to the input depends on every kernel (not on the last bias).
    for grad in tape.gradient(penalty, kernels):
        assert grad is not None and float(tf.reduce_sum(tf.abs(grad))) > 0


def test_gradient_penalty_rejects_mismatched_shapes():
    message = ("wasserstein_gradient_penalty: `real` has shape (2, 3) but `fake` has shape (2, 4); "
               "expected equal shapes.")
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        losses.wasserstein_gradient_penalty(_half_squared_norm_critic, tf.zeros((2, 3)), tf.zeros((2, 4)), 0)


# --- weight clipping ------------------------------------------------------------------------------


def test_clip_weights_clips_in_place():
    variables = [tf.Variable([-0.5, 0.005, 0.3]), tf.Variable([[0.02, -0.001]])]
    results = losses.clip_weights(variables, 0.01)
    assert len(results) == 2
    np.testing.assert_allclose(variables[0].numpy(), [-0.01, 0.005, 0.01])
    np.testing.assert_allclose(variables[1].numpy(), [[0.01, -0.001]])


def test_clip_weights_on_a_keras_model_inside_tf_function():
    critic = keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(8, bias_initializer="ones"), keras.layers.Dense(1)])

    @tf.function
    def clip():
        losses.clip_weights(critic.trainable_variables, 0.01)

    clip()
    for variable in critic.trainable_variables:
        assert np.abs(variable.numpy()).max() <= 0.01
    assert np.abs(critic.layers[0].bias.numpy()).min() == pytest.approx(0.01)


def test_clip_weights_rejects_a_non_positive_bound():
    message = "clip_weights: `bound` must be positive; received bound=0."
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        losses.clip_weights([tf.Variable([1.0])], 0)


# --- hinge, R1 (not in the paper: `d1_loss=hinge`, `r1_weight`) -----------------------------------


def test_hinge_losses_on_known_scores():
    # Extra axes are averaged per example: the generator's loss is minus the mean score.
    np.testing.assert_allclose(losses.hinge_generator_loss(tf.constant([[1.0, 3.0], [-2.0, -2.0]])).numpy(),
                               [-2.0, 2.0])
    real = tf.constant([0.5, 2.0, -1.0])
    fake = tf.constant([-0.5, 1.0, -3.0])
    # 0.5 * (relu(1 - real) + relu(1 + fake)): (0.5 + 0.5) / 2, (0 + 2) / 2, (2 + 0) / 2.
    np.testing.assert_allclose(losses.hinge_discriminator_loss(real, fake).numpy(), [0.5, 1.0, 1.0])


def test_r1_penalty_is_half_the_squared_gradient_norm_per_image():
    gradients = tf.constant([[[[1.0], [2.0]]], [[[0.0], [-3.0]]]])
    np.testing.assert_allclose(losses.r1_penalty(gradients).numpy(), [2.5, 4.5])


# --- the VAE baseline's terms ---------------------------------------------------------------------


def test_squared_error_sum_per_image():
    real = tf.constant([[1.0, 1.0], [0.0, 2.0]])
    fake = tf.constant([[2.0, 3.0], [3.0, 1.0]])
    np.testing.assert_allclose(losses.squared_error_sum(real, fake).numpy(), [5.0, 10.0])


def test_gaussian_kl_divergence_on_known_gaussians():
    # Zero for the prior itself; per dimension 0.5 * (mean^2 + variance - 1 - log variance).
    mean = tf.constant([[0.0, 0.0], [1.0, 0.0]])
    log_variance = tf.constant([[0.0, 0.0], [0.0, math.log(2.0)]])
    expected = [0.0, 0.5 * (1.0 + (2.0 - 1.0 - math.log(2.0)))]
    np.testing.assert_allclose(losses.gaussian_kl_divergence(mean, log_variance).numpy(), expected, rtol=1e-6)
