"""Linear probes: how much of a label a linear classifier reads from an embedding, in NumPy + SciPy.

A probe is multinomial logistic regression (softmax over an affine map of the standardised features,
L2-penalised weights), fitted by L-BFGS (`scipy.optimize.minimize`) to the labels of one set and
scored by its accuracy on another. Chance is what always answering the most frequent training label
scores on the test set. The disentanglement reading (docs/evaluation.md, Re-ID): the FG code should predict
identity but not the background; the BG and pose codes should not predict identity.
"""

from __future__ import annotations

import numpy as np
from scipy import optimize
from scipy.special import log_softmax


def fit(features, labels, l2: float = 1e-3, max_iterations: int = 500) -> dict:
    """Fits a probe.

    Args:
      features: float `(n, d)`.
      labels: int `(n,)`, any values.
      l2: weight of 1/2 |W|^2 beside the mean cross-entropy (the bias is not penalised).
      max_iterations: L-BFGS iterations.

    Returns:
      dict: `classes` (the label values), `mean`, `scale` (the standardisation), `weights` `(d + 1, C)`.

    Raises:
      ValueError: for fewer than two classes or mismatched lengths.
    """
    features = np.asarray(features, np.float64)
    classes, targets = np.unique(np.asarray(labels), return_inverse=True)
    if len(classes) < 2 or len(features) != len(targets):
        raise ValueError(f"probe: {len(features)} features and {len(targets)} labels of {len(classes)} classes; "
                         "expected equal lengths and at least two classes.")
    mean, scale = features.mean(axis=0), features.std(axis=0) + 1e-8
    x = np.hstack([(features - mean) / scale, np.ones((len(features), 1))])
    one_hot = np.eye(len(classes))[targets]
    penalty = np.ones((x.shape[1], 1))
    penalty[-1] = 0.0

    def loss_and_gradient(flat):
        weights = flat.reshape(x.shape[1], len(classes))
        log_p = log_softmax(x @ weights, axis=1)
        loss = -np.mean(np.sum(one_hot * log_p, axis=1)) + 0.5 * l2 * np.sum(penalty * weights ** 2)
        gradient = x.T @ (np.exp(log_p) - one_hot) / len(x) + l2 * penalty * weights
        return loss, gradient.ravel()

    solution = optimize.minimize(loss_and_gradient, np.zeros(x.shape[1] * len(classes)), jac=True,
                                 method="L-BFGS-B", options={"maxiter": max_iterations})
    return {"classes": classes, "mean": mean, "scale": scale,
            "weights": solution.x.reshape(x.shape[1], len(classes))}


def predict(probe: dict, features) -> np.ndarray:
    x = (np.asarray(features, np.float64) - probe["mean"]) / probe["scale"]
    return probe["classes"][np.argmax(x @ probe["weights"][:-1] + probe["weights"][-1], axis=1)]


def score(train_features, train_labels, test_features, test_labels, l2: float = 1e-3) -> dict:
    """Fits a probe on the train set and scores it on the test set.

    Returns:
      dict: `accuracy`, `chance` (the most frequent training label's share of the test set),
      `classes`, `train`, `test` (sizes).
    """
    probe = fit(train_features, train_labels, l2)
    test_labels = np.asarray(test_labels)
    values, counts = np.unique(np.asarray(train_labels), return_counts=True)
    majority = values[np.argmax(counts)]
    return {"accuracy": float(np.mean(predict(probe, test_features) == test_labels)),
            "chance": float(np.mean(test_labels == majority)), "classes": len(probe["classes"]),
            "train": len(train_labels), "test": len(test_labels)}
