"""Tests of KISSME (`metrics.kissme`) against a case computed by hand, and of the linear probes."""

import numpy as np
import pytest

from keras_disentangle.metrics import kissme, probe, reid

# Two identities in 2-D: a = {(0, 0), (2, 0)}, b = {(0, 1), (2, 1)}.
FEATURES = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 1.0], [2.0, 1.0]])
LABELS = np.array([1, 1, 2, 2])


def test_kissme_small_case_by_hand():
    # Same pairs: (0,1) and (2,3), both d = (2, 0)          -> Sigma_S = [[4, 0], [0, 0]]
    # Different pairs: (0,2) (1,3) d = (0, 1); (0,3) (1,2) d = (2, 1), (2, -1)
    #   -> Sigma_D = 1/4 [[0+0+4+4, 0+0+2-2], [., 1+1+1+1]] = [[2, 0], [0, 1]]
    same, different = kissme.pair_covariances(FEATURES, LABELS)
    np.testing.assert_allclose(same, [[4, 0], [0, 0]], atol=1e-12)
    np.testing.assert_allclose(different, [[2, 0], [0, 1]], atol=1e-12)
    # Sigma_S is singular; a ridge of r (relative to its mean variance 2) makes it diag(4 + 2r, 2r).
    ridge = 1e-3
    metric = kissme.fit(FEATURES, LABELS, ridge=ridge)
    s = ridge * 2.0
    d = ridge * 1.5
    expected = np.diag([max(1 / (4 + s) - 1 / (2 + d), 0.0), 1 / s - 1 / (1 + d)])
    np.testing.assert_allclose(metric, expected, rtol=1e-9)
    # The learned distance ignores the within-identity direction (x) and weighs the between one (y).
    assert metric[0, 0] == 0.0 and metric[1, 1] > 100


