"""Tests of the re-ID evaluation: Market's protocol on a hand-computed gallery, PCA fitted on the
train split only, the query split of the converter, and `evaluate.py --metrics=reid` end to end."""

import json
import shutil

import numpy as np
import pytest

from keras_disentangle.metrics import reid


def on_circle(angles):
    """Unit vectors at `angles`: the Euclidean order between them is the order of angle differences."""
    angles = np.asarray(angles, float)
    return np.stack([np.cos(angles), np.sin(angles)], 1) * 3.0  # scaled: evaluate normalises


# Gallery: (angle, person id, camera).
GALLERY = [(0.1, 1, 1),  # a: query 1's identity and camera: removed for query 1
           (0.2, -1, 2),  # b: junk, removed for everyone
           (0.3, 0, 3),  # c: distractor, a negative
           (0.4, 1, 2),  # d
           (0.5, 2, 2),  # e
           (0.6, 1, 3),  # f
           (0.7, 2, 1)]  # g
# Queries: (angle, person id, camera); the last has no match in the gallery.
QUERIES = [(0.0, 1, 1), (0.52, 2, 2), (0.38, 1, 3), (0.0, 3, 1)]


def toy_result():
    g, q = np.array(GALLERY), np.array(QUERIES)
    return reid.evaluate(on_circle(q[:, 0]), q[:, 1].astype(int), q[:, 2].astype(int),
                         on_circle(g[:, 0]), g[:, 1].astype(int), g[:, 2].astype(int))


def test_toy_gallery_by_hand():
    # Kept ranked lists (a/b/f removed as noted; G = true match, n = negative):
    #   query 1 (id 1, cam 1): c n, d G, e n, f G, g n   first match at rank 2
    #     AP = 1/2 [(0 + 1/2)/2 + (1/3 + 2/4)/2] = 1/3
    #   query 2 (id 2, cam 2; e removed): f n, d n, g G, c n, a n   rank 3, AP = (0 + 1/3)/2 = 1/6
    #   query 3 (id 1, cam 3; f removed): d G, c n, e n, a G, g n   rank 1
    #     AP = 1/2 [(1 + 1)/2 + (1/3 + 2/4)/2] = 17/24
    result = toy_result()
    assert result["queries"] == 3 and result["queries_without_match"] == 1 and result["gallery"] == 7
    assert result["rank1"] == pytest.approx(1 / 3)
    assert result["rank5"] == result["rank10"] == pytest.approx(1.0)
    assert result["mAP"] == pytest.approx((1 / 3 + 1 / 6 + 17 / 24) / 3)
    assert result["chance_rank1"] == pytest.approx((2 / 5 + 1 / 5 + 2 / 5) / 3)
    assert result["junk_removed"] == pytest.approx((2 + 2 + 2) / 3)


def test_same_camera_matches_and_junk_would_change_the_scores():
    """Without the removals query 1 finds its same-camera twin first: the protocol is what the
    toy numbers above measure, not an accident of the gallery."""
    g = np.array(GALLERY)
    cameras = g[:, 2].astype(int)
    cameras[0] = 4  # a now counts as a cross-camera match of query 1
    result = reid.evaluate(on_circle([0.0]), [1], [1], on_circle(g[:, 0]), g[:, 1].astype(int), cameras)
    assert result["rank1"] == 1.0
    ids = g[:, 1].astype(int)
    ids[1] = 1  # b is no longer junk but a cross-camera match at rank 2 of query 1
    result = reid.evaluate(on_circle([0.0]), [1], [1], on_circle(g[:, 0]), ids, g[:, 2].astype(int))
    assert result["rank1"] == 1.0 and result["mAP"] > 1 / 3


def test_perfect_ranking_scores_one_and_no_match_is_an_error():
    assert reid.average_precision(np.array([True, True, False])) == 1.0
    assert reid.average_precision(np.array([False, False])) == 0.0
    with pytest.raises(ValueError, match="none of the 1 queries"):
        reid.evaluate(on_circle([0.0]), [5], [1], on_circle([0.1]), [5], [1])


