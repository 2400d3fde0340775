"""The Keras dtype policy of a run: `--precision=auto` picks what the hardware computes fastest.

mixed_bfloat16 pays off only where the device has bf16 arithmetic: a CPU with AVX512_BF16 or AMX
(without them oneDNN emulates bf16 and a step runs ~12x slower than float32), a GPU of compute
capability 8.0 or later (Ampere), or a TPU. Everywhere else `auto` means float32.
`ONEDNN_MAX_CPU_ISA` caps the instructions oneDNN uses, so a cap below AVX512_CORE_BF16 counts as
a CPU without bf16 (that is also how an AVX2 machine is emulated on a newer one).

Used by training, the benchmark and export alike (inference never imports training).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time

from keras_disentangle import configs

POLICIES = tuple(policy.value for policy in configs.Precision)

# oneDNN's ONEDNN_MAX_CPU_ISA values in increasing order; bf16 arithmetic starts at AVX512_CORE_BF16.
# AVX10_1_512* are the newer names of AVX512_CORE_FP16 / _AMX / _AMX_FP16.
_ISA_ORDER = ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE", "AVX512_CORE_VNNI",
              "AVX512_CORE_BF16", "AVX512_CORE_FP16", "AVX10_1_512", "AVX512_CORE_AMX", "AVX10_1_512_AMX",
              "AVX512_CORE_AMX_FP16", "AVX10_1_512_AMX_FP16", "ALL", "DEFAULT")
_FIRST_BF16_ISA = _ISA_ORDER.index("AVX512_CORE_BF16")
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


@dataclasses.dataclass(frozen=True)
class Hardware:
    """What the precision decision looks at.

    Attributes:
      cpu_flags: frozenset of str. The `flags` of /proc/cpuinfo (empty where it cannot be read).
      onednn_max_isa: str or None. The `ONEDNN_MAX_CPU_ISA` environment variable.
      gpu_compute_capabilities: tuple of (major, minor), one per visible GPU.
      tpu: bool. Whether a TPU is visible.
    """

    cpu_flags: frozenset = frozenset()
    onednn_max_isa: str | None = None
    gpu_compute_capabilities: tuple = ()
    tpu: bool = False


@dataclasses.dataclass(frozen=True)
class Choice:
    """The resolved policy and the one-line reason printed with it."""

    policy: str
    reason: str


def cpu_flags(cpuinfo: str) -> frozenset:
    """The CPU feature flags listed in /proc/cpuinfo text (first `flags` line)."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return frozenset(value.split())
    return frozenset()


def isa_cap_below_bf16(hardware: Hardware) -> str | None:
    """The ONEDNN_MAX_CPU_ISA value when it caps oneDNN below bf16 arithmetic, else None."""
    cap = (hardware.onednn_max_isa or "").strip().upper()
    return cap if cap in _ISA_ORDER and _ISA_ORDER.index(cap) < _FIRST_BF16_ISA else None


def cpu_bf16(hardware: Hardware) -> tuple[bool, str]:
    """Whether oneDNN may use bf16 arithmetic on this CPU, and why (the flags / the ISA cap)."""
    present = sorted(hardware.cpu_flags.intersection(BF16_CPU_FLAGS))
    if not present:
        return False, f"CPU has no {' / '.join(BF16_CPU_FLAGS)}"
    cap = isa_cap_below_bf16(hardware)
    if cap:
        return False, f"ONEDNN_MAX_CPU_ISA={cap} caps the CPU below AVX512_CORE_BF16"
    return True, f"CPU has {', '.join(present)}"


def validate(requested: configs.Precision | str) -> str:
    """Returns the name of the policy `requested` names, a plain str for Keras (the one check of every
    command's --precision).

    Raises:
      ValueError: for an unknown name.
    """
    if requested not in POLICIES:
        raise ValueError(f"Unknown --precision={requested}; expected one of {', '.join(POLICIES)}.")
    return str(requested)


def decide(requested: str, hardware: Hardware) -> Choice:
    """Resolves `requested` (one of POLICIES) on `hardware`; pure, for tests.

    Raises:
      ValueError: for an unknown name, or mixed_float16 without a GPU.
    """
    requested = validate(requested)
    gpus = hardware.gpu_compute_capabilities
    if requested == configs.Precision.MIXED_FLOAT16 and not gpus:
        raise ValueError("--precision=mixed_float16 needs a GPU (float16 on a CPU is emulated and slow); "
                         "use auto, float32 or mixed_bfloat16.")
    if requested != configs.Precision.AUTO:
        return Choice(requested, "as requested")
    if hardware.tpu:
        return Choice("mixed_bfloat16", "TPU present")
    if gpus:
        oldest = min(gpus)
        if oldest >= (8, 0):
            return Choice("mixed_bfloat16", f"GPU compute capability {oldest[0]}.{oldest[1]} >= 8.0 has bf16")
        return Choice("float32", f"GPU compute capability {oldest[0]}.{oldest[1]} < 8.0 has no bf16 "
                                 "(mixed_float16 may pay off there: untested)")
    has_bf16, why = cpu_bf16(hardware)
    return Choice("mixed_bfloat16" if has_bf16 else "float32", why)


