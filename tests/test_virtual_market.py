"""Tests of the Virtual Market writer: Market's layout that the converter reads, identities = sampled FG
codes, poses = real training keypoints, and the re-ID trainer / evaluation on it (2 steps)."""

import numpy as np
import pytest

from keras_disentangle import configs


@pytest.fixture(scope="module")
def virtual_market(stage2_runs, synthetic_records, tmp_path_factory):
    from keras_disentangle.apps import virtual_market
    from keras_disentangle.serving import runtime

    models = runtime.load_stage2([stage2_runs["fg"], stage2_runs["bg"]])
    keypoints, stored_hw = virtual_market.training_keypoints(synthetic_records)
    out = tmp_path_factory.mktemp("vm")
    vm = configs.VirtualMarketConfig(ids=3, images_per_id=4, seed=5, cameras=2, batch_size=5)
    summary = virtual_market.write(models, keypoints, stored_hw, out, vm)
    return {"out": out, "summary": summary, "keypoints": keypoints, "models": models, "stored_hw": stored_hw,
            "vm": vm}


def test_layout_names_annotations_and_pairs(virtual_market):
    from tfrecords import common, market

    out = virtual_market["out"]
    assert virtual_market["summary"] == {"images": 12, "ids": 3, "pairs": 12}
    names = sorted(p.name for p in market.image_dir(out, "train").iterdir())
    assert len(names) == 12 and names[0] == "0001_c1s1_000000_01.jpg" and names[-1] == "0003_c2s1_000003_01.jpg"
    assert sorted({n[:4] for n in names}) == ["0001", "0002", "0003"]
    annotations = common.read_annotation_csv(market.annotation_csv(out, "train"))
    assert sorted(a.name for a in annotations.entries) == names
    # Every pose is one of the real training poses, as stored.
    real = {tuple(map(tuple, k)) for k in virtual_market["keypoints"].tolist()}
    assert all(a.keypoints in real for a in annotations.entries)
    pairs = common.read_pairs_csv(market.pairs_csv(out, "train"))
    assert len(pairs) == 12 and all(p.source[:4] == p.target[:4] and p.source != p.target for p in pairs)
    assert not market.image_dir(out, "test").exists()


def test_converter_reads_it_like_market(virtual_market, tmp_path):
    import tensorflow as tf

    from keras_disentangle.data import records
    from tfrecords.build import build

    summary = build("market", virtual_market["out"], tmp_path, progress_every=0)
    assert summary.records == {"train": 12} and summary.pairs == {"train": 12}
    files = [str(p) for p in tmp_path.glob(records.shard_pattern("train"))]
    parsed = [records.parse_image(r) for r in tf.data.TFRecordDataset(files)]
    assert sorted(int(r["person_id"]) for r in parsed) == [1] * 4 + [2] * 4 + [3] * 4
    assert {(int(r["height"]), int(r["width"])) for r in parsed} == {virtual_market["stored_hw"]}


def test_one_fg_code_per_identity_and_the_seed_fixes_the_images(virtual_market, tmp_path):
    from PIL import Image

    from keras_disentangle.apps import virtual_market as vm_module
    from tfrecords import market

    models, vm = virtual_market["models"], virtual_market["vm"]
    fg = models.sample_embedding("fg", vm.ids, vm.seed).numpy()
    assert len({tuple(np.round(row, 5)) for row in fg}) == vm.ids
    vm_module.write(models, virtual_market["keypoints"], virtual_market["stored_hw"], tmp_path, vm)
    for name in ("0001_c1s1_000000_01.jpg", "0003_c2s1_000003_01.jpg"):
        first = np.asarray(Image.open(market.image_dir(virtual_market["out"], "train") / name))
        again = np.asarray(Image.open(market.image_dir(tmp_path, "train") / name))
        np.testing.assert_array_equal(first, again)
    foreign = tmp_path / "foreign"
    (foreign / "bounding_box_train").mkdir(parents=True)
    (foreign / "bounding_box_train" / "x.jpg").write_bytes(b"")
    with pytest.raises(ValueError, match="already holds images"):
        vm_module.write(models, virtual_market["keypoints"], virtual_market["stored_hw"], foreign, vm)


def test_reid_trainer_trains_resumes_and_evaluates(synthetic_records, tmp_path):
    from keras_disentangle.reid import evaluate, train

    cfg = configs.reid_config("small", small_channels=(8, 16), feature_dim=8, batch_ids=2, images_per_id=2,
                              steps=2, triplet_weight=1.0, log_every=1, checkpoint_every=1)
    lines = []
    summary = train.train(synthetic_records, str(tmp_path), cfg, log=lines.append)
    assert summary["step"] == 2 and np.isfinite(summary["loss"]) and summary["classes"] == 4
    summary = train.train(synthetic_records, str(tmp_path), configs.reid_config("small", **{
        **{k: getattr(cfg, k) for k in ("small_channels", "feature_dim", "batch_ids", "images_per_id")},
        "steps": 3}), log=lines.append)
    assert summary["step"] == 3 and any(line.startswith("Resumed from") for line in lines)
    result = evaluate.evaluate(str(tmp_path), synthetic_records, fit_dir=synthetic_records, pca_dims=4)
    for scores in (result["euclidean"], result["kissme"]):
        assert 0.0 <= scores["rank1"] <= scores["rank10"] <= 1.0 and scores["queries"] > 0
    assert result["kissme"]["pca_dims"] == 4
    with pytest.raises(Exception, match="another network"):
        train.train(synthetic_records, str(tmp_path), configs.reid_config("small", steps=4), log=lines.append)


def test_reid_trainer_refuses_bad_flags_and_data_in_one_line(tmp_path, capsys):
    from test_cli import run_tool

    from keras_disentangle.reid import train

    # In this process through the tool's cli.run (tests/test_cli.py): the exit code and the line are the claim.
    code, _, lines = run_tool("keras_disentangle.reid.train", [f"--data_dir={tmp_path}", f"--logdir={tmp_path / 'run'}",
                                                               "--backbone=vgg"], capsys)
    stderr = "\n".join(lines)
    assert code == 2 and "backbone" in stderr and "Traceback" not in stderr
    # A runtime error (exit 1 by `cli.run`): no train records.
    with pytest.raises(ValueError, match="no 'train' shards"):
        train.train(str(tmp_path), str(tmp_path / "run"), configs.reid_config("small"))
