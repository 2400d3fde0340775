"""pytest plugin: each test's CPU seconds (pytest's process and the children it waited for), setup and
teardown included; the 15 largest files and the 40 largest tests are listed at the end. On a shared
machine CPU time still compares tests where wall-clock time does not:

  PYTHONPATH=tests .venv/bin/python -m pytest -q -p cputime tests/test_training.py
  PYTHONPATH=tests .venv/bin/python -m pytest -q -n 2 -p cputime tests    # as make test runs

Under pytest-xdist each worker measures its own tests and hands the rows to the controller
(`workeroutput`, xdist's channel for this); the summary adds how much each worker spent.
"""

import os
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
    _rows.append((_cpu_seconds() - cpu, time.time() - wall, item.nodeid, os.environ.get("PYTEST_XDIST_WORKER", "")))


def pytest_sessionfinish(session):
    if hasattr(session.config, "workeroutput"):  # an xdist worker: the controller prints the summary
        session.config.workeroutput["cputime_rows"] = _rows


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    _rows.extend(tuple(row) for row in getattr(node, "workeroutput", {}).get("cputime_rows", []))


def pytest_terminal_summary(terminalreporter):
    terminalreporter.write_line(f"CPU total {sum(row[0] for row in _rows):.1f} s over {len(_rows)} tests")
    for worker in sorted({row[3] for row in _rows} - {""}):
        mine = [row for row in _rows if row[3] == worker]
        terminalreporter.write_line(f"  {worker}: CPU {sum(r[0] for r in mine):.1f} s, wall {sum(r[1] for r in mine):.1f} s, "
                                    f"{len(mine)} tests")
    files = {}
    for cpu, _, node, _ in _rows:
        path = node.split("::")[0]
        files[path] = files.get(path, 0.0) + cpu
    for path, cpu in sorted(files.items(), key=lambda item: -item[1])[:15]:
        terminalreporter.write_line(f"cpu {cpu:7.1f}  file {path}")
    for cpu, wall, node, _ in sorted(_rows, reverse=True)[:40]:
        terminalreporter.write_line(f"cpu {cpu:7.1f}  wall {wall:7.1f}  {node}")
