"""Tests for the `make demo` phase timer: exit codes pass through, the table sums the phases."""

import sys

from test_cli import run_tool

from keras_disentangle import cli
from keras_disentangle.tools import demo_timer

TOOL = "keras_disentangle.tools.demo_timer"


def test_run_records_each_phase_and_returns_the_commands_exit_code(tmp_path, capsys):
    log = str(tmp_path / "timings.tsv")
    # The Makefile's shape: the command's own flags come after `--` and pass through.
    assert run_tool(TOOL, [f"--log={log}", "run", "ok", "--", sys.executable, "-c", "pass", "--flag"], capsys)[0] == 0
    code = run_tool(TOOL, [f"--log={log}", "run", "bad", "--", sys.executable, "-c", "raise SystemExit(3)"], capsys)[0]
    assert code == 3
    rows = demo_timer.read_log(log)
    assert [(name, code) for name, _, code in rows] == [("ok", 0), ("bad", 3)]
    assert all(seconds >= 0 for _, seconds, _ in rows)


def test_table_lists_phases_total_and_failures():
    table = demo_timer.format_table([("data", 19.9, 0), ("stage1", 222.5, 0), ("gt_swap", 9.3, 1)], "some CPU")
    lines = table.splitlines()
    assert lines[0] == "Demo phases on some CPU"
    assert "stage1" in lines[3] and "3:42.5" in lines[3]
    assert "(exit 1)" in lines[4]
    assert lines[-1].split() == ["total", "4:11.7"]


def test_usage_and_a_missing_log_fail_in_one_line(tmp_path, capsys):
    code, _, lines = run_tool(TOOL, ["run", "x", "--", "true"], capsys)
    assert code == cli.USAGE and len(lines) == 1 and "--log" in lines[0], lines
    code, _, lines = run_tool(TOOL, [f"--log={tmp_path / 'log.tsv'}", "tabel"], capsys)
    assert code == cli.USAGE and len(lines) == 1 and "tabel" in lines[0], lines
    code, _, lines = run_tool(TOOL, [f"--log={tmp_path / 'none.tsv'}", "table"], capsys)
    assert code == cli.RUNTIME and len(lines) == 1 and "none.tsv does not exist" in lines[0], lines
