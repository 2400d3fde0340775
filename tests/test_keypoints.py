"""The built-in keypoint estimator (BlazePose -> OpenPose-18) on real fixture photos, keypoint files,
framing and the `keypoints` command. The models come from `make pose-models`."""

import json
import types

import numpy as np
import pytest
from PIL import Image

from keras_disentangle import synthetic
from keras_disentangle.pose import blazepose, keypoints
from keras_disentangle.metrics import pose_pck
from tfrecords import common

DF = "deepfashion_mini"
FRONT = "fashionWOMENDressesid0000386607_1front.jpg"
FULL = "fashionMENShirts_Polosid0000186605_4full.jpg"
MARKET_CROP = "market1501_mini/bounding_box_test/0004_c1s6_016996_02.jpg"
# COCO-18 joint of the mirrored photo for each joint (the person's left and right swap).
MIRRORED_JOINTS = [0, 1, 5, 6, 7, 2, 3, 4, 11, 12, 13, 8, 9, 10, 15, 14, 17, 16]


@pytest.fixture(scope="module")
def estimator():
    return keypoints.Estimator()


def _annotation(fixtures_dir, name):
    csv = fixtures_dir / DF / "fasion-annotation-test.csv"
    return next(np.array(e.keypoints) for e in common.read_annotation_csv(csv).entries if e.name == name)


def test_anchor_count_matches_the_detector_output():
    # pose_detection.tflite regresses 2254 boxes; the anchors must line up one to one.
    assert blazepose.ssd_anchors().shape == (2254, 2)


def test_pck_on_the_annotated_fixtures(fixtures_dir, estimator):
    scores = pose_pck.score_fixtures(fixtures_dir, estimator)
    assert scores["market"].photos == 54 and scores["deepfashion"].photos == 25
    assert scores["market"].cpu_seconds > 0 and scores["deepfashion"].cpu_seconds > 0
    # 0.826 (597/723) and 0.930 when written (docs/keypoints.md; 0.772 with 2 crops lost and 0.906
    # before test-time augmentation); the aims of issue 25 are 0.82 with every crop found, and 0.92.
    assert scores["market"].no_person == 0, pose_pck.table(scores)
    assert scores["market"].pck >= 0.82, pose_pck.table(scores)
    assert scores["deepfashion"].pck >= 0.92, pose_pck.table(scores)


def test_a_mirrored_crop_gives_the_mirrored_keypoints(fixtures_dir, estimator):
    # The views of a crop and of its mirror are each other's mirrors, so with left and right swapped
    # back the merged keypoints agree to the pixel rounding; a wrong swap mixes the two sides.
    photo = keypoints.read_image(fixtures_dir / MARKET_CROP)
    found = estimator(photo)
    mirrored = estimator(np.ascontiguousarray(photo[:, ::-1]))
    back = mirrored.keypoints[MIRRORED_JOINTS]
    back[:, 1] = np.where(back[:, 1] >= 0, photo.shape[1] - 1 - back[:, 1], -1)
    both = (found.keypoints >= 0).all(1) & (back >= 0).all(1)
    assert both.sum() >= 14
    assert np.abs(found.keypoints[both] - back[both]).max() <= 1
    np.testing.assert_allclose(found.confidence, mirrored.confidence[MIRRORED_JOINTS], atol=1e-3)


def test_person_in_the_corner_of_a_big_photo(fixtures_dir, estimator):
    photo = keypoints.read_image(fixtures_dir / DF / "test" / FRONT)
    reference = estimator(photo).keypoints
    scale, top, left = 4, 2900, 150  # a 1024-pixel person in the lower-left corner of 3000x4000
    person = np.asarray(Image.fromarray(photo).resize((256 * scale, 256 * scale), Image.BICUBIC))
    canvas = np.full((4000, 3000, 3), 200, np.uint8)
    canvas[top - 1024:top, left:left + 1024] = person[:1024]
    found = estimator(canvas, "canvas").keypoints
    both = (reference >= 0).all(1) & (found >= 0).all(1)
    assert both.sum() >= 12
    expected = (reference[both] + 0.5) * scale + [top - 1024, left]
    # Within a quarter of the nose-neck distance of the same person seen alone.
    head = np.linalg.norm(reference[0] - reference[1]) * scale
    assert np.median(np.linalg.norm(found[both] - expected, axis=1)) < 0.25 * head

    crop, moved, (y, x, h, w) = keypoints.frame(canvas, found, aspect=2.0)
    assert crop.shape[:2] == (h, w) and abs(h / w - 2.0) < 0.01
    present = (found >= 0).all(1)
    assert np.array_equal(moved[present], found[present] - [y, x])
    assert (moved[present] >= 0).all() and (moved[present] < [h, w]).all()