def test_pca_is_fitted_on_the_features_it_is_given():
    rng = np.random.default_rng(0)
    train = np.zeros((50, 4))
    train[:, 2] = rng.normal(size=50) * 10  # the train split varies along axis 2 only
    train[:, 0] = rng.normal(size=50) * 0.1
    mean, axes = reid.fit_pca(train, 1)
    assert axes.shape == (4, 1) and abs(axes[2, 0]) == pytest.approx(1.0, abs=1e-3)
    test = np.zeros((5, 4))
    test[:, 1] = np.arange(5)  # the test split varies along axis 1, which the projection ignores
    assert np.ptp(reid.project(test, mean, axes)) == pytest.approx(0.0, abs=1e-2)
    assert reid.fit_pca(train[:6], 100)[1].shape == (4, 4)  # capped at min(n - 1, d)
    assert reid.fit_pca(train[:3], 100)[1].shape == (4, 2)


def test_market_query_split_junk_and_distractors_convert(fixtures_dir, tmp_path):
    import tensorflow as tf

    from keras_disentangle.data import records
    from tfrecords import common
    from tfrecords.build import build

    root = tmp_path / "market"
    shutil.copytree(fixtures_dir / "market1501_mini", root)
    names = sorted(p.name for p in (root / "query").iterdir())[:3]
    keypoints = [(-1, -1)] * 17 + [(60, 30)]
    (root / "market-annotation-query.csv").write_text(
        common.ANNOTATION_HEADER + "\n" + "".join(common.annotation_row(n, keypoints) for n in names))
    csv = root / "market-annotation-test.csv"
    text = csv.read_text()
    for old, new in (("0025_c2s1_001776_02.jpg", "-1_c2s1_001776_02.jpg"),
                     ("0021_c1s1_002301_04.jpg", "0000_c1s1_002301_04.jpg")):
        (root / "bounding_box_test" / old).rename(root / "bounding_box_test" / new)
        text = text.replace(old, new)
    csv.write_text(text)
    summary = build("market", root, tmp_path / "out", progress_every=0)
    assert summary.records == {"train": 32, "test": 22, "query": 3}

    def read(split):
        files = [str(p) for p in (tmp_path / "out").glob(records.shard_pattern(split))]
        return {r["name"].numpy().decode(): r for r in map(records.parse_image, tf.data.TFRecordDataset(files))}

    query = read("query")
    assert sorted(query) == names
    for name, record in query.items():
        assert (record["person_id"], record["camera"]) == (int(name[:4]), int(name[6]))
        assert record["keypoints"].numpy()[17].tolist() == [60, 30]
    test = read("test")
    assert test["-1_c2s1_001776_02.jpg"]["person_id"] == -1 and test["-1_c2s1_001776_02.jpg"]["camera"] == 2
    assert test["0000_c1s1_002301_04.jpg"]["person_id"] == 0


def test_evaluate_reid_end_to_end(stage1_run, synthetic_records, synthetic_root, tmp_path, capsys):
    from test_cli import run_tool

    # evaluate.py in this process through the same cli.run as `python evaluate.py` (tests/test_cli.py).
    code, stdout, stderr = run_tool("evaluate.py", [f"--stage1_dir={stage1_run}", f"--data_dir={synthetic_records}",
                                                    "--metrics=reid", "--reid_features=fg_pca", "--pca_dims=1000",
                                                    f"--out={tmp_path}"], capsys)
    assert code == 0, stderr[-20:]
    metric = json.loads((tmp_path / "report.json").read_text())["metrics"]["reid"]
    counts = {folder: len(list((synthetic_root / folder).iterdir()))
              for folder in ("bounding_box_train", "bounding_box_test", "query")}
    # Every synthetic query has cross-camera matches or not; each is accounted for.
    assert metric["queries"] + metric["queries_without_match"] == counts["query"]
    assert metric["gallery"] == counts["bounding_box_test"]
    # PCA on the train split: capped at its size - 1, which neither query nor gallery share.
    assert metric["pca_fitted_on"] == "train" and metric["pca_dims"] == metric["dims"] == counts[
        "bounding_box_train"] - 1
    assert 0.0 <= metric["rank1"] <= metric["rank5"] <= metric["rank10"] <= 1.0 and 0.0 < metric["mAP"] <= 1.0
    assert metric["value"] == metric["rank1"] and "same camera" in metric["protocol"]
    assert "reid (fg_pca" in stdout and "mAP" in stdout


def test_records_without_a_query_split_are_refused_naming_what_to_build(tmp_path):
    from keras_disentangle import configs
    from keras_disentangle.metrics import registry
    from keras_disentangle.metrics.suite import reid as suite

    inputs = registry.Inputs(registry.EvalOptions(metrics=("reid",)), cfg=configs.get_config("synthetic", "micro"),
                             data_dir=str(tmp_path))
    with pytest.raises(ValueError, match="no 'query' records.*market-annotation-query.csv"):
        suite.compute(inputs)
