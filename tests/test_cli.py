"""Every command-line tool follows `keras_disentangle.cli`: exit 2 and one line for a bad flag, exit 1
and one line for a missing input, never a traceback.

The tools run in this process through the same `cli.run` as `python -m`, so TensorFlow loads once
for the whole table rather than once per tool; their flags are removed again after each run.
"""

import importlib
import importlib.util
import pathlib
import runpy
import sys

import pytest
from absl import flags

from keras_disentangle import cli

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
MISSING = "/nonexistent/keras-disentangle"

# tool -> (positional arguments, arguments naming inputs that do not exist, or None when the tool reads
# no input and writes only: then an output below a regular file stands for the missing input).
TOOLS = {
    "train.py": ([], [f"--data_dir={MISSING}", "--logdir={tmp}/run"]),
    "evaluate.py": ([], [f"--stage1_dir={MISSING}", f"--data_dir={MISSING}"]),
    "keras_disentangle.serving.export": ([], [f"--stage1_dir={MISSING}", "--out={tmp}/saved"]),
    "keras_disentangle.serving.litert": ([], [f"--stage1_dir={MISSING}", f"--data_dir={MISSING}"]),
    "keras_disentangle.apps.generate": (["sample"], [f"--stage2_dir={MISSING}", "--out={tmp}"]),
    "keras_disentangle.tools.demo": (["stage1"], [f"--stage1_dir={MISSING}", f"--data_dir={MISSING}", "--out={tmp}"]),
    "keras_disentangle.data.visualize": (["dataset"], [f"--data_dir={MISSING}", "--out={tmp}"]),
    "keras_disentangle.metrics.fid_weights": ([], None),
    "keras_disentangle.pose.blazepose": ([], None),
    "keras_disentangle.pose.keypoints": ([], [f"{MISSING}/photo.jpg"]),
    "keras_disentangle.apps.app": ([], [f"--stage1={MISSING}"]),
    "keras_disentangle.tools.loadtest": ([], [f"--stage1={MISSING}", f"--gallery={MISSING}"]),
    "keras_disentangle.metrics.pose_pck": ([], [f"--fixtures={MISSING}"]),
    "keras_disentangle.apps.virtual_market": ([], [f"--stage2_dir={MISSING}", f"--data_dir={MISSING}",
                                                   "--out={tmp}/vm"]),
    "keras_disentangle.reid.train": ([], [f"--data_dir={MISSING}", "--logdir={tmp}/reid"]),
    "keras_disentangle.reid.evaluate": ([], [f"--logdir={MISSING}", f"--data_dir={MISSING}"]),
    "tfrecords.build": ([], ["--dataset=market", f"--root={MISSING}", "--out={tmp}/records"]),
    "keras_disentangle.tools.bench.__main__": ([], ["--scale=micro", "--what=input", "--precision=float32",
                                              f"--data_dir={MISSING}"]),
    "keras_disentangle.tools.bench.profile": ([], ["--scale=micro", "--out={file}/profile"]),
    "tfrecords.synthetic": ([], ["--out={file}/synthetic", "--ids=2", "--images_per_id=1"]),
}


def _load(tool: str):
    if tool.endswith(".py"):
        spec = importlib.util.spec_from_file_location(f"cli_{tool[:-3]}", REPO_ROOT / tool)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # absl attributes flags to their module by name
        spec.loader.exec_module(module)
        return module
    return importlib.import_module(tool)


def run_tool(tool: str, argv: list[str], capsys) -> tuple[int, str, list[str]]:
    """Runs `tool` with `argv` as its command line in this process; returns the exit code (0 for success),
    its stdout and its stderr lines. What a tool's process would set for itself and lose at exit (its
    flags, the global Keras dtype policy `--precision` sets) is restored."""
    from keras_disentangle import precision

    defined = set(flags.FLAGS)
    try:
        module = _load(tool)
        with pytest.raises(SystemExit) as exit_info, precision.global_policy():
            cli.run(module.main, getattr(module, "define_flags", None), [tool, *argv])
    finally:
        for name in set(flags.FLAGS) - defined:
            delattr(flags.FLAGS, name)
        flags.FLAGS.unparse_flags()
    captured = capsys.readouterr()
    return exit_info.value.code or 0, captured.out, [line for line in captured.err.splitlines() if line.strip()]


def _run(tool: str, argv: list[str], capsys) -> tuple[int, list[str]]:
    """Runs `tool` with `argv` as its command line; returns the exit code and the stderr lines."""
    code, _, lines = run_tool(tool, argv, capsys)
    return code, lines


