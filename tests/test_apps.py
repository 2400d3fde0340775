"""Applications over trained models (sampling, swaps, transfer, interpolation, inversion) and the
`generate` command line, at micro scale (32x16 images) on the shared stage-I / stage-II runs."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from conftest import HANG_GUARD_SECONDS

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def models(stage2_runs):
    from keras_disentangle.serving.runtime import load_stage2

    return load_stage2(list(stage2_runs.values()))


@pytest.fixture(scope="module")
def examples(models, synthetic_records):
    from keras_disentangle import data

    return data.load_examples(synthetic_records, models.cfg, split="test", limit=4)


def _take(examples, indices):
    return {k: v[indices] for k, v in examples.items()}


def test_lerp_and_slerp():
    from keras_disentangle import apps

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(3, 16)), rng.normal(size=(3, 16))
    b *= (np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1))[:, None]
    t = np.linspace(0, 1, 5)
    for path in (apps.lerp(a, b, t), apps.slerp(a, b, t)):
        assert path.shape == (3, 5, 16)
        np.testing.assert_allclose(path[:, 0], a, atol=1e-5)
        np.testing.assert_allclose(path[:, -1], b, atol=1e-5)
    np.testing.assert_allclose(apps.lerp(a, b, t)[:, 2], (a + b) / 2, atol=1e-6)
    # Between vectors of equal norm, slerp stays on their sphere; lerp cuts inside it.
    norms = np.linalg.norm(apps.slerp(a, b, t), axis=-1)
    np.testing.assert_allclose(norms, np.repeat(np.linalg.norm(a, axis=1)[:, None], 5, axis=1), rtol=1e-5)
    assert (np.linalg.norm(apps.lerp(a, b, t)[:, 2], axis=-1) < norms[:, 2]).all()
    np.testing.assert_allclose(apps.slerp(a, 2 * a, t), apps.lerp(a, 2 * a, t), atol=1e-6)


def test_roi_selector(models):
    from keras_disentangle import apps

    selector = apps.roi_selector(models.cfg, ["head", "legs"])
    dim = models.cfg.model.roi_embedding_dim
    assert selector.shape == (7 * dim,)
    np.testing.assert_array_equal(selector.reshape(7, dim).max(axis=1), [1, 0, 1, 0, 0, 0, 0])
    with pytest.raises(ValueError, match="'hat'"):
        apps.roi_selector(models.cfg, ["hat"])


def test_sampling_every_factor_is_the_serving_sample_and_seeded(models):
    from keras_disentangle import apps

    out = apps.sample(models, 3, seed=4, factors=["fg", "bg", "pose"])
    served = models.sample(3, 4)
    np.testing.assert_allclose(np.asarray(out["image"]), np.asarray(served["image"]), atol=1e-6)
    assert out["image"].shape == (3, 32, 16, 3)
    other = apps.sample(models, 3, seed=5, factors=["fg", "bg", "pose"])
    assert not np.allclose(np.asarray(out["fg"]), np.asarray(other["fg"]))
    # Factors draw from independent streams: sampling fg does not depend on whether bg is sampled.
    np.testing.assert_array_equal(np.asarray(models.sample_embedding("fg", 3, 4)), np.asarray(out["fg"]))


def test_sampling_a_subset_keeps_the_real_factors(models, examples):
    from keras_disentangle import apps

    out = apps.sample(models, 2, seed=0, factors=["fg"], real=examples)
    codes = models.encode(examples["image"][:2], examples["keypoints"][:2])
    np.testing.assert_array_equal(np.asarray(out["keypoints"]), examples["keypoints"][:2])
    np.testing.assert_allclose(np.asarray(out["bg"]), np.asarray(codes["bg"]), atol=1e-6)
    assert not np.allclose(np.asarray(out["fg"]), np.asarray(codes["fg"]))
    with pytest.raises(ValueError, match="come from real images"):
        apps.sample(models, 2, seed=0, factors=["fg"])
    with pytest.raises(ValueError, match="'hair'"):
        apps.sample(models, 2, seed=0, factors=["hair"])


def test_swaps(models, examples):
    from keras_disentangle import apps
    from keras_disentangle.data import geometry

    source, target = _take(examples, [0, 1]), _take(examples, [2, 3])
    fg = apps.swap(models, source, target, ["fg"])
    served = models.swap(source["image"], source["keypoints"], target["image"], target["keypoints"])
    np.testing.assert_allclose(np.asarray(fg), np.asarray(served["fg"]), atol=1e-5)
    every_part = apps.swap(models, source, target, ["fg"], parts=list(geometry.ROI_NAMES))
    np.testing.assert_allclose(np.asarray(every_part), np.asarray(fg), atol=1e-5)
    source_codes = models.encode(source["image"], source["keypoints"])
    target_codes = models.encode(target["image"], target["keypoints"])
    head = apps.swap_codes(models, source_codes, target_codes, ["fg", "pose"], parts=["head"])
    dim = models.cfg.model.roi_embedding_dim
    np.testing.assert_array_equal(np.asarray(head["fg"])[:, :dim], np.asarray(source_codes["fg"])[:, :dim])
    np.testing.assert_array_equal(np.asarray(head["fg"])[:, dim:], np.asarray(target_codes["fg"])[:, dim:])
    np.testing.assert_array_equal(np.asarray(head["bg"]), np.asarray(target_codes["bg"]))
    pose = apps.swap(models, source, target, ["pose"])
    np.testing.assert_allclose(np.asarray(pose), np.asarray(apps.transfer(models, target, source["keypoints"])),
                               atol=1e-5)
    with pytest.raises(ValueError, match="expected 'fg' among the factors"):
        apps.swap(models, source, target, ["bg"], parts=["head"])


def test_interpolation_walks_from_one_sample_to_another(models, examples):
    from keras_disentangle import apps

    for method in apps.INTERPOLATIONS:
        out = apps.interpolate(models, "fg", 2, 4, seed=1, method=method, real=examples)
        assert out["image"].shape == (2, 4, 32, 16, 3) and out["z"].shape == (2, 4, 56)
    walk = np.asarray(apps.interpolate(models, "pose", 1, 3, seed=1)["image"])
    assert not np.allclose(walk[0, 0], walk[0, -1])
    with pytest.raises(ValueError, match="steps"):
        apps.interpolate(models, "fg", 1, 1, seed=0)


def test_inversion_finds_the_noise_of_a_sample(models):
    import tensorflow as tf

    from keras_disentangle import apps

    mapper = models.mappers[next(iter(models.mappers))]
    target = mapper(tf.random.stateless_normal([4, mapper.input.shape[-1]], seed=[3, 0], stddev=0.2)).numpy()
    _, start = apps.invert(mapper, target, steps=0, seed=9)
    z, error = apps.invert(mapper, target, steps=200, seed=9)
    assert z.shape == target.shape and error.shape == (4,)
    assert (error < 0.05 * start).all(), (start, error)
    np.testing.assert_allclose(error, np.sum((mapper(z).numpy() - target) ** 2, axis=-1), rtol=1e-4)


def test_invert_interpolate(models, examples):
    from keras_disentangle import apps

    out = apps.invert_interpolate(models, _take(examples, [0]), _take(examples, [1]), steps=3, invert_steps=20)
    assert out["image"].shape == (1, 3, 32, 16, 3)
    for factor in ("fg", "bg", "pose"):
        assert out[f"error_{factor}"].shape == (2, 1) and (out[f"relative_error_{factor}"] >= 0).all()


def _names(synthetic_root, count):
    return sorted(os.listdir(synthetic_root / "bounding_box_test"))[:count]


@pytest.mark.parametrize("mode, extra", [
    ("sample", {"factors": ("fg", "pose")}),
    ("sample", {"factors": ("fg", "bg", "pose")}),
    ("swap", {"factors": ("fg",), "parts": ("upper_body", "legs")}),
    ("transfer", {}),
    ("transfer", {"keypoints_only": True}),
    ("interpolate", {"factor": "bg", "frames": 3}),
    ("invert_interpolate", {"frames": 3, "invert_steps": 10}),
])
def test_generate_modes_write_labelled_grids(mode, extra, models, stage2_runs, synthetic_root, synthetic_records,
                                             tmp_path):
    from PIL import Image

    from keras_disentangle.apps import generate

    a, b = _names(synthetic_root, 2)
    images = {"source": a, "target": b, "pose": b, "a": a, "b": b}
    keypoints = {}
    if extra.pop("keypoints_only", False):
        images.pop("pose")
        keypoints["pose"] = "[10, 20, 20, 35, 50, 20, 35, 50, 60, 90, 120, 60, 90, 120, 8, 8, 9, 9]:" \
                            "[32, 32, 24, 20, 18, 40, 44, 46, 26, 26, 26, 38, 38, 38, 30, 34, 28, 36]"
    request = generate.Request(mode=mode, stage2_dirs=tuple(stage2_runs.values()), out=str(tmp_path),
                               data_dir=synthetic_records, n=2, images=images, keypoints=keypoints, save_npz=True,
                               **extra)
    written = generate.run(request, models)
    assert written == [str(tmp_path / f"{mode}.png"), str(tmp_path / f"{mode}.npz")]
    grid = np.asarray(Image.open(written[0]))
    assert grid.ndim == 3 and grid.shape[0] >= 3 * 32 and grid.shape[1] >= 2 * 3 * 16
    arrays = np.load(written[1])
    assert "image" in arrays.files or "linear_image" in arrays.files


def test_image_files_need_keypoints(models, synthetic_root, synthetic_records, tmp_path):
    import shutil

    from keras_disentangle.apps import generate
    from keras_disentangle.data import records

    from PIL import Image

    name = _names(synthetic_root, 1)[0]
    outside = tmp_path / f"photo{pathlib.Path(name).suffix}"
    shutil.copy(synthetic_root / "bounding_box_test" / name, outside)
    # A photo outside the records gets its keypoints from the estimator, which finds nobody here.
    empty = tmp_path / "empty.png"
    Image.fromarray(np.full((128, 64, 3), 128, np.uint8)).save(empty)
    request = generate.Request(mode="transfer", stage2_dirs=(), out=str(tmp_path), data_dir=synthetic_records,
                               images={"source": str(empty), "pose": name})
    with pytest.raises(ValueError, match=r"--source=.*empty.png: no person found; pass --source_keypoints"):
        generate.run(request, models)
    # The file with its keypoints in the CSV syntax loads exactly like the record of its name.
    from_record = generate.load_images([("source", name, None)], models.cfg, synthetic_records)
    raw = records.parse_image(generate.records_by_name(synthetic_records, {name})[name])["keypoints"].numpy()
    text = f"[{', '.join(map(str, raw[:, 0]))}]:[{', '.join(map(str, raw[:, 1]))}]"
    from_file = generate.load_images([("source", str(outside), text)], models.cfg, None)
    # ... and so does the file with our keypoint JSON.
    (tmp_path / "kp.json").write_text(json.dumps({"keypoints": raw.tolist()}))
    from_json = generate.load_images([("source", str(outside), str(tmp_path / "kp.json"))], models.cfg, None)
    for key in ("image", "keypoints", "heatmaps", "roi_boxes"):
        np.testing.assert_array_equal(from_file[key], from_record[key], err_msg=key)
        np.testing.assert_array_equal(from_json[key], from_record[key], err_msg=key)


def test_transfer_and_swap_of_photos_with_stage1_alone(stage1_run, fixtures_dir, tmp_path):
    """Two photos in no record, keypoints estimated, no stage-II run; transfer in a fresh process."""
    from PIL import Image

    from keras_disentangle.apps import generate
    from keras_disentangle.pose import keypoints

    folder = fixtures_dir / "deepfashion_mini" / "test"
    source = folder / "fashionWOMENDressesid0000386607_1front.jpg"
    other = folder / "fashionMENShirts_Polosid0000186605_4full.jpg"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(REPO_ROOT))
    args = [sys.executable, "-m", "keras_disentangle.apps.generate", "transfer", f"--stage1_dir={stage1_run}",
            f"--source={source}", f"--pose={other}", f"--out={tmp_path}", "--save_npz"]
    result = subprocess.run(args, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=HANG_GUARD_SECONDS)
    assert result.returncode == 0, result.stderr[-3000:]
    photo = keypoints.read_image(source)
    pasted = np.asarray(Image.open(tmp_path / "transfer_photo.png"))
    tile = np.load(tmp_path / "transfer.npz")["image"]
    assert tile.shape == (32, 16, 3) and pasted.shape == photo.shape
    # The 1:2 box of a 256x256 photo leaves columns untouched on at least one side.
    changed = (pasted != photo).any(axis=(0, 2))
    assert changed.any() and not changed.all()

    request = generate.Request(mode="swap", stage2_dirs=(), stage1_dir=stage1_run, out=str(tmp_path),
                               images={"source": str(source), "target": str(other)}, factors=("fg",))
    written = generate.run(request)
    assert written == [str(tmp_path / "swap.png"), str(tmp_path / "swap_photo.png")]
    assert np.asarray(Image.open(written[1])).shape == keypoints.read_image(other).shape
    with pytest.raises(ValueError, match="sample: needs --stage2_dir"):
        generate.run(generate.Request(mode="sample", stage2_dirs=(), stage1_dir=stage1_run, out=str(tmp_path)))


def test_keypoints_syntax():
    from keras_disentangle.apps import generate

    text = "[" + ", ".join(str(i) for i in range(18)) + "]:[" + ", ".join(str(-1) for _ in range(18)) + "]"
    parsed = generate.parse_keypoints(text, "a_keypoints")
    assert parsed.shape == (18, 2) and parsed[5, 0] == 5 and parsed[5, 1] == -1
    for bad in ("1,2,3", "[1, 2]:[3, 4]", "[a" + text[2:]):
        with pytest.raises(ValueError, match="--a_keypoints="):
            generate.parse_keypoints(bad, "a_keypoints")


def test_generate_command_line(stage2_runs, tmp_path, capsys):
    """In this process through the same cli.run as `python -m` (tests/test_cli.py); the fresh-process
    run is test_transfer_and_swap_of_photos_with_stage1_alone's."""
    from test_cli import run_tool

    code, stdout, stderr = run_tool("keras_disentangle.apps.generate", [
        "sample", *[f"--stage2_dir={d}" for d in stage2_runs.values()], f"--out={tmp_path}", "--n=2"], capsys)
    assert code == 0, stderr[-20:]
    assert (tmp_path / "sample.png").exists() and f"Wrote {tmp_path / 'sample.png'}" in stdout


