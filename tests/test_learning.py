"""Learning in CI: the micro preset, trained from scratch for a fixed number of steps, disentangles.

One module-scoped run (float32, fixed seeds, step-bounded so the outcome does not depend on the
machine's speed) feeds every test here: gt_swap against the trivial baselines, and `evaluate.py`
on the trained run, asserting values. Budget: the AVX2-only EPYC (the slowest CPU kind) runs
~17.9 micro steps/s (projected from a rate emulated with ONEDNN_MAX_CPU_ISA=AVX2;
docs/experiments/demo-cpu-kinds.md), so STEPS take ~2 minutes there.
"""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from conftest import communicate_within_hang_guard

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
STEPS = 2000
# The preset's learning rate, halved every HALVING steps: the constant rate's FG swap curve was not
# monotone (seed 0: 0.99x the better baseline at 2,000 steps, 0.86x at 2,500, 0.81x at 3,000); the
# halving settles it sooner. One camera (3 backgrounds) and 60 training people: both encoders see each
# kind many times in STEPS steps.
HALVING = 800
DATA = dict(ids=120, images_per_id=8, cameras=1, seed=1)
# The model's region L1 must be below this share of the better trivial baseline's: measured 0.65x-0.68x
# for FG swap and 0.52x-0.64x for BG swap over the spread of runs named below.
MARGIN = 0.95
# Garment colour (gt_swap's colour scores): dE76 below this share of the no-appearance baseline's,
# chroma at least this share of the target's. The trained weights move with the CPU's numerics and
# TensorFlow's thread count (the CPU count by default), so both bounds sit between grey clothes and
# the spread measured over seeds 0-2 x intra-op threads 1 / 2 / 4 x native or capped at AVX2
# (docs/experiments/learning-margins.md): dE76 0.42x-0.61x the baseline's, chroma 0.47-0.61 for the lower garment
# (0.74-0.85 for the upper); the dataset's mean colour scores 0.08-0.10, and micro without the code in
# its up path (the grey clothes of before) 0.94x and 0.31.
COLOUR_MARGIN = 0.7
MIN_CHROMA_RATIO = 0.35


