"""Tests of `tfrecords.build` and its readers on the shared real-photo fixtures and a fake synthetic root."""

import json
import pathlib
import re
import shutil

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from keras_disentangle import synthetic
from keras_disentangle.data import records
from tfrecords import common, deepfashion
from tfrecords import synthetic as writer
from tfrecords.build import BadInput, Reason, build


MARKET_TEST_CSV = "market-annotation-test.csv"
# Row 2 of the test CSV (the first data row); this image is in no test pair.
VICTIM = "0025_c2s1_001776_02.jpg"
# Both fixture test pairs use this image.
PAIRED = "0024_c2s1_001626_02.jpg"
# A query image: in no split folder, so it never becomes a record.
QUERY = "0025_c3s1_002001_00.jpg"


def csv_keypoints(path):
    """{name: [[y, x]] * 18} read independently of the converter's parser."""
    lines = pathlib.Path(path).read_text().splitlines()
    result = {}
    for line in lines[1:]:
        name, ys, xs = line.split(":")
        result[name.strip()] = [[y, x] for y, x in zip(json.loads(ys), json.loads(xs))]
    return result


def csv_pairs(path):
    return [tuple(line.split(",")) for line in pathlib.Path(path).read_text().splitlines()[1:]]


def to_python(example):
    return {key: value.numpy() for key, value in example.items()}


def read_images(out, split):
    files = sorted(str(path) for path in pathlib.Path(out).glob(records.shard_pattern(split)))
    return [to_python(records.parse_image(s)) for s in tf.data.TFRecordDataset(files)]


def read_pairs(out, split):
    dataset = tf.data.TFRecordDataset(str(pathlib.Path(out) / records.pairs_name(split)))
    return [tuple(map(to_python, records.parse_pair(s))) for s in dataset]


def by_name(examples):
    return {example["name"].decode(): example for example in examples}


