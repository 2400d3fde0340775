"""`evaluate.py --protocol`: the published tables' settings (`paper`) and what the default (`custom`)
scores when no --n is asked for."""

import json

import numpy as np
import pytest
from PIL import Image

from keras_disentangle import configs
from keras_disentangle.metrics import registry, report

# The body mask of a Market-1501 pose whose only joints are the neck (40, 32) and the nose (46, 32),
# one limb: the radius-7 disks of the authors' `pose_mask_r6` field swept along it, drawn by hand
# (rows 33-53, columns 25-39 of the 128 x 64 image).
RADIUS_7_LIMB = """
.......#.......
....#######....
...#########...
..###########..
.#############.
.#############.
.#############.
###############
###############
###############
###############
###############
###############
###############
.#############.
.#############.
.#############.
..###########..
...#########...
....#######....
.......#.......
"""


def test_paper_protocol_masks_market_with_the_radius_7_disks():
    cfg = configs.get_config("market", "full")
    keypoints = -np.ones((1, 18, 2), np.float32)
    keypoints[0, 1], keypoints[0, 0] = (40, 32), (46, 32)
    expected = np.zeros((128, 64), bool)
    expected[33:54, 25:40] = np.array([[c == "#" for c in row] for row in RADIUS_7_LIMB.split()])
    paper = report.metrics_masks(cfg.data, keypoints, protocol="paper")[0, ..., 0]
    np.testing.assert_array_equal(paper.astype(bool), expected)
    custom = report.metrics_masks(cfg.data, keypoints)[0, ..., 0]
    assert custom.sum() < paper.sum() and report.metrics_mask_radius(cfg.data) == 4
    deepfashion = configs.get_config("deepfashion", "full").data
    assert report.metrics_mask_radius(deepfashion, "paper") == 4


def test_paper_protocol_fixes_the_published_settings_and_the_report_names_them():
    fixed = registry.protocol_settings("paper", folders=False)
    assert fixed == {"task": "transfer", "n": 12_800, "pairs": "random", "ssim_protocol": "original",
                     "mask_from": "source", "allow_fewer": False}
    # A folder brings its own pairs and masks.
    assert "pairs" not in registry.protocol_settings("paper", folders=True)
    assert registry.protocol_settings("custom", folders=False) == {}
    options = registry.EvalOptions(metrics=("mask_ssim",), protocol="paper", **{
        k: v for k, v in fixed.items() if k not in ("ssim_protocol", "mask_from")}, params=fixed)
    note = report.protocol_note(options, configs.get_config("market", "full").data)
    assert note.startswith("paper") and "12800 same-identity" in note and "radius-7 body masks of the source" in note
    table = registry.format_table({"description": "d", "protocol": note, "scored": 3, "n": 12_800, "metrics": {}})
    assert f"Protocol: {note}." in table
    with pytest.raises(ValueError, match="--protocol=draft"):
        registry.EvalOptions(metrics=("ssim",), protocol="draft").validate(folders=False)


@pytest.fixture
def folders(tmp_path, rng):
    for name in ("gen", "tgt"):
        (tmp_path / name).mkdir()
        for i in range(3):
            Image.fromarray(rng.integers(0, 256, (16, 8, 3), dtype=np.uint8)).save(tmp_path / name / f"{i}.png")
    return [f"--generated_dir={tmp_path / 'gen'}", f"--target_dir={tmp_path / 'tgt'}", "--metrics=ssim"]


def test_a_folder_is_scored_whole_unless_n_is_asked_for(folders, tmp_path, capsys):
    from test_cli import run_tool

    code, stdout, stderr = run_tool("evaluate.py", [*folders, f"--out={tmp_path / 'all'}"], capsys)
    assert code == 0, stderr[-20:]
    assert "Scored 3 (every file)." in stdout and "Protocol: custom" in stdout
    written = json.loads((tmp_path / "all" / "report.json").read_text())
    assert written["scored"] == 3 and written["n"] is None and written["protocol"].startswith("custom")
    code, _, lines = run_tool("evaluate.py", [*folders, "--n=4", f"--out={tmp_path / 'four'}"], capsys)
    assert code == 1 and "--n=4: only 3 image files" in lines[0], lines
    code, _, lines = run_tool("evaluate.py", [*folders, "--protocol=paper", f"--out={tmp_path / 'paper'}"], capsys)
    assert code == 1 and "--n=12800: only 3 image files" in lines[0], lines


def test_a_flag_that_contradicts_the_paper_protocol_is_a_usage_error(folders, tmp_path, capsys):
    from test_cli import run_tool

    for flag in ("--n=3", "--ssim_protocol=gaussian", "--allow_fewer"):
        code, _, lines = run_tool("evaluate.py", [*folders, "--protocol=paper", flag, f"--out={tmp_path}"], capsys)
        assert code == 2 and len(lines) == 1 and "--protocol=paper fixes" in lines[0], (flag, lines)
