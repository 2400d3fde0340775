"""--precision=auto: the decision from CPU flags, ONEDNN_MAX_CPU_ISA and accelerators (no TF needed)."""

import dataclasses
import json

import pytest

from keras_disentangle import configs, precision

AVX2_CPUINFO = "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu sse2 avx fma avx2\n"
BF16_CPUINFO = "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512bw avx512_bf16\n"
AMX_CPUINFO = "processor\t: 0\nflags\t\t: fpu avx2 avx512f amx_tile amx_bf16 amx_int8\n"


def _cpu(cpuinfo, isa=None):
    return precision.Hardware(cpu_flags=precision.cpu_flags(cpuinfo), onednn_max_isa=isa)


@pytest.mark.parametrize("cpuinfo, isa, expected", [
    (AVX2_CPUINFO, None, "float32"),
    (BF16_CPUINFO, None, "mixed_bfloat16"),
    (AMX_CPUINFO, None, "mixed_bfloat16"),
    (BF16_CPUINFO, "AVX2", "float32"),  # how the AVX2 machine is emulated on a bf16 one
    (BF16_CPUINFO, "avx512_core", "float32"),
    (BF16_CPUINFO, "AVX512_CORE_BF16", "mixed_bfloat16"),
    (AMX_CPUINFO, "AVX512_CORE_AMX", "mixed_bfloat16"),
    (BF16_CPUINFO, "ALL", "mixed_bfloat16"),
    ("", None, "float32"),  # no /proc/cpuinfo
])
def test_auto_follows_cpu_flags_and_onednn_cap(cpuinfo, isa, expected):
    choice = precision.decide("auto", _cpu(cpuinfo, isa))
    assert choice.policy == expected
    if isa and expected == "float32":
        assert "ONEDNN_MAX_CPU_ISA" in choice.reason


@pytest.mark.parametrize("capabilities, tpu, expected", [
    (((8, 0),), False, "mixed_bfloat16"),
    (((7, 5),), False, "float32"),
    (((8, 6), (7, 0)), False, "float32"),  # the oldest GPU decides
    ((), True, "mixed_bfloat16"),
])
def test_auto_on_accelerators_ignores_the_cpu(capabilities, tpu, expected):
    hardware = dataclasses.replace(_cpu(AVX2_CPUINFO), gpu_compute_capabilities=capabilities, tpu=tpu)
    assert precision.decide("auto", hardware).policy == expected


def test_explicit_policies_and_bad_names():
    cpu = _cpu(AVX2_CPUINFO)
    assert precision.decide("mixed_bfloat16", cpu).policy == "mixed_bfloat16"
    assert precision.decide("float32", _cpu(BF16_CPUINFO)).policy == "float32"
    with pytest.raises(ValueError, match="needs a GPU"):
        precision.decide("mixed_float16", cpu)
    gpu = dataclasses.replace(cpu, gpu_compute_capabilities=((7, 0),))
    assert precision.decide("mixed_float16", gpu).policy == "mixed_float16"
    with pytest.raises(ValueError, match="Unknown --precision=float16"):
        precision.decide("float16", cpu)


def test_explicit_bf16_without_bf16_units_warns_with_measured_factor(monkeypatch):
    monkeypatch.setattr(precision, "bf16_slowdown", lambda: 11.7)
    lines = []
    assert precision.resolve("mixed_bfloat16", _cpu(AVX2_CPUINFO), log=lines.append) == "mixed_bfloat16"
    assert len(lines) == 2 and "11.7x slower" in lines[1] and lines[1].startswith("WARNING")
    lines.clear()
    precision.resolve("mixed_bfloat16", _cpu(BF16_CPUINFO), log=lines.append)
    precision.resolve("auto", _cpu(AVX2_CPUINFO), log=lines.append)
    assert lines == ["Precision: mixed_bfloat16 (as requested).",
                     "Precision: float32 (--precision=auto: CPU has no avx512_bf16 / amx_bf16)."]


def test_config_json_without_precision_field_still_loads():
    cfg = configs.override(configs.get_config("synthetic", "tiny"), precision="float32")
    raw = json.loads(configs.to_json(cfg))
    assert raw["train"]["precision"] == "float32"
    del raw["train"]["precision"], raw["train"]["steps_per_execution"]
    old = configs.from_json(json.dumps(raw))
    assert old.train.precision == "auto" and old.train.steps_per_execution == 1
