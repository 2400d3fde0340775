"""Inception Score and Frechet Inception Distance, kept apart from the networks that feed them.

The statistics are pure float64 NumPy functions of logits or activations, so they test without
weights (TF-GAN `classifier_score_from_logits`, `frechet_classifier_distance_from_activations`).
The networks come separately:

* IS reads the logits of a Keras ImageNet InceptionV3 (`load_inception_classifier`,
  `classifier_logits`). The weights are the standard Keras file, which this project cannot
  download at run time: fetch it once on a machine with internet access.
* FID reads the 2048-d pool-3 features of the 2015 TF Inception graph that every FID
  implementation uses (`keras_disentangle.metrics.fid_weights`).

Protocol note: the paper's IS (Market 3.483, DeepFashion 3.228) came from the 2015-12-05 TF
graph's 1008-way softmax (the improved-GAN `inception_score.py`, 10 splits). The Keras
InceptionV3 is a different training run with 1000 classes, so its IS is close to but not the same
number; compare IS only between runs of the same network.
"""

from __future__ import annotations

import os

import keras
import numpy as np
import scipy.linalg
import scipy.special
import tensorflow as tf

KERAS_INCEPTION_WEIGHTS = "inception_v3_weights_tf_dim_ordering_tf_kernels.h5"
CLASSIFIER_SIZE = 299

# Offset added to both covariance diagonals when the product is singular (TTUR / pytorch-fid).
_FID_EPS = 1e-6
# Largest imaginary part of the square root's diagonal accepted as numerical noise.
_FID_IMAG_TOLERANCE = 1e-3


