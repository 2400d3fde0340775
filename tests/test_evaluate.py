"""Tests for evaluate.py, keras_disentangle.metrics.report and the registered metrics: known answers,
flags, end to end."""

import json
import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from keras_disentangle.metrics import registry, report
from keras_disentangle.metrics.suite import fid, inception_score, mask_inception_score, ssim

from conftest import HANG_GUARD_SECONDS

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def _evaluate(capsys, *args) -> tuple[int, str, list[str]]:
    """evaluate.py with `args`, in this process through its cli.run (tests/test_cli.py): the report it
    writes and what it prints are the claims, not the process (no TensorFlow start-up per run)."""
    from test_cli import run_tool

    return run_tool("evaluate.py", list(args), capsys)


def _write_folder(folder: pathlib.Path, images, mode="RGB") -> None:
    folder.mkdir()
    for i, image in enumerate(images):
        Image.fromarray(image, mode).save(folder / f"{i:03d}.png")


# --- Known answers ---------------------------------------------------------------------------

def test_identical_folders_score_ssim_and_mask_ssim_one(tmp_path, rng, capsys):
    images = rng.integers(0, 256, (4, 32, 16, 3), dtype=np.uint8)
    masks = np.zeros((4, 32, 16), np.uint8)
    masks[:, 8:24, 4:12] = 255
    for name, data, mode in (("gen", images, "RGB"), ("tgt", images, "RGB"), ("mask", masks, "L")):
        _write_folder(tmp_path / name, data, mode)
    out = tmp_path / "eval" / "report.json"
    code, stdout, lines = _evaluate(capsys, f"--generated_dir={tmp_path / 'gen'}", f"--target_dir={tmp_path / 'tgt'}",
                                    f"--mask_dir={tmp_path / 'mask'}", "--metrics=ssim,mask_ssim",
                                    "--ssim_protocol=gaussian", "--n=4", f"--out={out.parent}")
    assert code == 0, lines
    written = json.loads(out.read_text())
    for name in ("ssim", "mask_ssim"):
        assert written["metrics"][name]["value"] == pytest.approx(1.0)
        assert written["metrics"][name]["n"] == 4
        assert "gaussian" in written["metrics"][name]["protocol"]
    assert written["pairs"][0] == ["000.png", "000.png"]
    assert "ssim" in stdout and "1.000" in stdout


def test_folder_images_match_by_name_and_score_like_image_metrics(tmp_path, rng):
    generated = rng.integers(0, 256, (3, 16, 8, 3), dtype=np.uint8)
    targets = rng.integers(0, 256, (3, 16, 8, 3), dtype=np.uint8)
    _write_folder(tmp_path / "gen", generated)
    _write_folder(tmp_path / "tgt", targets)
    images = report.folder_images(str(tmp_path / "gen"), str(tmp_path / "tgt"))
    result = ssim.compute(registry.Inputs(registry.EvalOptions(metrics=("ssim",), n=3), images=images))
    from keras_disentangle.metrics import image

    assert result["value"] == pytest.approx(image.ssim(generated, targets, "original").mean())
    (tmp_path / "tgt" / "002.png").unlink()
    with pytest.raises(ValueError, match="no file '002.png'"):
        report.folder_images(str(tmp_path / "gen"), str(tmp_path / "tgt"))


def test_inception_score_of_uniform_logits_is_one_and_mask_is_masks():
    images = np.full((20, 8, 8, 3), 200, np.uint8)
    seen = []

    def classifier(batch):
        seen.append(batch)
        return np.zeros((len(batch), 1000))

    result = inception_score.inception_score(images, classifier)
    assert result["value"] == pytest.approx(1.0) and result["std"] == pytest.approx(0.0) and result["n"] == 20
    masks = np.zeros((20, 8, 8, 1))
    masks[:, :4] = 1.0
    masked = mask_inception_score.masked_images(images, masks)
    assert masked[:, :4].min() == 200 and masked[:, 4:].max() == 0


def test_fid_of_a_set_with_itself_is_zero_and_real_statistics_are_cached(tmp_path, rng):
    features = rng.normal(size=(64, 8)) @ rng.normal(size=(8, 8))
    calls = []

    def compute():
        calls.append(1)
        return features

    key = {"dataset": "synthetic", "split": "test", "n": 64, "size": [64, 32]}
    stats, path = report.cached_statistics(str(tmp_path), key, compute)
    assert fid.fid_value(features, stats) == pytest.approx(0.0, abs=1e-6)
    again, same_path = report.cached_statistics(str(tmp_path), key, compute)
    assert calls == [1] and same_path == path and "synthetic-test-64" in os.path.basename(path)
    np.testing.assert_allclose(again["sigma"], stats["sigma"])
    _, other = report.cached_statistics(str(tmp_path), dict(key, n=32), lambda: features[:32])
    assert other != path
    assert fid.fid_value(features + 1.0, stats) == pytest.approx(8.0, rel=1e-6)


# --- Flags -----------------------------------------------------------------------------------

