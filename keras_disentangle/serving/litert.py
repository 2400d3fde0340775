"""On-device export: stage-I pose transfer and stage-II sampling as LiteRT (TFLite) flatbuffers.

  python -m keras_disentangle.serving.export --format=tflite --stage1_dir=runs/s1 --out=export [--quantize=dynamic_int8]
  python -m keras_disentangle.serving.export --format=tflite --stage2_dir=runs/s2-fg --stage2_dir=runs/s2-bg \
      --stage2_dir=runs/s2-pose --out=export

The transfer flatbuffer holds `Stage1Serving.transfer` for one image, masks, ROIs and heatmaps included:
  inputs  source_image float32 (1, H, W, 3) in [-1, 1], source_keypoints and target_keypoints
          float32 (1, 18, 2), (y, x) pixels at H x W, -1 missing;
  output  image float32 (1, H, W, 3).
The sample flatbuffer (`convert_sample`) maps standard-normal noise, one (1, K) input per factor, to
a new person: image (1, H, W, 3) and keypoints (1, 18, 2).
Only TFLite builtin ops are used (the conversion fails rather than fall back to Flex/SELECT_TF_OPS),
so the LiteRT interpreter (`ai-edge-litert`) runs it without the Flex delegate. `dynamic_int8`
stores the weights as int8 (dynamic-range quantization); activations stay float.

  python -m keras_disentangle.serving.litert --stage1_dir=RUN --data_dir=RECORDS [--images=16] [--repeats=3]

converts both and prints their size, ms per image and errors (the table of docs/serving.md).
"""

from __future__ import annotations

import pathlib
import tempfile

import keras
import numpy as np
import tensorflow as tf
from absl import flags

from keras_disentangle import cli, configs
from keras_disentangle.serving.runtime import Stage1Serving, Stage2Serving, load_stage1, load_stage2, stage1_trackables

QUANTIZATIONS = ("none", "dynamic_int8")


def convert_transfer(serving: Stage1Serving, quantize: str = "none") -> bytes:
    """The LiteRT flatbuffer of `serving.transfer` for a batch of one (module docstring).

    Raises:
      ValueError: for an unknown `quantize`.
    """
    if quantize not in QUANTIZATIONS:
        raise ValueError(f"quantize: expected one of {', '.join(QUANTIZATIONS)}, got {quantize!r}")
    h, w = serving.cfg.data.height, serving.cfg.data.width
    keypoints = [1, configs.NUM_KEYPOINTS, 2]
    return _convert(list(stage1_trackables(serving.stage1).values()), serving.transfer, [
        tf.TensorSpec([1, h, w, 3], tf.float32, name="source_image"),
        tf.TensorSpec(keypoints, tf.float32, name="source_keypoints"),
        tf.TensorSpec(keypoints, tf.float32, name="target_keypoints")], quantize)


