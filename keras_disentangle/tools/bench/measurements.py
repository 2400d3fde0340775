"""The measurements (`measure_<name>(settings) -> dict`, registered in `MEASUREMENTS`) and `run`,
which prints one JSON line per measurement and setting."""

from __future__ import annotations

import dataclasses
import gc
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import keras
import tensorflow as tf

from keras_disentangle import configs, data, precision
from keras_disentangle.tools.bench.flops import _flops_fields, graph_flops
from keras_disentangle.tools.bench.timing import Settings, _peak_rss_mb, _rss_mb, _time_calls, measure_matmul
from keras_disentangle.models.discriminators import build_critic
from keras_disentangle.models.mapper import build_mapper
from keras_disentangle.models.pose_autoencoder import build_pose_decoder, build_pose_encoder
from keras_disentangle.models.stage1 import Stage1, build_stage1
from keras_disentangle.serving.runtime import stage1_trackables
from keras_disentangle.training import loop, stage2, steps
from keras_disentangle.training import stage1 as stage1_training

if TYPE_CHECKING:
    from keras_disentangle.serving.runtime import Stage1Serving


def data_batches(settings: Settings, batch_size: int, count: int = 4) -> list[dict]:
    """A few batches of `data.train_dataset`, held in memory so that a step's timing is its own."""
    dataset = data.train_dataset(settings.data_dir, settings.cfg, batch_size=batch_size)
    return list(dataset.take(count))


def sync_losses(logs: dict) -> None:
    """Reads every loss of a step, as the training loop does at a log step: returns when the step has
    finished, so that a timing covers it (TensorFlow may return before the work is done)."""
    for value in logs.values():
        float(value)


def stage1_train_step(settings: Settings, adversarial_weight: float, batches: list[dict],
                      build: Callable[[configs.Config], Stage1] = build_stage1
                      ) -> tuple[Stage1, Callable[[dict], dict], dict[str, int]]:
    """The stage-I appearance step as `train.py` runs it, networks from `build` under `settings.precision`.

    Returns:
      The networks, the step (`loop.distributed_step`, default strategy: batch -> losses) and
      its FLOPs (`graph_flops` of the replica step on `batches[0]`).
    """
    cfg = configs.override(settings.cfg, adversarial_weight=adversarial_weight, batch_size=settings.batch_size)
    with precision.global_policy(settings.precision):
        keras.utils.set_random_seed(cfg.train.seed)
        stage1 = build(cfg)
        optimizers = stage1_training.build_optimizers(cfg.train)
        optimizers["g1"].build(stage1.appearance_encoder.trainable_variables + stage1.generator.trainable_variables)
        optimizers["d1"].build(stage1.d1.trainable_variables)
    replica_step = steps.stage1_step(steps.Stage1Part.APPEARANCE, stage1, optimizers, cfg.train, settings.batch_size)
    flops = graph_flops(replica_step, batches[0])
    return stage1, loop.distributed_step(tf.distribute.get_strategy(), replica_step, settings.jit_compile), flops


