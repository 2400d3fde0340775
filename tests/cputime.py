"""pytest plugin: each test's CPU seconds (pytest's process and the children it waited for), setup and
teardown included, the 40 largest listed at the end. On a shared machine CPU time still compares
tests where wall-clock time does not:

  PYTHONPATH=tests .venv/bin/python -m pytest -q -p cputime tests/test_training.py

Without `-n`: under pytest-xdist the rows stay in the workers.
"""

import resource
import time

import pytest

_rows = []


def _cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    cpu, wall = _cpu_seconds(), time.time()
    yield
    _rows.append((_cpu_seconds() - cpu, time.time() - wall, item.nodeid))


def pytest_terminal_summary(terminalreporter):
    terminalreporter.write_line(f"CPU total {sum(row[0] for row in _rows):.1f} s over {len(_rows)} tests")
    for cpu, wall, node in sorted(_rows, reverse=True)[:40]:
        terminalreporter.write_line(f"cpu {cpu:7.1f}  wall {wall:7.1f}  {node}")