def test_sampling_a_subset_needs_real_images(models, stage2_runs, tmp_path):
    from keras_disentangle.apps import generate

    request = generate.Request(mode="sample", stage2_dirs=tuple(stage2_runs.values()), out=str(tmp_path),
                               factors=("fg",))
    with pytest.raises(ValueError, match="--data_dir"):
        generate.run(request, models)


def test_generate_reads_phone_photos_upright_and_names_bad_ones(stage1_run, fixtures_dir, tmp_path):
    """`generate transfer --stage1_dir` on a phone photo stored turned (EXIF 6) gives what its upright
    pixels give, pasted into the upright photo, with estimated or given keypoints; a truncated and a
    12,000x9,000 photo are one message naming the flag."""
    from PIL import Image

    import photo_files
    from keras_disentangle.apps import generate
    from keras_disentangle.pose import keypoints

    folder = fixtures_dir / "deepfashion_mini" / "test"
    phone = photo_files.phone_jpeg(photo_files.portrait(keypoints.read_image(
        folder / "fashionWOMENDressesid0000386607_1front.jpg")))
    files = {"phone.jpg": phone, "upright.png": photo_files.upright_png(phone),
             "truncated.jpg": phone[:len(phone) // 2], "huge.png": photo_files.grey_png(12_000, 9_000)}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    pose = str(folder / "fashionMENShirts_Polosid0000186605_4full.jpg")
    points = json.dumps({"keypoints": keypoints.Estimator()(keypoints.read_image(tmp_path / "upright.png"))
                         .keypoints.tolist()})
    (tmp_path / "points.json").write_text(points)
    outputs = {}
    for name in ("phone.jpg", "upright.png"):
        for given in (None, str(tmp_path / "points.json")):
            out = tmp_path / f"{name}-{given is not None}"
            request = generate.Request(mode="transfer", stage2_dirs=(), stage1_dir=stage1_run, out=str(out),
                                       images={"source": str(tmp_path / name), "pose": pose},
                                       keypoints={"source": given} if given else {})
            generate.run(request)
            outputs[name, given is not None] = [np.asarray(Image.open(p)) for p in sorted(out.glob("*.png"))]
    for given in (False, True):
        for got, expected in zip(outputs["phone.jpg", given], outputs["upright.png", given]):
            np.testing.assert_array_equal(got, expected)
    assert outputs["phone.jpg", False][1].shape[:2] == (256, 192)  # the pasted-back photo, upright
    for name, message in (("truncated.jpg", "not a readable image \\(truncated"),
                          ("huge.png", r"image is 12000x9000 pixels \(108 MP\)")):
        request = generate.Request(mode="transfer", stage2_dirs=(), stage1_dir=stage1_run, out=str(tmp_path / "bad"),
                                   images={"source": str(tmp_path / name), "pose": pose})
        with pytest.raises(ValueError, match=f"--source=.*{name}: {message}"):
            generate.run(request)
