"""Tests of the procedural synthetic people (keras_disentangle.synthetic) and their dataset writer
(tfrecords.synthetic)."""

import itertools
import json
import math
import re

import numpy as np
import pytest
from PIL import Image

from keras_disentangle import synthetic
from tfrecords import market, synthetic_reader
from tfrecords import synthetic as writer

NAME = re.compile(r"^(\d{4})_c([1-9])s([1-9])_(\d{6})_(\d{2})\.jpg$")
ROW = re.compile(r"^([^:]+\.jpg): (\[[-0-9, ]*\]): (\[[-0-9, ]*\])$")
HEADER = "name:keypoints_y:keypoints_x"
SIZE = (128, 64)


def _parse_annotations(path):
    """Parses an annotation CSV as the fixture README specifies it; returns name -> int (18, 2)."""
    data = path.read_bytes()
    assert b"\r" not in data and data.endswith(b"\n")
    lines = data.decode().split("\n")[:-1]
    assert lines[0] == HEADER
    rows = {}
    for line in lines[1:]:
        match = ROW.match(line)
        assert match, line
        ys, xs = json.loads(match.group(2)), json.loads(match.group(3))
        assert len(ys) == len(xs) == 18 and all(isinstance(v, int) for v in ys + xs)
        # Lists are written `", "`-separated, exactly as json.dumps writes them.
        assert match.group(2) == json.dumps(ys) and match.group(3) == json.dumps(xs)
        rows[match.group(1)] = np.stack([ys, xs], axis=1)
    return rows


def _generate(out, seed=3):
    return writer.generate(out, ids=4, images_per_id=3, cameras=3, seed=seed)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    summary = _generate(root)
    factors = json.loads((root / "factors.json").read_text())
    return root, summary, factors


def _folder_names(root, folder):
    return sorted(p.name for p in (root / folder).iterdir())


def test_csv_parser_accepts_the_real_fixtures(fixtures_dir):
    rows = _parse_annotations(fixtures_dir / "market1501_mini" / "market-annotation-test.csv")
    assert len(rows) == 22


def test_layout_names_and_identity_split(dataset):
    root, summary, factors = dataset
    folders = {f: _folder_names(root, f) for f in market.IMAGE_DIRS}
    assert {f: len(n) for f, n in folders.items()} == summary["counts"]
    assert sum(summary["counts"].values()) == 12 == len(factors["images"])
    ids = {}
    for folder, names in folders.items():
        for name in names:
            match = NAME.match(name)
            assert match, name
            assert (match.group(5) == "00") == (folder == "query"), name
            ids.setdefault(folder, set()).add(int(match.group(1)))
            entry = factors["images"][name]
            assert entry["fg_id"] == int(match.group(1))
            assert entry["bg_id"] == 10 * int(match.group(2)) + int(match.group(3))
            with Image.open(root / folder / name) as image:
                assert image.format == "JPEG" and image.size == (64, 128) and image.mode == "RGB"
    assert not ids["bounding_box_train"] & ids["bounding_box_test"]
    assert ids["query"] <= ids["bounding_box_test"]
    assert len(ids["bounding_box_train"]) == len(ids["bounding_box_test"]) == 2
    assert sorted(factors["identities"]) == ["1", "2", "3", "4"]
    assert factors["format"] == synthetic_reader.FORMAT and (factors["height"], factors["width"]) == SIZE
    json.dumps(factors)  # Every parameter is plain JSON.


def test_annotation_csvs_match_the_full_skeleton(dataset):
    root, _, factors = dataset
    for split in market.SPLITS:
        rows = _parse_annotations(root / f"market-annotation-{split}.csv")
        assert sorted(rows) == _folder_names(root, market.image_dir(root, split).name)
        for name, keypoints in rows.items():
            pose = factors["images"][name]["pose"]
            full = np.asarray(pose["keypoints"])
            assert full.shape == (18, 2)
            np.testing.assert_array_equal(keypoints, synthetic.annotate(pose))
            outside = (np.floor(full + 0.5) < 0).any(1) | (np.floor(full[:, 0] + 0.5) >= 128) | (
                np.floor(full[:, 1] + 0.5) >= 64)
            missing = outside | np.asarray(pose["occluded"])
            assert ((keypoints == -1).all(1) == missing).all()
            assert ((keypoints == -1).any(1) == missing).all()
            present = ~missing
            np.testing.assert_array_equal(keypoints[present], np.floor(full[present] + 0.5))


def test_out_of_frame_and_occluded_joints_are_missing():
    pose = synthetic.sample_pose(np.random.default_rng(1))
    pose["keypoints"][10] = [130.2, 20.0]  # Rank below the frame.
    pose["keypoints"][7] = [60.0, -0.7]  # Lwri left of it.
    pose["occluded"][3] = True
    keypoints = synthetic.annotate(pose)
    assert keypoints[[3, 7, 10]].tolist() == [[-1, -1]] * 3
    assert synthetic.annotate(pose, 64, 32)[10].tolist() == [-1, -1]


