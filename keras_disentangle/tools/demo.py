"""Pictures of a trained run on the synthetic set, for `make demo` and the documentation.

  python -m keras_disentangle.tools.demo stage1 --stage1_dir=runs/s1 --data_dir=out/records --out=out/demo

writes
  reconstruction.png  held-out images (top) and their reconstructions G1(x, h) (bottom);
  swaps.png           per column a pair (A, B) of held-out images of different people and
                      backgrounds: A, B, then for FG swap, BG swap and pose transfer the model's
                      output above the exact ground truth that `synthetic.render` draws.

On a set without a background factor (`make demo-deepfashion`) swaps.png shows pose transfer only:
A's appearance in B's pose.

  python -m keras_disentangle.tools.demo stage2 --stage2_dir=runs/s2-fg --stage2_dir=runs/s2-bg \
      --stage2_dir=runs/s2-pose --data_dir=out/records --out=out/demo

writes
  sampling.png        held-out images, then the same with FG, BG or pose sampled from noise, then
                      new people with every factor sampled (and their sampled poses);
  interpolation.png   per factor two walks between noise vectors (slerp, the rest held by a real
                      image), then inverse interpolations between pairs of held-out images.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import json  # noqa: E402

import numpy as np  # noqa: E402
from absl import flags  # noqa: E402

from keras_disentangle import apps, cli, data  # noqa: E402
from keras_disentangle.data import visualize  # noqa: E402
from keras_disentangle.metrics import disentangle  # noqa: E402
from keras_disentangle.serving.runtime import Stage1Serving, encoder_inputs, load_stage1, load_stage2  # noqa: E402
from keras_disentangle.data.visualize import cells, picture_scale, skeletons  # noqa: E402



def stage1_pictures(stage1_dir: str, data_dir: str, out_dir: str, n: int = 8, seed: int = 0) -> list[str]:
    """Writes reconstruction.png and swaps.png (see the module docstring); returns their paths."""
    cfg, stage1 = load_stage1(stage1_dir)
    serving = Stage1Serving(cfg, stage1)
    scale = picture_scale(cfg)
    examples = data.load_examples(data_dir, cfg, split="test", limit=max(4 * n, 64))
    os.makedirs(out_dir, exist_ok=True)
    written = []

    first = {k: v[:n] for k, v in examples.items()}
    reconstruction = serving.reconstruct(first["image"], first["keypoints"])["image"].numpy()
    path = os.path.join(out_dir, "reconstruction.png")
    visualize.save_png(path, visualize.image_grid(
        [cells(first["image"], scale), cells(reconstruction, scale)], row_labels=["input", "G1(x, h)"]))
    written.append(path)

    if cfg.data.has_background:
        pairs = disentangle.pair_indices(examples["fg_id"], examples["bg_id"], n, seed)
        tasks = ("fg_swap", "bg_swap", "pose_transfer")
    else:
        # Two factors (DeepFashion): pairs of different people; A's appearance in B's pose.
        pairs = disentangle.pair_indices(examples["person_id"], None, n, seed)
        tasks = ("pose_transfer",)
    a_idx, b_idx = np.array([a for a, _ in pairs]), np.array([b for _, b in pairs])
    batches = {"a": {k: v[a_idx] for k, v in examples.items()}, "b": {k: v[b_idx] for k, v in examples.items()}}
    codes = {side: stage1.appearance_encoder(encoder_inputs(batch), training=False)
             for side, batch in batches.items()}
    rows, labels = [cells(batches["a"]["image"], scale), cells(batches["b"]["image"], scale)], ["A", "B"]
    factors = [json.loads(f) for f in examples["factors"]] if all(examples["factors"]) else None
    for task in tasks:
        fg_from, bg_from, pose_from, _ = disentangle.TASK_SOURCES[task]
        output = serving.generate(codes[fg_from]["fg_embedding"], codes[bg_from].get("bg_embedding"),
                                  batches[pose_from]["heatmaps"])
        rows.append(cells(np.asarray(output), scale))
        labels.append(task.replace("_", " "))
        if factors is not None:
            side = disentangle.SIDE
            truth = np.stack([disentangle.render_target(
                factors[pair[side[fg_from]]]["fg"], factors[pair[side[bg_from]]]["bg"],
                factors[pair[side[pose_from]]]["pose"], cfg.data) for pair in pairs])
            rows.append(cells(truth, scale))
            labels.append("  ground truth")
    path = os.path.join(out_dir, "swaps.png")
    visualize.save_png(path, visualize.image_grid(rows, row_labels=labels))
    written.append(path)
    return written


def stage2_pictures(stage2_dirs, data_dir: str, out_dir: str, n: int = 8, seed: int = 0,
                    stage1_dir: str | None = None) -> list[str]:
    """Writes sampling.png and interpolation.png (see the module docstring); returns their paths."""
    models = load_stage2(stage2_dirs, stage1_dir)
    scale = picture_scale(models.cfg)
    real = data.load_examples(data_dir, models.cfg, split="test", limit=n)
    os.makedirs(out_dir, exist_ok=True)

    rows, labels = [cells(real["image"], scale)], ["real"]
    for factor in models.factors:
        if factor in models.mappers:
            rows.append(cells(apps.sample(models, n, seed, [factor], real)["image"], scale))
            labels.append(f"sampled {factor.value}")
    if len(models.mappers) == len(models.factors):
        new = apps.sample(models, n, seed, models.factors)
        rows += [cells(new["image"], scale), skeletons(new["keypoints"], models.cfg, scale)]
        labels += ["all sampled", "  their pose"]
    sampling = os.path.join(out_dir, "sampling.png")
    visualize.save_png(sampling, visualize.image_grid(rows, row_labels=labels))

    steps = n
    rows, labels = [], []
    for factor in models.mappers:
        walks = apps.interpolate(models, factor, 2, steps, seed, "slerp", real)["image"]
        rows += [cells(walk, scale) for walk in np.asarray(walks)]
        labels += [f"{factor.value} slerp", ""]
    pairs = {k: v[:4] for k, v in real.items()}
    inverse = apps.invert_interpolate(models, {k: v[:2] for k, v in pairs.items()},
                                      {k: v[2:4] for k, v in pairs.items()}, steps, seed=seed)["image"]
    rows += [cells(walk, scale) for walk in np.asarray(inverse)]
    labels += ["inverse", ""]
    interpolation = os.path.join(out_dir, "interpolation.png")
    visualize.save_png(interpolation, visualize.image_grid(rows, row_labels=labels))
    return [sampling, interpolation]


FLAGS = flags.FLAGS
MODES = ("stage1", "stage2")


def define_flags() -> None:
    cli.renamed(out_dir="--out")
    cli.define_shared("stage1_dir", note="stage2: default from the stage-II runs.")
    cli.define_shared("stage2_dir", default=[], note="stage2.")
    cli.define_shared("data_dir", note="The synthetic set's.", required=True)
    cli.define_shared("out", default="out/demo", note="The PNGs.")
    cli.define_shared("n", default=8, note="Columns (image pairs; stage2: images and interpolation steps).",
                      lower_bound=1)


def main(argv):
    mode = cli.mode(argv, MODES)
    if mode == "stage1":
        if not FLAGS.stage1_dir:
            raise cli.UsageError("stage1: --stage1_dir is required.")
        written = stage1_pictures(FLAGS.stage1_dir, FLAGS.data_dir, FLAGS.out, FLAGS.n)
    else:
        if not FLAGS.stage2_dir:
            raise cli.UsageError("stage2: --stage2_dir is required (once per factor).")
        written = stage2_pictures(FLAGS.stage2_dir, FLAGS.data_dir, FLAGS.out, FLAGS.n,
                                  stage1_dir=FLAGS.stage1_dir)
    for path in written:
        print(f"Wrote {path}")


if __name__ == "__main__":
    cli.run(main, define_flags)