def _stage1_train(settings: Settings, adversarial_weight: float) -> dict:
    batch_size = settings.batch_size
    batches = data_batches(settings, batch_size)
    _, step, flops = stage1_train_step(settings, adversarial_weight, batches)
    timing = _time_calls(lambda i: sync_losses(step(batches[i % len(batches)])), batch_size, settings)
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
    in-memory stream), so their losses must agree. Their timed windows alternate (k = 1, k, k = 1,
    ...), so that load from other processes falls on both alike; `speedup` is the median of the
    paired window ratios, `examples_per_s` the rate at `k`.
    """
    batch_size = settings.batch_size
    cfg = configs.override(settings.cfg, adversarial_weight=0.0, batch_size=batch_size)
    batches = data_batches(settings, batch_size)
    stream = tf.data.Dataset.from_tensors(batches[0])
    for batch in batches[1:]:
        stream = stream.concatenate(tf.data.Dataset.from_tensors(batch))
    strategy = tf.distribute.get_strategy()
    fields: dict = {}
    calls = {}
    for per_call in (1, k):
        with precision.global_policy(settings.precision):
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
        # As the loop: the device-side NaN flag comes back after every call.
        calls[per_call] = lambda run_steps=run_steps, iterator=iterator, count=count: bool(
            run_steps(iterator, count)[2])
    for per_call, call in calls.items():  # warm-up
        for _ in range(max(1, settings.warmup // per_call)):
            call()
    seconds_per_step: dict[int, list[float]] = {per_call: [] for per_call in calls}
    for _ in range(settings.windows):
        for per_call, call in calls.items():
            done, start = 0, time.perf_counter()
            while done < settings.window_batches * k or time.perf_counter() - start < settings.min_window_seconds:
                call()
                done += per_call
            seconds_per_step[per_call].append((time.perf_counter() - start) / done)
    for per_call, seconds in seconds_per_step.items():
        fields[f"examples_per_s_k{per_call}"] = round(batch_size / statistics.median(seconds), 2)
        fields[f"window_examples_per_s_k{per_call}"] = [round(batch_size / s, 2) for s in seconds]
    losses = [fields[f"losses_after_{equal_steps}_steps_k{n}"] for n in (1, k)]
    fields["max_loss_rel_diff"] = max(abs(losses[1][name] - value) / max(abs(value), 1e-12)
                                      for name, value in losses[0].items())
    fields[f"speedup_k{k}_over_k1"] = round(statistics.median(
        one / many for one, many in zip(seconds_per_step[1], seconds_per_step[k])), 3)
    flops = graph_flops(replica_step, batches[0])
    return {"loss": "l1", "example": "image", "steps_per_execution": k, **fields,
            "examples_per_s": fields[f"examples_per_s_k{k}"],
            "window_examples_per_s": fields[f"window_examples_per_s_k{k}"], **_flops_fields(flops, batch_size)}


def measure_train_step_l1(settings: Settings) -> dict:
    """The stage-I appearance step with L1 only (the tiny preset's loss): no D1 pass."""
    return _stage1_train(settings, adversarial_weight=0.0)


def measure_pose_step(settings: Settings) -> dict:
    """The pose auto-encoder step at the preset's `pose_batch_size`."""
    batch_size = settings.cfg.train.pose_batch_size
    cfg = settings.cfg
    batches = [{"pose_vector": batch["pose_vector"]} for batch in data_batches(settings, batch_size)]
    with precision.global_policy(settings.precision):
        keras.utils.set_random_seed(cfg.train.seed)
        # pose_step reads only the pose networks; the image networks are not built.
        stage1 = Stage1(appearance_encoder=None, generator=None, d1=None,
                        pose_encoder=build_pose_encoder(cfg), pose_decoder=build_pose_decoder(cfg))
        optimizer = stage1_training.build_optimizers(cfg.train)["pose"]
        optimizer.build(stage1.pose_encoder.trainable_variables + stage1.pose_decoder.trainable_variables)
    replica_step = steps.pose_step(stage1, optimizer, batch_size)
    flops = graph_flops(replica_step, batches[0])
    step = loop.distributed_step(tf.distribute.get_strategy(), replica_step, settings.jit_compile)
    timing = _time_calls(lambda i: sync_losses(step(batches[i % len(batches)])), batch_size, settings)
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
    with precision.global_policy(settings.precision):
        keras.utils.set_random_seed(train_cfg.seed)
        mapper, critic = build_mapper(cfg, factor), build_critic(cfg, factor)
        optimizers = stage2.build_optimizers(train_cfg)
        optimizers["phi"].build(mapper.trainable_variables)
        optimizers["d2"].build(critic.trainable_variables)
    replica_step = stage2.mapper_step(mapper, critic, optimizers["phi"], optimizers["d2"], train_cfg, dim, batch_size)
    flops = graph_flops(replica_step, batches[0])
    step = loop.distributed_step(tf.distribute.get_strategy(), replica_step, settings.jit_compile)
    timing = _time_calls(lambda i: sync_losses(step(batches[i % len(batches)])), batch_size, settings)
    return {"batch_size": batch_size, "factor": factor.value, "example": "mapper noise vector",
            **timing, **_flops_fields(flops, batch_size)}


def _serving(settings: Settings) -> tuple[Stage1, Stage1Serving, list[tuple[tf.Tensor, tf.Tensor]]]:
    """Random-weight stage-I networks, their serving functions and (image, keypoints) batches."""
    # Imported here: the export module defines its command-line flags when imported, which must not
    # happen in every process that imports the benchmark.
    from keras_disentangle.serving.runtime import Stage1Serving  # noqa: PLC0415

    cfg = settings.cfg
    batches = [(batch["image"], batch["keypoints"]) for batch in data_batches(settings, settings.batch_size)]
    with precision.global_policy(settings.precision):
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
    as `keras_disentangle.serving.export` writes it, then loaded with `tf.saved_model.load`."""
    stage1, serving, batches = _serving(settings)
    flops = graph_flops(serving.reconstruct, *batches[0])
    with tempfile.TemporaryDirectory(prefix="bench-savedmodel-") as directory:
        archive = keras.export.ExportArchive()
        for model in stage1_trackables(stage1).values():
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
        "float32_gflops_per_s", "best_float32_gflops_per_s", "bfloat16_gflops_per_s") if key in before}
    result["gflops_per_s"] = round(gflops, 1)
    result["matmul_float32_gflops_per_s"] = [before["float32_gflops_per_s"], after["float32_gflops_per_s"]]
    result["numpy_sgemm_gflops_per_s"] = [before["numpy_sgemm_gflops_per_s"], after["numpy_sgemm_gflops_per_s"]]
    # Significant figures, not decimals: the tiny FC steps run at ~0.001 of the matmul rate.
    result["matmul_ratio"] = float(f"{gflops / reference['best_float32_gflops_per_s']:.3g}")
    result["tf_matmul_ratio"] = float(f"{gflops / reference['float32_gflops_per_s']:.3g}")
    if result["precision"] == "mixed_bfloat16":
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
    # The bf16 reference only where a bf16 policy is measured.
    bfloat16 = "mixed_bfloat16" in precisions
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
                before = measure_matmul(settings.matmul_size, bfloat16)
                if not matmul_measured:
                    emit({"what": "matmul", "when": "start", **labels, **_machine_fields(), **before})
                    matmul_measured = True
            variant = dataclasses.replace(settings, precision=policy, jit_compile=jit)
            result = {"what": name, **labels, "height": settings.cfg.data.height,
                      "width": settings.cfg.data.width, "batch_size": settings.batch_size,
                      "precision": policy, "xla": jit, **MEASUREMENTS[name](variant)}
            if name not in _PLAIN:
                _add_rates(result, before, measure_matmul(settings.matmul_size, bfloat16))
            if name == "input":
                _add_consumption(result, results)
            result.update(_machine_fields(), rss_mb=_rss_mb(), peak_rss_mb=_peak_rss_mb())
            emit(result)
            # Free this variant's networks before the next one is built.
            keras.backend.clear_session()
            gc.collect()
    if matmul_measured:
        emit({"what": "matmul", "when": "end", **labels, **_machine_fields(), **measure_matmul(settings.matmul_size, bfloat16)})
    return results
