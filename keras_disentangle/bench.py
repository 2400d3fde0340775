"""Throughput measurements, one JSON line per measurement.

    python -m keras_disentangle.bench --what=train_step,forward,input --dataset=market --scale=full \
        --batch_size=16 --precision=auto,float32 --xla=both [--data_dir=DIR]

Each measurement is a function `measure_<name>(settings) -> dict` registered in `MEASUREMENTS`;
`--what` lists the ones to run:

  train_step      the stage-I appearance step with the paper's loss (lambda * L1 + BCE, D1 trained):
                  `steps.stage1_step` wrapped by `loop.distributed_step`, default strategy.
  train_step_l1   the same step with L1 only (the tiny preset's loss).
  pose_step       the pose auto-encoder step (batch `pose_batch_size`).
  mapper_step     the stage-II FG mapper step: `critic_steps` critic updates + one mapper update.
  forward         stage-I `reconstruct` in process (geometry from keypoints, encoder, generator).
  saved_model     `reconstruct` of an exported stage-I SavedModel, loaded with tf.saved_model.load.
  steps_per_execution
                  the stage-I L1 step run 1 and 10 steps per `tf.function` call (`loop.multi_step`,
                  as `train.py --steps_per_execution`): the rate of each, and the losses after the
                  same 20 steps from the same seed on the same batches.
  input           records/s of `data.train_dataset`, next to what the training steps consume.

Model measurements run once per `--precision` (Keras dtype policy) and `--xla` setting, on
batches held in memory. Times are medians over timed windows after a warm-up, so a burst of load
from another process moves them less than one long timing would. Every model line carries the
analytic FLOPs per example (`FLOP_RULE`, counted from the traced graph, not by a profiler), the
GFLOP/s achieved and its ratio to the best float32 GEMM in the process (`tf.linalg.matmul` or
NumPy's OpenBLAS SGEMM, whichever is faster; both reported) measured just before and just after it
(other processes change both), the share of the CPUs it got, the load average and
the resident memory.

Without `--data_dir`, a temporary set of records is written first (`write_random_records`:
smooth random images with a plausible standing pose), so the benchmark runs anywhere.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import json
import math
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import keras
import numpy as np
import tensorflow as tf
from absl import app, flags

from keras_disentangle import configs, data, geometry, precision, records
from keras_disentangle.configs import NUM_KEYPOINTS
from keras_disentangle.models.discriminators import build_critic
from keras_disentangle.models.mapper import build_mapper
from keras_disentangle.models.pose_autoencoder import build_pose_decoder, build_pose_encoder
from keras_disentangle.models.stage1 import Stage1, build_stage1
from keras_disentangle.training import loop, stage2, steps
from keras_disentangle.training import stage1 as stage1_training

if TYPE_CHECKING:
    from keras_disentangle.export import Stage1Serving

# A frontal standing person in a 128 x 64 crop, (y, x) per joint; the person's right side is on
# the image's left, as in Market-1501's frontal views.
_TEMPLATE_POSE_128X64 = np.array([
    [14, 32], [26, 32], [27, 20], [46, 16], [64, 15], [27, 44], [46, 48], [64, 49], [67, 25],
    [92, 24], [117, 24], [67, 39], [92, 40], [117, 40], [11, 29], [11, 35], [13, 25], [13, 39],
], dtype=np.float64)


def random_keypoints(rng: np.random.Generator, height: int, width: int,
                     missing_rate: float = 0.15) -> np.ndarray:
    """A plausible random pose: the template moved, scaled and jittered, some joints missing.

    Args:
      rng: numpy Generator.
      height, width: int. Image size the keypoints refer to.
      missing_rate: float. Probability that each joint is dropped (set to -1).

    Returns:
      int64 `(18, 2)` (y, x) pixels inside the image, -1 for missing joints.
    """
    scale = rng.uniform(0.85, 1.05)
    centre = np.array([64.0, 32.0])
    pose = (_TEMPLATE_POSE_128X64 - centre) * scale + centre + rng.normal(0.0, [3.0, 4.0])
    pose = pose + rng.normal(0.0, 2.0, size=pose.shape)
    pose = np.round(pose * [height / 128.0, width / 64.0])
    pose = np.clip(pose, 0, [height - 1, width - 1]).astype(np.int64)
    pose[rng.random(NUM_KEYPOINTS) < missing_rate] = -1
    return pose


def random_images(rng: np.random.Generator, keypoints: np.ndarray, height: int, width: int) -> np.ndarray:
    """Smooth random backgrounds with a two-colour body painted along the limbs.

    Smooth content compresses like real photos, so decoding costs about what it costs on real data.

    Args:
      rng: numpy Generator.
      keypoints: `(N, 18, 2)` (y, x) pixels, -1 missing.
      height, width: int. Image size.

    Returns:
      uint8 `(N, height, width, 3)`.
    """
    count = len(keypoints)
    coarse = rng.uniform(0.0, 255.0, size=(count, 4, 2, 3)).astype(np.float32)
    background = tf.image.resize(coarse, [height, width], method="bicubic").numpy()
    mask = geometry.body_mask(keypoints, height, width, radius=max(2, height // 24), close_size=3).numpy()
    upper = (np.arange(height) < height // 2)[None, :, None, None]  # shirt above, trousers below
    colours = rng.uniform(0.0, 255.0, size=(2, count, 1, 1, 3))
    body = np.where(upper, colours[0], colours[1])
    image = np.where(mask > 0, body, background) + rng.normal(0.0, 6.0, size=background.shape)
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


def write_random_records(
    directory: str,
    data_cfg: configs.DataConfig,
    split: str = "train",
    num_records: int = 64,
    num_shards: int = 2,
    image_format: str = "jpeg",
    seed: int = 0,
) -> list[dict]:
    """Writes `num_records` random image records at the stored size, in `num_shards` shards.

    Args:
      directory: str. Output directory (created if needed).
      data_cfg: DataConfig. `stored_height x stored_width` is the image size written.
      split: str. Shard prefix.
      num_records: int. Records to write.
      num_shards: int. Shards to spread them over, round-robin.
      image_format: str. `jpeg` or `png` (lossless, for tests that compare pixels).
      seed: int. Seed of images and poses.

    Returns:
      The keyword arguments of `records.serialize_image` of every record, in writing order, with
      `pixels` (the uint8 image) added.

    Raises:
      ValueError: for an unknown `image_format`.
    """
    encoders = {"jpeg": (lambda pixels: tf.io.encode_jpeg(pixels, quality=90), "jpg"),
                "png": (tf.io.encode_png, "png")}
    if image_format not in encoders:
        raise ValueError(f"image_format: expected one of {sorted(encoders)}, got {image_format!r}.")
    encode, extension = encoders[image_format]
    rng = np.random.default_rng(seed)
    height, width = data_cfg.stored_height, data_cfg.stored_width
    tf.io.gfile.makedirs(directory)
    examples = []
    writers = [tf.io.TFRecordWriter(os.path.join(directory, records.shard_name(split, i, num_shards)))
               for i in range(num_shards)]
    try:
        # In chunks, because the body mask's per-limb planes of a thousand poses take gigabytes.
        for first in range(0, num_records, 64):
            indices = range(first, min(first + 64, num_records))
            keypoints = np.stack([random_keypoints(rng, height, width) for _ in indices])
            images = random_images(rng, keypoints, height, width)
            for index, points, pixels in zip(indices, keypoints, images):
                person_id = index // 4
                fields = dict(
                    image=encode(pixels).numpy(),
                    name=f"{person_id:04d}_c{index % 6 + 1}s1_{index:06d}_01.{extension}",
                    height=height, width=width, keypoints=points.tolist(), person_id=person_id,
                    camera=index % 6 + 1)
                writers[index % num_shards].write(records.serialize_image(**fields))
                examples.append({**fields, "pixels": pixels})
    finally:
        for writer in writers:
            writer.close()
    return examples


@dataclasses.dataclass(frozen=True)
class Settings:
    """What every measurement receives.

    Attributes:
      cfg: Config. The preset with overrides.
      data_dir: str. Directory of TFRecord shards.
      batch_size: int. Examples per batch of the stage-I step, the forward passes and the input
        pipeline (the pose and mapper steps use the preset's `pose_batch_size` / `mapper_batch_size`).
      warmup: int. Calls run after the first one (tracing, compiling, autotuning) and before timing.
      windows: int. Timed windows; the median rate is reported.
      window_batches: int. Calls per timed window (at least).
      min_window_seconds: float. A window (and the warm-up) also lasts at least this long, so that
        fast measurements average over many calls while slow ones still time whole steps.
      precision: str. Keras dtype policy the networks are built under (resolved: not `auto`).
      jit_compile: bool. Compile the step with XLA.
      memory_steps: int. When larger than the calls timed, keep stepping up to this many calls and
        report the resident memory there against that at call 10 (0: no growth check).
      matmul_size: int. Side of the square matrices of the reference matmul rate.
    """

    cfg: configs.Config
    data_dir: str
    batch_size: int
    warmup: int = 80
    windows: int = 7
    window_batches: int = 40
    min_window_seconds: float = 0.0
    precision: str = "float32"
    jit_compile: bool = False
    memory_steps: int = 0
    matmul_size: int = 2048


FLOP_RULE = (
    "2 FLOPs per multiply-add of every Conv2D, Conv2DBackpropInput, Conv2DBackpropFilter, MatMul, "
    "BatchMatMul and Einsum (RoiAlign) op the traced step executes, shapes from the graph at the "
    "measured batch, ops whose results are unused pruned, divided by the batch; Conv2D = "
    "2*H_out*W_out*k_h*k_w*C_in*C_out, Dense = 2*in*out per example; a training step is its forward "
    "plus the backward ops (about 2x the forward of the trained networks: input and weight "
    "gradients); elementwise ops, bias, activations, normalization and optimizer updates are not "
    "counted")

# Op type -> FLOPs of one op. Only the matrix-like ops count (see FLOP_RULE).
_CONV_OPS = ("Conv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter")
_BATCH_MATMUL_OPS = ("BatchMatMul", "BatchMatMulV2", "BatchMatMulV3")


def _static_shape(tensor: tf.Tensor, op: tf.Operation) -> list[int]:
    shape = tensor.shape
    if shape.rank is None or None in shape.as_list():
        raise ValueError(f"op {op.name} ({op.type}): shape {shape} is not static; trace the function with "
                         "a fixed batch size to count its FLOPs.")
    return shape.as_list()


def op_flops(op: tf.Operation) -> int:
    """FLOPs of one graph op: 2 per multiply-add for the matrix-like ops, 0 for any other op.

    Args:
      op: tf.Operation of a traced graph with static shapes.

    Returns:
      int.

    Raises:
      ValueError: when a counted op's shapes are not static.
    """
    kind = op.type
    if kind in _CONV_OPS:
        # The output gradient has the forward output's shape; the filter is (k_h, k_w, C_in, C_out).
        if kind == "Conv2D":
            output, kernel = op.outputs[0], op.inputs[1]
        elif kind == "Conv2DBackpropInput":
            output, kernel = op.inputs[2], op.inputs[1]
        else:
            output, kernel = op.inputs[2], op.outputs[0]
        k_h, k_w, c_in, _ = _static_shape(kernel, op)
        return 2 * math.prod(_static_shape(output, op)) * k_h * k_w * c_in
    if kind == "MatMul":
        a = _static_shape(op.inputs[0], op)
        inner = a[0] if op.get_attr("transpose_a") else a[1]
        return 2 * math.prod(_static_shape(op.outputs[0], op)) * inner
    if kind in _BATCH_MATMUL_OPS:
        a = _static_shape(op.inputs[0], op)
        inner = a[-2] if op.get_attr("adj_x") else a[-1]
        return 2 * math.prod(_static_shape(op.outputs[0], op)) * inner
    if kind == "Einsum":
        terms, output = op.get_attr("equation").decode().replace(" ", "").split("->")
        sizes = {}
        for term, tensor in zip(terms.split(","), op.inputs):
            shape = _static_shape(tensor, op)
            # Letters before an ellipsis index the leading axes, letters after it the trailing ones.
            head, _, tail = term.partition("...")
            sizes.update(zip(head, shape[:len(head)]))
            sizes.update(zip(tail, shape[len(shape) - len(tail):]))
        contracted = set(terms) - set(output) - {",", "."}
        return 2 * math.prod(_static_shape(op.outputs[0], op)) * math.prod(sizes[c] for c in contracted)
    return 0


def _live_ops(graph: tf.Graph) -> list[tf.Operation]:
    """The ops the function's outputs or side effects depend on (what grappler keeps)."""
    roots = [tensor.op for tensor in getattr(graph, "outputs", [])]
    roots += [op for op in graph.get_operations() if op.op_def is not None and op.op_def.is_stateful]
    seen: set[tf.Operation] = set()
    while roots:
        op = roots.pop()
        if op in seen:
            continue
        seen.add(op)
        roots.extend(tensor.op for tensor in op.inputs)
        roots.extend(op.control_inputs)
    return [op for op in graph.get_operations() if op in seen]


def graph_flops(function: Callable, *args) -> dict[str, int]:
    """Counts the FLOPs of `function(*args)` from its traced graph, split into forward and backward.

    Backward ops are the ones `tf.GradientTape.gradient` creates (under the `gradient_tape` name
    scope). See `FLOP_RULE` for what is counted.

    Args:
      function: a Python callable or `tf.function` (traced without XLA, so that every op is visible).
      *args: tensors (or nests of tensors) with static shapes; only their specs are used.

    Returns:
      dict with int `forward` and `backward` FLOPs of one call.
    """
    specs = tf.nest.map_structure(tf.TensorSpec.from_tensor, args)
    traced = function if isinstance(function, tf.types.experimental.PolymorphicFunction) else tf.function(function)
    graph = traced.get_concrete_function(*specs).graph
    totals = {"forward": 0, "backward": 0}
    for op in _live_ops(graph):
        flops = op_flops(op)
        if flops:
            totals["backward" if "gradient_tape/" in op.name else "forward"] += flops
    return totals


def _flops_fields(totals: dict[str, int], examples: int) -> dict:
    return {
        "flops_per_example": (totals["forward"] + totals["backward"]) // examples,
        "forward_flops_per_example": totals["forward"] // examples,
        "backward_flops_per_example": totals["backward"] // examples,
        "flop_rule": FLOP_RULE,
    }


def matmul_gflops(dtype: tf.DType = tf.float32, size: int = 2048, trials: int = 7, repeats: int = 3) -> float:
    """This machine's matmul rate: best of `trials` timings of `repeats` `size x size` products.

    Args:
      dtype: tf.DType of both operands (`tf.float32` or `tf.bfloat16`).
      size: int. Side of the square matrices.
      trials: int. Timings; the fastest is kept (the one least disturbed by other processes).
      repeats: int. Products per timing.

    Returns:
      float, GFLOP/s at 2 * size**3 FLOPs per product.
    """
    generator = tf.random.Generator.from_seed(0)
    a = tf.cast(generator.normal([size, size]), dtype)
    b = tf.cast(generator.normal([size, size]), dtype)
    tf.linalg.matmul(a, b).numpy()
    best = float("inf")
    for _ in range(trials):
        start = time.perf_counter()
        for _ in range(repeats):
            product = tf.linalg.matmul(a, b)
        product[0, 0].numpy()
        best = min(best, (time.perf_counter() - start) / repeats)
    return 2.0 * size ** 3 / best / 1e9


def numpy_sgemm_gflops(size: int = 2048, trials: int = 7, repeats: int = 3) -> float:
    """NumPy's float32 matmul rate (its BLAS, OpenBLAS in the NumPy wheels), timed as `matmul_gflops`."""
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((size, size), dtype=np.float32) for _ in range(2))
    np.matmul(a, b)
    best = float("inf")
    for _ in range(trials):
        start = time.perf_counter()
        for _ in range(repeats):
            np.matmul(a, b)
        best = min(best, (time.perf_counter() - start) / repeats)
    return 2.0 * size ** 3 / best / 1e9