def inception_score_from_logits(logits, splits: int = 10) -> tuple[float, float]:
    """Inception Score of a set of classifier logits, as mean and std over `splits` folds.

    IS = exp(E_x KL(p(y|x) || p(y))), with p(y) the mean prediction of the fold. Images are split
    into `splits` consecutive folds (as improved-GAN's `inception_score.py` does), the score is
    computed per fold and the folds' mean and population std are returned. Computed in float64
    through log-softmax, so confident logits do not underflow: uniform logits give exactly 1, and
    confident predictions spread evenly over K classes give K.

    Args:
      logits: `(num_images, num_classes)` unnormalized classifier outputs.
      splits: int. Number of folds; `num_images` must be at least `splits`. Defaults to 10.

    Returns:
      (mean, std) of the per-fold scores, Python floats.

    Raises:
      ValueError: if `logits` is not 2-D, `splits` < 1, or there are fewer images than `splits`.

    Reference: Salimans et al., "Improved Techniques for Training GANs", NeurIPS 2016,
    https://arxiv.org/abs/1606.03498.
    """
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim != 2:
        raise ValueError(f"logits: expected shape (num_images, num_classes), got {logits.shape}.")
    if splits < 1 or logits.shape[0] < splits:
        raise ValueError(
            f"splits: expected 1 <= splits <= num_images ({logits.shape[0]}), got {splits}.")
    log_p = scipy.special.log_softmax(logits, axis=1)
    scores = []
    for fold in np.array_split(log_p, splits):
        # log of the fold's mean prediction, computed without leaving log space.
        log_marginal = scipy.special.logsumexp(fold, axis=0) - np.log(len(fold))
        kl = np.sum(np.exp(fold) * (fold - log_marginal), axis=1)
        scores.append(np.exp(np.mean(kl)))
    return float(np.mean(scores)), float(np.std(scores))


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Frechet distance between two Gaussians N(mu1, sigma1) and N(mu2, sigma2).

    d^2 = |mu1 - mu2|^2 + Tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^(1/2)), in float64 with
    `scipy.linalg.sqrtm`. When the product is singular (fewer samples than dimensions) the square
    root is retried with 1e-6 added to both diagonals, and a numerically complex result is
    accepted if its diagonal's imaginary part stays below 1e-3 (the TTUR / pytorch-fid recipe).

    Args:
      mu1: `(dim,)` mean of the first set.
      sigma1: `(dim, dim)` covariance of the first set.
      mu2: `(dim,)` mean of the second set.
      sigma2: `(dim, dim)` covariance of the second set.

    Returns:
      The squared Frechet distance (what papers report as FID), a Python float.

    Raises:
      ValueError: on inconsistent shapes, or if the matrix square root has a large imaginary part.

    Reference: Heusel et al., "GANs Trained by a Two Time-Scale Update Rule Converge to a Local
    Nash Equilibrium", NeurIPS 2017, https://arxiv.org/abs/1706.08500.
    """
    mu1 = np.atleast_1d(np.asarray(mu1, np.float64))
    mu2 = np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1 = np.atleast_2d(np.asarray(sigma1, np.float64))
    sigma2 = np.atleast_2d(np.asarray(sigma2, np.float64))
    dim = mu1.shape[0]
    for name, value, shape in (("mu1", mu1, (dim,)), ("mu2", mu2, (dim,)),
                               ("sigma1", sigma1, (dim, dim)), ("sigma2", sigma2, (dim, dim))):
        if value.shape != shape:
            raise ValueError(f"{name}: expected shape {shape}, got {value.shape}.")
    covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        offset = np.eye(dim) * _FID_EPS
        covmean = scipy.linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        largest = np.max(np.abs(np.diagonal(covmean).imag))
        if largest > _FID_IMAG_TOLERANCE:
            raise ValueError(
                f"sigma1, sigma2: the square root of their product has an imaginary diagonal "
                f"part of {largest:.3g} (> {_FID_IMAG_TOLERANCE}); the covariances are not valid.")
        covmean = covmean.real
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


def fid_from_activations(activations1, activations2) -> float:
    """FID between two sets of feature vectors (rows are samples).

    Means and unbiased covariances (`np.cov`, N - 1) are taken in float64. FID is biased upwards
    for small sets; compare values computed with the same number of images (the usual 10k-50k).

    Args:
      activations1: `(num_images1, dim)` features of the first set, e.g. pool-3 of
        `fid_weights.build_fid_inception`.
      activations2: `(num_images2, dim)` features of the second set.

    Returns:
      FID, a Python float (0 for a set against itself).

    Raises:
      ValueError: if either input is not 2-D with at least 2 rows, or the widths differ.
    """
    stats = []
    for name, acts in (("activations1", activations1), ("activations2", activations2)):
        acts = np.asarray(acts, dtype=np.float64)
        if acts.ndim != 2 or acts.shape[0] < 2:
            raise ValueError(f"{name}: expected shape (num_images >= 2, dim), got {acts.shape}.")
        stats.append((acts.mean(axis=0), np.cov(acts, rowvar=False)))
    (mu1, sigma1), (mu2, sigma2) = stats
    if mu1.shape != mu2.shape:
        raise ValueError(
            f"activations2: expected feature width {mu1.shape[0]} like activations1, got "
            f"{mu2.shape[0]}.")
    return frechet_distance(mu1, sigma1, mu2, sigma2)


def load_inception_classifier(weights_path):
    """Builds the Keras ImageNet InceptionV3 with logit outputs and loads its weights from disk.

    The model is `keras.applications.InceptionV3(weights=None, classifier_activation=None)`: the
    same layers as the Keras release, but returning the 1000 logits instead of the softmax, which
    `inception_score_from_logits` expects.

    Args:
      weights_path: str or path-like. The standard Keras file
        `inception_v3_weights_tf_dim_ordering_tf_kernels.h5`.

    Returns:
      A `keras.Model` mapping `(batch, 299, 299, 3)` floats in [-1, 1] to `(batch, 1000)` logits.

    Raises:
      FileNotFoundError: if `weights_path` is not a file; the message says how to get it.
    """
    weights_path = os.fspath(weights_path)
    if not os.path.isfile(weights_path):
        raise FileNotFoundError(
            f"weights_path: no file at {weights_path!r}; expected the Keras file "
            f"{KERAS_INCEPTION_WEIGHTS}: on a machine with internet run "
            "`keras.applications.InceptionV3(weights='imagenet')` once and copy it from "
            "~/.keras/models/.")
    model = keras.applications.InceptionV3(weights=None, classifier_activation=None)
    model.load_weights(weights_path)
    return model


def classifier_logits(model, images_uint8, batch_size: int = 50, verbose: int = 1) -> np.ndarray:
    """Runs an ImageNet classifier over uint8 images and returns its logits.

    Each batch is resized to 299x299 with `tf.image.resize` (bilinear, half-pixel centres, no
    antialiasing) and scaled to [-1, 1] with x / 127.5 - 1 (Keras `inception_v3.preprocess_input`).

    Args:
      model: a Keras model from `load_inception_classifier` (or any model with that contract).
      images_uint8: `(num_images, height, width, 3)` uint8.
      batch_size: int. Images per forward pass. Defaults to 50.
      verbose: int. 1 shows a progress bar, 0 is silent. Defaults to 1.

    Returns:
      float64 array `(num_images, num_classes)`.

    Raises:
      ValueError: if `images_uint8` is not uint8 `(num_images >= 1, height, width, 3)`, or
        `batch_size` < 1.
    """

    def forward(batch):
        batch = tf.image.resize(tf.cast(batch, tf.float32), (CLASSIFIER_SIZE, CLASSIFIER_SIZE))
        return model(batch / 127.5 - 1.0, training=False)

    return run_on_uint8_images(forward, images_uint8, batch_size, verbose).astype(np.float64)


def run_on_uint8_images(forward, images_uint8, batch_size: int = 50, verbose: int = 1) -> np.ndarray:
    """Runs `forward` (uint8 batch tensor -> array) over images in batches, with a progress bar.

    Args:
      forward: callable taking a uint8 tensor `(batch, height, width, 3)`; traced once per shape.
      images_uint8: `(num_images, height, width, 3)` uint8.
      batch_size: int. Images per call. Defaults to 50.
      verbose: int. 1 shows a progress bar, 0 is silent. Defaults to 1.

    Returns:
      The outputs concatenated along the first axis.

    Raises:
      ValueError: if `images_uint8` is not uint8 `(num_images >= 1, height, width, 3)`, or
        `batch_size` < 1.
    """
    images = np.asarray(images_uint8)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3 or not len(images):
        raise ValueError(
            "images_uint8: expected uint8 (num_images >= 1, height, width, 3), got "
            f"{images.dtype} {images.shape}.")
    if batch_size < 1:
        raise ValueError(f"batch_size: expected >= 1, got {batch_size}.")
    forward = tf.function(forward)
    progress = keras.utils.Progbar(len(images), verbose=verbose, unit_name="image")
    outputs = []
    for start in range(0, len(images), batch_size):
        batch = images[start:start + batch_size]
        outputs.append(np.asarray(forward(tf.constant(batch))))
        progress.add(len(batch))
    return np.concatenate(outputs, axis=0)