def test_frame_pads_instead_of_squashing():
    image = np.zeros((100, 300, 3), np.uint8)
    image[:, 150:] = 255
    points = np.full((18, 2), -1)
    points[0], points[1] = (10, 5), (90, 20)
    crop, moved, (y, x, h, w) = keypoints.frame(image, points, aspect=1.0, margin=0.0)
    assert h == w == 81  # the 81x16 point box, widened to a square around its centre
    assert x < 0 and y == 10  # left of the photo: padded with its edge column
    assert np.array_equal(crop[:, 0], image[10:91, 0])
    assert np.array_equal(crop[tuple(moved[1])], image[90, 20])


def test_two_people_take_the_largest(fixtures_dir, estimator):
    # The same person twice, at 256 and 180 pixels: the larger one (on the left) is used.
    person = keypoints.read_image(fixtures_dir / DF / "test" / FULL)
    canvas = np.full((256, 520, 3), 230, np.uint8)
    canvas[:, :256] = person
    canvas[76:, 260:440] = np.asarray(Image.fromarray(person).resize((180, 180)))
    estimate = estimator(canvas)
    assert estimate.num_people == 2
    present = (estimate.keypoints >= 0).all(1)
    assert present.sum() >= 12 and estimate.keypoints[present, 1].max() < 256


def test_no_person_names_the_file(estimator, tmp_path):
    blank = np.full((200, 150, 3), 127, np.uint8)
    with pytest.raises(ValueError, match="blank.png: no person found"):
        estimator(blank, "blank.png")


# Seeds of the rendered backgrounds; FRAMED_PRESENCE was chosen on seeds 0-47 and 1000-1047
# (docs/keypoints.md).
BACKGROUND_SEEDS = range(24)


@pytest.mark.parametrize("size", [(128, 64), (256, 256)])
def test_an_empty_background_is_no_person(estimator, size):
    # The synthetic renderer's backgrounds with nobody in them, at Market's crop size (the whole frame
    # is the region) and at DeepFashion's (the detector finds nobody, then the same): with one view at
    # presence 0.5 deciding (before the augmentation), 2 of these 48 were a person; with the best of
    # 18 views deciding, 23.
    people = []
    for seed in BACKGROUND_SEEDS:
        rng = np.random.default_rng(seed)
        background = synthetic.sample_background(rng, synthetic.sample_camera(rng, 1 + seed % 9), 0)
        empty = np.rint(synthetic.render_background(background, size)).astype(np.uint8)
        try:
            estimator(empty, f"seed {seed}")
            people.append(seed)
        except ValueError as error:
            assert str(error) == f"seed {seed}: no person found"
    assert not people, f"a person found in the empty backgrounds of seeds {people}"


def test_read_image_converts_and_rejects(tmp_path):
    grey16 = tmp_path / "g16.png"
    Image.fromarray(np.full((40, 30), 40000, np.uint16)).save(grey16)
    rgba = tmp_path / "rgba.png"
    Image.fromarray(np.zeros((40, 30, 4), np.uint8)).save(rgba)
    for path in (grey16, rgba):
        image = keypoints.read_image(path)
        assert image.shape == (40, 30, 3) and image.dtype == np.uint8
    tiny = tmp_path / "tiny.png"
    Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(tiny)
    with pytest.raises(ValueError, match="tiny.png: image is 10x10"):
        keypoints.read_image(tiny)
    text = tmp_path / "text.jpg"
    text.write_text("not a photo")
    with pytest.raises(ValueError, match="text.jpg: not a readable image"):
        keypoints.read_image(text)


def test_keypoint_files(tmp_path):
    ours = tmp_path / "ours.json"
    points = [[10 + i, 5 + i] for i in range(18)]
    points[3] = [-1, -1]
    ours.write_text(json.dumps({"keypoints": points}))
    read = keypoints.read_keypoints_json(ours, 128, 64)
    assert read[0].tolist() == [10, 5] and read[3].tolist() == [-1, -1]

    openpose = tmp_path / "op.json"
    small = [v for i in range(18) for v in (1 + i, 2, 1.0)]
    big = [v for i in range(18) for v in (5 + 2 * i, 40.7 + i, 0.9 if i != 4 else 0.0)]
    openpose.write_text(json.dumps({"people": [{"pose_keypoints_2d": small}, {"pose_keypoints_2d": big}]}))
    read = keypoints.read_keypoints_json(openpose, 128, 64)
    assert read[0].tolist() == [40, 5]  # x, y -> (y, x), floored; the larger person
    assert read[4].tolist() == [-1, -1]  # confidence 0

    short = tmp_path / "short.json"
    short.write_text(json.dumps({"keypoints": points[:17]}))
    with pytest.raises(ValueError, match="short.json: \"keypoints\" must be 18"):
        keypoints.read_keypoints_json(short, 128, 64)