def test_self_occlusion_hides_the_face_from_behind_and_the_far_arm_in_profile():
    rng = np.random.default_rng(0)
    poses = [synthetic.sample_pose(rng) for _ in range(300)]
    back = [p for p in poses if abs(abs(p["yaw"]) - math.pi) < 0.3]
    assert back and all(p["occluded"][0] and p["occluded"][14] and p["occluded"][15] for p in back)
    front = [p for p in poses if abs(p["yaw"]) < 0.3]
    assert front and not any(p["occluded"][0] for p in front)
    # Facing image right shows the right side: the left elbow is hidden behind the torso at times.
    profile = [p for p in poses if abs(p["yaw"] - math.pi / 2) < 0.3]
    assert any(p["occluded"][6] for p in profile) and not any(p["occluded"][3] for p in profile)


def test_pose_variety():
    rng = np.random.default_rng(0)
    poses = [synthetic.sample_pose(rng) for _ in range(200)]
    assert {p["view"] for p in poses} == set(synthetic.VIEWS)
    assert {p["action"] for p in poses} == {"stand", "walk", "crouch"}
    missing = [(synthetic.annotate(p) < 0).all(1).sum() for p in poses]
    assert 1.0 < np.mean(missing) < 8.0
    tops = [min(y for y, _ in p["keypoints"]) for p in poses]
    ankles = [max(p["keypoints"][10][0], p["keypoints"][13][0]) for p in poses]
    assert np.median(tops) < 25 and np.median(ankles) > 105  # The person fills the box.


def test_same_seed_gives_identical_files_and_another_seed_does_not(dataset, tmp_path):
    root, _, _ = dataset
    _generate(tmp_path / "again")
    _generate(tmp_path / "other", seed=4)
    files = sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())
    assert sorted(p.relative_to(tmp_path / "again") for p in (tmp_path / "again").rglob("*") if p.is_file()) == files
    for path in files:
        assert (root / path).read_bytes() == (tmp_path / "again" / path).read_bytes(), path
    assert (root / "factors.json").read_bytes() != (tmp_path / "other" / "factors.json").read_bytes()


def test_render_of_stored_factors_reproduces_the_jpegs(dataset):
    root, _, factors = dataset
    for name, entry in factors["images"].items():
        folder = next(f for f in market.IMAGE_DIRS if (root / f / name).exists())
        stored = np.asarray(Image.open(root / folder / name), np.float64)
        image = synthetic.render(factors["identities"][str(entry["fg_id"])],
                                 factors["backgrounds"][str(entry["bg_id"])], entry["pose"], SIZE)
        assert np.abs(stored - image).mean() < 3.0, name


def test_pairs_are_all_valid_same_identity_test_pairs(dataset):
    root, _, _ = dataset
    data = (root / "market-pairs-test.csv").read_text()
    lines = data.split("\n")
    assert lines[0] == "from,to" and lines[-1] == ""
    pairs = [tuple(line.split(",")) for line in lines[1:-1]]
    rows = _parse_annotations(root / "market-annotation-test.csv")
    valid = [n for n, kp in rows.items() if (kp[[2, 5, 8, 11]] >= 0).all()]
    expected = {(a, b) for a, b in itertools.permutations(valid, 2) if a[:4] == b[:4]}
    assert pairs and set(pairs) == expected and len(pairs) == len(expected)


def _swap_factors():
    rng = np.random.default_rng(7)
    camera = synthetic.sample_camera(rng, 1)
    bg = synthetic.sample_background(rng, camera, 2)
    pose = next(p for p in (synthetic.sample_pose(rng) for _ in range(100))
                if p["view"] == "front" and p["action"] == "walk" and not any(p["occluded"]))
    plain = {"kind": "plain", "color": [0, 0, 0], "period": 0.05, "shape": "circle"}
    fg_b = {**synthetic.sample_identity(rng), "upper": [30, 60, 200], "lower": [40, 40, 40],
            "lower_kind": "trousers", "pattern": plain, "backpack": None}
    fg_a = {**synthetic.sample_identity(rng), "upper": [220, 40, 30], "lower": [240, 220, 60],
            "lower_kind": "trousers", "pattern": plain, "hair_length": "long", "build": 1.08}
    return fg_a, fg_b, bg, pose


def test_swap_changes_the_person_only():
    fg_a, fg_b, bg, pose = _swap_factors()
    swapped, original = synthetic.render(fg_a, bg, pose, SIZE), synthetic.render(fg_b, bg, pose, SIZE)
    mask = synthetic.person_mask(fg_a, pose, SIZE) | synthetic.person_mask(fg_b, pose, SIZE)
    assert 0.1 < mask.mean() < 0.7
    np.testing.assert_array_equal(swapped[~mask], original[~mask])
    background = np.rint(synthetic.render_background(bg, SIZE)).astype(np.uint8)
    np.testing.assert_array_equal(swapped[~mask], background[~mask])
    # A's clothing on B's torso and thigh pixels.
    keypoints = np.asarray(pose["keypoints"])
    torso = np.rint(0.4 * keypoints[1] + 0.3 * (keypoints[8] + keypoints[11])).astype(int)
    thigh = np.rint((keypoints[8] + keypoints[9]) / 2).astype(int)
    for (y, x), a, b in ((torso, fg_a["upper"], fg_b["upper"]), (thigh, fg_a["lower"], fg_b["lower"])):
        for image, colour in ((swapped, a), (original, b)):
            ratio = image[y, x] / np.maximum(colour, 1.0)
            np.testing.assert_allclose(ratio[np.asarray(colour) > 100], 1.0, atol=0.15)
        assert np.abs(swapped[y, x].astype(int) - original[y, x]).max() > 80


