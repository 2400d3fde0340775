"""KISSME metric learning (Koestinger et al., CVPR 2012), closed form, in NumPy: the paper's Table 2.

With pair differences d = x_i - x_j, Sigma_S the covariance of d over same-identity pairs and Sigma_D
over different-identity pairs, the likelihood-ratio test gives the Mahalanobis matrix

    M = Sigma_S^-1 - Sigma_D^-1,

projected onto the cone of positive semi-definite matrices (negative eigenvalues clipped to 0), so that
d^T M d is a distance. Every pair of the training set is used: the sums over pairs have the closed form

    sum_{i, j in a set} (x_i - x_j)(x_i - x_j)^T = 2 n sum_i x_i x_i^T - 2 (sum_i x_i)(sum_i x_i)^T

(each unordered pair counted twice), so no pair is sampled and Market's 12,936 images cost one pass.
Features are usually PCA-reduced first (`reid.fit_pca`): Sigma_S needs fewer dimensions than pairs.
"""

from __future__ import annotations

import numpy as np


def _pair_scatter(features: np.ndarray) -> tuple[np.ndarray, int]:
    """sum over ordered pairs (i, j) of (x_i - x_j)(x_i - x_j)^T, and the number of unordered pairs."""
    n = len(features)
    total = features.sum(axis=0)
    return 2 * n * features.T @ features - 2 * np.outer(total, total), n * (n - 1) // 2


def pair_covariances(features, labels) -> tuple[np.ndarray, np.ndarray]:
    """Sigma_S and Sigma_D: the mean of d d^T over same-label and over different-label unordered pairs.

    Raises:
      ValueError: if there is no same-label pair or no different-label pair.
    """
    features = np.asarray(features, np.float64)
    labels = np.asarray(labels)
    same, same_pairs = np.zeros((features.shape[1],) * 2), 0
    for label in np.unique(labels):
        scatter, pairs = _pair_scatter(features[labels == label])
        same, same_pairs = same + scatter, same_pairs + pairs
    everything, all_pairs = _pair_scatter(features)
    different_pairs = all_pairs - same_pairs
    if not same_pairs or not different_pairs:
        raise ValueError(f"KISSME: {same_pairs} same-identity and {different_pairs} different-identity pairs in "
                         f"{len(features)} training features; both kinds are needed.")
    # Each unordered pair appears twice in the ordered sums.
    return same / (2 * same_pairs), (everything - same) / (2 * different_pairs)


def psd_projection(matrix: np.ndarray) -> np.ndarray:
    """The nearest positive semi-definite matrix (Frobenius): negative eigenvalues set to 0."""
    symmetric = (matrix + matrix.T) / 2
    values, vectors = np.linalg.eigh(symmetric)
    return (vectors * np.maximum(values, 0.0)) @ vectors.T


def fit(features, labels, ridge: float = 1e-6) -> np.ndarray:
    """The KISSME matrix M `(d, d)` learned from labelled training features `(n, d)`.

    Args:
      ridge: added to the covariances' diagonal, relative to their mean variance, so that a
        rank-deficient Sigma_S (fewer same pairs than dimensions) still inverts; 0 for the exact form.
    """
    same, different = pair_covariances(features, labels)

    def inverse(covariance):
        scale = ridge * np.trace(covariance) / len(covariance)
        return np.linalg.inv(covariance + scale * np.eye(len(covariance)))

    return psd_projection(inverse(same) - inverse(different))


def distances(query, gallery, metric: np.ndarray) -> np.ndarray:
    """(q - g)^T M (q - g) for every query row and gallery row: `(n_query, n_gallery)`."""
    query, gallery = np.asarray(query, np.float64), np.asarray(gallery, np.float64)
    q_m, g_m = query @ metric, gallery @ metric
    return (np.einsum("ij,ij->i", q_m, query)[:, None] + np.einsum("ij,ij->i", g_m, gallery)[None, :]
            - 2 * q_m @ gallery.T)


def learned_distances(train, train_ids, query, gallery, pca_dims: int) -> tuple[np.ndarray, int]:
    """The re-ID pipeline of Table 2's "+ KISSME": L2-normalise, PCA to `pca_dims` and KISSME, both
    fitted on the labelled `train` features only (junk -1 and distractors 0 left out), then the
    learned distances of `query` to `gallery`.

    Returns:
      (distances `(n_query, n_gallery)`, the PCA dimensions used).
    """
    from keras_disentangle.metrics import reid  # noqa: PLC0415 (reid imports nothing of this module)

    train_ids = np.asarray(train_ids)
    train = reid.l2_normalize(train)[train_ids > 0]
    mean, axes = reid.fit_pca(train, pca_dims)
    metric = fit(reid.project(train, mean, axes), train_ids[train_ids > 0])
    return distances(*(reid.project(reid.l2_normalize(x), mean, axes) for x in (query, gallery)), metric), axes.shape[1]