def _command(capsys, *argv):
    """`python -m keras_disentangle.pose.keypoints ARGV`, run in this process through the same cli.run
    (tests/test_cli.py): no TensorFlow import and no model load per command."""
    from test_cli import run_tool

    code, stdout, lines = run_tool("keras_disentangle.pose.keypoints", list(argv), capsys)
    return types.SimpleNamespace(returncode=code, stdout=stdout, stderr="\n".join(lines))


def test_command_writes_rows_the_converters_read(fixtures_dir, tmp_path, capsys):
    photos = [fixtures_dir / DF / "test" / FRONT, fixtures_dir / "market1501_mini" / "bounding_box_test" /
              "0004_c1s6_016996_02.jpg"]
    result = _command(capsys, *map(str, photos), f"--out={tmp_path}", "--draw")
    assert result.returncode == 0, result.stderr
    entries = common.read_annotation_csv(tmp_path / "keypoints.csv").entries
    assert [e.name for e in entries] == [p.name for p in photos]
    assert all(isinstance(e, common.Annotation) for e in entries)
    assert sum(k[0] >= 0 for k in entries[0].keypoints) >= 14
    drawn = np.asarray(Image.open(tmp_path / f"{photos[1].stem}.skeleton.png"))
    assert drawn.shape == (128, 64, 3)
    assert (drawn != keypoints.read_image(photos[1])).any()



def test_missing_model_names_the_set_up_command(tmp_path):
    with pytest.raises(FileNotFoundError, match="fetch it with `python -m keras_disentangle.pose.blazepose"):
        blazepose.BlazePose(tmp_path)


def test_command_frames_to_the_model_size(fixtures_dir, tmp_path, capsys):
    photo = fixtures_dir / DF / "test" / FULL
    result = _command(capsys, str(photo), f"--out={tmp_path}", "--size=128x64", "--format=json")
    assert result.returncode == 0, result.stderr
    crop = np.asarray(Image.open(tmp_path / f"{photo.stem}.png"))
    written = json.loads((tmp_path / f"{photo.stem}.json").read_text())
    points, confidence = np.array(written["keypoints"]), np.array(written["confidence"])
    assert crop.shape == (128, 64, 3) and points.shape == (18, 2) and confidence.shape == (18,)
    present = (points >= 0).all(1)
    # A joint given is one whose confidence reached the threshold.
    assert (confidence[present] >= keypoints.VISIBILITY_THRESHOLD).all() and (confidence <= 1).all()
    assert present.sum() >= 12 and (points[present] < [128, 64]).all()
    # The person spans most of the crop's height: framed, not shrunk into a corner.
    assert np.ptp(points[present, 0]) > 0.6 * 128


def test_batch_goes_on_past_bad_photos_and_reads_phone_photos_upright(fixtures_dir, tmp_path, capsys):
    """Many photos: an unreadable, huge or empty one gets a row of -1 joints and is counted; a phone
    photo stored turned with its EXIF tag gives the upright photo's keypoints. --strict and a single
    photo stop at the first bad one with its one-line error."""
    import photo_files

    photo = photo_files.portrait(keypoints.read_image(fixtures_dir / DF / "test" / FRONT))
    folder = tmp_path / "photos"
    folder.mkdir()
    phone = photo_files.phone_jpeg(photo)
    files = {"upright.png": photo_files.upright_png(phone), "phone.jpg": phone,
             "truncated.jpg": photo_files.refused(photo)["truncated.jpg"][0],
             "huge.png": photo_files.grey_png(12_000, 9_000),
             "nobody.png": photo_files.encode(Image.new("RGB", (150, 200), (127, 127, 127)), "PNG")}
    paths = []
    for name, data in files.items():
        paths.append(folder / name)
        paths[-1].write_bytes(data)
    result = _command(capsys, *map(str, paths), f"--out={tmp_path / 'out'}")
    assert result.returncode == 0, result.stderr
    assert "-1 joints for 3: 2 corrupt image, 1 no person" in result.stdout, result.stdout
    rows = {e.name: np.array(e.keypoints) for e in common.read_annotation_csv(tmp_path / "out" / "keypoints.csv").entries}
    assert list(rows) == list(files)
    for name in ("truncated.jpg", "huge.png", "nobody.png"):
        assert (rows[name] == -1).all(), name
    assert (rows["upright.png"] >= 0).all(1).sum() >= 12
    np.testing.assert_array_equal(rows["phone.jpg"], rows["upright.png"])

    strict = _command(capsys, *map(str, paths), f"--out={tmp_path / 'strict'}", "--strict")
    single = _command(capsys, str(paths[3]))
    for stopped, name in ((strict, "truncated.jpg"), (single, "huge.png")):
        assert stopped.returncode == 1
        errors = [line for line in stopped.stderr.splitlines() if "error:" in line or name in line]
        assert len(errors) == 1 and f"{name}: " in errors[0] and "error:" in errors[0], stopped.stderr
    assert not (tmp_path / "strict" / "keypoints.csv").exists()
