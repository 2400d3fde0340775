"""The evaluation protocol's pairs: the seeded same-identity sampler (`--pairs=random`), the count
check (`--n`, `--allow_fewer`), and folders named the way other methods name their outputs."""

import json

import numpy as np
import pytest
from PIL import Image

from keras_disentangle import data
from keras_disentangle.metrics import registry, report


def test_same_identity_pairs_exact_count_seeded_distinct_and_same_person():
    rng = np.random.default_rng(0)
    ids = rng.integers(-1, 40, 500)
    pairs, available = data.same_identity_pairs(ids, 1000, seed=5, min_person_id=1)
    counts = np.bincount(ids[ids >= 1])
    assert available == int((counts * (counts - 1)).sum())
    assert len(pairs) == 1000 and len({tuple(p) for p in pairs.tolist()}) == 1000
    assert (ids[pairs[:, 0]] == ids[pairs[:, 1]]).all() and (pairs[:, 0] != pairs[:, 1]).all()
    assert (ids[pairs[:, 0]] >= 1).all()
    again, _ = data.same_identity_pairs(ids, 1000, seed=5, min_person_id=1)
    other, _ = data.same_identity_pairs(ids, 1000, seed=6, min_person_id=1)
    assert (again == pairs).all() and not (other == pairs).all()
    # Every possible pair, each once, when n exceeds them.
    small = np.array([3, 3, 3, 7, 7, 0, 0, 9])
    everything, available = data.same_identity_pairs(small, 100, seed=0, min_person_id=1)
    assert available == 8 and sorted(map(tuple, everything.tolist())) == [
        (0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1), (3, 4), (4, 3)]


@pytest.fixture(scope="module")
def larger_records(tmp_path_factory):
    """Synthetic test split with 10 identities x 6 test images: 300 same-identity pairs."""
    from tfrecords import synthetic
    from tfrecords.build import build

    root = tmp_path_factory.mktemp("pairs_synthetic")
    synthetic.generate(root, ids=20, images_per_id=8, cameras=2, seed=4)
    out = tmp_path_factory.mktemp("pairs_records")
    build("synthetic", root, out)
    return str(out)


def test_evaluate_random_pairs_scores_exactly_n_and_fails_asking_for_more(stage1_run, larger_records, tmp_path,
                                                                           capsys):
    from test_cli import run_tool

    # evaluate.py in this process through the same cli.run as `python evaluate.py` (tests/test_cli.py).
    common = [f"--stage1_dir={stage1_run}", f"--data_dir={larger_records}", "--metrics=ssim", "--pairs=random",
              "--seed=0"]
    code, stdout, stderr = run_tool("evaluate.py", [*common, "--n=100", f"--out={tmp_path / 'ok'}"], capsys)
    assert code == 0, stderr[-20:]
    written = json.loads((tmp_path / "ok" / "report.json").read_text())
    assert written["scored"] == 100 and written["metrics"]["ssim"]["n"] == 100 and len(written["pairs"]) == 100
    assert all(s[:4] == t[:4] and s != t for s, t in written["pairs"])  # Market names: the person id first
    assert "100 random same-identity pairs" in stdout and "Scored 100 (--n=100)" in stdout
    code, _, lines = run_tool("evaluate.py", [*common, "--n=1000", f"--out={tmp_path / 'too_many'}"], capsys)
    assert code == 1 and len(lines) == 1, lines
    assert "--n=1000: only 300 same-identity pairs" in lines[0] and "--allow_fewer" in lines[0]


@pytest.mark.parametrize("name, source, target", [
    ("0002_c1s1_000451_03.jpg___0002_c1s1_000551_01.jpg_vis.png", "0002_c1s1_000451_03.jpg", "0002_c1s1_000551_01.jpg"),
    ("0002_c1s1_000451_03_2_0002_c1s1_000551_01_vis.jpg", "0002_c1s1_000451_03", "0002_c1s1_000551_01.jpg"),
    ("0002_c1s1_000451_03.jpg_0002_c1s1_000551_01.jpg.png", "0002_c1s1_000451_03.jpg", "0002_c1s1_000551_01.jpg"),
    ("0002_c1s1_000551_01.jpg", "0002_c1s1_000551_01.jpg", "0002_c1s1_000551_01.jpg"),
])
def test_other_methods_output_names_match_their_target(name, source, target):
    targets = {"0002_c1s1_000551_01.jpg", "0002_c1s1_000451_03.jpg", "0551_c2s1_000001_01.jpg"}
    assert report.match_target(name, targets) == (source, target)


def test_other_methods_output_names_without_a_target_do_not_match():
    assert report.match_target("0002_c1s1_000451_03_2_0009_c1s1_000551_01_vis.jpg", {"0002_c1s1_000451_03.jpg"}) is None


def test_patn_strips_cropped_score_their_generated_panel(tmp_path, rng):
    sources = [f"000{i}_c1s1_00000{i}_01.jpg" for i in range(1, 4)]
    wanted = [f"000{i}_c2s1_00000{i}_01.jpg" for i in range(1, 4)]
    (tmp_path / "gen").mkdir()
    (tmp_path / "tgt").mkdir()
    for source, target in zip(sources, wanted):
        photo = rng.integers(0, 256, (16, 8, 3), dtype=np.uint8)
        Image.fromarray(photo).save(tmp_path / "tgt" / target.replace(".jpg", ".png"))
        strip = np.concatenate([rng.integers(0, 256, (16, 8, 3), dtype=np.uint8) for _ in range(4)] + [photo], axis=1)
        Image.fromarray(strip).save(tmp_path / "gen" / f"{source}___{target.replace('.jpg', '.png')}_vis.png")
    images = report.folder_images(str(tmp_path / "gen"), str(tmp_path / "tgt"), n=3,
                                  panel=registry.crop_panel("5/5"))
    assert (images.generated == images.targets).all() and images.generated.shape == (3, 16, 8, 3)
    assert [pair[0] for pair in images.pairs] == sources
    with pytest.raises(ValueError, match="must have the same size.*--crop=i/k"):
        report.folder_images(str(tmp_path / "gen"), str(tmp_path / "tgt"))
    with pytest.raises(ValueError, match="not a multiple of 3"):
        report.folder_images(str(tmp_path / "gen"), str(tmp_path / "tgt"), panel=(1, 3))
    with pytest.raises(ValueError, match="--n=4: only 3 image files"):
        report.folder_images(str(tmp_path / "gen"), str(tmp_path / "tgt"), n=4, panel=(5, 5))
    assert len(report.folder_images(str(tmp_path / "gen"), str(tmp_path / "tgt"), n=4, panel=(5, 5),
                                    allow_fewer=True).pairs) == 3


@pytest.mark.parametrize("crop", ["5", "0/5", "6/5", "a/b", "1/0"])
def test_malformed_crop_is_refused(crop):
    with pytest.raises(ValueError, match=f"--crop={crop}: expected i/k"):
        registry.crop_panel(crop)


@pytest.mark.parametrize("fields, message", [
    ({"pairs": "random", "task": "reconstruct"}, "--pairs=random"),
    ({"pairs": "sorted"}, "--pairs=sorted"),
    ({"crop": "5/5"}, "--crop=5/5"),
])
def test_pair_options_are_checked_before_anything_runs(fields, message):
    with pytest.raises(ValueError, match=message):
        registry.EvalOptions(metrics=("ssim",), **fields).validate(folders=False)
