"""Stage-I runs side by side on the synthetic set's exact ground truth: does the adversarial term
sharpen without losing the swaps? (docs/experiments/adversarial-term.md.)

    python -m keras_disentangle.tools.bench.adversarial --stage1_dir=runs/l1 --stage1_dir=runs/adv \
        --data_dir=/tmp/records --fid_weights=.cache/fid_inception_2015.npz --n=200 --out=out/adv

For each run: gt_swap region L1 of the three swap tasks next to the trivial baselines, and for the
reconstruction and the FG swap the FID (2015 Inception, ported) of the outputs against their exact
targets and the sharpness ratio (Laplacian energy of the outputs over the targets'; 1 is as sharp as
the truth). Writes `adversarial.json`, a Markdown table `adversarial.md` and `adversarial.png` (rows:
A, B, then per task the truth and each run's output). Every run is scored on the same pairs.
"""

from __future__ import annotations

import json
import os

import numpy as np
from absl import flags

from keras_disentangle import cli, data, rundir
from keras_disentangle.data import visualize
from keras_disentangle.metrics import disentangle, fid_weights, image, inception, report
from keras_disentangle.serving.runtime import Stage1Serving, load_stage1

# The tasks whose outputs get FID and sharpness, and those whose region L1 is tabled.
_IMAGE_TASKS = ("reconstruction", "fg_swap")
_SWAP_TASKS = ("fg_swap", "bg_swap", "pose_transfer")
_PICTURE_PAIRS = 8


def score_run(stage1_dir: str, data_dir: str, n: int, seed: int, batch_size: int) -> tuple[dict, dict]:
    """gt_swap of one run and the outputs/targets it scored ({task: {"model", "target"}})."""
    import tensorflow as tf  # noqa: PLC0415

    cfg, stage1 = load_stage1(stage1_dir)
    serving = Stage1Serving(cfg, stage1)
    examples = data.load_examples(data_dir, cfg, "test", 4 * n)

    def encode(batch):
        codes = serving.encode(tf.constant(batch["image"]), tf.constant(batch["keypoints"]))
        return {"fg": codes["fg"], "bg": codes.get("bg")}

    def generate(codes, heatmaps):
        bg = None if codes["bg"] is None else tf.convert_to_tensor(codes["bg"])
        return serving.generate(tf.convert_to_tensor(codes["fg"]), bg, tf.convert_to_tensor(heatmaps))

    images: dict = {}
    result = disentangle.gt_swap(examples, generate, encode, cfg.data, n=n, seed=seed, batch_size=batch_size,
                                 images=images)
    return result, images


def run_summary(stage1_dir: str, result: dict, images: dict, fid_model, batch_size: int,
                real_statistics: dict) -> dict:
    """The table row of one run: steps, region L1 (model and better baseline), FID, sharpness.

    `real_statistics` caches the targets' feature statistics by task: every run is scored on the
    same pairs, so the targets are the same images.
    """
    import tensorflow as tf  # noqa: PLC0415

    checkpoint = tf.train.latest_checkpoint(rundir.checkpoint_dir(stage1_dir))
    row = {"run": stage1_dir, "steps": int(tf.train.load_variable(checkpoint, "step/.ATTRIBUTES/VARIABLE_VALUE"))}
    for task in _SWAP_TASKS:
        by_output = result["tasks"][task]
        row[f"{task}/region_l1"] = by_output["model"]["region_l1"]["mean"]
        row[f"{task}/baseline_region_l1"] = min(by_output[o]["region_l1"]["mean"] for o in ("baseline_a", "baseline_b"))
    for task in _IMAGE_TASKS:
        outputs, targets = images[task]["model"], images[task]["target"]
        row[f"{task}/sharpness"] = image.sharpness_ratio(outputs, targets)
        if fid_model is None:
            continue
        fake = report.feature_statistics(fid_weights.fid_features(fid_model, visualize.to_uint8(outputs),
                                                                  batch_size=batch_size, verbose=0))
        if task not in real_statistics:
            real_statistics[task] = report.feature_statistics(fid_weights.fid_features(
                fid_model, visualize.to_uint8(targets), batch_size=batch_size, verbose=0))
        real = real_statistics[task]
        row[f"{task}/fid"] = inception.frechet_distance(fake["mu"], fake["sigma"], real["mu"], real["sigma"])
    return row