# Every tool with its positional arguments: TOOLS, and those the tables above leave out (benchmarks, the
# DeepFashion-like synthetic set, the demo's timer).
EVERY_TOOL = {**{tool: positional for tool, (positional, _) in TOOLS.items()},
              "keras_disentangle.tools.bench.adversarial": [], "keras_disentangle.tools.bench.versus_torch": [],
              "tfrecords.synthetic_fashion": [], "keras_disentangle.tools.demo_timer": ["table"]}


def _choice_flags(tool: str) -> list[str]:
    """The flags of `tool` that take one of a set of values (`flags.DEFINE_enum`, `cli.define_enum`)."""
    module = _load(tool)
    defined = set(flags.FLAGS)
    try:
        module.define_flags()
        return sorted(name for name in set(flags.FLAGS) - defined
                      if getattr(flags.FLAGS[name].parser, "enum_values", None)
                      or getattr(flags.FLAGS[name].parser, "member_names", None))
    finally:
        for name in set(flags.FLAGS) - defined:
            delattr(flags.FLAGS, name)


@pytest.mark.parametrize("tool", sorted(EVERY_TOOL))
def test_bad_flag_and_bad_choice_exit_2_with_one_line_naming_the_flag(tool, capsys):
    if tool.endswith("versus_torch") and importlib.util.find_spec("torch") is None:
        pytest.skip("bench.versus_torch imports torch, which only its own venv has (docs/performance.md)")
    positional = EVERY_TOOL[tool]
    choices = _choice_flags(tool)
    for flag, value in [("no_such_flag", "1"), *((name, "no_such_value") for name in choices)]:
        code, lines = _run(tool, [*positional, f"--{flag}={value}"], capsys)
        assert code == cli.USAGE, (flag, lines)
        assert len(lines) == 1 and f"{flag}" in lines[0], (flag, lines)


@pytest.mark.parametrize("tool", sorted(TOOLS))
def test_stray_argument_exits_2_with_one_line(tool, capsys):
    positional, inputs = TOOLS[tool]
    code, lines = _run(tool, [*positional, "stray", *(inputs or ["--out=x"])], capsys)
    assert code == cli.USAGE, lines
    assert len(lines) == 1 and "stray" in lines[0], lines


@pytest.mark.parametrize("tool", sorted(t for t, (_, inputs) in TOOLS.items() if inputs))
def test_missing_input_exits_1_with_one_line(tool, capsys, tmp_path):
    positional, inputs = TOOLS[tool]
    regular_file = tmp_path / "file"
    regular_file.write_text("")
    argv = [a.format(tmp=tmp_path, file=regular_file) for a in inputs]
    code, lines = _run(tool, [*positional, *argv], capsys)
    assert code == cli.RUNTIME, lines
    assert len(lines) == 1 and ("nonexistent" in lines[0] or str(regular_file) in lines[0]), lines
    assert "Traceback" not in "\n".join(lines)


# Every flag renamed or removed before the first release: tool, its positional arguments, the old name and
# what the one line must name instead (git log: export and evaluate.py's --logdir, export's --stage,
# generate's --steps, demo's --out_dir).
RENAMED = [
    ("keras_disentangle.serving.export", [], "logdir", "--stage1_dir"),
    ("keras_disentangle.serving.export", [], "stage", "--stage2_dir"),
    ("evaluate.py", [], "logdir", "--stage1_dir"),
    ("keras_disentangle.apps.generate", ["interpolate"], "steps", "--frames"),
    ("keras_disentangle.tools.demo", ["stage1"], "out_dir", "--out"),
]


@pytest.mark.parametrize(("tool", "positional", "old", "new"), RENAMED)
def test_renamed_flag_exits_2_naming_its_new_name(tool, positional, old, new, capsys):
    code, lines = _run(tool, [*positional, f"--{old}=x"], capsys)
    assert code == cli.USAGE, lines
    assert len(lines) == 1 and f"--{old} was renamed: use" in lines[0] and new in lines[0], lines


def test_a_renamed_flag_is_only_the_renaming_tools(capsys):
    """export's renames do not follow it into the next tool run in the same process."""
    _run("keras_disentangle.serving.export", ["--logdir=x"], capsys)
    code, lines = _run("keras_disentangle.data.visualize", ["dataset", "--logdir=x"], capsys)
    assert code == cli.USAGE and len(lines) == 1, lines
    assert "Unknown command line flag 'logdir'" in lines[0] and "renamed" not in lines[0], lines


def test_the_replaced_sampling_command_names_evaluate(capsys):
    """`python -m keras_disentangle.metrics.sampling` was a command before evaluate.py ran the stage-II metrics."""
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_module("keras_disentangle.metrics.sampling", run_name="__main__")
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert exit_info.value.code == cli.USAGE and len(lines) == 1, lines
    assert "evaluate.py --metrics=sampling" in lines[0], lines
