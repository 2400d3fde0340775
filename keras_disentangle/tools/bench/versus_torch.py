"""This project's stage-I training step against a PyTorch one of the same network, in one process.

    /work/torchvenv/bin/python -m keras_disentangle.tools.bench.versus_torch --scale=full \
        --precision=float32 --torch=channels_last --rounds=2 --warmup=0

Needs PyTorch in its own venv (`torch_reference` says how; it is not a project dependency). Builds
the real step (`measurements.stage1_train_step`: the paper's loss, D1 trained, under
`--precision`), the same step with the generator's stem a plain Conv2D (the layer before
`TiledInputConv2D`, same weights: its first step's losses must agree, `first_step_max_loss_rel_diff`)
and `torch_reference.Stage1Step` in each `--torch` variant. Asserts that PyTorch's networks have the
same parameters (trainable and batch-norm statistics) and its step the same FLOPs as the plain-stem
step (TensorFlow's counted from the traced graph by `graph_flops`, PyTorch's by
`torch.utils.flop_counter`). Warms each up, then times them in rounds: one window of each variant
after the other (TF, TF plain stem, torch, ..., TF, ...), each window at least
`--min_window_seconds`, with the float32 GEMMs of TensorFlow (`tf.linalg.matmul`), NumPy (its
OpenBLAS SGEMM) and PyTorch (`torch.mm`, MKL) measured in every round too. Load from other processes
then falls on all of them alike; only the ratios within a round are read. Prints a JSON line after
set-up and after each round, then one with per variant the median rate, the median over rounds of
its rate (wall and CPU seconds) over the TensorFlow step's, and of its network GFLOP/s (the plain-stem FLOPs) over the best
float32 GEMM of the same round.
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf
import torch
from absl import flags
from torch.utils.flop_counter import FlopCounterMode

from keras_disentangle import cli, configs, precision
from keras_disentangle.tools.bench import torch_reference
from keras_disentangle.tools.bench.measurements import data_batches, sync_losses, stage1_train_step
from keras_disentangle.tools.bench.random_records import write_random_records
from keras_disentangle.tools.bench.timing import Settings, gemm_gflops, matmul_gflops, numpy_sgemm_gflops
from keras_disentangle.models.layers import TiledInputConv2D
from keras_disentangle.models.stage1 import Stage1, build_stage1

_TORCH_VARIANTS = {"nchw": False, "channels_last": True}


def build_stage1_plain_stem(cfg: configs.Config) -> Stage1:
    """`build_stage1` with the generator's stem a plain `keras.layers.Conv2D` (the layer before
    `TiledInputConv2D`; same variables and weights), to measure what that layer wins."""
    stage1 = build_stage1(cfg)

    def plain_stem(layer):
        if isinstance(layer, TiledInputConv2D):
            config = {k: v for k, v in layer.get_config().items() if k != "constant_channels"}
            return keras.layers.Conv2D(**config, padding="same")
        return layer.__class__.from_config(layer.get_config())

    generator = keras.models.clone_model(stage1.generator, clone_function=plain_stem)
    generator.set_weights(stage1.generator.get_weights())
    return dataclasses.replace(stage1, generator=generator)


def torch_mm_gflops(dtype: torch.dtype = torch.float32, size: int = 2048, trials: int = 7, repeats: int = 3) -> float:
    """PyTorch's matmul rate, timed as `timing.matmul_gflops`."""
    generator = torch.Generator().manual_seed(0)
    a, b = (torch.randn(size, size, generator=generator).to(dtype) for _ in range(2))
    return gemm_gflops(lambda: torch.mm(a, b), lambda product: None, size, trials, repeats)


def gemm_rates(bfloat16: bool) -> dict[str, float]:
    rates = {"tf_matmul_float32": matmul_gflops(tf.float32), "numpy_sgemm": numpy_sgemm_gflops(),
             "torch_mm_float32": torch_mm_gflops(torch.float32)}
    if bfloat16:
        rates.update(tf_matmul_bfloat16=matmul_gflops(tf.bfloat16), torch_mm_bfloat16=torch_mm_gflops(torch.bfloat16))
    return {name: round(rate, 1) for name, rate in rates.items()}