def detect() -> Hardware:
    """Reads /proc/cpuinfo, ONEDNN_MAX_CPU_ISA and TensorFlow's visible accelerators."""
    import tensorflow as tf  # noqa: PLC0415 (callers parse their flags first)

    try:
        with open("/proc/cpuinfo") as cpuinfo:
            flags = cpu_flags(cpuinfo.read())
    except OSError:
        flags = frozenset()
    capabilities = []
    for gpu in tf.config.list_physical_devices("GPU"):
        capability = tf.config.experimental.get_device_details(gpu).get("compute_capability")
        capabilities.append(tuple(capability) if capability else (0, 0))
    return Hardware(cpu_flags=flags, onednn_max_isa=os.environ.get("ONEDNN_MAX_CPU_ISA"),
                    gpu_compute_capabilities=tuple(capabilities),
                    tpu=bool(tf.config.list_logical_devices("TPU")))


def bf16_slowdown(seconds: float = 1.0) -> float | None:
    """How many times slower a 3x3 conv (64 -> 64 channels, 16 x 64 x 32) runs in bf16 than in float32.

    A ~`seconds` micro-benchmark, half per dtype, best call of each. None when the bf16 conv does
    not run at all (oneDNN under an `ONEDNN_MAX_CPU_ISA` cap finds no bf16 kernel).
    """
    import tensorflow as tf  # noqa: PLC0415

    generator = tf.random.Generator.from_seed(0)
    images, kernel = generator.normal([16, 64, 32, 64]), generator.normal([3, 3, 64, 64]) * 0.05
    best = {}
    for dtype in (tf.float32, tf.bfloat16):
        conv = tf.function(lambda x, k: tf.nn.conv2d(x, k, 1, "SAME"))
        x, k = tf.cast(images, dtype), tf.cast(kernel, dtype)
        try:
            conv(x, k).numpy()
        except tf.errors.OpError:
            return None
        best[dtype], end = float("inf"), time.perf_counter() + seconds / 2
        while time.perf_counter() < end:
            start = time.perf_counter()
            conv(x, k).numpy()
            best[dtype] = min(best[dtype], time.perf_counter() - start)
    return best[tf.bfloat16] / best[tf.float32]


def resolve(requested: str, hardware: Hardware | None = None, log=print) -> str:
    """Resolves `requested` on this machine, printing one line on what was chosen and why.

    An explicit mixed_bfloat16 on a CPU without bf16 units (and no accelerator) also prints a
    one-line warning with the measured slowdown.

    Raises:
      ValueError: as `decide`.
    """
    hardware = detect() if hardware is None else hardware
    choice = decide(requested, hardware)
    log(f"Precision: {choice.policy} ({'--precision=auto: ' if requested == 'auto' else ''}{choice.reason}).")
    accelerated = hardware.tpu or hardware.gpu_compute_capabilities
    if requested == configs.Precision.MIXED_BFLOAT16 and not accelerated:
        has_bf16, why = cpu_bf16(hardware)
        if not has_bf16:
            slowdown = bf16_slowdown()
            measured = (f"a bf16 conv measured {slowdown:.1f}x slower than float32 here" if slowdown
                        else "a bf16 conv failed to run here")
            log(f"WARNING: --precision=mixed_bfloat16 but {why}: {measured}; "
                "--precision=auto would use float32.")
    return choice.policy


@contextlib.contextmanager
def global_policy(name: str | None = None):
    """Keras' global dtype policy `name` inside the block (None: the current one), the previous one
    restored after it: the policy is process state, and networks built under one policy must not
    leave it to whatever the process builds next (benchmarks, tests, tools run in-process).

    Raises:
      ValueError: as `validate`.
    """
    import keras  # noqa: PLC0415

    previous = keras.mixed_precision.global_policy()
    if name is not None:
        keras.mixed_precision.set_global_policy(validate(name))
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def apply(requested: str, **kwargs) -> str:
    """`resolve`, then sets it as the global Keras dtype policy; returns the policy name."""
    import keras  # noqa: PLC0415

    policy = resolve(requested, **kwargs)
    keras.mixed_precision.set_global_policy(policy)
    return policy


def loss_scaled(optimizer):
    """Wraps `optimizer` in a LossScaleOptimizer under the mixed_float16 policy (float16 gradients
    underflow without it); returns it unchanged otherwise. Untested on GPUs in this project."""
    import keras  # noqa: PLC0415

    if keras.mixed_precision.global_policy().name == "mixed_float16":
        return keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer
