"""DeepFashion as users have it: the 256x176 PATN / GFLA release converts and is framed back to
256x256; the preset follows the authors' code (unmasked ROI features, per-part batches); the micro
pipeline (`make demo-deepfashion`'s) runs end to end (stage I, stage II, generate) on the real-photo fixtures."""

import json
import pathlib
import shutil

import numpy as np
import pytest
from PIL import Image

DF = "deepfashion_mini"
CUT = 40  # columns the 256x176 release cut off each side of the 256x256 photos


def _patn_root(fixtures_dir, root):
    """The fixtures as the PATN / GFLA release lays them out: 256x176 photos (x - 40), the
    `fasion-resize-*` CSV names, the test split also serving as train."""
    source = fixtures_dir / DF
    lines = (source / "fasion-annotation-test.csv").read_text().splitlines()
    rows = [lines[0]]
    for line in lines[1:]:
        name, ys, xs = line.split(":")
        ys, xs = json.loads(ys), json.loads(xs)
        # A joint in the cut-off columns is missing in the narrow frame.
        kept = [(y, x - CUT) if x >= 0 and CUT <= x < 256 - CUT else (-1, -1) for y, x in zip(ys, xs)]
        rows.append(f"{name}: {[y for y, _ in kept]}: {[x for _, x in kept]}")
    for split in ("train", "test"):
        (root / split).mkdir(parents=True)
        for path in (source / "test").glob("*.jpg"):
            with Image.open(path) as photo:
                photo.crop((CUT, 0, 256 - CUT, 256)).save(root / split / path.name, quality=95)
        (root / f"fasion-resize-annotation-{split}.csv").write_text("\n".join(rows) + "\n")
    shutil.copy(source / "fasion-pairs-test.csv", root / "fasion-resize-pairs-test.csv")
    return root


@pytest.fixture(scope="module")
def patn_records(fixtures_dir, tmp_path_factory):
    from tfrecords.build import build

    root = _patn_root(fixtures_dir, tmp_path_factory.mktemp("patn_root"))
    out = tmp_path_factory.mktemp("patn_records")
    summary = build("deepfashion", root, out, progress_every=0)
    return root, out, summary


def test_the_256x176_release_converts_with_its_csv_names(patn_records):
    from test_build import read_images, read_pairs

    root, out, summary = patn_records
    assert summary.records == {"train": 25, "test": 25} and summary.pairs == {"test": 48}
    examples = {e["name"].decode(): e for e in read_images(out, "test")}
    assert {(int(e["height"]), int(e["width"])) for e in examples.values()} == {(256, 176)}
    name = "fashionMENShirts_Polosid0000186605_1front.jpg"
    assert examples[name]["image"] == (root / "test" / name).read_bytes()  # stored as it is
    # DeepFashion has no factors.json: no ground truth, as before the synthetic set stored its factors.
    assert {(e["factors"], int(e["fg_id"]), int(e["bg_id"])) for e in examples.values()} == {(b"", -1, -1)}
    assert len(read_pairs(out, "test")) == 48


def test_a_256x176_photo_is_framed_back_into_256x256(patn_records, fixtures_dir):
    """Edge-padded 40 px each side, keypoints x + 40: the same example as the 256x256 original's
    (up to JPEG noise in the middle columns and the repeated border outside them)."""
    import tensorflow as tf

    from keras_disentangle import configs, data
    from keras_disentangle.data import records

    _, out, _ = patn_records
    full = configs.get_config("deepfashion", "full").data
    assert (full.height, full.width) == (256, 256)
    shards = tf.data.TFRecordDataset(sorted(str(p) for p in pathlib.Path(out).glob(records.shard_pattern("test"))))
    name = "fashionWOMENDressesid0000386607_1front.jpg"
    parsed = next(e for e in map(records.parse_image, shards) if e["name"] == name)
    # frame_photo is the step of prepare_example that does it (at 256x256 nothing is resized after it).
    image, keypoints = data.frame_photo(tf.io.decode_image(parsed["image"], channels=3), parsed["keypoints"],
                                        full.height, full.width)
    original = np.asarray(Image.open(fixtures_dir / DF / "test" / name), np.float32)
    image = image.numpy().astype(np.float32)
    assert image.shape == (256, 256, 3)
    assert np.abs(image[:, CUT:256 - CUT] - original[:, CUT:256 - CUT]).mean() < 3  # JPEG noise, of 255
    np.testing.assert_array_equal(image[:, :CUT], np.repeat(image[:, CUT:CUT + 1], CUT, axis=1))
    csv = (fixtures_dir / DF / "fasion-annotation-test.csv").read_text().splitlines()
    row = next(line for line in csv if line.startswith(name))
    ys, xs = (json.loads(part) for part in row.split(":")[1:])
    expected = np.array([[y, x] if CUT <= x < 256 - CUT else [-1, -1] for y, x in zip(ys, xs)], np.float32)
    np.testing.assert_allclose(keypoints.numpy(), expected, atol=1e-3)
    # Pose batches drawn without decoding (data.pose_dataset, --model=both) agree with the framed
    # examples, mirrored or not.
    tiny = configs.get_config("deepfashion", "tiny")
    flips = tf.data.Dataset.from_tensor_slices([False] * 25 + [True] * 25)
    both = tf.data.Dataset.zip(shards.repeat(2), flips).map(
        lambda serialized, flip: data.prepare_example(records.parse_image(serialized), tiny.data, flip))
    known = next(iter(both.batch(50)))["pose_vector"].numpy()
    poses = next(iter(data.pose_dataset(str(out), tiny, batch_size=40, split="test", seed=1)))["pose_vector"].numpy()
    assert poses.shape == (40, 54)
    for pose in poses:
        assert np.abs(known - pose).max(axis=1).min() < 1e-5


