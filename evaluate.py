"""Evaluates a trained run, or two folders of images, and writes a JSON report and a table.

  python evaluate.py --stage1_dir=runs/s1 --data_dir=out/records --task=transfer --n=200 \
      --metrics=ssim,mask_ssim,fid,gt_swap,leakage,saliency --fid_weights=fid_inception_2015.npz \
      --out=out/eval
  python evaluate.py --generated_dir=DIR --target_dir=DIR [--mask_dir=DIR] --metrics=ssim,fid ...

  python evaluate.py --stage1_dir=runs/s1 --stage2_dir=runs/s2-fg --stage2_dir=runs/s2-bg \
      --stage2_dir=runs/s2-pose --data_dir=out/records --metrics=sampling,inversion

The sampling variants of the paper's Fig. 7 (--task=sample; FID, IS, sample_check):
  python evaluate.py --stage1_dir=runs/s1 --stage2_dir=runs/s2-fg --stage2_dir=runs/s2-bg \
      --stage2_dir=runs/s2-pose --data_dir=out/records --task=sample [--sample_pose=real] \
      --metrics=fid,sample_check --fid_weights=fid_inception_2015.npz
  python evaluate.py --baseline_dir=runs/vae --data_dir=out/records --task=sample --metrics=fid,sample_check ...

Metrics: `--help` lists them with their flags. Each is one module of keras_disentangle/metrics/suite/
registered in keras_disentangle/metrics/registry.py, which holds its protocol: image metrics (ssim,
mask_ssim, is, mask_is, fid) on a model's output or on folders, model metrics on a stage-I run
(gt_swap, leakage, saliency), stage-II metrics on --stage2_dir runs (sampling, inversion).
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import flags  # noqa: E402

from keras_disentangle import cli, configs, rundir  # noqa: E402 (none loads TensorFlow)

FLAGS = flags.FLAGS


def define_flags() -> None:
    cli.renamed(logdir="--stage1_dir")
    from keras_disentangle.metrics import registry  # noqa: PLC0415 (loads no TensorFlow)

    metrics = registry.metrics()
    defaults = registry.DEFAULTS  # configs.EvalConfig
    cli.define_shared("stage1_dir")
    cli.define_shared("stage2_dir", default=[], note="For --task=sample, the stage-II metrics and the sampled-factor "
                      "checks of gt_swap.")
    flags.DEFINE_string("baseline_dir", None, "A VAE / DCGAN baseline run (train.py --stage=baseline), sampled "
                        "with --task=sample instead of a stage-II model.")
    cli.define_enum("sample_pose", defaults.sample_pose, configs.SamplePose, "--task=sample with --stage2_dir: "
                    "sampled (every factor from noise) or real (FG/BG from noise, poses of random training "
                    "images: the paper's 'BodyROI7 + real pose').")
    cli.define_shared("data_dir")
    cli.define_shared("dataset", note="Optional check: the run must have been trained on it.")
    flags.DEFINE_string("generated_dir", None, "Score this folder of images instead of a model's output.")
    flags.DEFINE_string("target_dir", None, "With --generated_dir: the targets, matched by file name.")
    flags.DEFINE_string("mask_dir", None, "With --generated_dir: body masks (nonzero = body), by file name.")
    flags.DEFINE_list("metrics", list(defaults.metrics), "Comma-separated subset of: " + "; ".join(
        f"{name} ({metric.help})" for name, metric in metrics.items()) + ".")
    flags.register_validator("metrics", lambda names: bool(names) and set(names) <= set(metrics),
                             message=f"--metrics takes a comma-separated subset of {','.join(metrics)}")
    cli.define_enum("task", defaults.task, configs.Task, "reconstruct, transfer (pose transfer on the "
                    "pairs file) or sample (every factor from stage II's mappers; needs --stage2_dir).")
    cli.define_shared("split", default=defaults.split)
    cli.define_enum("protocol", defaults.protocol, configs.Protocol, "custom: every setting from its "
                    "flag; paper: the published tables' (Market: 12,800 seeded same-identity test pairs, radius-7 "
                    "masks of the source pose, the original SSIM; DeepFashion: the same with radius-4 masks), "
                    "--n strict. A flag that contradicts it is an error.")
    cli.define_shared("n", default=defaults.n, note="(Or pairs) to score. Given explicitly (or under "
                      "--protocol=paper), fewer existing is an error unless --allow_fewer; otherwise what exists "
                      "is scored (a folder: every file) and the count printed.", lower_bound=1)
    cli.define_enum("pairs", defaults.pairs, configs.Pairs, "--task=transfer: csv (the split's pairs file, "
                    "in file order) or random (n same-identity pairs of the split's images drawn with --seed).")
    flags.DEFINE_bool("allow_fewer", defaults.allow_fewer, "Score what exists when fewer than --n images or pairs do.")
    flags.DEFINE_string("crop", defaults.crop or None, "With --generated_dir: i/k scores the i-th of k equal-width "
                        "panels of each file (PATN's 5-panel strips: 5/5).")
    cli.define_shared("seed", default=defaults.seed, note="Of every draw (gt_swap pairs, leakage tangents, ...).")
    cli.define_shared("batch_size", default=defaults.batch_size, note="Images per model call.", lower_bound=1)
    flags.DEFINE_string("cache_dir", None, "Where FID real statistics are cached (default: STAGE1_DIR/fid_stats).")
    cli.define_shared("out", note=f"{rundir.REPORT_FILE} and the PNG grids (default: STAGE1_DIR, or GENERATED_DIR).")
    for flag in registry.metric_flags().values():
        if flag.choices:
            cli.define_enum(flag.name, flag.default, flag.choices, flag.help)
        else:
            getattr(flags, f"DEFINE_{flag.kind}")(flag.name, flag.default, flag.help,
                                                  **({"lower_bound": flag.lower_bound} if flag.lower_bound is not None
                                                     else {}))


def _options(folders: bool):
    from keras_disentangle.metrics import registry  # noqa: PLC0415

    out_dir = FLAGS.out or FLAGS.stage1_dir or FLAGS.baseline_dir or FLAGS.generated_dir
    cache_dir = FLAGS.cache_dir or (None if folders else rundir.fid_cache_dir(FLAGS.stage1_dir or FLAGS.baseline_dir))
    fixed = registry.protocol_settings(FLAGS.protocol, folders)
    for name, value in fixed.items():
        if FLAGS[name].present and FLAGS[name].value != value:
            raise ValueError(f"--{name}={FLAGS[name].value}: --protocol=paper fixes --{name}={value}; drop --{name} "
                             "or use --protocol=custom.")

    def setting(name: str):
        return fixed.get(name, FLAGS[name].value)

    # Only an --n someone asked for (or the paper's) is a promise; the default scores what exists.
    strict = FLAGS.protocol == configs.Protocol.PAPER or FLAGS["n"].present
    options = registry.EvalOptions(
        metrics=tuple(FLAGS.metrics), task=setting("task"), n=setting("n"), seed=FLAGS.seed, split=FLAGS.split,
        batch_size=FLAGS.batch_size, cache_dir=cache_dir, out_dir=out_dir,
        params={name: setting(name) for name in registry.metric_flags()}, pairs=setting("pairs"),
        allow_fewer=setting("allow_fewer") or not strict, crop=FLAGS.crop or "", sample_pose=FLAGS.sample_pose,
        protocol=FLAGS.protocol)
    options.validate(folders, stage2=bool(FLAGS.stage2_dir), baseline=bool(FLAGS.baseline_dir))
    return options, rundir.report_path(out_dir), strict


def main(argv):
    cli.no_positional(argv)
    folders = bool(FLAGS.generated_dir or FLAGS.target_dir)
    if folders and not (FLAGS.generated_dir and FLAGS.target_dir):
        raise cli.UsageError("--generated_dir and --target_dir go together.")
    if folders and (FLAGS.stage1_dir or FLAGS.baseline_dir):
        raise cli.UsageError("give either --stage1_dir / --baseline_dir (score a model) or --generated_dir/"
                             "--target_dir (score files), not both.")
    if FLAGS.baseline_dir and FLAGS.stage1_dir:
        raise cli.UsageError("give either --stage1_dir (the disentangled model) or --baseline_dir, not both.")
    if not folders and (not (FLAGS.stage1_dir or FLAGS.baseline_dir) or not FLAGS.data_dir):
        raise cli.UsageError("--stage1_dir (or --baseline_dir) and --data_dir are required (or --generated_dir and "
                             "--target_dir).")
    try:
        options, out, strict = _options(folders)
    except ValueError as error:
        raise cli.UsageError(str(error)) from None

    from keras_disentangle.metrics import registry, report  # noqa: PLC0415

    # A folder without an asked-for --n is scored whole.
    n = options.n if strict or not folders else None
    header = {"command": " ".join(sys.argv), "task": options.task, "split": options.split, "n": n,
              "pairs_from": options.pairs, "seed": options.seed, **options.params, "versions": report.versions()}
    cfg = stage1 = stage2 = baseline = None
    registered = registry.metrics()
    needs_images = any(registry.Needs.IMAGES in registered[m].needs for m in options.metrics)
    if folders:
        images = report.folder_images(FLAGS.generated_dir, FLAGS.target_dir, FLAGS.mask_dir, n,
                                      registry.crop_panel(options.crop) if options.crop else None, options.allow_fewer)
        header.update(generated_dir=FLAGS.generated_dir, target_dir=FLAGS.target_dir, mask_dir=FLAGS.mask_dir,
                      crop=options.crop or None)
        real_key = {"dataset": "folder", "split": os.path.abspath(FLAGS.target_dir), "n": len(images.targets),
                    "names": [t for _, t in images.pairs]}
        real_images = lambda: images.targets  # noqa: E731
    else:
        from keras_disentangle.data import load_examples  # noqa: PLC0415
        from keras_disentangle.serving.runtime import load_baseline, load_stage1, load_stage2  # noqa: PLC0415
        from keras_disentangle.data.visualize import to_uint8  # noqa: PLC0415

        if FLAGS.baseline_dir:
            baseline = load_baseline(FLAGS.baseline_dir)
            cfg = baseline.cfg
            header["baseline"] = {"dir": FLAGS.baseline_dir, "model": baseline.model.value}
        elif FLAGS.stage2_dir:
            stage2 = load_stage2(FLAGS.stage2_dir, FLAGS.stage1_dir)
            cfg, stage1 = stage2.cfg, stage2.stage1
            header["stage2_dirs"] = FLAGS.stage2_dir
        else:
            cfg, stage1 = load_stage1(FLAGS.stage1_dir)
        if FLAGS.dataset and FLAGS.dataset != cfg.data.name:
            raise cli.UsageError(f"--dataset={FLAGS.dataset}: the run in {FLAGS.stage1_dir or FLAGS.baseline_dir} "
                                 "was trained on "
                                 f"{cfg.data.name!r}.")
        sampling = options.task == configs.Task.SAMPLE
        header.update(stage1_dir=FLAGS.stage1_dir, data_dir=FLAGS.data_dir, dataset=cfg.data.name, scale=cfg.scale,
                      sample_pose=options.sample_pose if sampling and FLAGS.stage2_dir else None)
        images = None
        if needs_images:
            images = (report.sample_images(baseline or stage2, options, FLAGS.data_dir) if sampling
                      else report.model_images(cfg, stage1, FLAGS.data_dir, options))
        real_key = {"dataset": cfg.data.name, "split": options.split, "n": options.n,
                    "size": [cfg.data.height, cfg.data.width], "data_dir": os.path.abspath(FLAGS.data_dir)}
        real_images = lambda: to_uint8(load_examples(FLAGS.data_dir, cfg, options.split, options.n)["image"])  # noqa: E731
    header["protocol"] = report.protocol_note(options, cfg.data if cfg else None)
    header["description"] = images.description if images else f"model metrics on the '{options.split}' split"
    header["pairs"] = images.pairs if images else None
    # How many were scored: --n unless fewer exist and --n was not strict (or --allow_fewer).
    header["scored"] = len(images.generated) if images else None
    header["metrics"] = registry.evaluate(registry.Inputs(
        options, images=images, real_images=real_images, real_key=real_key, cfg=cfg, stage1=stage1, stage2=stage2,
        data_dir=FLAGS.data_dir))
    print(registry.format_table(header))
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as f:
        json.dump(header, f, indent=2)
    print(f"Wrote {out}")


if __name__ == "__main__":
    cli.run(main, define_flags)