def markdown(rows: list[dict], n: int) -> str:
    swaps = " | ".join(f"{t.replace('_', ' ')} region L1 (baseline)" for t in _SWAP_TASKS)
    quality = " | ".join(f"{t.replace('_', ' ')} {m}" for t in _IMAGE_TASKS for m in ("FID", "sharpness"))
    lines = [f"| run | steps | {swaps} | {quality} |", "|---" * (2 + len(_SWAP_TASKS) + 2 * len(_IMAGE_TASKS)) + "|"]
    for row in rows:
        cells = [os.path.basename(os.path.normpath(row["run"])), str(row["steps"])]
        cells += [f"{row[f'{t}/region_l1']:.4f} ({row[f'{t}/baseline_region_l1']:.4f})" for t in _SWAP_TASKS]
        cells += [f"{row[f'{t}/{m}']:.{p}f}" if f"{t}/{m}" in row else "—"
                  for t in _IMAGE_TASKS for m, p in (("fid", 1), ("sharpness", 3))]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append(f"\n{n} held-out pairs; FID of the outputs against their exact targets (biased upwards at small n: "
                 "compare rows only); sharpness = Laplacian energy of outputs / of targets (1: as sharp as the truth).")
    return "\n".join(lines)


def picture(names: list[str], images_by_run: list[dict], scale: int) -> np.ndarray:
    rows, labels = [], []
    for task in _IMAGE_TASKS + ("bg_swap", "pose_transfer"):
        rows.append(visualize.cells(images_by_run[0][task]["target"][:_PICTURE_PAIRS], scale))
        labels.append(f"{task.replace('_', ' ')}: truth")
        for name, images in zip(names, images_by_run):
            rows.append(visualize.cells(images[task]["model"][:_PICTURE_PAIRS], scale))
            labels.append(f"  {name}")
    return visualize.image_grid(rows, row_labels=labels)


def define_flags() -> None:
    cli.define_shared("stage1_dir", note="Repeat: one row each.", multi=True)
    cli.define_shared("data_dir", note="A synthetic set's.")
    flags.DEFINE_string("fid_weights", os.environ.get("KD_FID_WEIGHTS"), "FID Inception weights (.npz).")
    flags.DEFINE_bool("fid", True, "Score FID (most of the time: --nofid screens on region L1 and sharpness).")
    cli.define_shared("n", default=200, note="Held-out pairs.", lower_bound=2)
    cli.define_shared("seed", default=0, note="Of the pair draw.")
    cli.define_shared("batch_size", default=32, note="Images per model call.", lower_bound=1)
    cli.define_shared("out", default="out/adversarial")


def main(argv: list[str]) -> None:
    cli.no_positional(argv)
    values = flags.FLAGS
    if not values.stage1_dir or not values.data_dir:
        raise cli.UsageError("--stage1_dir (at least one) and --data_dir are required.")
    if values.fid and (not values.fid_weights or not os.path.isfile(values.fid_weights)):
        raise cli.UsageError(f"--fid_weights={values.fid_weights or ''}: not a file; create it with "
                             "`python -m keras_disentangle.metrics.fid_weights --out=.cache`.")
    fid_model = fid_weights.build_fid_inception(values.fid_weights) if values.fid else None
    rows, images_by_run, scale, real_statistics = [], [], 1, {}
    for stage1_dir in values.stage1_dir:
        result, images = score_run(stage1_dir, values.data_dir, values.n, values.seed, values.batch_size)
        rows.append(run_summary(stage1_dir, result, images, fid_model, values.batch_size, real_statistics))
        images_by_run.append(images)
        scale = visualize.picture_scale(rundir.load_config(stage1_dir))
        print(json.dumps(rows[-1]), flush=True)
    os.makedirs(values.out, exist_ok=True)
    with open(os.path.join(values.out, "adversarial.json"), "w") as f:
        json.dump({"n": values.n, "seed": values.seed, "rows": rows}, f, indent=2)
    table = markdown(rows, values.n)
    with open(os.path.join(values.out, "adversarial.md"), "w") as f:
        f.write(table + "\n")
    names = [os.path.basename(os.path.normpath(d)) for d in values.stage1_dir]
    visualize.save_png(os.path.join(values.out, "adversarial.png"), picture(names, images_by_run, scale))
    print(table)


if __name__ == "__main__":
    cli.run(main, define_flags)
