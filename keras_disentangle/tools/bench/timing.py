"""What every measurement receives, how calls are timed, and the machine's reference GEMM rates."""

from __future__ import annotations

import dataclasses
import os
import resource
import statistics
import time
from collections.abc import Callable

import numpy as np
import tensorflow as tf

from keras_disentangle import configs

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
    # Reading one element waits for the asynchronously dispatched products.
    return gemm_gflops(lambda: tf.linalg.matmul(a, b), lambda product: product[0, 0].numpy(), size, trials, repeats)


def gemm_gflops(multiply, wait, size: int, trials: int, repeats: int) -> float:
    """The best of `trials` timings of `repeats` calls of `multiply()` (one `size x size` product each).

    Args:
      multiply: callable returning a product; called once untimed first (warm-up).
      wait: callable taking the last product and returning once it is computed.
      size, trials, repeats: as in `matmul_gflops`.

    Returns:
      float, GFLOP/s at 2 * size**3 FLOPs per product.
    """
    wait(multiply())
    best = float("inf")
    for _ in range(trials):
        start = time.perf_counter()
        for _ in range(repeats):
            product = multiply()
        wait(product)
        best = min(best, (time.perf_counter() - start) / repeats)
    return 2.0 * size ** 3 / best / 1e9


def numpy_sgemm_gflops(size: int = 2048, trials: int = 7, repeats: int = 3) -> float:
    """NumPy's float32 matmul rate (its BLAS, OpenBLAS in the NumPy wheels), timed as `matmul_gflops`."""
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((size, size), dtype=np.float32) for _ in range(2))
    return gemm_gflops(lambda: np.matmul(a, b), lambda product: None, size, trials, repeats)


def measure_matmul(size: int = 2048, bfloat16: bool = True) -> dict:
    """The reference rates the model measurements are compared with: TensorFlow's float32 matmul,
    NumPy's SGEMM, the best float32 GEMM of the two (the ceiling) and, when `bfloat16`,
    TensorFlow's bfloat16 matmul (which crashes under an `ONEDNN_MAX_CPU_ISA` cap without bf16)."""
    tf32, numpy32 = round(matmul_gflops(tf.float32, size), 1), round(numpy_sgemm_gflops(size), 1)
    rates = {"matmul_size": size, "float32_gflops_per_s": tf32,
             "numpy_sgemm_gflops_per_s": numpy32, "best_float32_gflops_per_s": max(tf32, numpy32),
             "best_float32_gemm": "numpy" if numpy32 > tf32 else "tensorflow",
             "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE")}
    if bfloat16:
        rates["bfloat16_gflops_per_s"] = round(matmul_gflops(tf.bfloat16, size), 1)
    return rates


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
