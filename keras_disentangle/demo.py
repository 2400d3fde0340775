"""Pictures of a trained stage-I run on the synthetic set, for `make demo` and the README.

  python -m keras_disentangle.demo stage1 --stage1_dir=runs/s1 --data_dir=out/records --out_dir=out/demo

writes
  reconstruction.png  held-out images (top) and their reconstructions G1(x, h) (bottom);
  swaps.png           per column a pair (A, B) of held-out images of different people and
                      backgrounds: A, B, then for FG swap, BG swap and pose transfer the model's
                      output above the exact ground truth that `synthetic.render` draws.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import json  # noqa: E402

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from keras_disentangle import data, visualize  # noqa: E402
from keras_disentangle.export import Stage1Serving, load_stage1  # noqa: E402
from keras_disentangle.metrics import disentangle  # noqa: E402
from keras_disentangle.training.steps import encoder_inputs  # noqa: E402

UPSCALE = 3  # 64 x 32 tiny images are too small to judge at 1:1.


def _cells(images: np.ndarray, scale: int) -> list[np.ndarray]:
    return [visualize.upscale(image, scale) for image in visualize.to_uint8(images)]


def stage1_pictures(stage1_dir: str, data_dir: str, out_dir: str, n: int = 8, seed: int = 0) -> list[str]:
    """Writes reconstruction.png and swaps.png (see the module docstring); returns their paths."""
    cfg, stage1 = load_stage1(stage1_dir)
    serving = Stage1Serving(cfg, stage1)
    scale = max(1, UPSCALE * 64 // cfg.data.height)
    examples = data.load_examples(data_dir, cfg, split="test", limit=max(4 * n, 64))
    os.makedirs(out_dir, exist_ok=True)
    written = []

    first = {k: v[:n] for k, v in examples.items()}
    reconstruction = serving.reconstruct(first["image"], first["keypoints"])["image"].numpy()
    path = os.path.join(out_dir, "reconstruction.png")
    visualize.save_png(path, visualize.image_grid(
        [_cells(first["image"], scale), _cells(reconstruction, scale)], row_labels=["input", "G1(x, h)"]))
    written.append(path)

    pairs = disentangle.pair_indices(examples["fg_id"], examples["bg_id"], n, seed)
    a_idx, b_idx = np.array([a for a, _ in pairs]), np.array([b for _, b in pairs])
    batches = {"a": {k: v[a_idx] for k, v in examples.items()}, "b": {k: v[b_idx] for k, v in examples.items()}}
    codes = {side: stage1.appearance_encoder(encoder_inputs(batch), training=False)
             for side, batch in batches.items()}
    rows, labels = [_cells(batches["a"]["image"], scale), _cells(batches["b"]["image"], scale)], ["A", "B"]
    factors = [json.loads(f) for f in examples["factors"]] if all(examples["factors"]) else None
    for task in ("fg_swap", "bg_swap", "pose_transfer"):
        fg_from, bg_from, pose_from, _ = disentangle.TASK_SOURCES[task]
        output = serving.generate(codes[fg_from]["fg_embedding"], codes[bg_from].get("bg_embedding"),
                                  batches[pose_from]["heatmaps"])
        rows.append(_cells(np.asarray(output), scale))
        labels.append(task.replace("_", " "))
        if factors is not None:
            side = disentangle.SIDE
            truth = np.stack([disentangle.render_target(
                factors[pair[side[fg_from]]]["fg"], factors[pair[side[bg_from]]]["bg"],
                factors[pair[side[pose_from]]]["pose"], cfg.data) for pair in pairs])
            rows.append(_cells(truth, scale))
            labels.append("  ground truth")
    path = os.path.join(out_dir, "swaps.png")
    visualize.save_png(path, visualize.image_grid(rows, row_labels=labels))
    written.append(path)
    return written


FLAGS = flags.FLAGS


def main(argv):
    if len(argv) != 2 or argv[1] != "stage1":
        raise app.UsageError("usage: python -m keras_disentangle.demo stage1 --stage1_dir=DIR --data_dir=DIR "
                             "--out_dir=DIR")
    for path in stage1_pictures(FLAGS.stage1_dir, FLAGS.data_dir, FLAGS.out_dir, FLAGS.n):
        print(f"Wrote {path}")


if __name__ == "__main__":
    flags.DEFINE_string("stage1_dir", None, "The stage-I run directory.", required=True)
    flags.DEFINE_string("data_dir", None, "TFRecords of the synthetic set.", required=True)
    flags.DEFINE_string("out_dir", "out/demo", "Where to write the PNGs.")
    flags.DEFINE_integer("n", 8, "Columns (image pairs).")
    app.run(main)
