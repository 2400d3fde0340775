"""data.py (and the visualize / bench front ends over it) on small random record sets."""

import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from keras_disentangle import configs, data
from keras_disentangle.data import geometry, records, visualize
from keras_disentangle.tools import bench

# Tiny synthetic preset: records stored at 128 x 64 are resized to 64 x 32.
CFG = configs.get_config("synthetic", "tiny")
H, W = CFG.data.height, CFG.data.width
NUM_TRAIN, NUM_TEST = 22, 10
PAIRS = [(0, 1), (3, 2), (9, 4)]


@pytest.fixture(scope="module")
def record_dir(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("records"))
    # PNG, so that decoded pixels are exactly the written ones.
    bench.write_random_records(directory, CFG.data, "train", NUM_TRAIN, num_shards=2, image_format="png")
    test = bench.write_random_records(
        directory, CFG.data, "test", NUM_TEST, num_shards=1, image_format="png", seed=1)
    fields = [{k: v for k, v in example.items() if k != "pixels"} for example in test]
    with tf.io.TFRecordWriter(os.path.join(directory, records.pairs_name("test"))) as writer:
        for source, target in PAIRS:
            writer.write(records.serialize_pair(fields[source], fields[target]))
    return directory, test


def _numpy(batch):
    return {key: value.numpy() for key, value in batch.items()}


def _check_batch(batch, size):
    expected = {
        "image": (tf.float32, [H, W, 3]), "heatmaps": (tf.float32, [H, W, 18]),
        "body_mask": (tf.float32, [H, W, 1]), "roi_boxes": (tf.float32, [7, 4]),
        "roi_visibility": (tf.float32, [7]), "pose_vector": (tf.float32, [54]),
        "keypoints": (tf.float32, [18, 2]), "person_id": (tf.int64, []), "camera": (tf.int64, []),
        "fg_id": (tf.int64, []), "bg_id": (tf.int64, []), "name": (tf.string, []), "factors": (tf.string, []),
    }
    assert set(batch) == set(expected)
    for key, (dtype, shape) in expected.items():
        assert batch[key].dtype == dtype and batch[key].shape.as_list() == [size] + shape, key
    values = _numpy(batch)
    assert values["image"].min() >= -1 and values["image"].max() <= 1 and values["image"].std() > 0.1
    assert set(np.unique(values["heatmaps"])) == {-1.0, 1.0}
    assert set(np.unique(values["body_mask"])) == {0.0, 1.0}
    assert set(np.unique(values["roi_visibility"])) <= {0.0, 1.0}
    boxes = values["roi_boxes"]
    assert boxes.min() >= 0 and boxes.max() <= 1
    assert (boxes[..., 2] >= boxes[..., 0]).all() and (boxes[..., 3] >= boxes[..., 1]).all()
    assert (values["fg_id"] == -1).all() and (values["factors"] == b"").all()
    return values


def _scaled(stored: np.ndarray) -> np.ndarray:
    """Stored 128 x 64 keypoints at H x W, pixel centre to pixel centre; missing stay -1."""
    size = np.array([H, W], np.float32)
    scaled = np.clip((stored + 0.5) * size / [128, 64] - 0.5, 0, size - 1)
    return np.where(stored >= 0, scaled, -1)


def test_eval_examples_follow_the_records(record_dir):
    directory, test = record_dir
    written = {example["name"]: example for example in test}
    batches = [_numpy(batch) for batch in data.eval_dataset(directory, CFG, split="test", batch_size=4)]
    assert [len(batch["name"]) for batch in batches] == [4, 4, 2]
    _check_batch(next(iter(data.eval_dataset(directory, CFG, split="test", batch_size=4))), 4)
    for batch in batches:
        for index, name in enumerate(batch["name"]):
            example = written[name.decode()]
            stored = np.asarray(example["keypoints"], np.float32)
            np.testing.assert_allclose(batch["keypoints"][index], _scaled(stored), atol=1e-5)
            pixels = tf.image.resize(example["pixels"], [H, W], antialias=True).numpy()
            np.testing.assert_allclose(batch["image"][index], np.clip(pixels / 127.5 - 1, -1, 1), atol=1e-5)
            assert batch["person_id"][index] == example["person_id"]
            assert batch["camera"][index] == example["camera"]


def test_images_at_the_stored_size_are_not_resampled(record_dir):
    directory, test = record_dir
    full = configs.get_config("synthetic", "full")  # 128 x 64, the stored size
    batch = next(iter(data.eval_dataset(directory, full, split="test", batch_size=2)))
    pixels = np.stack([example["pixels"] for example in test[:2]]).astype(np.float32)
    np.testing.assert_array_equal(batch["image"].numpy(), pixels / np.float32(127.5) - 1)
    np.testing.assert_array_equal(batch["keypoints"].numpy()[1], test[1]["keypoints"])


def test_pose_features_equal_the_geometry_ops(record_dir):
    # data.py runs the geometry under XLA; it must give exactly what the plain ops give.
    directory, _ = record_dir
    batch = _numpy(next(iter(data.eval_dataset(directory, CFG, split="train", batch_size=NUM_TRAIN))))
    keypoints = batch["keypoints"]
    d = CFG.data
    boxes, visibility = geometry.roi_boxes(keypoints, H, W, pad=d.roi_pad, pad_single=d.roi_pad_single)
    np.testing.assert_array_equal(batch["heatmaps"], geometry.pose_heatmaps(keypoints, H, W, d.heatmap_radius))
    np.testing.assert_array_equal(
        batch["body_mask"], geometry.body_mask(keypoints, H, W, d.mask_radius, d.mask_close_size))
    np.testing.assert_allclose(batch["roi_boxes"], boxes, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(batch["roi_visibility"], visibility)
    np.testing.assert_allclose(batch["pose_vector"], geometry.pose_vector(keypoints, H, W, d.pose_missing_coordinate),
                               rtol=0, atol=1e-6)


def test_train_batches_are_full_and_repeat(record_dir):
    directory, _ = record_dir
    dataset = data.train_dataset(directory, CFG, batch_size=5)
    assert dataset.element_spec["image"].shape.as_list() == [5, H, W, 3]
    names = []
    for batch in dataset.take(6):  # 30 examples from 22 records: the split repeats
        _check_batch(batch, 5)
        names.extend(batch["name"].numpy())
    assert len(set(names)) > 15 and len(names) == 30


def test_flipped_examples_mirror_image_keypoints_and_heatmaps(record_dir):
    directory, _ = record_dir
    reference = _numpy(next(iter(data.eval_dataset(directory, CFG, split="train", batch_size=NUM_TRAIN))))
    by_name = {name: index for index, name in enumerate(reference["name"])}
    batches = data.train_dataset(directory, CFG, batch_size=2, shuffle=False, repeat=False, seed=3)
    flipped = 0
    for batch in map(_numpy, batches):
        for index, name in enumerate(batch["name"]):
            ref = {key: value[by_name[name]] for key, value in reference.items()}
            got = {key: value[index] for key, value in batch.items()}
            if np.array_equal(got["keypoints"], ref["keypoints"]):
                np.testing.assert_array_equal(got["image"], ref["image"])
                continue
            flipped += 1
            np.testing.assert_array_equal(got["keypoints"], geometry.flip_keypoints(ref["keypoints"], W))
            np.testing.assert_allclose(got["image"], ref["image"][:, ::-1], atol=1e-5)
            np.testing.assert_array_equal(
                got["heatmaps"], ref["heatmaps"][:, ::-1][..., list(geometry.FLIP_PERMUTATION)])
            np.testing.assert_array_equal(got["body_mask"], ref["body_mask"][:, ::-1])
            for joint, (y, x) in enumerate(got["keypoints"]):
                if y >= 0:  # every present joint sits at the centre of its own disk
                    assert got["heatmaps"][int(round(y)), int(round(x)), joint] == 1
    assert 0 < flipped < NUM_TRAIN


def test_pairs_dataset(record_dir):
    directory, test = record_dir
    test_names = [example["name"] for example in test]
    batches = list(data.pairs_dataset(directory, CFG, batch_size=2))
    assert [len(source["name"]) for source, _ in batches] == [2, 1]
    source, target = batches[0]
    _check_batch(source, 2)
    _check_batch(target, 2)
    got = [(s.decode(), t.decode()) for source, target in batches
           for s, t in zip(source["name"].numpy(), target["name"].numpy())]
    assert got == [(test_names[a], test_names[b]) for a, b in PAIRS]
    stored = np.asarray(test[PAIRS[1][1]]["keypoints"], np.float32)
    np.testing.assert_allclose(batches[0][1]["keypoints"][1].numpy(), _scaled(stored), atol=1e-5)


def test_missing_shards_raise_a_clear_error(tmp_path):
    pattern = r"train-\?\?\?\?\?-of-\?\?\?\?\?\.tfrecord"
    with pytest.raises(ValueError, match=rf"no 'train' shards in '{tmp_path}'.*{pattern}"):
        data.train_dataset(str(tmp_path), CFG)
    with pytest.raises(ValueError, match=r"no 'test' shards"):
        data.eval_dataset(str(tmp_path), CFG)
    with pytest.raises(ValueError, match=r"no 'test' pairs.*test-pairs\.tfrecord"):
        data.pairs_dataset(str(tmp_path), CFG)


def test_visualize_writes_a_contact_sheet(record_dir, tmp_path):
    directory, _ = record_dir
    out = tmp_path / "sheets" / "dataset.png"
    assert visualize.write_dataset_sheet(directory, CFG, str(out), n=6, split="test") == 6
    sheet = np.asarray(Image.open(out))
    # 6 tiles of 3 panels enlarged 4x (256 x 128), 4 tiles per row -> 2 rows.
    assert sheet.shape[2] == 3 and 2 * 256 < sheet.shape[0] < 2 * 256 + 100
    assert 4 * 3 * 128 < sheet.shape[1] < 4 * 3 * 128 + 100
    assert len(np.unique(sheet.reshape(-1, 3), axis=0)) > 100
    with pytest.raises(ValueError, match="no 'val' shards"):
        visualize.write_dataset_sheet(directory, CFG, str(out), split="val")


def test_image_grid_layout():
    red = np.zeros((8, 6, 3), np.uint8)
    red[..., 0] = 255
    grid = visualize.image_grid([[red, red], [red]], spacing=2)
    assert grid.shape == (2 * 10, 2 * 8, 3)
    np.testing.assert_array_equal(grid[:8, :6], red)
    assert (grid[10:18, 8:14] == 255).all()  # the missing cell stays blank
    labelled = visualize.image_grid([[red, red], [red, red]], row_labels=["a", "b"], column_titles=["x", "y"])
    assert labelled.shape[0] > grid.shape[0] and labelled.shape[1] > grid.shape[1]
    with pytest.raises(ValueError, match="image 1"):
        visualize.image_grid([[red, red[:4]]])
    with pytest.raises(ValueError, match="column_titles"):
        visualize.image_grid([[red, red]], column_titles=["x"])


def test_bench_input_measurement(record_dir, capsys):
    directory, _ = record_dir
    settings = bench.Settings(cfg=CFG, data_dir=directory, batch_size=4, warmup=1, windows=2, window_batches=2)
    (result,) = bench.run(["input"], settings, {"dataset": "synthetic", "scale": "tiny"})
    assert result["records_per_s"] > 0 and result["batch_shapes"]["heatmaps"] == [4, H, W, 18]
    assert '"what": "input"' in capsys.readouterr().out
    with pytest.raises(ValueError, match="unknown measurements"):
        bench.run(["nope"], settings, {})


def _mirrored_by_name(keypoints: np.ndarray) -> np.ndarray:
    """The pose of the mirrored image, built from the joint names: x -> W - 1 - x, and each R joint
    takes the place of its L namesake (independent of geometry.FLIP_PERMUTATION)."""
    names = list(geometry.KEYPOINT_NAMES)
    other = {"R": "L", "L": "R"}
    mirrored = np.where(keypoints >= 0, np.stack([keypoints[:, 0], W - 1 - keypoints[:, 1]], -1), -1)
    return mirrored[[names.index(other.get(n[0], n[0]) + n[1:] if n[0] in other else n) for n in names]]


def test_pose_dataset_mirrors_poses_with_left_and_right_swapped(record_dir):
    directory, _ = record_dir
    reference = _numpy(next(iter(data.eval_dataset(directory, CFG, split="train", batch_size=NUM_TRAIN))))
    missing = CFG.data.pose_missing_coordinate
    plain = geometry.pose_vector(reference["keypoints"], H, W, missing).numpy()
    mirrored = geometry.pose_vector(np.stack([_mirrored_by_name(k) for k in reference["keypoints"]]), H, W,
                                    missing).numpy()
    # Every record mirrors to another pose (they are not symmetric), so each vector is one or the other.
    assert min(np.abs(a - b).max() for a, b in zip(plain, mirrored)) > 1e-3
    kinds = []
    for vector in next(iter(data.pose_dataset(directory, CFG, batch_size=40, seed=3)))["pose_vector"].numpy():
        if np.abs(plain - vector).max(1).min() < 1e-5:
            kinds.append("plain")
        else:
            assert np.abs(mirrored - vector).max(1).min() < 1e-5, (
                "a pose vector that is neither a record's pose nor its mirror image with left and right swapped")
            kinds.append("mirrored")
    assert 5 < kinds.count("mirrored") < 35, f"{kinds.count('mirrored')} of 40 poses mirrored, expected about half"
