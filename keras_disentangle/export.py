"""SavedModel export for serving (TF Serving, `tf.saved_model.load`, `saved_model_cli`).

  python -m keras_disentangle.export --stage1_dir=runs/s1 --out=export/s1
  python -m keras_disentangle.export --stage1_dir=runs/s1 --stage2_dir=runs/s2-fg \
      --stage2_dir=runs/s2-bg --stage2_dir=runs/s2-pose --out=export/s2

Stage-I signatures (H x W = the run's image size, e.g. 64 x 32 at tiny scale):
  encode(image, keypoints) -> {fg, bg, pose}
      image: float32 (batch, H, W, 3) in [-1, 1]; keypoints: float32 (batch, 18, 2), (y, x) pixels
      at H x W, -1 for a missing joint. fg: (batch, 7 * D); bg: (batch, B) (absent for datasets
      without a background factor); pose: (batch, pose_embedding_dim), the pose auto-encoder's code.
  decode(fg, bg, pose) -> {image}: the generator on the appearance code, in the pose decoded from
      the pose code (heatmaps drawn from the decoded keypoints).
  reconstruct(image, keypoints) -> {image}: G1(x, h), the reconstruction in the image's own pose.

With stage-II runs (one per factor of the dataset: fg, bg, pose) the model adds:
  sample(n, seed) -> {image, fg, bg, pose, keypoints}: n new people from noise alone; n, seed:
      int32 scalars; the same seed gives the same people (stateless noise, `apps.sample`).
  transfer(source_image, source_keypoints, target_keypoints) -> {image}: the source person in the
      target pose (pose-guided generation); also `serving_default`.
  swap(source_image, source_keypoints, target_image, target_keypoints) -> {fg, bg, pose}: the target
      image with the source's foreground / background / pose.

The masks, ROI boxes, heatmaps and pose vectors are computed inside the graph, so a client sends
only images and keypoints. The exported model does not need keras_disentangle to load.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
from absl import flags  # noqa: E402

from keras_disentangle import cli, precision  # noqa: E402
from keras_disentangle.runtime import Stage1Serving, load_stage1, load_stage2, stage1_trackables  # noqa: E402


def export_stage1(logdir: str, out: str) -> str:
    """Writes the stage-I SavedModel of the run in `logdir` to `out`; returns `out`."""
    cfg, stage1 = load_stage1(logdir)
    archive = keras.export.ExportArchive()
    for model in stage1_trackables(stage1).values():
        archive.track(model)
    Stage1Serving(cfg, stage1).add_endpoints(archive)
    archive.write_out(out, verbose=False)
    return out


def export_stage2(stage2_dirs, out: str, stage1_dir: str | None = None) -> str:
    """Writes the stage-I + stage-II SavedModel (module docstring) to `out`; returns `out`.

    Raises:
      ValueError: see `load_stage2`, or when a factor of the dataset has no stage-II run.
    """
    serving = load_stage2(stage2_dirs, stage1_dir)
    archive = keras.export.ExportArchive()
    for model in [*stage1_trackables(serving.stage1).values(), *serving.mappers.values()]:
        archive.track(model)
    serving.add_endpoints(archive)
    archive.write_out(out, verbose=False)
    return out


FLAGS = flags.FLAGS


def define_flags() -> None:
    flags.DEFINE_string("stage1_dir", None, "The stage-I run directory (stage II: default from the stage-II runs).")
    flags.DEFINE_multi_string("stage2_dir", [], "A stage-II run directory; repeat once per factor. Without it the "
                              "stage-I SavedModel is written.")
    flags.DEFINE_string("out", None, "Directory to write the SavedModel to.")
    flags.mark_flag_as_required("out")
    flags.DEFINE_enum("precision", "auto", list(precision.POLICIES), "Dtype policy the SavedModel computes in: auto "
                      "(mixed_bfloat16 where this machine has bf16 arithmetic, else float32), float32 or mixed_bfloat16.")


def main(argv):
    cli.no_positional(argv)
    if not (FLAGS.stage1_dir or FLAGS.stage2_dir):
        raise cli.UsageError("--stage1_dir (stage I) or --stage2_dir once per factor (stage II) is required.")
    precision.apply(FLAGS.precision)
    if FLAGS.stage2_dir:
        out = export_stage2(FLAGS.stage2_dir, FLAGS.out, FLAGS.stage1_dir)
    else:
        out = export_stage1(FLAGS.stage1_dir, FLAGS.out)
    print(f"Wrote {out}")


if __name__ == "__main__":
    cli.run(main, define_flags)