def measure_matmul(size: int = 2048) -> dict:
    """The reference rates the model measurements are compared with: TensorFlow's float32 and
    bfloat16 matmul, NumPy's SGEMM, and the best float32 GEMM of the two (the ceiling)."""
    tf32, numpy32 = round(matmul_gflops(tf.float32, size), 1), round(numpy_sgemm_gflops(size), 1)
    return {"matmul_size": size, "float32_gflops_per_s": tf32,
            "numpy_sgemm_gflops_per_s": numpy32, "best_float32_gflops_per_s": max(tf32, numpy32),
            "best_float32_gemm": "numpy" if numpy32 > tf32 else "tensorflow",
            "bfloat16_gflops_per_s": round(matmul_gflops(tf.bfloat16, size), 1),
            "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE")}


def _rss_mb() -> float | None:
    """The current resident set size (Linux `/proc`); None where it cannot be read."""
    try:
        with open("/proc/self/statm") as statm:
            pages = int(statm.read().split()[1])
    except OSError:
        return None
    return round(pages * os.sysconf("SC_PAGE_SIZE") / 2 ** 20, 1)


def _peak_rss_mb() -> float:
    # ru_maxrss is in KiB on Linux; it is the process's peak so far, not this measurement's.
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _time_calls(call: Callable[[int], None], examples_per_call: int, settings: Settings) -> dict:
    """Times `call(index)` (which must return only after the work is done) as `Settings` describes.

    Returns:
      dict with the first call's time (tracing, compiling), `ms_per_step` and `examples_per_s`
      (median window), per-window rates, the share of the CPUs this process used while timed, and
      resident memory at call 10 and at the last call.
    """
    rss: dict[str, float | None] = {}
    index = 0

    def step() -> None:
        nonlocal index
        call(index)
        index += 1
        if index == 10:
            rss["10"] = _rss_mb()

    start = time.perf_counter()
    step()
    first_call_s = time.perf_counter() - start
    start = time.perf_counter()
    while index <= settings.warmup or time.perf_counter() - start < settings.min_window_seconds:
        step()
    seconds_per_call = []
    cpu_start, wall_start = time.process_time(), time.perf_counter()
    for _ in range(settings.windows):
        calls, start = 0, time.perf_counter()
        while calls < settings.window_batches or time.perf_counter() - start < settings.min_window_seconds:
            step()
            calls += 1
        seconds_per_call.append((time.perf_counter() - start) / calls)
    # The CPU time this process got while timed, per core and wall second: below 1 when other
    # processes took cores (or the work left them idle).
    cpu_share = (time.process_time() - cpu_start) / ((time.perf_counter() - wall_start) * (os.cpu_count() or 1))
    while index < settings.memory_steps:
        step()
    rss[str(index)] = _rss_mb()
    median = statistics.median(seconds_per_call)
    return {
        "examples_per_s": round(examples_per_call / median, 2),
        "ms_per_step": round(1000 * median, 2),
        "window_examples_per_s": [round(examples_per_call / s, 2) for s in seconds_per_call],
        "first_call_s": round(first_call_s, 2),
        "cpu_share": round(cpu_share, 2),
        "calls": index,
        "rss_mb_at_call": rss,
    }