def _convert(models, function, specs, quantize: str) -> bytes:
    archive = keras.export.ExportArchive()
    for model in models:
        archive.track(model)
    archive.add_endpoint("serving_default", function, specs)
    # Through a SavedModel: the converter freezes the Keras 3 variables reliably only from one.
    with tempfile.TemporaryDirectory() as saved:
        archive.write_out(saved, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(saved, signature_keys=["serving_default"])
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        if quantize == "dynamic_int8":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        return converter.convert()


def convert_sample(serving: Stage2Serving, quantize: str = "none") -> bytes:
    """The LiteRT flatbuffer of stage-II sampling for one person, from noise the caller draws.

    Inputs `noise_fg`, `noise_bg` (datasets with a background), `noise_pose`: float32 (1, K) standard
    normal, drawn by the app from its own random source (the graph scales them by
    `train.noise_stddev`). Outputs: `image` (1, H, W, 3), `keypoints` (1, 18, 2).
    """
    if quantize not in QUANTIZATIONS:
        raise ValueError(f"quantize: expected one of {', '.join(QUANTIZATIONS)}, got {quantize!r}")
    cfg = serving.cfg
    factors = serving.factors

    def sample(*noises):
        codes = {f.value: serving.mapper(f)(z * cfg.train.noise_stddev, training=False)
                 for f, z in zip(factors, noises)}
        keypoints, heatmaps = serving.pose_from_embedding(codes["pose"])
        return {"image": serving.generate(codes["fg"], codes.get("bg"), heatmaps), "keypoints": keypoints}

    specs = [tf.TensorSpec([1, cfg.model.embedding_dim(f)], tf.float32, name=f"noise_{f.value}") for f in factors]
    return _convert([*stage1_trackables(serving.stage1).values(), *serving.mappers.values()], sample, specs, quantize)


def export_transfer(stage1_dir: str, out: str, quantize: str = "none") -> str:
    """Writes the transfer flatbuffer of the stage-I run in `stage1_dir` to the file `out`; returns it."""
    return _write(convert_transfer(Stage1Serving(*load_stage1(stage1_dir)), quantize), out)


def export_sample(stage2_dirs, out: str, stage1_dir: str | None = None, quantize: str = "none") -> str:
    """Writes the sampling flatbuffer of stage-II runs (one per factor) to the file `out`; returns it.

    Raises:
      ValueError: see `runtime.load_stage2`, or when a factor of the dataset has no stage-II run.
    """
    serving = load_stage2(stage2_dirs, stage1_dir)
    missing = [f.value for f in serving.factors if f not in serving.mappers]
    if missing:
        raise ValueError(f"stage2_dirs: sampling needs a stage-II run of every factor; missing {', '.join(missing)}.")
    return _write(convert_sample(serving, quantize), out)


def _write(flatbuffer: bytes, out: str) -> str:
    path = pathlib.Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(flatbuffer)
    tmp.rename(path)
    return str(path)


def benchmark(stage1_dir: str, data_dir: str, images: int = 16, repeats: int = 3) -> list[dict]:
    """Size, ms per image (LiteRT's `Interpreter`, batch 1, default threads) and error of each flatbuffer.

    Transfers `images` test images of `data_dir` each into the next one's pose. Errors are against the
    SavedModel's `transfer` (the in-process Keras path, which equals it); SSIM of int8 against float.
    """
    import time  # noqa: PLC0415

    from ai_edge_litert.interpreter import Interpreter  # noqa: PLC0415 (only the benchmark runs flatbuffers)

    from keras_disentangle import data  # noqa: PLC0415

    cfg, stage1 = load_stage1(stage1_dir)
    serving = Stage1Serving(cfg, stage1)
    batch = data.load_examples(data_dir, cfg, "test", limit=images + 1)
    image, keypoints = np.asarray(batch["image"], np.float32), np.asarray(batch["keypoints"], np.float32)
    n = min(images, len(image) - 1)
    reference = serving.transfer(image[:n], keypoints[:n], keypoints[1:n + 1])["image"].numpy()
    rows, outputs = [], {}
    for quantize in QUANTIZATIONS:
        flatbuffer = convert_transfer(serving, quantize)
        runner = Interpreter(model_content=flatbuffer).get_signature_runner()
        calls = [dict(source_image=image[i:i + 1], source_keypoints=keypoints[i:i + 1],
                      target_keypoints=keypoints[i + 1:i + 2]) for i in range(n)]
        outputs[quantize] = np.concatenate([runner(**c)["image"] for c in calls])
        start = time.perf_counter()
        for _ in range(repeats):
            for c in calls:
                runner(**c)
        ms = (time.perf_counter() - start) / (repeats * n) * 1000
        rows.append({"quantize": quantize, "bytes": len(flatbuffer), "ms_per_image": ms,
                     "max_abs_error": float(np.abs(outputs[quantize] - reference).max())})
    transfer = tf.function(serving.transfer)  # graph mode, as the SavedModel runs
    transfer(image[:1], keypoints[:1], keypoints[1:2])
    start = time.perf_counter()
    for _ in range(repeats):
        for i in range(n):
            transfer(image[i:i + 1], keypoints[i:i + 1], keypoints[i + 1:i + 2])
    saved_ms = (time.perf_counter() - start) / (repeats * n) * 1000
    rows.append({"quantize": "TensorFlow graph (SavedModel path)", "bytes": None, "ms_per_image": saved_ms, "max_abs_error": 0.0})
    ssim = tf.image.ssim(outputs["dynamic_int8"] + 1.0, outputs["none"] + 1.0, max_val=2.0)
    rows[1]["ssim_vs_float"] = float(tf.reduce_mean(ssim))
    return rows


def define_flags() -> None:
    cli.define_shared("stage1_dir", required=True)
    cli.define_shared("data_dir", note="Its test images are transferred.", required=True)
    flags.DEFINE_integer("images", 16, "Test images (each into the next one's pose).", lower_bound=1)
    flags.DEFINE_integer("repeats", 3, "Timed passes over the images.", lower_bound=1)


def main(argv) -> None:
    """`python -m keras_disentangle.serving.litert --stage1_dir=RUN --data_dir=RECORDS`: the benchmark table."""
    cli.no_positional(argv)
    f = flags.FLAGS
    rows = benchmark(f.stage1_dir, f.data_dir, f.images, f.repeats)
    print("| flatbuffer | size | ms / image | max abs error vs SavedModel | SSIM vs float |")
    print("|---|---|---|---|---|")
    for row in rows:
        size = f"{row['bytes'] / 2**20:.1f} MiB" if row["bytes"] else "-"
        ssim = f"{row['ssim_vs_float']:.4f}" if "ssim_vs_float" in row else "-"
        print(f"| {row['quantize']} | {size} | {row['ms_per_image']:.1f} | {row['max_abs_error']:.2g} | {ssim} |")


if __name__ == "__main__":
    cli.run(main, define_flags)
