"""Tests for the `make demo` phase timer: exit codes pass through, the table sums the phases."""

import sys

from keras_disentangle import demo_timer


def test_run_records_each_phase_and_returns_the_commands_exit_code(tmp_path):
    log = str(tmp_path / "timings.tsv")
    assert demo_timer.main([f"--log={log}", "run", "ok", "--", sys.executable, "-c", "pass"]) == 0
    assert demo_timer.main([f"--log={log}", "run", "bad", "--", sys.executable, "-c", "raise SystemExit(3)"]) == 3
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
    assert demo_timer.main(["run", "x", "--", "true"]) == 2
    assert demo_timer.main([f"--log={tmp_path / 'none.tsv'}", "table"]) == 1
    assert "none.tsv does not exist" in capsys.readouterr().err