def _evaluate(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(REPO_ROOT))
    return subprocess.Popen([sys.executable, str(REPO_ROOT / "evaluate.py"), *args], cwd=REPO_ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module")
def micro_run(tmp_path_factory):
    """(stage-I run directory, records directory) of the micro preset trained STEPS steps from scratch."""
    import tensorflow as tf

    from keras_disentangle import configs
    from keras_disentangle.training import stage1, steps
    from tfrecords import synthetic
    from tfrecords.build import build

    root = tmp_path_factory.mktemp("learning_synthetic")
    synthetic.generate(root, **DATA)
    records = tmp_path_factory.mktemp("learning_records")
    build("synthetic", root, records)
    logdir = tmp_path_factory.mktemp("learning_run")
    cfg = configs.override(configs.get_config("synthetic", "micro"), steps=STEPS, lr_halving_steps=HALVING, seed=0,
                           log_every=STEPS, image_every=STEPS, checkpoint_every=STEPS)
    # Appearance only: nothing here reads the pose auto-encoder, which would add ~15% per step.
    stage1.train_stage1(cfg, data_dir=str(records), logdir=str(logdir), part=steps.Stage1Part.APPEARANCE,
                        strategy=tf.distribute.get_strategy(), verbose=False)
    return str(logdir), str(records)


@pytest.fixture(scope="module")
def reports(micro_run, tmp_path_factory):
    """evaluate.py on the run, two tasks at once: {"reconstruct": report, "transfer": report}."""
    logdir, records = micro_run
    out = tmp_path_factory.mktemp("learning_eval")
    runs = {
        "reconstruct": _evaluate(f"--stage1_dir={logdir}", f"--data_dir={records}", "--task=reconstruct", "--n=100",
                                 "--metrics=ssim,mask_ssim,gt_swap,leakage,saliency", "--leakage_n=4",
                                 "--leakage_projections=2", "--saliency_n=4", f"--out={out / 'reconstruct'}"),
        "transfer": _evaluate(f"--stage1_dir={logdir}", f"--data_dir={records}", "--task=transfer", "--n=100",
                              "--metrics=ssim,mask_ssim", f"--out={out / 'transfer'}"),
    }
    written = {}
    for task, process in runs.items():
        stdout, stderr = communicate_within_hang_guard(process)
        assert process.returncode == 0, stderr[-3000:]
        written[task] = json.loads((out / task / "report.json").read_text())
        written[task]["stdout"] = stdout
    return written


def _region_l1(tasks: dict, task: str) -> dict:
    return {output: tasks[task][output]["region_l1"]["mean"] for output in ("model", "baseline_a", "baseline_b")}


@pytest.mark.parametrize("task", ["fg_swap", "bg_swap"])
def test_micro_model_beats_both_trivial_baselines_on_gt_swap(reports, task):
    values = _region_l1(reports["reconstruct"]["metrics"]["gt_swap"]["tasks"], task)
    assert values["model"] < MARGIN * min(values["baseline_a"], values["baseline_b"]), values


@pytest.mark.parametrize("task", ["fg_swap", "pose_transfer"])
def test_micro_model_keeps_the_clothes_colours(reports, task):
    """A's garments come out in A's colours: mean-colour dE76 at least 30% below the target with every
    garment in the set's mean colour, and at least 0.35 of the target's chroma (grey clothes score 0.08-0.31)."""
    colour = reports["reconstruct"]["metrics"]["gt_swap"]["colour"][task]
    for garment, by_output in colour.items():
        model, neutral = by_output["model"], by_output["no_appearance"]
        assert model["n"] >= 50, (garment, model)
        assert model["delta_e"] < COLOUR_MARGIN * neutral["delta_e"], (garment, model, neutral)
        assert model["chroma_ratio"] >= MIN_CHROMA_RATIO, (garment, model)


def test_reconstruction_beats_another_persons_photo(reports, micro_run):
    """SSIM of G1(x, h) against x above SSIM of "output = B" (another held-out photo) against x."""
    from keras_disentangle import configs, data
    from keras_disentangle.metrics.image import ssim, to_uint8

    logdir, records = micro_run
    metrics = reports["reconstruct"]["metrics"]
    cfg = configs.get_config("synthetic", "micro")
    targets = to_uint8(data.load_examples(records, cfg, "test", metrics["ssim"]["n"])["image"])
    others = np.roll(targets, 1, axis=0)
    baseline = float(ssim(others, targets, "original").mean())
    assert metrics["ssim"]["n"] == 100
    assert metrics["ssim"]["value"] > baseline + 0.1, (metrics["ssim"]["value"], baseline)
    gt = _region_l1(metrics["gt_swap"]["tasks"], "reconstruction")
    assert gt["model"] < MARGIN * gt["baseline_b"], gt
    assert "gt_swap on" in reports["reconstruct"]["stdout"]


def test_pose_transfer_beats_the_source_photo(reports, micro_run):
    """On same-person test pairs, SSIM of G1(source appearance, target pose) against the target photo
    is above SSIM of "output = the source photo"."""
    from keras_disentangle import configs, data
    from keras_disentangle.metrics.image import ssim, to_uint8

    logdir, records = micro_run
    metrics = reports["transfer"]["metrics"]
    n = metrics["ssim"]["n"]
    source, target = next(iter(data.pairs_dataset(records, configs.get_config("synthetic", "micro"), "test", n)))
    baseline = float(ssim(to_uint8(source["image"].numpy()), to_uint8(target["image"].numpy()), "original").mean())
    assert n == 100 and len(reports["transfer"]["pairs"]) == 100
    assert metrics["ssim"]["value"] > baseline + 0.05, (metrics["ssim"]["value"], baseline)


def test_leakage_body_codes_act_mostly_inside_their_regions(reports):
    """The 7 FG codes put more of their influence inside their own body ROI than a code spread evenly
    would: the median share / area is above 1.2 (measured ~1.5; the small head ROI is the weakest,
    ~0.9-1.2, so no single code is asserted on 4 images and 2 Hutchinson tangents)."""
    codes = reports["reconstruct"]["metrics"]["leakage"]["codes"]
    ratios = sorted(m["share"] / m["area"] for name, m in codes.items() if name != "background")
    assert len(ratios) == 7
    assert ratios[3] > 1.2, codes


def test_saliency_of_each_code_lies_in_its_region(reports):
    """Gradient saliency of the FG codes falls on the body, of the BG code off it."""
    saliency = reports["reconstruct"]["metrics"]["saliency"]["body_share"]["saliency"]
    for name, share in saliency.items():
        assert (share < 0.5) if name == "background" else (share > 0.5), (name, share)