def torch_step_flops(step: torch_reference.Stage1Step, batch: dict) -> int:
    """FLOPs of one step's forward and gradients (no update), as `torch.utils.flop_counter` counts them."""
    with FlopCounterMode(display=False) as counter:
        with torch.autocast("cpu", dtype=step.autocast or torch.bfloat16, enabled=step.autocast is not None):
            g_loss, d_loss, _ = step.losses(batch)
        if d_loss is not None:
            torch.autograd.grad(d_loss, list(step.d1.parameters()), retain_graph=True)
        torch.autograd.grad(g_loss, step.g_parameters)
    return counter.get_total_flops()


def check_same_network(stage1, step: torch_reference.Stage1Step) -> dict[str, int]:
    """Asserts that the Keras and PyTorch networks have the same parameter counts; returns them."""
    keras_trainable = sum(int(np.prod(v.shape)) for m in (stage1.appearance_encoder, stage1.generator, stage1.d1)
                          for v in m.trainable_variables)
    keras_statistics = sum(int(np.prod(v.shape)) for v in stage1.d1.non_trainable_variables)
    torch_trainable, torch_statistics = map(sum, zip(*(torch_reference.parameter_counts(n) for n in step.networks())))
    generator = sum(int(np.prod(v.shape)) for v in stage1.generator.trainable_variables)
    torch_generator = torch_reference.parameter_counts(step.generator)[0]
    if (keras_trainable, keras_statistics, generator) != (torch_trainable, torch_statistics, torch_generator):
        raise AssertionError(
            f"parameters differ: Keras {keras_trainable} trainable, {keras_statistics} statistics, G {generator}; "
            f"PyTorch {torch_trainable}, {torch_statistics}, G {torch_generator}")
    return {"trainable_parameters": keras_trainable, "generator_parameters": generator,
            "batch_norm_statistics": keras_statistics}


def define_flags() -> None:
    cli.define_shared("dataset", default="market", note="The reference has BodyROI7 + background.",
                      choices=[configs.Dataset.MARKET])
    cli.define_shared("scale", default="full")
    cli.define_shared("batch_size", note="Default: the preset's.")
    cli.define_shared("precision", default="float32", note="Of the TF step; mixed_bfloat16 runs PyTorch under bf16 "
                      "autocast.", choices=[configs.Precision.FLOAT32, configs.Precision.MIXED_BFLOAT16])
    cli.define_shared("adversarial_weight", default=1.0, note="1: the paper's loss (D1 trained).")
    flags.DEFINE_list("torch", list(_TORCH_VARIANTS), f"PyTorch memory layouts: {', '.join(_TORCH_VARIANTS)}.")
    flags.DEFINE_integer("rounds", 3, "Timed rounds (one window of every variant each).")
    cli.define_shared("warmup", default=1, note="Of each variant, after the first.")
    cli.define_shared("min_window_seconds", default=0.0, note="At least one step.")
    cli.define_shared("num_records", default=64)