def test_person_mask_is_where_the_render_leaves_the_background():
    fg, _, bg, pose = _swap_factors()
    image = synthetic.render(fg, bg, pose, SIZE)
    background = np.rint(synthetic.render_background(bg, SIZE)).astype(np.uint8)
    mask = synthetic.person_mask(fg, pose, SIZE)
    np.testing.assert_array_equal(image[~mask], background[~mask])
    assert (np.abs(image.astype(int) - background)[mask].max(axis=-1) > 0).mean() > 0.9


def test_face_from_the_front_hair_from_the_back():
    fg, _, bg, pose = _swap_factors()
    fg = {**fg, "skin": [230, 190, 160], "hair": [20, 20, 20], "hair_length": "short"}
    y, x = np.rint(pose["head"]).astype(int)
    front = synthetic.render(fg, bg, {**pose, "yaw": 0.0}, SIZE)[y + 1, x].astype(int)
    back = synthetic.render(fg, bg, {**pose, "yaw": math.pi}, SIZE)[y + 1, x].astype(int)
    assert front.min() > 150 and back.max() < 60


def test_render_scales_to_any_size():
    fg, _, bg, pose = _swap_factors()
    big = synthetic.render(fg, bg, pose, SIZE).astype(np.float64)
    small = synthetic.render(fg, bg, pose, (64, 32)).astype(np.float64)
    pooled = big.reshape(64, 2, 32, 2, 3).mean(axis=(1, 3))
    assert small.shape == (64, 32, 3) and np.abs(small - pooled).mean() < 4.0
    mask = synthetic.person_mask(fg, pose, (64, 32))
    assert abs(mask.mean() - synthetic.person_mask(fg, pose, SIZE).mean()) < 0.05
    with pytest.raises(ValueError, match="size"):
        synthetic.render(fg, bg, pose, (2, 64))


def test_backgrounds_vary_by_sequence_around_the_camera(dataset):
    _, _, factors = dataset
    cameras = {}
    for bg_id, bg in factors["backgrounds"].items():
        assert int(bg_id) == 10 * bg["camera"] + bg["sequence"]
        cameras.setdefault(bg["camera"], []).append(bg)
    assert sorted(cameras) == [1, 2, 3]
    for scenes in cameras.values():
        assert 2 <= len(scenes) <= 3
        assert len({s["seed"] for s in scenes}) == 1 and len({tuple(s["tint"]) for s in scenes}) == len(scenes)
    first = factors["backgrounds"]["11"]
    np.testing.assert_array_equal(synthetic.render_background(first), synthetic.render_background(dict(first)))


def test_generate_rejects_bad_arguments_and_foreign_folders(tmp_path):
    with pytest.raises(ValueError, match="`ids`.*got 1"):
        writer.generate(tmp_path / "a", ids=1)
    with pytest.raises(ValueError, match="`cameras`.*got 10"):
        writer.generate(tmp_path / "a", cameras=10)
    (tmp_path / "market" / "query").mkdir(parents=True)
    (tmp_path / "market" / "query" / "0001_c1s1_000001_00.jpg").write_bytes(b"real photo")
    with pytest.raises(ValueError, match="factors.json"):
        _generate(tmp_path / "market")
    assert (tmp_path / "market" / "query" / "0001_c1s1_000001_00.jpg").exists()


# The tool runs in this process through the same cli.run as `python -m tfrecords.synthetic` (tests/test_cli.py):
# no TensorFlow import per case.
def test_cli_refuses_an_out_of_range_size_naming_the_flag(tmp_path, capsys):
    from test_cli import run_tool

    code, _, lines = run_tool("tfrecords.synthetic", [f"--out={tmp_path / 'x'}", "--ids=0"], capsys)
    assert code == 2, lines
    assert lines[-1].startswith("tfrecords.synthetic: error: flag --ids=0:"), lines
    assert not (tmp_path / "x").exists()


def test_cli_prints_counts_and_speed(tmp_path, capsys):
    from test_cli import run_tool

    code, stdout, lines = run_tool("tfrecords.synthetic", [f"--out={tmp_path}", "--ids=2", "--images_per_id=2",
                                                           "--cameras=2", "--seed=5"], capsys)
    assert code == 0, lines
    assert "rendered: image 4/4 (100%)" in stdout
    assert "bounding_box_train: 2 images" in stdout and "images/s" in stdout
    assert (tmp_path / "factors.json").exists()
