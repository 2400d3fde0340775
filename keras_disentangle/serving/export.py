"""Export for serving: SavedModel (TF Serving, `tf.saved_model.load`, `saved_model_cli`) and LiteRT.

  python -m keras_disentangle.serving.export --stage1_dir=runs/s1 --out=export
  python -m keras_disentangle.serving.export --stage1_dir=runs/s1 --stage2_dir=runs/s2-fg \
      --stage2_dir=runs/s2-bg --stage2_dir=runs/s2-pose --out=export --name=dpig
  python -m keras_disentangle.serving.export --format=tflite --stage1_dir=runs/s1 --out=export [--quantize=dynamic_int8]
  python -m keras_disentangle.serving.export --format=tflite --stage2_dir=runs/s2-fg ... --out=export   (sampling)

`--format=saved_model` writes TF Serving's layout, OUT/<name>/<version>/, so that
`tensorflow_model_server --model_base_path=$PWD/OUT/<name>` serves it as is. The name defaults to
`dpig-<dataset>-<scale>`, the version to the newest checkpoint step of the runs (a longer-trained
export gets a higher version, which TF Serving then serves). An existing version is never
overwritten, and the version folder appears only once complete. `--format=tflite` is `litert.py`.

Stage-I signatures (H x W = the run's image size, e.g. 64 x 32 at tiny scale):
  encode(image, keypoints) -> {fg, bg, pose}
      image: float32 (batch, H, W, 3) in [-1, 1]; keypoints: float32 (batch, 18, 2), (y, x) pixels
      at H x W, -1 for a missing joint. fg: (batch, 7 * D); bg: (batch, B) (absent for datasets
      without a background factor); pose: (batch, pose_embedding_dim), the pose auto-encoder's code.
  decode(fg, bg, pose) -> {image}: the generator on the appearance code, in the pose decoded from
      the pose code (heatmaps drawn from the decoded keypoints).
  reconstruct(image, keypoints) -> {image}: G1(x, h), the reconstruction in the image's own pose.

Pose transfer and swaps need stage I only (the pose comes from keypoints), so the stage-I model is
the serving artefact for them:
  transfer(source_image, source_keypoints, target_keypoints) -> {image}: the source person in the
      target pose (pose-guided generation); also `serving_default`.
  swap(source_image, source_keypoints, target_image, target_keypoints) -> {fg, bg, pose}: the target
      image with the source's foreground / background / pose.
  transfer_photo(image_bytes, keypoints, target_keypoints) -> {png_bytes, image}: encoded photo in,
      PNG out, framing in the graph (`photo_graph.py`).
  render(fg, bg, keypoints) -> {image}: the generator on appearance codes in the pose of keypoints
      (swaps of any factors and of FG body parts, codes mixed by the client).
  model_info() -> {height, width, roi_parts, noise_stddev}: the image size, the FG body parts (7;
      0 for the WholeBody encoder, whose FG code has no per-part slices) and z's scale.

With stage-II runs (one per factor of the dataset: fg, bg, pose) the model adds:
  sample(n, seed) -> {image, fg, bg, pose, keypoints}: n new people from noise alone; n, seed:
      int32 scalars; the same seed gives the same people (stateless noise, `apps.sample`).
  noise(n, seed) -> {fg, bg, pose}: the z that `sample` maps; map_<factor>(z) -> {embedding}: Phi of
      each factor alone, differentiable (walks in z, and inverse interpolation by gradient descent).

The masks, ROI boxes, heatmaps and pose vectors are computed inside the graph, so a client sends
only images and keypoints. The exported model does not need keras_disentangle to load.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pathlib  # noqa: E402
import shutil  # noqa: E402

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import flags  # noqa: E402

from keras_disentangle import cli, configs, precision, rundir  # noqa: E402
from keras_disentangle.serving.photo_graph import PhotoServing  # noqa: E402
from keras_disentangle.serving.runtime import Stage1Serving, load_stage1, load_stage2, stage1_trackables  # noqa: E402


def export_stage1(logdir: str, out: str) -> str:
    """Writes the stage-I SavedModel of the run in `logdir` to `out`; returns `out`."""
    return write_serving(Stage1Serving(*load_stage1(logdir)), out)


def write_serving(serving: Stage1Serving, out: str) -> str:
    """Writes the SavedModel of a `Stage1Serving` or `Stage2Serving` (every signature) to `out`; returns `out`."""
    archive = keras.export.ExportArchive()
    for model in [*stage1_trackables(serving.stage1).values(), *getattr(serving, "mappers", {}).values()]:
        archive.track(model)
    serving.add_endpoints(archive)
    PhotoServing(serving).add_endpoints(archive)
    archive.write_out(out, verbose=False)
    return out


def export_stage2(stage2_dirs, out: str, stage1_dir: str | None = None) -> str:
    """Writes the stage-I + stage-II SavedModel (module docstring) to `out`; returns `out`.

    Raises:
      ValueError: see `load_stage2`, or when a factor of the dataset has no stage-II run.
    """
    return write_serving(load_stage2(stage2_dirs, stage1_dir), out)


def run_dirs(stage1_dir: str | None, stage2_dirs) -> tuple[str, list[str]]:
    """The stage-I run (given, else the one the stage-II runs name) and every run exported."""
    if stage1_dir is None:
        stage1_dir = rundir.read_stage2_record(stage2_dirs[0]).stage1_dir
    return stage1_dir, [stage1_dir, *stage2_dirs]


def default_name(stage1_dir: str) -> str:
    """`dpig-<dataset>-<scale>` of the stage-I run's config."""
    cfg = rundir.load_config(stage1_dir)
    return f"dpig-{cfg.data.name}-{cfg.scale}"


