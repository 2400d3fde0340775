"""Person re-identification scores under Market-1501's official protocol, in NumPy.

Each query ranks the gallery by Euclidean distance between L2-normalised features. As in the
official evaluation code (Zheng et al., ICCV 2015, `compute_AP.m`):

* gallery images of the query's identity seen by the query's camera are removed (the same-camera
  match is trivial), and junk images (person id -1) are removed;
* gallery images of the query's identity from other cameras are the true matches;
* everything else, distractors (person id 0) included, is a negative.

CMC rank-k is the share of queries with a true match among the first k kept images; AP is the
official trapezoidal average precision; mAP its mean over the queries. A query with no true match
in the gallery has neither and is counted apart (`queries_without_match`).
"""

from __future__ import annotations

import numpy as np

JUNK = -1
RANKS = (1, 5, 10)


def l2_normalize(features: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (a zero row stays zero)."""
    features = np.asarray(features, np.float64)
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    return features / np.maximum(norms, 1e-12)


def average_precision(good: np.ndarray) -> float:
    """Market's trapezoidal AP of one ranked list.

    Args:
      good: bool `(n,)`, whether each kept gallery image, nearest first, is a true match.

    Returns:
      The sum over the true matches of 1/ngood * (precision before + precision at the match) / 2,
      where "precision before" at rank r (0-based) of the i-th match is i / r (1 at rank 0).
    """
    rows = np.flatnonzero(good)
    if not len(rows):
        return 0.0
    hits = np.arange(len(rows))
    precision = (hits + 1) / (rows + 1)
    before = np.where(rows > 0, hits / np.maximum(rows, 1), 1.0)
    return float(np.mean((before + precision) / 2))


def evaluate(query_features, query_ids, query_cameras, gallery_features, gallery_ids, gallery_cameras,
             ranks=RANKS, distances=None) -> dict:
    """CMC and mAP of queries against a gallery (see the module docstring).

    Args:
      query_features, gallery_features: float `(n, d)`; L2-normalised here.
      query_ids, gallery_ids: int `(n,)` person ids; -1 junk, 0 distractor.
      query_cameras, gallery_cameras: int `(n,)`.
      ranks: the CMC ranks to report.
      distances: float `(n_query, n_gallery)` or None. A learned distance (`kissme.distances`) that
        ranks the gallery instead of the Euclidean one; the features then only fix the sizes.

    Returns:
      dict: `rank1`, `rank5`, ... (`rank{k}`), `mAP`, `queries` (scored), `queries_without_match`,
      `gallery`, `junk_removed` (mean removed per scored query), `chance_rank1` (mean share of
      true matches among the kept gallery, what random features would score at rank 1).

    Raises:
      ValueError: for mismatched lengths or feature sizes, or no scorable query.
    """
    query = l2_normalize(query_features)
    gallery = l2_normalize(gallery_features)
    query_ids, query_cameras = np.asarray(query_ids), np.asarray(query_cameras)
    gallery_ids, gallery_cameras = np.asarray(gallery_ids), np.asarray(gallery_cameras)
    if not (len(query) == len(query_ids) == len(query_cameras)) or not (
            len(gallery) == len(gallery_ids) == len(gallery_cameras)) or query.shape[1] != gallery.shape[1]:
        raise ValueError(f"re-ID: features {query.shape} / {gallery.shape}, ids and cameras must agree in length "
                         "and feature size.")
    # |q - g|^2 = 2 - 2 q.g for unit vectors; the ordering is the Euclidean one.
    if distances is None:
        distances = 2.0 - 2.0 * query @ gallery.T
    elif np.shape(distances) != (len(query), len(gallery)):
        raise ValueError(f"re-ID: distances {np.shape(distances)}, expected {(len(query), len(gallery))}.")
    hits = np.zeros(max(ranks))
    aps, chance, removed, unmatched = [], [], [], 0
    for i in range(len(query)):
        same = gallery_ids == query_ids[i]
        junk = (gallery_ids == JUNK) | (same & (gallery_cameras == query_cameras[i]))
        good = same & ~junk
        if query_ids[i] in (JUNK, 0) or not good.any():
            unmatched += 1
            continue
        order = np.argsort(distances[i], kind="stable")
        kept = good[order][~junk[order]]
        first = int(np.argmax(kept))
        if first < len(hits):
            hits[first:] += 1
        aps.append(average_precision(kept))
        chance.append(kept.mean())
        removed.append(junk.sum())
    if not aps:
        raise ValueError(f"re-ID: none of the {len(query)} queries has a true match (same identity, another "
                         "camera) in the gallery.")
    result = {f"rank{k}": float(hits[k - 1] / len(aps)) for k in ranks}
    result.update(mAP=float(np.mean(aps)), queries=len(aps), queries_without_match=unmatched, gallery=len(gallery),
                  junk_removed=float(np.mean(removed)), chance_rank1=float(np.mean(chance)))
    return result


def fit_pca(train_features: np.ndarray, dims: int) -> tuple[np.ndarray, np.ndarray]:
    """The mean and the top `dims` principal axes of `train_features` (capped at its rank bound).

    Returns:
      (mean `(d,)`, axes `(d, k)`), k = min(dims, n - 1, d).
    """
    features = np.asarray(train_features, np.float64)
    mean = features.mean(axis=0)
    _, _, vt = np.linalg.svd(features - mean, full_matrices=False)
    k = max(1, min(dims, len(features) - 1, features.shape[1]))
    return mean, vt[:k].T


def project(features: np.ndarray, mean: np.ndarray, axes: np.ndarray) -> np.ndarray:
    return (np.asarray(features, np.float64) - mean) @ axes
