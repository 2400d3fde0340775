"""Times the phases of `make demo` and prints them as a table, with the CPU they ran on.

  python -m keras_disentangle.tools.demo_timer --log=out/demo/timings.tsv run NAME -- COMMAND [ARGS...]
  python -m keras_disentangle.tools.demo_timer --log=out/demo/timings.tsv table

`run` executes COMMAND, appends `NAME<TAB>seconds` to the log and exits with COMMAND's code, so a
Makefile can time each phase without shell features that differ between `sh` and `bash`. `table`
prints every phase, the total, and the CPU flags that decide the speed (avx2, avx512f,
avx512_bf16, amx_bf16). No TensorFlow import: the timer costs milliseconds per phase.
The command line follows `keras_disentangle.cli`; `--` ends the timer's flags, so COMMAND's own
flags pass through untouched.
"""

from __future__ import annotations

import os
import subprocess
import time

from absl import flags

from keras_disentangle import cli, precision

FLAGS = flags.FLAGS

SPEED_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")


def cpu_description() -> str:
    """'<model name> (flags: avx2 avx512f ...)' from /proc/cpuinfo; 'unknown CPU' where it is absent."""
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
    except OSError:
        return "unknown CPU"
    model = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")),
                 "unknown CPU")
    flags = precision.cpu_flags(text)
    present = [flag for flag in SPEED_FLAGS if flag in flags]
    return f"{model}, {os.cpu_count()} CPUs (flags: {' '.join(present) or 'none of ' + ', '.join(SPEED_FLAGS)})"


def run_phase(log: str, name: str, command: list[str]) -> int:
    """Runs `command`, appends its wall-clock seconds to `log` (also when it fails); returns its exit code."""
    start = time.perf_counter()
    code = subprocess.call(command)
    seconds = time.perf_counter() - start
    os.makedirs(os.path.dirname(os.path.abspath(log)), exist_ok=True)
    with open(log, "a") as f:
        f.write(f"{name}\t{seconds:.1f}\t{code}\n")
    return code


def read_log(log: str) -> list[tuple[str, float, int]]:
    rows = []
    with open(log) as f:
        for line in f:
            name, seconds, code = line.rstrip("\n").split("\t")
            rows.append((name, float(seconds), int(code)))
    return rows


def format_table(rows: list[tuple[str, float, int]], cpu: str) -> str:
    width = max([len(name) for name, _, _ in rows] + [len("total")])
    lines = [f"Demo phases on {cpu}", f"{'phase':<{width}}  {'min:s':>7}"]
    for name, seconds, code in rows:
        failed = "" if code == 0 else f"  (exit {code})"
        lines.append(f"{name:<{width}}  {_minutes(seconds):>7}{failed}")
    lines.append(f"{'total':<{width}}  {_minutes(sum(s for _, s, _ in rows)):>7}")
    return "\n".join(lines)


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)}:{seconds % 60:04.1f}"


def define_flags() -> None:
    flags.DEFINE_string("log", None, "The timings file: one line per phase (name, seconds, exit code).")
    flags.mark_flag_as_required("log")


def main(argv: list[str]) -> int:
    if len(argv) > 3 and argv[1] == "run":
        return run_phase(FLAGS.log, argv[2], argv[3:])
    if argv[1:] == ["table"]:
        if not os.path.exists(FLAGS.log):
            raise OSError(f"{FLAGS.log} does not exist; no phase was timed.")
        print(format_table(read_log(FLAGS.log), cpu_description()))
        return 0
    raise cli.UsageError(f"expected `run NAME -- COMMAND [ARGS...]` or `table`, got {' '.join(argv[1:]) or 'none'}.")


if __name__ == "__main__":
    cli.run(main, define_flags)