@pytest.fixture(scope="module")
def market_build(fixtures_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("market_records")
    return build("market", fixtures_dir / "market1501_mini", out, progress_every=0), out


@pytest.fixture(scope="module")
def deepfashion_build(fixtures_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("deepfashion_records")
    return build("deepfashion", fixtures_dir / "deepfashion_mini", out, progress_every=0), out


@pytest.fixture
def market_copy(fixtures_dir, tmp_path):
    root = tmp_path / "market"
    shutil.copytree(fixtures_dir / "market1501_mini", root)
    return root


def test_market_counts_and_files(market_build):
    summary, out = market_build
    assert summary.records == {"train": 32, "test": 22}
    assert summary.pairs == {"test": 2}
    assert summary.shards == {"train": 1, "test": 1}
    assert not summary.skipped_by_reason()
    assert sorted(path.name for path in out.iterdir()) == [
        "test-00000-of-00001.tfrecord", "test-pairs.tfrecord", "train-00000-of-00001.tfrecord"]


@pytest.mark.parametrize("split", ["train", "test"])
def test_market_records_round_trip(market_build, fixtures_dir, split):
    _, out = market_build
    root = fixtures_dir / "market1501_mini"
    expected = csv_keypoints(root / f"market-annotation-{split}.csv")
    examples = by_name(read_images(out, split))
    assert examples.keys() == expected.keys()
    for name, example in examples.items():
        path = root / f"bounding_box_{split}" / name
        assert example["image"] == path.read_bytes()
        decoded = tf.io.decode_image(example["image"], channels=3).numpy()
        np.testing.assert_array_equal(decoded, tf.io.decode_image(path.read_bytes(), channels=3).numpy())
        assert decoded.shape == (128, 64, 3)
        assert example["keypoints"].tolist() == expected[name]
        assert (example["height"], example["width"]) == (128, 64)
        assert example["person_id"] == int(name[:4])
        assert example["camera"] == int(name[6])
        assert (example["fg_id"], example["bg_id"], example["factors"]) == (-1, -1, b"")


def test_market_pairs_round_trip(market_build, fixtures_dir):
    _, out = market_build
    images = by_name(read_images(out, "test"))
    pairs = read_pairs(out, "test")
    expected = csv_pairs(fixtures_dir / "market1501_mini" / "market-pairs-test.csv")
    assert [(s["name"].decode(), t["name"].decode()) for s, t in pairs] == expected
    for source, target in pairs:
        for half in (source, target):
            record = images[half["name"].decode()]
            assert half["image"] == record["image"]
            assert half["keypoints"].tolist() == record["keypoints"].tolist()
            assert half["person_id"] == record["person_id"]


def test_deepfashion_records_and_pairs(deepfashion_build, fixtures_dir):
    summary, out = deepfashion_build
    root = fixtures_dir / "deepfashion_mini"
    assert summary.records == {"test": 25}
    assert summary.pairs == {"test": 48}
    assert not summary.skipped_by_reason()
    expected = csv_keypoints(root / "fasion-annotation-test.csv")
    examples = by_name(read_images(out, "test"))
    assert examples.keys() == expected.keys()
    keys = sorted({re.search(r"id\d{10}", name).group(0) for name in expected})
    assert len(keys) == 9
    for name, example in examples.items():
        path = root / "test" / name
        assert example["image"] == path.read_bytes()
        assert tf.io.decode_image(example["image"]).shape == (256, 256, 3)
        assert example["keypoints"].tolist() == expected[name]
        assert example["person_id"] == keys.index(re.search(r"id\d{10}", name).group(0))
        assert example["camera"] == -1
    pairs = read_pairs(out, "test")
    names = [(s["name"].decode(), t["name"].decode()) for s, t in pairs]
    assert names == csv_pairs(root / "fasion-pairs-test.csv")
    # Every fixture pair shows one garment from two views, so both halves share the person id.
    assert all(s["person_id"] == t["person_id"] for s, t in pairs)


def test_garment_key():
    assert deepfashion.garment_key("fashionMENShirts_Polosid0000186605_1front.jpg") == "id0000186605"
    assert deepfashion.garment_key("fashionMENShirts_Polos_1front.jpg") is None


def test_shards_round_robin_capped_and_replaced(fixtures_dir, tmp_path):
    root = fixtures_dir / "market1501_mini"
    summary = build("market", root, tmp_path, splits=["test"], shards=4, progress_every=0)
    assert summary.shards == {"test": 4}
    files = sorted(tmp_path.glob(records.shard_pattern("test")))
    assert [path.name for path in files] == [records.shard_name("test", i, 4) for i in range(4)]
    assert [sum(1 for _ in tf.data.TFRecordDataset(str(path))) for path in files] == [6, 6, 5, 5]
    # More shards than records: one record per shard, and the 4-shard files of the last run go.
    summary = build("market", root, tmp_path, splits=["test"], shards=40, progress_every=0)
    assert summary.shards == {"test": 22}
    assert len(list(tmp_path.glob(records.shard_pattern("test")))) == 22
    assert len(read_images(tmp_path, "test")) == 22
    assert not list(tmp_path.glob(".build-*"))


def _drop_last_y(line):
    name, ys, xs = line.split(":")
    return ":".join([name, ys.rsplit(",", 1)[0] + "]", xs])


def _edit_row(name, edit):
    def inject(root):
        path = root / MARKET_TEST_CSV
        lines = path.read_text().splitlines(keepends=True)
        lines = [edit(line.rstrip("\n")) + "\n" if line.startswith(name) else line for line in lines]
        path.write_text("".join(lines))
    return inject


def _write_jpeg(path, height, width):
    Image.fromarray(np.full((height, width, 3), 128, np.uint8)).save(path, quality=90)


def _truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


BAD_ROW_CASES = {
    "17_keypoints": (_edit_row(VICTIM, _drop_last_y), Reason.BAD_ROW, "keypoints_y has 17 values"),
    "non_integer": (_edit_row(VICTIM, lambda line: line.replace("[32,", "[32.5,")), Reason.BAD_ROW,
                    "keypoints_x[0] is '32.5'"),
    "keypoint_outside": (_edit_row(VICTIM, lambda line: line.replace("[16,", "[128,")), Reason.KEYPOINT_OUTSIDE,
                         "keypoint 0 (y=128, x=32) is outside"),
    "field_count": (_edit_row(VICTIM, lambda line: line + ": [0]"), Reason.BAD_ROW, "4 ':'-separated fields"),
    "missing_image": (lambda root: (root / "bounding_box_test" / VICTIM).unlink(), Reason.MISSING_IMAGE,
                      "image file does not exist"),
    "corrupt_jpeg": (lambda root: _truncate(root / "bounding_box_test" / VICTIM), Reason.CORRUPT_IMAGE,
                     "cannot decode image"),
    "not_an_image": (lambda root: (root / "bounding_box_test" / VICTIM).write_text("hello"),
                     Reason.CORRUPT_IMAGE, "not a JPEG or PNG"),
    "wrong_size": (lambda root: _write_jpeg(root / "bounding_box_test" / VICTIM, 64, 64), Reason.WRONG_SIZE,
                   "image is 64x64 (HxW), expected 128x64"),
}


@pytest.mark.parametrize("case", sorted(BAD_ROW_CASES))
def test_bad_row_stops_or_is_skipped(market_copy, tmp_path, case):
    inject, reason, message = BAD_ROW_CASES[case]
    inject(market_copy)
    out = tmp_path / "out"
    with pytest.raises(BadInput) as caught:
        build("market", market_copy, out, progress_every=0)
    error = caught.value
    assert (pathlib.Path(error.file).name, error.row, error.reason) == (MARKET_TEST_CSV, 2, reason)
    assert str(error).startswith(f"{market_copy / MARKET_TEST_CSV}:2: ")
    assert message in str(error)
    if reason in (Reason.MISSING_IMAGE, Reason.CORRUPT_IMAGE, Reason.WRONG_SIZE):
        assert str(market_copy / "bounding_box_test" / VICTIM) in str(error)
    assert list(out.iterdir()) == []  # a failed run publishes nothing

    summary = build("market", market_copy, out, skip_bad=True, progress_every=0)
    assert summary.records == {"train": 32, "test": 21}
    assert summary.pairs == {"test": 2}
    assert summary.skipped_by_reason() == {reason: 1}
    assert VICTIM not in by_name(read_images(out, "test"))


def test_pair_naming_an_image_without_record(market_copy, tmp_path):
    with open(market_copy / "market-pairs-test.csv", "a") as pairs:
        pairs.write(f"{QUERY},{VICTIM}\n")
    expected = rf"market-pairs-test.csv:4: {QUERY} has no test record \(market-annotation-test.csv has no row"
    with pytest.raises(BadInput, match=expected):
        build("market", market_copy, tmp_path / "out", progress_every=0)
    summary = build("market", market_copy, tmp_path / "out", skip_bad=True, progress_every=0)
    assert (summary.records["test"], summary.pairs["test"]) == (22, 2)
    assert summary.skipped_by_reason() == {Reason.PAIR_WITHOUT_RECORD: 1}


def test_skipped_image_drops_its_pairs(market_copy, tmp_path):
    _truncate(market_copy / "bounding_box_test" / PAIRED)
    summary = build("market", market_copy, tmp_path, skip_bad=True, progress_every=0)
    assert (summary.records["test"], summary.pairs["test"]) == (21, 0)
    assert summary.skipped == {"train": {}, "test": {Reason.CORRUPT_IMAGE: 1, Reason.PAIR_WITHOUT_RECORD: 2}}


def test_cli_reports_file_and_row_then_skips(market_copy, tmp_path, capsys):
    # In this process through the same cli.run as `python -m tfrecords.build` (tests/test_cli.py).
    from test_cli import run_tool

    _edit_row(VICTIM, _drop_last_y)(market_copy)
    command = ["--dataset=market", f"--root={market_copy}", f"--out={tmp_path / 'out'}"]
    code, _, lines = run_tool("tfrecords.build", command, capsys)
    assert code == 1
    assert "Traceback" not in "\n".join(lines)
    assert lines[-1] == f"{market_copy / MARKET_TEST_CSV}:2: keypoints_y has 17 values, expected 18"

    code, stdout, lines = run_tool("tfrecords.build", command + ["--skip_bad", "--shards=2"], capsys)
    assert code == 0, lines
    assert stdout.splitlines() == [
        "train: 32 records in 2 shard(s), 0 skipped",
        "test: 21 records in 2 shard(s), 2 pairs, 1 skipped",
        "skipped by reason:",
        "  bad row: 1 (test 1)",
    ]
    assert f"skipped: {market_copy / MARKET_TEST_CSV}:2: keypoints_y has 17 values" in "\n".join(lines)


def test_unannotated_images_are_counted_not_fatal(market_copy, tmp_path):
    shutil.copy(market_copy / "query" / QUERY, market_copy / "bounding_box_test")
    summary = build("market", market_copy, tmp_path, progress_every=0)
    assert summary.records == {"train": 32, "test": 22}
    assert summary.skipped_by_reason() == {Reason.NO_ANNOTATION: 1}


def test_split_level_problems_stop_even_with_skip_bad(market_copy, tmp_path):
    path = market_copy / MARKET_TEST_CSV
    path.write_text(path.read_text().replace("name:keypoints_y:keypoints_x", "name,keypoints_y,keypoints_x"))
    with pytest.raises(BadInput, match=r"test.csv:1: header is 'name,keypoints_y,keypoints_x', expected"):
        build("market", market_copy, tmp_path, skip_bad=True, progress_every=0)
    shutil.rmtree(market_copy / "bounding_box_train")
    with pytest.raises(BadInput, match="image folder of split 'train' does not exist"):
        build("market", market_copy, tmp_path, splits=["train"], skip_bad=True, progress_every=0)
    with pytest.raises(ValueError, match="split='val'"):
        build("market", market_copy, tmp_path, splits=["val"])


@pytest.mark.parametrize("dataset, message", [
    ("deepfashion", r"market1501_mini: no annotation CSV of any split \(train, test\) found; is this a deepfashion"),
    ("synthetic", r"market1501_mini/factors.json: file does not exist"),
])
def test_root_of_another_layout_is_refused(fixtures_dir, tmp_path, dataset, message):
    with pytest.raises(BadInput, match=message):
        build(dataset, fixtures_dir / "market1501_mini", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_crlf_bom_and_blank_lines_are_accepted(market_copy, tmp_path):
    path = market_copy / MARKET_TEST_CSV
    text = path.read_text().replace("\n", "\r\n")
    path.write_bytes(b"\xef\xbb\xbf" + (text + "\r\n").encode())
    summary = build("market", market_copy, tmp_path, splits=["test"], progress_every=0)
    assert summary.records == {"test": 22}
    assert read_images(tmp_path, "test")[1]["name"] == b"0024_c2s1_001626_02.jpg"


def test_duplicate_annotation_row_is_bad(market_copy):
    path = market_copy / MARKET_TEST_CSV
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines + [lines[1]]) + "\n")
    annotations = common.read_annotation_csv(path)
    assert isinstance(annotations.entries[-1], BadInput)
    assert str(annotations.entries[-1]).endswith(f":24: second row for {VICTIM} (first at row 2)")


def test_extra_pairs_file(market_copy, tmp_path):
    shutil.copy(market_copy / "market-pairs-extra.csv", market_copy / "market-pairs-test.csv")
    summary = build("market", market_copy, tmp_path, splits=["test"], progress_every=0)
    assert summary.pairs == {"test": 18}
    pairs = read_pairs(tmp_path, "test")
    assert [(s["name"].decode(), t["name"].decode()) for s, t in pairs] == csv_pairs(
        market_copy / "market-pairs-extra.csv")
    assert all(s["person_id"] == t["person_id"] and s["name"] != t["name"] for s, t in pairs)


def make_fake_synthetic(root, height=32, width=16, seed=0):
    """A Market-layout root with factors.json per docs/CONTRACTS.md and small PIL-written JPEGs."""
    rng = np.random.default_rng(seed)
    images = {}
    for split, ids in (("train", (1, 2)), ("test", (3, 4))):
        folder = root / f"bounding_box_{split}"
        folder.mkdir(parents=True)
        rows = ["name:keypoints_y:keypoints_x"]
        for person in ids:
            for index in range(2):
                name = f"{person:04d}_c{index + 1}s1_{index:06d}_01.jpg"
                pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / name, quality=90)
                ys, xs = rng.integers(0, height, 18), rng.integers(0, width, 18)
                ys[[3, 17]] = xs[[3, 17]] = -1
                rows.append(f"{name}: {json.dumps(ys.tolist())}: {json.dumps(xs.tolist())}")
                pose = {"yaw": float(rng.uniform(-3, 3)), "keypoints": rng.normal(size=(18, 2)).tolist(),
                        "view": "front", "occluded": [False] * 18}
                images[name] = {"fg_id": person, "bg_id": 10 + index, "pose": pose}
        (root / f"market-annotation-{split}.csv").write_text("\n".join(rows) + "\n")
    (root / "market-pairs-test.csv").write_text("from,to\n0003_c1s1_000000_01.jpg,0003_c2s1_000001_01.jpg\n")
    factors = {
        "format": "keras-disentangle-synthetic/1", "seed": seed, "height": height, "width": width,
        "identities": {str(i): {"skin": rng.integers(0, 256, 3).tolist(), "hair": 0.1 * i}
                       for i in range(1, 5)},
        "backgrounds": {str(b): {"wall": [b, b, b], "tint": 0.01 * b} for b in (10, 11)},
        "images": images,
    }
    (root / "factors.json").write_text(json.dumps(factors))
    return factors