def test_a_root_with_both_csv_families_is_refused(fixtures_dir, tmp_path):
    from tfrecords.build import BadInput, build

    root = _patn_root(fixtures_dir, tmp_path / "root")
    shutil.copy(fixtures_dir / DF / "fasion-annotation-test.csv", root / "fasion-annotation-test.csv")
    with pytest.raises(BadInput, match="both fasion-annotation-test.csv and fasion-resize-annotation-test.csv"):
        build("deepfashion", root, tmp_path / "out", splits=["test"], progress_every=0)


def test_a_photo_of_another_size_names_the_accepted_sizes(fixtures_dir, tmp_path):
    from tfrecords.build import BadInput, Reason, build

    root = _patn_root(fixtures_dir, tmp_path / "root")
    victim = root / "test" / "fashionWOMENShortsid0000070704_1front.jpg"
    Image.new("RGB", (200, 256)).save(victim)
    with pytest.raises(BadInput, match=r"is 256x200 \(HxW\), expected 256x256 or 256x176") as error:
        build("deepfashion", root, tmp_path / "out", splits=["test"], progress_every=0)
    assert error.value.reason == Reason.WRONG_SIZE


def test_deepfashion_fg_branch_reads_unmasked_features():
    """The authors' DeepFashion code crops the ROIs from unmasked features: the body mask changes
    nothing there, while with `fg_features_masked` (the paper, Market) it does."""
    import keras

    from keras_disentangle import configs
    from keras_disentangle.models.encoders import build_appearance_encoder

    cfg = configs.get_config("deepfashion", "micro")
    assert not cfg.model.fg_features_masked and configs.get_config("market", "micro").model.fg_features_masked
    rng = np.random.default_rng(0)
    inputs = {
        "image": rng.uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32),
        "roi_boxes": np.tile(np.array([0.1, 0.1, 0.9, 0.9], np.float32), (2, 7, 1)),
        "roi_visibility": np.ones((2, 7), np.float32),
    }
    for masked in (False, True):
        keras.utils.set_random_seed(0)
        encoder = build_appearance_encoder(configs.override(cfg, fg_features_masked=masked))
        codes = [encoder({**inputs, "body_mask": np.full((2, 32, 32, 1), fill, np.float32)})["fg_embedding"].numpy()
                 for fill in (0.0, 1.0)]
        assert np.allclose(codes[0], codes[1]) != masked


def test_presets_follow_the_authors_deepfashion_code():
    from keras_disentangle import configs

    full = configs.get_config("deepfashion", "full")
    assert len(full.model.encoder_channels) == 7 and len(full.model.generator_channels) == 5
    assert (full.train.batch_size, full.train.pose_batch_size) == (6, 16)
    assert configs.get_config("market", "full").train.pose_batch_size == 64


def _run(tool: str, *args: str, capsys) -> None:
    """`tool` with `args` as its command line, in this process through the same `cli.run` as `python -m`
    (tests/test_cli.py): TensorFlow loads once for the pipeline rather than once per tool."""
    from test_cli import run_tool

    code, _, lines = run_tool(tool, list(args), capsys)
    assert code == 0, lines[-20:]


# The micro preset (32x32, `make demo-deepfashion`'s) with small batches: what the end-to-end check
# proves (the tools chain on DeepFashion records) does not depend on the scale; every preset's shapes
# are covered by test_models.
_CHEAP = ["--batch_size=2", "--steps=2", "--log_every=1", "--image_every=1000", "--checkpoint_every=1000"]


