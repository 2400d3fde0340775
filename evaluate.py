"""Evaluates a trained run and writes a JSON report.

  python evaluate.py --logdir=runs/s1 --data_dir=out/records --metrics=gt_swap --n=200 --out=report.json

Metrics:
  gt_swap  disentanglement on the synthetic ground truth (keras_disentangle.metrics.disentangle):
           reconstruction, FG swap, BG swap and pose transfer against exact targets, with the
           trivial baselines "output = A" and "output = B".
"""

from __future__ import annotations

import json
import os
import platform
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("logdir", None, "The stage-I run directory.")
flags.DEFINE_string("data_dir", None, "TFRecords written by `python -m tfrecords.build`.")
flags.DEFINE_list("metrics", ["gt_swap"], "Comma-separated metrics: gt_swap.")
flags.DEFINE_string("split", "test", "Which split's records to evaluate on.")
flags.DEFINE_integer("n", 200, "How many pairs (or images) to score.")
flags.DEFINE_integer("seed", 0, "Seed of the pair draw.")
flags.DEFINE_string("out", None, "Where to write the JSON report (default: LOGDIR/report.json).")


def run_gt_swap(cfg, stage1, data_dir: str) -> dict:
    import keras  # noqa: PLC0415

    from keras_disentangle.data import load_examples  # noqa: PLC0415
    from keras_disentangle.export import Stage1Serving  # noqa: PLC0415
    from keras_disentangle.metrics import disentangle  # noqa: PLC0415
    from keras_disentangle.training.steps import encoder_inputs  # noqa: PLC0415

    serving = Stage1Serving(cfg, stage1)
    # Pairs are drawn among up to 4n images so that most images appear in a few pairs at most.
    examples = load_examples(data_dir, cfg, FLAGS.split, 4 * FLAGS.n)

    def encode(batch):
        embeddings = stage1.appearance_encoder(encoder_inputs(batch), training=False)
        return {"fg": embeddings["fg_embedding"], "bg": embeddings.get("bg_embedding")}

    def generate(codes, heatmaps):
        return serving.generate(codes["fg"], codes["bg"], heatmaps)

    batches = range(0, FLAGS.n, 32)
    progbar = keras.utils.Progbar(len(batches), unit_name="batch")

    def progress(iterable):
        for i, item in enumerate(iterable):
            yield item
            progbar.update(i + 1)

    result = disentangle.gt_swap(examples, generate, encode, cfg.data, n=FLAGS.n, seed=FLAGS.seed,
                                 batch_size=32, progress=progress)
    result["protocol"] = (
        f"{FLAGS.split} split, pairs with different identity and background, seed {FLAGS.seed}; "
        "SSIM: gaussian protocol on colour; L1 in [0, 1] units; region = target pose's body mask "
        "(fg_swap, pose_transfer), its complement (bg_swap), the whole image (reconstruction).")
    return result


METRICS = {"gt_swap": run_gt_swap}


def print_gt_swap(result: dict) -> None:
    print(f"\ngt_swap on {result['n']} pairs (lower L1 is better, higher SSIM is better)")
    print(f"{'task':<15}{'output':<12}{'SSIM':>8}{'L1':>8}{'region L1':>11}")
    for task, by_output in result["tasks"].items():
        for output, m in by_output.items():
            print(f"{task:<15}{output:<12}{m['ssim']['mean']:>8.3f}{m['l1']['mean']:>8.3f}"
                  f"{m['region_l1']['mean']:>11.3f}")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    if not FLAGS.logdir or not FLAGS.data_dir:
        print("evaluate.py: error: --logdir and --data_dir are required.", file=sys.stderr)
        sys.exit(2)
    unknown = [m for m in FLAGS.metrics if m not in METRICS]
    if unknown:
        print(f"evaluate.py: error: unknown metric(s) {', '.join(unknown)}; expected {', '.join(METRICS)}.",
              file=sys.stderr)
        sys.exit(2)
    import keras  # noqa: PLC0415
    import tensorflow as tf  # noqa: PLC0415

    from keras_disentangle.export import load_stage1  # noqa: PLC0415
    from keras_disentangle.training.checkpoint import RunDirectoryError  # noqa: PLC0415

    try:
        cfg, stage1 = load_stage1(FLAGS.logdir)
    except RunDirectoryError as error:
        print(f"evaluate.py: error: {error}", file=sys.stderr)
        sys.exit(2)
    report = {
        "logdir": FLAGS.logdir, "data_dir": FLAGS.data_dir, "dataset": cfg.data.name, "scale": cfg.scale,
        "split": FLAGS.split, "n": FLAGS.n, "seed": FLAGS.seed,
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__,
                     "python": platform.python_version()},
        "metrics": {},
    }
    for name in FLAGS.metrics:
        try:
            report["metrics"][name] = METRICS[name](cfg, stage1, FLAGS.data_dir)
        except ValueError as error:
            print(f"evaluate.py: error: {name}: {error}", file=sys.stderr)
            sys.exit(2)
    if "gt_swap" in report["metrics"]:
        print_gt_swap(report["metrics"]["gt_swap"])
    out = FLAGS.out or os.path.join(FLAGS.logdir, "report.json")
    with open(out, "w") as f:
        json.dump(report, f, indent=2)
    print(f"\nWrote {out}")


if __name__ == "__main__":
    app.run(main)