def main(argv: list[str]) -> None:
    cli.no_positional(argv)
    values = flags.FLAGS
    tf.get_logger().setLevel("ERROR")
    bfloat16 = values.precision == configs.Precision.MIXED_BFLOAT16
    cfg = configs.override(configs.get_config(values.dataset, values.scale), batch_size=values.batch_size,
                           adversarial_weight=values.adversarial_weight)
    batch_size = cfg.train.batch_size
    with tempfile.TemporaryDirectory(prefix="versus-torch-") as directory:
        write_random_records(directory, cfg.data, num_records=values.num_records, num_shards=1)
        settings = Settings(cfg=cfg, data_dir=directory, batch_size=batch_size, precision=values.precision)
        batches = data_batches(settings, batch_size, count=2)
    line: dict = {"cpu_flags": sorted(precision.detect().cpu_flags & {"avx2", "avx512_bf16", "amx_bf16"}),
                  "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE"), "tensorflow": tf.__version__,
                  "torch": torch.__version__, "torch_threads": torch.get_num_threads(), "batch_size": batch_size,
                  "scale": values.scale, "precision": values.precision,
                  "adversarial_weight": values.adversarial_weight}
    # The plain-stem step is the network as written (the FLOPs PyTorch's step does); the real step
    # does fewer for the same output (TiledInputConv2D). Rates are per image, so they compare as is;
    # GFLOP/s are given in the network's FLOPs.
    tf_name = f"tensorflow_{values.precision}"
    plain_name = f"{tf_name}_plain_conv2d_stem"
    calls, first_losses, flops = {}, {}, {}
    for name, build in ((tf_name, build_stage1), (plain_name, build_stage1_plain_stem)):
        stage1, step, step_flops = stage1_train_step(settings, values.adversarial_weight, batches, build)
        flops[name] = step_flops["forward"] + step_flops["backward"]
        first_losses[name] = {k: float(v) for k, v in step(batches[0]).items()}
        calls[name] = lambda i, step=step: sync_losses(step(batches[i % 2]))
    network_flops = flops[plain_name]
    line.update(tf_flops_per_example=flops[tf_name] // batch_size, network_flops_per_example=network_flops // batch_size,
                first_step_max_loss_rel_diff=max(abs(first_losses[plain_name][k] - v) / max(abs(v), 1e-12)
                                                 for k, v in first_losses[tf_name].items()))
    print(json.dumps(line), flush=True)
    for variant in values.torch:
        step = torch_reference.Stage1Step(cfg, channels_last=_TORCH_VARIANTS[variant],
                                          autocast=torch.bfloat16 if bfloat16 else None)
        line.update(check_same_network(stage1, step))
        torch_batches = [step.batch(b) for b in batches]
        torch_flops = torch_step_flops(step, torch_batches[0])
        if torch_flops != network_flops:
            raise AssertionError(f"FLOPs per step differ: TensorFlow {network_flops}, PyTorch ({variant}) {torch_flops}")
        name = f"torch_{variant}" + ("_autocast_bfloat16" if bfloat16 else "_float32")
        step(torch_batches[0])
        calls[name] = lambda i, step=step, b=torch_batches: step(b[i % 2])
    for call in calls.values():
        for index in range(values.warmup):
            call(index + 1)
    seconds: dict[str, list[float]] = {name: [] for name in calls}
    cpu_seconds: dict[str, list[float]] = {name: [] for name in calls}
    gemms: list[dict[str, float]] = []
    load = []
    for round_index in range(values.rounds):
        gemms.append(gemm_rates(bfloat16))
        for name, call in calls.items():
            done, start, cpu_start = 0, time.perf_counter(), time.process_time()
            while not done or time.perf_counter() - start < values.min_window_seconds:
                call(round_index + done)
                done += 1
            seconds[name].append((time.perf_counter() - start) / done)
            cpu_seconds[name].append((time.process_time() - cpu_start) / done)
        load.append(os.getloadavg()[0])
        print(json.dumps({"round": round_index, "seconds_per_step": {n: round(s[-1], 2) for n, s in seconds.items()},
                          "cpu_seconds_per_step": {n: round(s[-1], 2) for n, s in cpu_seconds.items()},
                          "gemm_gflops": gemms[-1], "load_average": load[-1]}), flush=True)
    best_gemm = [max(g["tf_matmul_float32"], g["numpy_sgemm"], g["torch_mm_float32"]) for g in gemms]
    gflop = network_flops / batch_size / 1e9
    for name, per_round in seconds.items():
        line[name] = {
            "examples_per_s": round(batch_size / statistics.median(per_round), 4),
            "window_examples_per_s": [round(batch_size / s, 4) for s in per_round],
            f"rate_over_{tf_name}": round(statistics.median(
                t / s for s, t in zip(per_round, seconds[tf_name])), 3),
            # CPU seconds (all threads) per step: less moved by descheduling than wall time on a
            # shared machine, though spin-waiting threads count too.
            "cpu_seconds_per_step": [round(c, 2) for c in cpu_seconds[name]],
            f"cpu_rate_over_{tf_name}": round(statistics.median(
                t / c for c, t in zip(cpu_seconds[name], cpu_seconds[tf_name])), 3),
            "over_best_float32_gemm": round(statistics.median(
                gflop * batch_size / s / best for s, best in zip(per_round, best_gemm)), 3),
        }
    line.update(network_gflop_per_example=round(gflop, 1), gemm_gflops_per_round=gemms, load_average_per_round=load)
    print(json.dumps(line))


if __name__ == "__main__":
    cli.run(main, define_flags)