def test_deepfashion_micro_pipeline_end_to_end(patn_records, tmp_path, capsys):
    """`train.py --dataset=deepfashion --scale=micro` stage I (appearance + pose), stage II (FG and
    pose) and `generate sample` on the 256x176 fixtures, a few steps each."""
    _, records, _ = patn_records
    runs = tmp_path / "runs"
    common = ["--dataset=deepfashion", "--scale=micro", f"--data_dir={records}", "--precision=float32"]
    _run("train.py", "--stage=1", *common, f"--logdir={runs / 's1'}", *_CHEAP, capsys=capsys)
    config = json.loads((runs / "s1" / "config.json").read_text())
    assert config["data"]["name"] == "deepfashion" and config["model"]["fg_features_masked"] is False
    for factor in ("fg", "pose"):
        _run("train.py", "--stage=2", f"--factor={factor}", *common, f"--stage1_dir={runs / 's1'}",
             f"--logdir={runs / ('s2-' + factor)}", *_CHEAP, capsys=capsys)
    out = tmp_path / "gen"
    _run("keras_disentangle.apps.generate", "sample", "--factors=fg,pose", f"--stage2_dir={runs / 's2-fg'}",
         f"--stage2_dir={runs / 's2-pose'}", f"--data_dir={records}", f"--out={out}", "--n=2", capsys=capsys)
    with Image.open(out / "sample.png") as image:
        assert image.size[0] > 32 and image.size[1] > 32


def test_synthetic_people_in_the_deepfashion_layout_convert(tmp_path):
    """`tfrecords.synthetic_fashion` (make demo-deepfashion) writes what the DeepFashion reader reads."""
    from test_build import read_images

    from keras_disentangle import synthetic
    from tfrecords import deepfashion, synthetic_fashion
    from tfrecords.build import build

    summary = synthetic_fashion.generate(tmp_path / "data", ids=2, images_per_id=2, seed=0)
    built = build("deepfashion", tmp_path / "data", tmp_path / "records", progress_every=0)
    assert built.records == summary["images"] == {"train": 2, "test": 2}
    assert built.pairs == {"test": summary["pairs"]} and summary["pairs"] <= 2
    # Each record carries the factors it was rendered from (gt_swap's exact targets): the person, the
    # one studio backdrop, the pose.
    for split in ("train", "test"):
        for example in read_images(tmp_path / "records", split):
            name = example["name"].decode()
            factors = json.loads(example["factors"])
            assert int(example["fg_id"]) == int(deepfashion.garment_key(name)[2:]) and int(example["bg_id"]) == 0
            assert factors["bg"] == synthetic_fashion.STUDIO
            render = synthetic.render(factors["fg"], factors["bg"], factors["pose"], (256, 256)).astype(np.float32)
            with Image.open(tmp_path / "data" / split / name) as photo:
                assert np.abs(np.asarray(photo, np.float32) - render).mean() < 2.0, name  # the JPEG floor
    with pytest.raises(ValueError, match="not a synthetic set"):
        shutil.copytree(tmp_path / "data", tmp_path / "foreign")
        csv = tmp_path / "foreign" / "fasion-annotation-test.csv"
        csv.write_text(csv.read_text().replace("SYNTHETIC", "WOMEN"))
        synthetic_fashion.generate(tmp_path / "foreign", ids=2, images_per_id=2)


def test_model_both_trains_the_pose_autoencoder_at_its_own_batch():
    """`--model=both`: one step updates G1 on the image batch and the pose auto-encoder on a pose
    batch of `pose_batch_size`, its loss the mean over that batch (not over the image batch)."""
    import keras
    import tensorflow as tf

    from keras_disentangle import configs, data, losses
    from keras_disentangle.models.stage1 import build_stage1
    from keras_disentangle.training import stage1, steps

    cfg = configs.override(configs.get_config("deepfashion", "micro"), batch_size=2, pose_batch_size=6,
                           adversarial_weight=0.0)
    rng = np.random.default_rng(0)
    keypoints = tf.constant(rng.uniform(2, 29, (8, 18, 2)), tf.float32)
    features = data.pose_features(keypoints, cfg.data)
    images = {"image": tf.constant(rng.uniform(-1, 1, (2, 32, 32, 3)), tf.float32),
              **{k: v[:2] for k, v in features.items()}}
    poses = {"pose_vector": features["pose_vector"][2:]}
    keras.utils.set_random_seed(0)
    networks = build_stage1(cfg)
    decoded = networks.pose_decoder(networks.pose_encoder(poses["pose_vector"]))
    expected = float(tf.reduce_mean(losses.pose_reconstruction_loss(poses["pose_vector"], decoded)))
    step = steps.stage1_step(steps.Stage1Part.BOTH, networks, stage1.build_optimizers(cfg.train), cfg.train,
                             cfg.train.batch_size)
    logs = step({"appearance": images, "pose": poses})
    assert float(logs["loss/pose/l2"]) == pytest.approx(expected, rel=1e-5)
    assert "loss/g1/l1" in logs