def default_version(dirs) -> int:
    """The newest checkpoint step over the runs (checkpoints are numbered by step)."""
    steps = []
    for directory in dirs:
        latest = tf.train.latest_checkpoint(rundir.checkpoint_dir(directory))
        if latest is None:
            raise rundir.RunDirectoryError(f"{directory} has no checkpoint under {rundir.CHECKPOINT_DIR}/; "
                                           "train it first.")
        steps.append(int(latest.rsplit("-", 1)[1]))
    return max(steps)


def write_versioned(base: str, name: str, version: int, write) -> str:
    """Calls `write(tmp)` and renames tmp to base/name/version, TF Serving's layout.

    TF Serving loads only numeric folders, so it never sees the temporary one half written.

    Raises:
      ValueError: if the version folder already exists.
    """
    model_dir = pathlib.Path(base) / name
    final = model_dir / str(version)
    if final.exists():
        raise ValueError(f"--out: {final} already exists; pass another --version (TF Serving serves the highest).")
    model_dir.mkdir(parents=True, exist_ok=True)
    tmp = model_dir / f".tmp-{version}"
    shutil.rmtree(tmp, ignore_errors=True)
    write(str(tmp))
    tmp.rename(final)
    return str(final)


FLAGS = flags.FLAGS


class Format(configs.StrEnum):
    SAVED_MODEL = "saved_model"  # TF Serving's layout
    TFLITE = "tflite"  # a LiteRT flatbuffer (litert.py)


class Quantize(configs.StrEnum):
    NONE = "none"
    DYNAMIC_INT8 = "dynamic_int8"  # dynamic-range int8 weights


def define_flags() -> None:
    cli.renamed(logdir="--stage1_dir", stage="--stage1_dir or --stage2_dir (the runs say their stage)")
    cli.define_shared("stage1_dir", note="Stage II: default from the stage-II runs.")
    cli.define_shared("stage2_dir", default=[], note="Without it the stage-I SavedModel is written.")
    cli.define_shared("out", note="The base: the SavedModel goes to OUT/<name>/<version>/, the LiteRT file to "
                      "OUT/<name>-<version>-transfer|sample[-int8].tflite.", required=True)
    cli.define_shared("precision", default="auto", note="The SavedModel computes in it: auto (mixed_bfloat16 where "
                      "this machine has bf16 arithmetic, else float32), float32 or mixed_bfloat16.")
    cli.define_enum("format", Format.SAVED_MODEL, Format, "saved_model: TF Serving's layout; "
                    "tflite: a LiteRT flatbuffer of stage-I transfer, or with --stage2_dir of sampling (litert.py).")
    flags.DEFINE_string("name", None, "Model name (the folder TF Serving's --model_base_path points at); default "
                        "dpig-<dataset>-<scale>.")
    flags.DEFINE_integer("version", None, "Numeric version folder; default the newest checkpoint step of the runs.",
                         lower_bound=1)
    cli.define_enum("quantize", Quantize.NONE, Quantize, "--format=tflite: dynamic-range int8 weights.")


def main(argv):
    cli.no_positional(argv)
    if not (FLAGS.stage1_dir or FLAGS.stage2_dir):
        raise cli.UsageError("--stage1_dir (stage I) or --stage2_dir once per factor (stage II) is required.")
    if FLAGS.format == Format.TFLITE and FLAGS.precision not in (configs.Precision.AUTO, configs.Precision.FLOAT32):
        raise cli.UsageError("--format=tflite converts float32 models (--quantize=dynamic_int8 for int8).")
    # LiteRT's builtin kernels are float32 (or int8): bf16 stays a SavedModel choice.
    precision.apply(configs.Precision.FLOAT32 if FLAGS.format == Format.TFLITE else FLAGS.precision)
    if FLAGS.quantize != Quantize.NONE and FLAGS.format != Format.TFLITE:
        raise cli.UsageError("--quantize needs --format=tflite.")
    stage1_dir, dirs = run_dirs(FLAGS.stage1_dir, FLAGS.stage2_dir)
    name = FLAGS.name or default_name(stage1_dir)
    version = FLAGS.version or default_version(dirs)
    if FLAGS.format == Format.TFLITE:
        from keras_disentangle.serving import litert  # noqa: PLC0415 (the converter loads only when asked)

        suffix = "-int8" if FLAGS.quantize == Quantize.DYNAMIC_INT8 else ""
        what = "sample" if FLAGS.stage2_dir else "transfer"
        path = str(pathlib.Path(FLAGS.out) / f"{name}-{version}-{what}{suffix}.tflite")
        if FLAGS.stage2_dir:
            out = litert.export_sample(FLAGS.stage2_dir, path, FLAGS.stage1_dir, FLAGS.quantize)
        else:
            out = litert.export_transfer(stage1_dir, path, FLAGS.quantize)
    elif FLAGS.stage2_dir:
        out = write_versioned(FLAGS.out, name, version,
                              lambda tmp: export_stage2(FLAGS.stage2_dir, tmp, FLAGS.stage1_dir))
    else:
        out = write_versioned(FLAGS.out, name, version, lambda tmp: export_stage1(stage1_dir, tmp))
    print(f"Wrote {out}")


if __name__ == "__main__":
    cli.run(main, define_flags)