@contextlib.contextmanager
def _global_policy(name: str):
    """Builds networks under the Keras dtype policy `name`, restoring the previous one after."""
    precision.validate(name)
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(name)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def _data_batches(settings: Settings, batch_size: int, count: int = 4) -> list[dict]:
    """A few batches of `data.train_dataset`, held in memory so that a step's timing is its own."""
    dataset = data.train_dataset(settings.data_dir, settings.cfg, batch_size=batch_size)
    return list(dataset.take(count))


def _sync(logs: dict) -> None:
    # As the training loop does: read every loss, which waits for the step to finish.
    for value in logs.values():
        float(value)


def _stage1_train(settings: Settings, adversarial_weight: float) -> dict:
    batch_size = settings.batch_size
    cfg = configs.override(settings.cfg, adversarial_weight=adversarial_weight, batch_size=batch_size)
    batches = _data_batches(settings, batch_size)
    with _global_policy(settings.precision):
        keras.utils.set_random_seed(cfg.train.seed)
        stage1 = build_stage1(cfg)
        optimizers = stage1_training.build_optimizers(cfg.train)
        optimizers["g1"].build(stage1.appearance_encoder.trainable_variables + stage1.generator.trainable_variables)
        optimizers["d1"].build(stage1.d1.trainable_variables)
    replica_step = steps.stage1_step(steps.Stage1Part.APPEARANCE, stage1, optimizers, cfg.train, batch_size)
    flops = graph_flops(replica_step, batches[0])
    step = loop.distributed_step(tf.distribute.get_strategy(), replica_step, settings.jit_compile)
    timing = _time_calls(lambda i: _sync(step(batches[i % len(batches)])), batch_size, settings)
    return {"loss": "l1+adversarial" if adversarial_weight > 0 else "l1", "example": "image",
            **timing, **_flops_fields(flops, batch_size)}


