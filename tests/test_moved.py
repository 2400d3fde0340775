"""The old flat paths keep working through their shims (`keras_disentangle/moved.py`, docs/development.md)."""

import importlib
import pathlib
import re
import subprocess
import sys

import import_graph
import pytest

from conftest import HANG_GUARD_SECONDS

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def _shims() -> dict[str, str]:
    """Shim module -> the module it names, read from every module on the shims floor."""
    found = {}
    for name, file in import_graph.modules().items():
        if import_graph.FLOORS[import_graph.floor_of(name)][0] == "shims":
            found[name] = re.search(r'moved\.forward\(__name__, "([\w.]+)"\)', file.read_text()).group(1)
    return found


def test_every_shim_names_a_module_that_exists():
    shims = _shims()
    assert {"keras_disentangle.runtime", "keras_disentangle.export", "keras_disentangle.bench.__main__"} <= set(shims)
    for old, new in shims.items():
        parts = new.split(".")
        assert ((REPO_ROOT / pathlib.Path(*parts)).with_suffix(".py").is_file()
                or (REPO_ROOT / pathlib.Path(*parts) / "__init__.py").is_file()), (old, new)


@pytest.mark.parametrize("old, new", [("keras_disentangle.runtime", "keras_disentangle.serving.runtime"),
                                      ("keras_disentangle.demo_timer", "keras_disentangle.tools.demo_timer")])
def test_importing_an_old_path_warns_and_gives_the_new_module(old, new, monkeypatch):
    monkeypatch.delitem(sys.modules, old, raising=False)
    with pytest.warns(DeprecationWarning, match=rf"^{re.escape(old)} is deprecated: import {re.escape(new)}$"):
        module = importlib.import_module(old)
    assert module is importlib.import_module(new)


def test_an_old_package_path_warns_and_takes_the_new_packages_names(monkeypatch):
    monkeypatch.delitem(sys.modules, "keras_disentangle.bench", raising=False)
    with pytest.warns(DeprecationWarning, match="keras_disentangle.tools.bench"):
        bench = importlib.import_module("keras_disentangle.bench")
    assert bench.run is importlib.import_module("keras_disentangle.tools.bench").run


def test_python_m_of_an_old_path_runs_the_new_command(tmp_path):
    log = tmp_path / "timings.tsv"

    def timer(*argv):
        return subprocess.run([sys.executable, "-m", "keras_disentangle.demo_timer", f"--log={log}", *argv],
                              cwd=REPO_ROOT, capture_output=True, text=True, timeout=HANG_GUARD_SECONDS)

    # The arguments pass through untouched, `--` and the timed command's own exit code included.
    ran = timer("run", "phase", "--", sys.executable, "-c", "raise SystemExit(3)")
    assert ran.returncode == 3, ran.stderr
    assert ("DeprecationWarning: python -m keras_disentangle.demo_timer is deprecated: "
            "run python -m keras_disentangle.tools.demo_timer") in ran.stderr
    table = timer("table")
    assert table.returncode == 0 and "phase" in table.stdout and "(exit 3)" in table.stdout, table.stderr


def test_the_data_packages_submodules_import_by_name_first_thing():
    # A name the package binds itself (`from __future__ import annotations` binds `annotations`) would be
    # returned instead of the submodule of that name; only a fresh process shows it.
    # One at a time: importing `layouts` imports `annotations` as a submodule, which would hide the clash.
    code = ("from keras_disentangle.data import annotations; print(annotations.__name__); "
            "from keras_disentangle.data import layouts; from keras_disentangle.data import records; "
            "print(layouts.__name__, records.__name__)")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True,
                            timeout=HANG_GUARD_SECONDS)
    assert result.stdout.split() == [f"keras_disentangle.data.{m}" for m in ("annotations", "layouts", "records")], (
        result.stderr[-2000:])