def test_kissme_full_rank_case_and_psd_projection():
    x = np.array([[0.0, 0.0], [1.0, 1.0], [3.0, 0.0], [3.0, 2.0]])
    same, different = kissme.pair_covariances(x, [1, 1, 2, 2])
    # Same: d = (1, 1), (0, 2) -> 1/2 ([[1, 1], [1, 1]] + [[0, 0], [0, 4]]); determinant 1.
    np.testing.assert_allclose(same, [[0.5, 0.5], [0.5, 2.5]])
    # Different: (3, 0), (3, 2), (2, -1), (2, 1) -> 1/4 [[26, 6], [6, 6]]; determinant 7.5.
    np.testing.assert_allclose(different, [[6.5, 1.5], [1.5, 1.5]])
    # Sigma_S^-1 - Sigma_D^-1 = [[2.5, -0.5], [-0.5, 0.5]] - [[1.5, -1.5], [-1.5, 6.5]] / 7.5
    raw = np.array([[2.3, -0.3], [-0.3, 0.5 - 6.5 / 7.5]])
    values, vectors = np.linalg.eigh(raw)
    assert values[0] < 0 < values[1]  # indefinite: the PSD projection keeps the positive direction only
    expected = values[1] * np.outer(vectors[:, 1], vectors[:, 1])
    np.testing.assert_allclose(kissme.fit(x, [1, 1, 2, 2], ridge=0.0), expected, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(kissme.psd_projection(np.diag([2.0, -3.0])), np.diag([2.0, 0.0]), atol=1e-12)


def test_pair_scatter_closed_form_equals_the_sum_over_pairs(rng):
    x = rng.normal(size=(9, 3))
    labels = rng.integers(0, 3, size=9)
    same, different = kissme.pair_covariances(x, labels)
    pairs = [(i, j) for i in range(9) for j in range(i + 1, 9)]
    outer = {True: [], False: []}
    for i, j in pairs:
        outer[labels[i] == labels[j]].append(np.outer(x[i] - x[j], x[i] - x[j]))
    np.testing.assert_allclose(same, np.mean(outer[True], axis=0), atol=1e-10)
    np.testing.assert_allclose(different, np.mean(outer[False], axis=0), atol=1e-10)
    metric = kissme.fit(x, labels)
    q, g = x[:2], x[2:]
    brute = np.array([[(a - b) @ metric @ (a - b) for b in g] for a in q])
    np.testing.assert_allclose(kissme.distances(q, g, metric), brute, rtol=1e-8, atol=1e-8)
    with pytest.raises(ValueError, match="0 same-identity"):
        kissme.fit(x[:3], [1, 2, 3])


def test_kissme_distances_rank_the_gallery_where_euclidean_fails(rng):
    # Identity lives in dimension 0 (small steps); dimension 1 is a large nuisance (a camera offset).
    # The constant third coordinate keeps the L2 normalisation of `learned_distances` nearly a uniform scale.
    def people(ids, camera):
        return np.stack([ids * 0.1, camera * 5.0 + rng.normal(0, 1, len(ids)), np.full(len(ids), 1000.0)], 1)

    ids = np.repeat(np.arange(1, 21), 4)
    train = people(ids, rng.integers(0, 3, len(ids)))
    query_ids, gallery_ids = np.arange(1, 11), np.repeat(np.arange(1, 11), 2)
    query, gallery = people(query_ids, 0), people(gallery_ids, 2)
    args = (query_ids, np.ones(10, int), gallery, gallery_ids, np.full(20, 2))
    euclidean = reid.evaluate(query, *args)
    distances, dims = kissme.learned_distances(train, ids, query, gallery, pca_dims=2)
    learned = reid.evaluate(query, *args, distances=distances)
    assert dims == 2 and learned["rank1"] > euclidean["rank1"] + 0.3
    with pytest.raises(ValueError, match="distances"):
        reid.evaluate(query, *args, distances=distances[:, :3])


def test_linear_probe_reads_a_linear_label_and_not_a_random_one(rng):
    x = rng.normal(size=(300, 5))
    labels = (x[:, 0] > 0).astype(int) + 2 * (x[:, 1] > 0)  # four classes, linearly separable
    result = probe.score(x[:200], labels[:200], x[200:], labels[200:])
    assert result["accuracy"] > 0.9 and result["classes"] == 4 and result["test"] == 100
    noise = rng.integers(0, 4, 300)
    result = probe.score(x[:200], noise[:200], x[200:], noise[200:])
    assert result["accuracy"] < 0.45 and 0.1 < result["chance"] < 0.45
    with pytest.raises(ValueError, match="at least two classes"):
        probe.fit(x, np.zeros(300))


def test_probe_and_fg_kissme_metrics_on_a_stage1_run(stage1_run, synthetic_records):
    from keras_disentangle.serving import runtime
    from keras_disentangle.metrics import registry
    from keras_disentangle.metrics.suite import probe as probe_suite
    from keras_disentangle.metrics.suite import reid as reid_suite

    cfg, stage1 = runtime.load_stage1(stage1_run)
    inputs = registry.Inputs(registry.EvalOptions(metrics=("probe",)), cfg=cfg, stage1=stage1,
                             data_dir=synthetic_records)
    result = probe_suite.compute(inputs)
    assert set(result["probes"]) == {"identity", "camera", "background"}
    for target, by_factor in result["probes"].items():
        assert set(by_factor) == {"fg", "bg", "pose"}
        for scores in by_factor.values():
            assert 0.0 <= scores["accuracy"] <= 1.0 and 0.0 < scores["chance"] <= 1.0 and scores["classes"] >= 2
    # Identity is probed on the test split's people and scored on their query images.
    assert result["probes"]["identity"]["fg"]["classes"] == 4 and result["value"] == result["probes"][
        "identity"]["fg"]["accuracy"]
    assert any("identity" in line for line in probe_suite.table(result))
    inputs.options = registry.EvalOptions(metrics=("reid",), params={"reid_features": "fg_kissme", "pca_dims": 4})
    result = reid_suite.compute(inputs)
    assert result["dims"] == result["pca_dims"] == 4 and result["kissme_fitted_on"] == "train"
    assert "KISSME distance" in result["protocol"] and 0.0 <= result["rank1"] <= 1.0
