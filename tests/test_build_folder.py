"""`tfrecords.build --dataset=folder`: photos with no annotations become records through the estimator."""

import shutil

import numpy as np
import pytest
from PIL import Image

from test_build import read_images, read_pairs

GARMENT = ("fashionMENJackets_Vestsid0000401403_3back.jpg", "fashionMENJackets_Vestsid0000401403_4full.jpg")
OTHER = "fashionMENShirts_Polosid0000186605_1front.jpg"


@pytest.fixture
def photo_folder(fixtures_dir, tmp_path):
    """alice/ two photos of one person, bob/ one photo and a picture of nobody (copies in tmp only)."""
    source = fixtures_dir / "deepfashion_mini" / "test"
    root = tmp_path / "photos"
    (root / "alice").mkdir(parents=True)
    (root / "bob").mkdir()
    for name in GARMENT:
        shutil.copy(source / name, root / "alice" / name)
    shutil.copy(source / OTHER, root / "bob" / OTHER)
    Image.new("RGB", (100, 200), (128, 128, 128)).save(root / "bob" / "nobody.png")
    return root


def test_folder_records_pairs_and_skipped_photo(photo_folder, tmp_path):
    import tensorflow as tf

    from keras_disentangle.pose import keypoints
    from tfrecords.build import Reason, build

    out = tmp_path / "records"
    summary = build("folder", photo_folder, out, skip_bad=True, progress_every=0,
                    reader_options={"identity_from": "subfolder", "size": (128, 64)})
    assert summary.records == {"train": 3}
    assert summary.skipped["train"] == {Reason.NO_PERSON: 1}
    examples = {e["name"].decode(): e for e in read_images(out, "train")}
    assert set(examples) == {f"alice_{GARMENT[0][:-4]}.png", f"alice_{GARMENT[1][:-4]}.png", f"bob_{OTHER[:-4]}.png"}
    estimator = keypoints.Estimator()
    for name, example in examples.items():
        person, _, stem = name.partition("_")
        assert example["person_id"] == {"alice": 0, "bob": 1}[person]
        assert (example["height"], example["width"]) == (128, 64)
        photo = keypoints.read_image(photo_folder / person / (stem[:-4] + ".jpg"))
        expected_image, expected_points = keypoints.frame_to_size(photo, estimator(photo).keypoints, (128, 64))
        np.testing.assert_array_equal(example["keypoints"], expected_points)
        np.testing.assert_array_equal(tf.io.decode_png(example["image"]).numpy(), expected_image)
        assert (example["keypoints"] >= 0).all(1).sum() >= 6  # a person, not a blank estimate
    pairs = read_pairs(out, "train")
    assert len(pairs) == 2 and summary.pairs == {"train": 2}
    for source, target in pairs:
        assert source["person_id"] == target["person_id"] == 0 and source["name"] != target["name"]


def test_folder_photo_without_person_stops_the_run(photo_folder, tmp_path):
    from tfrecords.build import BadInput, build

    out = tmp_path / "records"
    with pytest.raises(BadInput, match=r"nobody\.png: no person found"):
        build("folder", photo_folder, out, progress_every=0)
    assert not list(out.glob("*.tfrecord*"))


def test_folder_without_identities(fixtures_dir, tmp_path):
    from tfrecords.build import build

    root = tmp_path / "flat"
    root.mkdir()
    for name in (GARMENT[0], OTHER):
        shutil.copy(fixtures_dir / "deepfashion_mini" / "test" / name, root / name)
    out = tmp_path / "records"
    summary = build("folder", root, out, progress_every=0, reader_options={"identity_from": "none", "size": (64, 64)})
    assert summary.records == {"train": 2} and summary.pairs == {}
    examples = read_images(out, "train")
    assert sorted(int(e["person_id"]) for e in examples) == [0, 1]
    assert all((e["height"], e["width"]) == (64, 64) for e in examples)


def test_folder_reads_phone_photos_upright_and_skips_truncated_and_huge(fixtures_dir, tmp_path):
    """A phone photo stored turned (EXIF 6) becomes the upright photo's record; a truncated and a
    12,000x9,000 photo are counted as corrupt images under --skip_bad and stop the run without it."""
    import photo_files

    from keras_disentangle.pose import keypoints
    from tfrecords.build import BadInput, Reason, build

    photo = photo_files.portrait(keypoints.read_image(fixtures_dir / "deepfashion_mini" / "test" / OTHER))
    root = tmp_path / "flat"
    root.mkdir()
    phone = photo_files.phone_jpeg(photo)
    (root / "a_upright.png").write_bytes(photo_files.upright_png(phone))
    (root / "b_phone.jpg").write_bytes(phone)
    (root / "c_truncated.jpg").write_bytes(photo_files.refused(photo)["truncated.jpg"][0])
    (root / "d_huge.png").write_bytes(photo_files.grey_png(12_000, 9_000))
    options = {"identity_from": "none", "size": (128, 64)}
    summary = build("folder", root, tmp_path / "records", skip_bad=True, progress_every=0, reader_options=options)
    assert summary.records == {"train": 2} and summary.skipped["train"] == {Reason.CORRUPT_IMAGE: 2}
    upright, phone = sorted(read_images(tmp_path / "records", "train"), key=lambda e: e["name"])
    assert (upright["keypoints"] >= 0).all(1).sum() >= 6
    np.testing.assert_array_equal(phone["keypoints"], upright["keypoints"])
    assert phone["image"] == upright["image"]
    with pytest.raises(BadInput, match=r"c_truncated\.jpg: not a readable image \(truncated"):
        build("folder", root, tmp_path / "strict", progress_every=0, reader_options=options)