def measure_train_step(settings: Settings) -> dict:
    """The stage-I appearance step with the paper's loss: lambda * L1 + BCE adversarial (weight 1), D1 trained.

    The real step (`steps.stage1_step` wrapped by `loop.distributed_step` under the default
    strategy) on batches of `data.train_dataset` held in memory.
    """
    return _stage1_train(settings, adversarial_weight=1.0)


def measure_steps_per_execution(settings: Settings, k: int = 10, equal_steps: int = 20) -> dict:
    """The stage-I L1 step at 1 and `k` steps per call: rates, and losses after `equal_steps` steps.

    Both variants start from the same seed and read the same batches in the same order (a repeated
    in-memory stream), so their losses must agree; `examples_per_s` is the rate at `k`.
    """
    batch_size = settings.batch_size
    cfg = configs.override(settings.cfg, adversarial_weight=0.0, batch_size=batch_size)
    batches = _data_batches(settings, batch_size)
    stream = tf.data.Dataset.from_tensors(batches[0])
    for batch in batches[1:]:
        stream = stream.concatenate(tf.data.Dataset.from_tensors(batch))
    strategy = tf.distribute.get_strategy()
    fields: dict = {}
    for per_call in (1, k):
        with _global_policy(settings.precision):
            keras.utils.set_random_seed(cfg.train.seed)
            stage1 = build_stage1(cfg)
            optimizers = stage1_training.build_optimizers(cfg.train)
        replica_step = steps.stage1_step(steps.Stage1Part.APPEARANCE, stage1, optimizers, cfg.train, batch_size)
        run_steps = loop.multi_step(strategy, replica_step, settings.jit_compile)
        iterator = iter(strategy.experimental_distribute_dataset(stream.repeat()))
        count = tf.constant(per_call, tf.int32)
        for _ in range(equal_steps // per_call):
            _, logs, _ = run_steps(iterator, count)
        fields[f"losses_after_{equal_steps}_steps_k{per_call}"] = {name: float(v) for name, v in logs.items()}
        # As the loop: the step count and the device-side NaN flag come back every call.
        timing = _time_calls(lambda i: bool(run_steps(iterator, count)[2]), batch_size * per_call, settings)
        fields[f"examples_per_s_k{per_call}"] = timing["examples_per_s"]
        fields[f"window_examples_per_s_k{per_call}"] = timing["window_examples_per_s"]
    losses = [fields[f"losses_after_{equal_steps}_steps_k{n}"] for n in (1, k)]
    fields["max_loss_rel_diff"] = max(abs(losses[1][name] - value) / max(abs(value), 1e-12)
                                      for name, value in losses[0].items())
    fields[f"speedup_k{k}_over_k1"] = round(fields[f"examples_per_s_k{k}"] / fields["examples_per_s_k1"], 3)
    flops = graph_flops(replica_step, batches[0])
    return {"loss": "l1", "example": "image", "steps_per_execution": k, **fields,
            **{key: value for key, value in timing.items() if not key.startswith("window")},
            "window_examples_per_s": timing["window_examples_per_s"], **_flops_fields(flops, batch_size)}


def measure_train_step_l1(settings: Settings) -> dict:
    """The stage-I appearance step with L1 only (the tiny preset's loss): no D1 pass."""
    return _stage1_train(settings, adversarial_weight=0.0)


def measure_pose_step(settings: Settings) -> dict:
    """The pose auto-encoder step at the preset's `pose_batch_size`."""
    batch_size = settings.cfg.train.pose_batch_size
    cfg = settings.cfg
    batches = [{"pose_vector": batch["pose_vector"]} for batch in _data_batches(settings, batch_size)]
    with _global_policy(settings.precision):
        keras.utils.set_random_seed(cfg.train.seed)
        # pose_step reads only the pose networks; the image networks are not built.
        stage1 = Stage1(appearance_encoder=None, generator=None, d1=None,
                        pose_encoder=build_pose_encoder(cfg), pose_decoder=build_pose_decoder(cfg))
        optimizer = stage1_training.build_optimizers(cfg.train)["pose"]
        optimizer.build(stage1.pose_encoder.trainable_variables + stage1.pose_decoder.trainable_variables)
    replica_step = steps.pose_step(stage1, optimizer, batch_size)
    flops = graph_flops(replica_step, batches[0])
    step = loop.distributed_step(tf.distribute.get_strategy(), replica_step, settings.jit_compile)
    timing = _time_calls(lambda i: _sync(step(batches[i % len(batches)])), batch_size, settings)
    return {"batch_size": batch_size, "example": "pose vector", **timing, **_flops_fields(flops, batch_size)}


def measure_mapper_step(settings: Settings) -> dict:
    """The stage-II FG mapper step: `critic_steps` critic updates then one mapper update.

    An example is one noise vector of the mapper update; each step also reads `critic_steps`
    batches of real embeddings (random here: their values do not change the work).
    """
    cfg = settings.cfg
    train_cfg = cfg.train
    batch_size, factor = train_cfg.mapper_batch_size, configs.Factor.FOREGROUND
    dim = cfg.model.embedding_dim(factor)
    generator = tf.random.Generator.from_seed(train_cfg.seed)
    batches = [{"real": generator.normal([train_cfg.critic_steps * batch_size, dim])} for _ in range(4)]
    with _global_policy(settings.precision):
        keras.utils.set_random_seed(train_cfg.seed)
        mapper, critic = build_mapper(cfg, factor), build_critic(cfg, factor)
        mapper_optimizer = keras.optimizers.RMSprop(train_cfg.mapper_learning_rate)
        critic_optimizer = keras.optimizers.RMSprop(train_cfg.mapper_learning_rate)
        mapper_optimizer.build(mapper.trainable_variables)
        critic_optimizer.build(critic.trainable_variables)
    replica_step = stage2.mapper_step(mapper, critic, mapper_optimizer, critic_optimizer, train_cfg, dim, batch_size)
    flops = graph_flops(replica_step, batches[0])
    step = loop.distributed_step(tf.distribute.get_strategy(), replica_step, settings.jit_compile)
    timing = _time_calls(lambda i: _sync(step(batches[i % len(batches)])), batch_size, settings)
    return {"batch_size": batch_size, "factor": factor.value, "example": "mapper noise vector",
            **timing, **_flops_fields(flops, batch_size)}


def _serving(settings: Settings) -> tuple[Stage1, Stage1Serving, list[tuple[tf.Tensor, tf.Tensor]]]:
    """Random-weight stage-I networks, their serving functions and (image, keypoints) batches."""
    # Imported here: the export module defines its command-line flags when imported, which must not
    # happen in every process that imports the benchmark.
    from keras_disentangle.export import Stage1Serving  # noqa: PLC0415

    cfg = settings.cfg
    batches = [(batch["image"], batch["keypoints"]) for batch in _data_batches(settings, settings.batch_size)]
    with _global_policy(settings.precision):
        keras.utils.set_random_seed(cfg.train.seed)
        stage1 = build_stage1(cfg)
    return stage1, Stage1Serving(cfg, stage1), batches


def measure_forward(settings: Settings) -> dict:
    """Stage-I reconstruction in process: masks, ROIs and heatmaps from keypoints, encoder, generator."""
    _, serving, batches = _serving(settings)
    flops = graph_flops(serving.reconstruct, *batches[0])
    reconstruct = tf.function(serving.reconstruct, jit_compile=settings.jit_compile)
    timing = _time_calls(lambda i: reconstruct(*batches[i % len(batches)])["image"].numpy(),
                         settings.batch_size, settings)
    return {"example": "image", **timing, **_flops_fields(flops, settings.batch_size)}


def measure_saved_model(settings: Settings) -> dict:
    """`reconstruct` of a stage-I SavedModel (random weights) written by `keras.export.ExportArchive`
    as `keras_disentangle.export` writes it, then loaded with `tf.saved_model.load`."""
    stage1, serving, batches = _serving(settings)
    flops = graph_flops(serving.reconstruct, *batches[0])
    with tempfile.TemporaryDirectory(prefix="bench-savedmodel-") as directory:
        archive = keras.export.ExportArchive()
        for model in stage1_training.stage1_trackables(stage1).values():
            archive.track(model)
        serving.add_endpoints(archive)
        start = time.perf_counter()
        archive.write_out(directory, verbose=False)
        export_s = time.perf_counter() - start
        loaded = tf.saved_model.load(directory)
        timing = _time_calls(lambda i: loaded.reconstruct(*batches[i % len(batches)])["image"].numpy(),
                             settings.batch_size, settings)
    return {"example": "image", "export_s": round(export_s, 2), **timing,
            **_flops_fields(flops, settings.batch_size)}


def _shapes(batch) -> dict:
    return {key: value.shape.as_list() for key, value in batch.items()}


def measure_input(settings: Settings) -> dict:
    """Records per second of `data.train_dataset` (shuffle, flips, parallel map) at its output.

    Returns:
      dict with `records_per_s` (median over windows), the per-window rates and `batch_shapes`.
    """
    dataset = data.train_dataset(settings.data_dir, settings.cfg, batch_size=settings.batch_size)
    batches = iter(dataset)
    batch = next(batches)
    timing = _time_calls(lambda i: next(batches), settings.batch_size, settings)
    return {
        "records_per_s": timing["examples_per_s"],
        "window_records_per_s": timing["window_examples_per_s"],
        "ms_per_batch": timing["ms_per_step"],
        "batch_shapes": _shapes(batch),
    }


MEASUREMENTS: dict[str, Callable[[Settings], dict]] = {
    "train_step": measure_train_step,
    "train_step_l1": measure_train_step_l1,
    "steps_per_execution": measure_steps_per_execution,
    "pose_step": measure_pose_step,
    "mapper_step": measure_mapper_step,
    "forward": measure_forward,
    "saved_model": measure_saved_model,
    "input": measure_input,
}

# Measurements whose work does not depend on the dtype policy or XLA: run once per run.
_PLAIN = {"input"}
# `Stage1Serving.add_endpoints` traces plain tf.functions, so XLA does not apply to the SavedModel.
_NO_XLA = {"input", "saved_model"}
_TRAIN_STEPS = ("train_step", "train_step_l1")


def _add_rates(result: dict, before: dict, after: dict) -> None:
    """GFLOP/s achieved and its ratio to the GEMM rates measured just before and just after.

    Other processes on a shared machine change the rate both get; the mean of the two timings is
    the reference of the same period. `matmul_ratio` is against the best float32 GEMM in the
    process (TensorFlow's or NumPy's, whichever is faster), `tf_matmul_ratio` against TensorFlow's.
    """
    gflops = result["flops_per_example"] * result["examples_per_s"] / 1e9
    reference = {key: (before[key] + after[key]) / 2 for key in (
        "float32_gflops_per_s", "best_float32_gflops_per_s", "bfloat16_gflops_per_s")}
    result["gflops_per_s"] = round(gflops, 1)
    result["matmul_float32_gflops_per_s"] = [before["float32_gflops_per_s"], after["float32_gflops_per_s"]]
    result["numpy_sgemm_gflops_per_s"] = [before["numpy_sgemm_gflops_per_s"], after["numpy_sgemm_gflops_per_s"]]
    # Significant figures, not decimals: the tiny FC steps run at ~0.001 of the matmul rate.
    result["matmul_ratio"] = float(f"{gflops / reference['best_float32_gflops_per_s']:.3g}")
    result["tf_matmul_ratio"] = float(f"{gflops / reference['float32_gflops_per_s']:.3g}")
    if result["precision"] != "float32":
        result["matmul_bfloat16_gflops_per_s"] = [before["bfloat16_gflops_per_s"], after["bfloat16_gflops_per_s"]]
        result["matmul_bfloat16_ratio"] = float(f"{gflops / reference['bfloat16_gflops_per_s']:.3g}")


def _add_consumption(result: dict, results: list[dict]) -> None:
    """The fastest training step of this run next to the input pipeline's rate."""
    rates = [r["examples_per_s"] for r in results if r["what"] in _TRAIN_STEPS]
    if rates:
        result["train_step_consumes_per_s"] = max(rates)
        result["input_headroom"] = round(result["records_per_s"] / max(rates), 2)


def _machine_fields() -> dict:
    return {"cpus": os.cpu_count(), "loadavg_1m": round(os.getloadavg()[0], 2)}


def run(names: list[str], settings: Settings, labels: dict, precisions: tuple[str, ...] = ("float32",),
        xla: tuple[bool, ...] = (False,)) -> list[dict]:
    """Runs the named measurements, printing one JSON line each; returns the printed records.

    Model measurements run once per precision and XLA setting; each is compared with the matmul
    rates measured just before and just after it (`matmul` lines at the start and the end of the
    run show the drift from other load). `input` runs after the training steps, so that its line
    can show what they consume.

    Args:
      names: list of str. Keys of `MEASUREMENTS`.
      settings: Settings. Its `precision` and `jit_compile` are replaced by each variant.
      labels: dict. Fields added to every line (dataset, scale).
      precisions: tuple of str. Keras dtype policies of the model measurements.
      xla: tuple of bool. XLA settings of the model measurements.

    Returns:
      list of dict, the printed records.

    Raises:
      ValueError: for a name that is not in `MEASUREMENTS` or an unknown precision.
    """
    unknown = [name for name in names if name not in MEASUREMENTS]
    if unknown:
        raise ValueError(f"what: unknown measurements {unknown}; expected names from {sorted(MEASUREMENTS)}.")
    # `auto` resolves once per run, its reason on stderr (stdout holds only JSON lines).
    precisions = tuple(dict.fromkeys(
        precision.resolve(p, log=lambda line: print(line, file=sys.stderr)) if p == "auto" else precision.validate(p)
        for p in precisions))
    results: list[dict] = []
    matmul_measured = False

    def emit(result: dict) -> None:
        print(json.dumps(result), flush=True)
        results.append(result)

    ordered = [n for n in names if n not in _PLAIN] + [n for n in names if n in _PLAIN]
    for name in ordered:
        variants = [(settings.precision, False)] if name in _PLAIN else [
            (policy, jit) for policy in precisions for jit in ((False,) if name in _NO_XLA else xla)]
        for policy, jit in variants:
            if name not in _PLAIN:
                before = measure_matmul(settings.matmul_size)
                if not matmul_measured:
                    emit({"what": "matmul", "when": "start", **labels, **_machine_fields(), **before})
                    matmul_measured = True
            variant = dataclasses.replace(settings, precision=policy, jit_compile=jit)
            result = {"what": name, **labels, "height": settings.cfg.data.height,
                      "width": settings.cfg.data.width, "batch_size": settings.batch_size,
                      "precision": policy, "xla": jit, **MEASUREMENTS[name](variant)}
            if name not in _PLAIN:
                _add_rates(result, before, measure_matmul(settings.matmul_size))
            if name == "input":
                _add_consumption(result, results)
            result.update(_machine_fields(), rss_mb=_rss_mb(), peak_rss_mb=_peak_rss_mb())
            emit(result)
            # Free this variant's networks before the next one is built.
            keras.backend.clear_session()
            gc.collect()
    if matmul_measured:
        emit({"what": "matmul", "when": "end", **labels, **_machine_fields(), **measure_matmul(settings.matmul_size)})
    return results


# Per-scale defaults of --warmup/--windows/--window_batches: a full-scale stage-I step takes
# tens of seconds on a 2-core CPU, a tiny one tens of milliseconds.
_DEFAULT_COUNTS = {"full": (1, 3, 1), "tiny": (10, 5, 5)}


def _define_flags() -> None:
    # Defined only when run as a program, so that importing this module next to other command-line
    # modules (visualize, train) cannot clash on shared flag names.
    flags.DEFINE_list("what", list(MEASUREMENTS), f"Measurements to run, from: {', '.join(MEASUREMENTS)}.")
    flags.DEFINE_enum("dataset", "market", list(configs.DATASETS), "Preset dataset.")
    flags.DEFINE_enum("scale", "full", list(configs.SCALES), "Preset scale.")
    flags.DEFINE_integer("batch_size", None, "Batch size; defaults to the preset's.")
    flags.DEFINE_list("precision", ["auto"], "Keras dtype policies to measure the models under: auto "
                      "(this machine's choice, see keras_disentangle.precision), float32, mixed_bfloat16.")
    flags.DEFINE_enum("xla", "both", ["on", "off", "both"], "Compile the steps with XLA.")
    flags.DEFINE_string("data_dir", None, "TFRecord shards; random records are written to a temporary "
                        "directory when unset.")
    flags.DEFINE_integer("num_records", 1024, "Records written when --data_dir is unset.")
    flags.DEFINE_integer("warmup", None, "Calls after the first before timing (default: 1 full, 10 tiny).")
    flags.DEFINE_integer("windows", None, "Timed windows, the median is reported (default: 3 full, 5 tiny).")
    flags.DEFINE_integer("window_batches", None, "Calls per window at least (default: 1 full, 5 tiny).")
    flags.DEFINE_float("min_window_seconds", 2.0, "Seconds per window (and of warm-up) at least.")
    flags.DEFINE_integer("memory_steps", 0, "Step on to this many calls and report the resident memory "
                         "there against call 10 (0: off).")
    flags.DEFINE_integer("intra_op_threads", 0, "tf.config.threading intra-op threads (0: TensorFlow's choice).")
    flags.DEFINE_integer("inter_op_threads", 0, "tf.config.threading inter-op threads (0: TensorFlow's choice).")


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    values = flags.FLAGS
    # Retracing warnings (every variant builds new networks) and SavedModel export notes would
    # interleave with the JSON lines.
    tf.get_logger().setLevel("ERROR")
    # Thread pools are fixed when the runtime starts, so before any op runs.
    tf.config.threading.set_intra_op_parallelism_threads(values.intra_op_threads)
    tf.config.threading.set_inter_op_parallelism_threads(values.inter_op_threads)
    cfg = configs.override(configs.get_config(values.dataset, values.scale), batch_size=values.batch_size)
    labels = {"dataset": values.dataset, "scale": values.scale, "tensorflow": tf.__version__,
              "intra_op_threads": values.intra_op_threads, "inter_op_threads": values.inter_op_threads}
    warmup, windows, window_batches = (
        default if value is None else value
        for value, default in zip((values.warmup, values.windows, values.window_batches),
                                  _DEFAULT_COUNTS[values.scale]))
    xla = {"on": (True,), "off": (False,), "both": (False, True)}[values.xla]

    def settings(data_dir: str) -> Settings:
        return Settings(cfg=cfg, data_dir=data_dir, batch_size=cfg.train.batch_size, warmup=warmup,
                        windows=windows, window_batches=window_batches,
                        min_window_seconds=values.min_window_seconds, memory_steps=values.memory_steps)

    try:
        if values.data_dir:
            run(values.what, settings(values.data_dir), labels, tuple(values.precision), xla)
            return
        with tempfile.TemporaryDirectory(prefix="bench-records-") as directory:
            write_random_records(directory, cfg.data, num_records=values.num_records, num_shards=4)
            run(values.what, settings(directory), labels, tuple(values.precision), xla)
    except ValueError as error:
        raise app.UsageError(str(error)) from error


if __name__ == "__main__":
    _define_flags()
    app.run(main)