@pytest.mark.parametrize("fields, message", [
    ({"metrics": ("bogus",)}, "--metrics"),
    ({"metrics": ("is",)}, "keras.applications.InceptionV3(weights='imagenet')"),
    ({"metrics": ("fid",)}, "python -m keras_disentangle.metrics.fid_weights"),
    ({"metrics": ("ssim",), "params": {"ssim_protocol": "fancy"}}, "--ssim_protocol=fancy"),
    ({"metrics": ("mask_ssim",), "params": {"mask_from": "both"}}, "--mask_from=both"),
    ({"metrics": ("leakage",), "params": {"leakage_n": 0}}, "--leakage_n=0"),
    ({"metrics": ("ssim",), "task": "sample"}, "--stage2_dir"),
    ({"metrics": ("sampling",)}, "--stage2_dir"),
    ({"metrics": ("is",), "n": 5}, "n >= 10"),
])
def test_options_reject_bad_settings_naming_the_flag(fields, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        registry.EvalOptions(**fields).validate(folders=False)


def test_model_metrics_refuse_folders():
    with pytest.raises(ValueError, match="need a model"):
        registry.EvalOptions(metrics=("ssim", "leakage")).validate(folders=True)


def test_every_registered_metric_declares_itself_and_loads_no_tensorflow():
    """The registry is read before the flags are parsed: it must stay light."""
    code = ("import pathlib, sys; from keras_disentangle.metrics import registry; m = registry.metrics(); "
            "suite = pathlib.Path(registry.__file__).parent / 'suite'; "
            "assert sorted(x.__name__.rsplit('.', 1)[1] for x in registry.modules()) == sorted("
            "p.stem for p in suite.glob('*.py') if p.stem != '__init__'), 'a suite/ module is not registered'; "
            "assert all(x.help and x.needs and callable(x.compute) for x in m.values()); "
            "assert 'tensorflow' not in sys.modules, 'TensorFlow loaded'; print(','.join(m))")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True,
                            timeout=HANG_GUARD_SECONDS, env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)))
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == [",".join(registry.metrics())]


@pytest.mark.parametrize("args, code, message", [
    (["--metrics=ssim,bogus", "--stage1_dir=x", "--data_dir=y"], 2, "--metrics"),
    (["--metrics=is", "--stage1_dir=x", "--data_dir=y"], 2, "--inception_weights="),
    (["--generated_dir=x"], 2, "--generated_dir and --target_dir go together"),
    (["--metrics=ssim", "--stage1_dir={empty}", "--data_dir=y"], 1, "not a training run directory"),
])
def test_bad_command_lines_exit_with_one_line(args, code, message, tmp_path, capsys):
    from test_cli import run_tool

    # In this process through the same cli.run as `python evaluate.py` (tests/test_cli.py).
    exit_code, _, lines = run_tool("evaluate.py", [a.format(empty=tmp_path) for a in args], capsys)
    assert exit_code == code, lines
    assert len(lines) == 1 and message in lines[0], lines


# --- End to end on a trained run -------------------------------------------------------------

@pytest.mark.slow
def test_evaluate_end_to_end_on_a_stage1_run(stage1_run, synthetic_records, tmp_path, capsys):
    out = tmp_path / "eval" / "report.json"
    code, stdout, lines = _evaluate(capsys, f"--stage1_dir={stage1_run}", f"--data_dir={synthetic_records}",
                                    "--task=transfer", "--n=6", "--metrics=ssim,mask_ssim,gt_swap,leakage,saliency",
                                    "--mask_from=source", "--leakage_n=1", "--leakage_projections=2", "--saliency_n=2",
                                    f"--out={out.parent}")
    assert code == 0, lines
    written = json.loads(out.read_text())
    metrics = written["metrics"]
    assert metrics["ssim"]["n"] == 6 and len(written["pairs"]) == 6
    assert "source's pose" in metrics["mask_ssim"]["protocol"]
    assert {"reconstruction", "fg_swap", "bg_swap", "pose_transfer", "pose_transfer_embedded"} <= set(
        metrics["gt_swap"]["tasks"])
    assert set(metrics["leakage"]["codes"]) == {"head", "upper_body", "legs", "left_arm", "right_arm", "left_leg",
                                                "right_leg", "background"}
    assert "Hutchinson, 2" in metrics["leakage"]["estimator"]
    for name in ("leakage", "saliency"):
        assert Image.open(metrics[name]["png"]).size[0] > 100
    assert written["versions"]["tensorflow"] and "gt_swap on" in stdout


def test_gt_swap_sampled_checks_flag_a_sampler_that_changes_the_background(synthetic_records):
    """With a generator that returns whatever image its FG code holds, reconstruction is exact
    (A's photo), while 'sampling' the FG as another photo changes A's background: sampled_fg
    must score worse than the reconstruction in the background region."""
    from keras_disentangle import configs, data
    from keras_disentangle.data import geometry
    from keras_disentangle.metrics import disentangle

    cfg = configs.get_config("synthetic", "tiny")
    examples = data.load_examples(synthetic_records, cfg, "test")
    h, w = cfg.data.height, cfg.data.width
    # Not seed 0: gt_swap draws its pairs with seed 0, and the same permutation would sample A itself.
    others = examples["image"][np.random.default_rng(1).permutation(len(examples["image"]))]
    draws = iter(range(len(others) * 10))

    def sample(factor, count):
        return np.stack([others[next(draws) % len(others)] for _ in range(count)])

    result = disentangle.gt_swap(
        examples, lambda codes, heatmaps: np.asarray(codes["fg"]),
        lambda batch: {"fg": batch["image"], "bg": np.zeros((len(batch["image"]), 1))}, cfg.data, n=8,
        decode_pose=lambda vectors: geometry.heatmaps_from_pose_vector(vectors, h, w, cfg.data.heatmap_radius),
        sample=sample)
    tasks = result["tasks"]
    assert "pose_transfer_embedded" in tasks and set(tasks["sampled_fg"]) == {"model", "reconstruction"}
    assert tasks["sampled_fg"]["reconstruction"]["region_l1"]["mean"] < 0.02
    assert tasks["sampled_fg"]["model"]["region_l1"]["mean"] > 3 * tasks["sampled_fg"]["reconstruction"][
        "region_l1"]["mean"]