def test_synthetic_records_carry_factors(tmp_path):
    root = tmp_path / "synthetic"
    factors = make_fake_synthetic(root)
    out = tmp_path / "out"
    summary = build("synthetic", root, out, progress_every=0)
    assert (summary.records, summary.pairs) == ({"train": 4, "test": 4}, {"test": 1})
    for split in ("train", "test"):
        for example in read_images(out, split):
            name = example["name"].decode()
            entry = factors["images"][name]
            assert (example["height"], example["width"]) == (32, 16)
            assert (example["fg_id"], example["bg_id"]) == (entry["fg_id"], entry["bg_id"])
            assert example["person_id"] == int(name[:4])
            assert json.loads(example["factors"]) == {
                "fg": factors["identities"][str(entry["fg_id"])],
                "bg": factors["backgrounds"][str(entry["bg_id"])],
                "pose": entry["pose"]}
            assert example["image"] == (root / f"bounding_box_{split}" / name).read_bytes()
    source, target = read_pairs(out, "test")[0]
    assert json.loads(source["factors"])["pose"] == factors["images"][source["name"].decode()]["pose"]


def test_synthetic_image_without_factors(tmp_path):
    root = tmp_path / "synthetic"
    factors = make_fake_synthetic(root)
    del factors["images"]["0001_c2s1_000001_01.jpg"]
    factors["images"]["0002_c1s1_000000_01.jpg"]["bg_id"] = 99
    (root / "factors.json").write_text(json.dumps(factors))
    with pytest.raises(BadInput, match=r"market-annotation-train.csv:3: 0001_c2s1_000001_01.jpg has no entry"):
        build("synthetic", root, tmp_path / "out", progress_every=0)
    summary = build("synthetic", root, tmp_path / "out", skip_bad=True, progress_every=0)
    assert summary.records == {"train": 2, "test": 4}
    assert summary.skipped_by_reason() == {Reason.NO_FACTORS: 2}


def test_synthetic_size_comes_from_factors(tmp_path):
    root = tmp_path / "synthetic"
    factors = make_fake_synthetic(root)
    factors.update(height=128, width=64)
    (root / "factors.json").write_text(json.dumps(factors))
    with pytest.raises(BadInput, match=r"image is 32x16 \(HxW\), expected 128x64"):
        build("synthetic", root, tmp_path / "out", progress_every=0)


def test_generated_synthetic_set_round_trips(tmp_path):
    root = tmp_path / "synthetic"
    writer.generate(root, ids=4, images_per_id=3, height=64, width=32, seed=1)
    factors = json.loads((root / "factors.json").read_text())
    summary = build("synthetic", root, tmp_path / "out", progress_every=0)
    assert summary.records["train"] + summary.records["test"] == len(
        list((root / "bounding_box_train").iterdir()) + list((root / "bounding_box_test").iterdir()))
    assert summary.pairs["test"] == len(csv_pairs(root / "market-pairs-test.csv"))
    assert not summary.skipped_by_reason()
    examples = read_images(tmp_path / "out", "train")
    expected = csv_keypoints(root / "market-annotation-train.csv")
    params = [json.loads(example["factors"]) for example in examples]
    for index, (example, own) in enumerate(zip(examples, params)):
        entry = factors["images"][example["name"].decode()]
        assert own == {"fg": factors["identities"][str(entry["fg_id"])],
                       "bg": factors["backgrounds"][str(entry["bg_id"])], "pose": entry["pose"]}
        assert (example["fg_id"], example["bg_id"]) == (entry["fg_id"], entry["bg_id"])
        assert (example["height"], example["width"]) == (64, 32)
        assert example["keypoints"].tolist() == expected[example["name"].decode()]
        # The stored factors redraw this photo (up to JPEG loss), and no other record's do.
        photo = tf.io.decode_image(example["image"]).numpy().astype(float)
        errors = [np.abs(synthetic.render(p["fg"], p["bg"], p["pose"], size=(64, 32)) - photo).mean()
                  for p in params]
        assert int(np.argmin(errors)) == index and errors[index] < 8
