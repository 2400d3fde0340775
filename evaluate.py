"""Evaluates a trained run, or two folders of images, and writes a JSON report and a table.

  python evaluate.py --stage1_dir=runs/s1 --data_dir=out/records --task=transfer --n=200 \
      --metrics=ssim,mask_ssim,fid,gt_swap,leakage,saliency --fid_weights=fid_inception_2015.npz \
      --out=report.json
  python evaluate.py --generated_dir=DIR --target_dir=DIR [--mask_dir=DIR] --metrics=ssim,fid ...

Metrics (protocols in keras_disentangle/metrics/report.py and the README's table):
  ssim, mask_ssim  per-image SSIM of generated vs target; --ssim_protocol=original (the paper's:
                   gray, 7x7 uniform window) or gaussian (Pose-Transfer toolkit); mask-SSIM masks
                   both with the target's body mask (--mask_from=source reproduces the original).
  is, mask_is      Inception Score, 10 splits (--inception_weights=Keras InceptionV3 .h5).
  fid              FID on the 2015 Inception pool-3 features (--fid_weights=.npz); the real set is
                   the first n images of the split, its statistics cached in --cache_dir.
  gt_swap          swaps and pose transfer against the synthetic set's exact ground truth.
  leakage          share of each appearance code's Jacobian mass inside its own region; PNG grid.
  saliency         saliency / Grad-CAM of D1 and the encoders; PNG grid.
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import flags  # noqa: E402

from keras_disentangle import cli, rundir  # noqa: E402 (neither loads TensorFlow)

FLAGS = flags.FLAGS


def define_flags() -> None:
    from keras_disentangle.metrics.report import METRICS, TASKS  # noqa: PLC0415

    flags.DEFINE_string("stage1_dir", None, "The stage-I run directory.")
    flags.DEFINE_multi_string("stage2_dir", [], "A stage-II run directory (repeat per factor): --task=sample and "
                              "the sampled-factor checks of gt_swap.")
    flags.DEFINE_string("data_dir", None, "TFRecords written by `python -m tfrecords.build`.")
    flags.DEFINE_enum("dataset", None, ["market", "deepfashion", "synthetic"],
                      "Optional check: the dataset the run must have been trained on.")
    flags.DEFINE_string("generated_dir", None, "Score this folder of images instead of a model's output.")
    flags.DEFINE_string("target_dir", None, "With --generated_dir: the targets, matched by file name.")
    flags.DEFINE_string("mask_dir", None, "With --generated_dir: body masks (nonzero = body), by file name.")
    flags.DEFINE_list("metrics", ["ssim", "mask_ssim"], "Comma-separated subset of: " + ", ".join(METRICS) + ".")
    flags.register_validator("metrics", lambda names: bool(names) and set(names) <= set(METRICS),
                             message=f"--metrics takes a comma-separated subset of {','.join(METRICS)}")
    flags.DEFINE_enum("task", "transfer", list(TASKS), "reconstruct, transfer (pose transfer on the pairs file) "
                      "or sample (every factor from stage II's mappers; needs --stage2_dir).")
    flags.DEFINE_string("split", "test", "Which split's records to evaluate on.")
    flags.DEFINE_integer("n", 200, "How many images (or pairs) to score.", lower_bound=1)
    flags.DEFINE_integer("seed", 0, "Seed of the gt_swap pair draw and of the leakage estimator.")
    flags.DEFINE_integer("batch_size", 32, "Images per model call.", lower_bound=1)
    flags.DEFINE_enum("ssim_protocol", "original", ["original", "gaussian"],
                      "original (the paper's) or gaussian (Pose-Transfer toolkit).")
    flags.DEFINE_enum("mask_from", "target", ["target", "source"], "Whose body mask mask_ssim/mask_is use: "
                      "target, or source (the original code's bug, to reproduce its numbers).")
    flags.DEFINE_string("inception_weights", None, "Keras InceptionV3 ImageNet weights (.h5), for is/mask_is.")
    flags.DEFINE_string("fid_weights", None, "FID Inception weights (.npz from "
                        "`python -m keras_disentangle.metrics.fid_weights`), for fid.")
    flags.DEFINE_string("cache_dir", None, "Where FID real statistics are cached (default: STAGE1_DIR/fid_stats).")
    flags.DEFINE_integer("leakage_n", 8, "Images the leakage maps are computed on.", lower_bound=1)
    flags.DEFINE_integer("leakage_projections", 0, "0: exact Jacobian norms; K: Hutchinson estimate, K tangents.",
                         lower_bound=0)
    flags.DEFINE_integer("saliency_n", 8, "Images in the saliency grid.", lower_bound=1)
    flags.DEFINE_string("out", None, "Where to write the JSON report (default: STAGE1_DIR/report.json); PNG grids "
                        "go beside it.")


def _options(folders: bool):
    from keras_disentangle.metrics import report  # noqa: PLC0415

    out = FLAGS.out or rundir.report_path(FLAGS.stage1_dir or FLAGS.generated_dir)
    cache_dir = FLAGS.cache_dir or (None if folders else rundir.fid_cache_dir(FLAGS.stage1_dir))
    options = report.EvalOptions(
        metrics=tuple(FLAGS.metrics), task=FLAGS.task, n=FLAGS.n, seed=FLAGS.seed, split=FLAGS.split,
        batch_size=FLAGS.batch_size, ssim_protocol=FLAGS.ssim_protocol, mask_from=FLAGS.mask_from,
        inception_weights=FLAGS.inception_weights, fid_weights=FLAGS.fid_weights, cache_dir=cache_dir,
        out_dir=os.path.dirname(os.path.abspath(out)), leakage_n=FLAGS.leakage_n,
        leakage_projections=FLAGS.leakage_projections, saliency_n=FLAGS.saliency_n)
    options.validate(folders, stage2=bool(FLAGS.stage2_dir))
    return options, out


def main(argv):
    cli.no_positional(argv)
    folders = bool(FLAGS.generated_dir or FLAGS.target_dir)
    if folders and not (FLAGS.generated_dir and FLAGS.target_dir):
        raise cli.UsageError("--generated_dir and --target_dir go together.")
    if folders and FLAGS.stage1_dir:
        raise cli.UsageError("give either --stage1_dir (score a model) or --generated_dir/--target_dir (score "
                             "files), not both.")
    if not folders and (not FLAGS.stage1_dir or not FLAGS.data_dir):
        raise cli.UsageError("--stage1_dir and --data_dir are required (or --generated_dir and --target_dir).")
    try:
        options, out = _options(folders)
    except ValueError as error:
        raise cli.UsageError(str(error)) from None

    from keras_disentangle.metrics import report  # noqa: PLC0415

    header = {"command": " ".join(sys.argv), "task": options.task, "split": options.split, "n": options.n,
              "seed": options.seed, "ssim_protocol": options.ssim_protocol, "mask_from": options.mask_from,
              "versions": report.versions()}
    cfg = stage1 = stage2 = None
    needs_images = any(m in report.IMAGE_METRICS for m in options.metrics)
    if folders:
        images = report.folder_images(FLAGS.generated_dir, FLAGS.target_dir, FLAGS.mask_dir, options.n)
        header.update(generated_dir=FLAGS.generated_dir, target_dir=FLAGS.target_dir, mask_dir=FLAGS.mask_dir)
        real_key = {"dataset": "folder", "split": os.path.abspath(FLAGS.target_dir), "n": len(images.targets),
                    "names": [t for _, t in images.pairs]}
        real_images = lambda: images.targets  # noqa: E731
    else:
        from keras_disentangle.data import load_examples  # noqa: PLC0415
        from keras_disentangle.runtime import load_stage1, load_stage2  # noqa: PLC0415
        from keras_disentangle.visualize import to_uint8  # noqa: PLC0415

        if FLAGS.stage2_dir:
            stage2 = load_stage2(FLAGS.stage2_dir, FLAGS.stage1_dir)
            cfg, stage1 = stage2.cfg, stage2.stage1
            header["stage2_dirs"] = FLAGS.stage2_dir
        else:
            cfg, stage1 = load_stage1(FLAGS.stage1_dir)
        if FLAGS.dataset and FLAGS.dataset != cfg.data.name:
            raise cli.UsageError(f"--dataset={FLAGS.dataset}: the run in {FLAGS.stage1_dir} was trained on "
                                 f"{cfg.data.name!r}.")
        header.update(stage1_dir=FLAGS.stage1_dir, data_dir=FLAGS.data_dir, dataset=cfg.data.name, scale=cfg.scale)
        images = None
        if needs_images:
            images = (report.sample_images(stage2, options) if options.task == "sample"
                      else report.model_images(cfg, stage1, FLAGS.data_dir, options))
        real_key = {"dataset": cfg.data.name, "split": options.split, "n": options.n,
                    "size": [cfg.data.height, cfg.data.width], "data_dir": os.path.abspath(FLAGS.data_dir)}
        real_images = lambda: to_uint8(load_examples(FLAGS.data_dir, cfg, options.split, options.n)["image"])  # noqa: E731
    header["description"] = images.description if images else f"model metrics on the '{options.split}' split"
    header["pairs"] = images.pairs if images else None
    header["metrics"] = report.evaluate(options, images=images, real_images=real_images, real_key=real_key,
                                        cfg=cfg, stage1=stage1, data_dir=FLAGS.data_dir, stage2=stage2)
    print(report.format_table(header))
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as f:
        json.dump(header, f, indent=2)
    print(f"Wrote {out}")


if __name__ == "__main__":
    cli.run(main, define_flags)
