"""`make mutation`: mutmut over the core modules, each against the fast unit tests that cover it, and the score.

mutmut 2.5 (requirements-mutation.txt), not mutmut 3: mutmut 3 runs each mutant in a child forked from the
process that has already run the tests, and TensorFlow is not fork-safe: a forked child's first op waits
forever on the parent's thread pools (seen here: a child's first `tf.random.uniform` still hung after 60 s).
Every mutant would time out, and a timeout counts as killed. mutmut 2 starts one runner process per mutant.

The score of a module is killed / all its mutants, where a timeout counts as killed (the mutant broke
something, e.g. an endless loop) and a mutant that no test runs counts as survived: each mutant is run
against the module's tests, so a mutant in code they never call passes them and survives. mutmut 2.5 calls
a kill "suspicious" when the failing run took longer than twice the unmutated tests' time (a loaded machine
does that): the tests failed, so it counts as killed; a run longer than 10 times the unmutated tests' time
(mutmut's fixed factor) is a timeout.

Each mutant's tests run in a child forked from a server that has imported TensorFlow and Keras but run no op
(`serve`): a fork before the first op is safe (the thread pools that hang a forked child start with it),
and it spares each mutant TensorFlow's import, most of the ~10 s a fresh pytest process took here. The
server imports no module of this repository: each child imports the mutated file afresh. mutmut's runner
is this script's light client (`--run`), which hands the child its terminal; killing the client on
a timeout kills the child.

Usage: python tests/mutation.py [--min_score=85] MODULE...   (from the repository's root; MODULE as in
MODULE_TESTS). mutmut mutates the source files in place and keeps its results in .mutmut-cache: a
killed mutant stays killed when tests are added, the others are run again.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import select
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile

# The fast unit tests that cover each module: each mutant costs one pytest process (TensorFlow's import
# included), so the run takes minutes, not the suite's time per mutant.
MODULE_TESTS = {
    "keras_disentangle/losses.py": ["tests/test_losses.py"],
    "keras_disentangle/data/geometry.py": ["tests/test_geometry.py"],
    "keras_disentangle/metrics/disentangle.py": ["tests/test_disentangle.py",
                                                 "tests/test_gt_swap.py::test_colour_scores_on_known_colours"],
    "keras_disentangle/metrics/image.py": ["tests/test_metrics_image.py"],
    "keras_disentangle/training/steps.py": ["tests/test_steps.py"],
    "keras_disentangle/training/schedule.py": ["tests/test_schedules.py::test_halving_known_values"],
}
KILLED = ("ok_killed", "ok_suspicious", "bad_timeout")
# What the fork server imports once for every child: the slow third-party imports of the modules and their
# tests (TensorFlow's ~5 s, scipy.ndimage's and skimage's ~1.5 s here), nothing of this repository.
PRELOAD = ("numpy", "tensorflow", "keras", "pytest", "absl.flags", "PIL.Image", "scipy.ndimage", "skimage.color",
           "skimage.metrics")


def serve(address: str) -> None:
    """Fork one child per connection that runs pytest with the client's arguments on the client's
    stdout and stderr, and send back its exit code; kill the child if the client goes away (timeout)."""
    for name in PRELOAD:
        importlib.import_module(name)
    pytest = sys.modules["pytest"]
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(address)
        server.listen()
        print("ready", flush=True)
        while True:
            connection, _ = server.accept()
            with connection:
                message, fds, _, _ = socket.recv_fds(connection, 1 << 16, 2)
                pid = os.fork()
                if pid == 0:
                    code = 1
                    try:  # the child never returns into the server's loop
                        os.dup2(fds[0], 1)
                        os.dup2(fds[1], 2)
                        code = int(pytest.main(json.loads(message)))
                    finally:
                        sys.stdout.flush()
                        sys.stderr.flush()
                        os._exit(code)
                for fd in fds:
                    os.close(fd)
                code = wait_child(pid, connection)
                with contextlib.suppress(OSError):  # a client killed on a timeout reads no reply
                    connection.sendall(str(code).encode())


def wait_child(pid: int, connection: socket.socket) -> int:
    """The child's exit code, or -SIGKILL once the client has closed its end (mutmut killed it)."""
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if select.select([connection], [], [], 0.1)[0]:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return -signal.SIGKILL


def run_tests(address: str, pytest_args: list[str]) -> int:
    """The client mutmut runs per mutant: the server's child runs pytest on this process's terminal."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
            connection.connect(address)
            socket.send_fds(connection, [json.dumps(pytest_args).encode()], [1, 2])
            reply = connection.recv(16)
    except OSError:
        reply = b""
    if not reply:  # no server, or it died: the tests run in this process (slower, the same verdict)
        import pytest

        return 0 if pytest.main(pytest_args) == 0 else 1
    # mutmut 2 counts exit code 1 only as a kill (`tests_pass`: `returncode != 1`), but pytest exits 2 when
    # a mutant breaks an import (an error during collection): any failure is a kill.
    return 0 if reply == b"0" else 1


def run_mutmut(module: str, address: str) -> int:
    runner = " ".join([sys.executable, os.path.abspath(__file__), "--run", address, "-q", "-x", "-p", "no:xdist", "-p",
                       "no:cacheprovider", *MODULE_TESTS[module]])
    return subprocess.run([sys.executable, "-m", "mutmut", "run", "--paths-to-mutate", module, "--tests-dir", "tests",
                           "--runner", runner, "--simple-output",
                           "--no-progress", "--CI"]).returncode


def mutants(module: str) -> list[tuple[int, str]]:
    """(mutmut id, status) of every mutant of `module` in .mutmut-cache."""
    with sqlite3.connect(".mutmut-cache") as cache:
        return cache.execute("SELECT Mutant.id, Mutant.status FROM Mutant JOIN Line ON Mutant.line = Line.id "
                             "JOIN SourceFile ON Line.sourcefile = SourceFile.id WHERE SourceFile.filename = ? "
                             "ORDER BY Mutant.id", (module,)).fetchall()


def main(argv=None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["--serve"]:
        return serve(argv[1])
    if argv[:1] == ["--run"]:
        return run_tests(argv[1], argv[2:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="+", metavar="MODULE")
    parser.add_argument("--min_score", type=float, default=85.0, help="percent killed each module needs")
    args = parser.parse_args(argv)
    unknown = [module for module in args.modules if module not in MODULE_TESTS]
    if unknown:
        print(f"mutation: no tests are listed for {', '.join(unknown)}; MODULE is one of "
              f"{', '.join(MODULE_TESTS)} (tests/mutation.py, MODULE_TESTS)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        address = os.path.join(tmp, "server")
        # No .pyc: two mutants of one size written within a second would share one (mutmut sets this for
        # the runners it starts; the server starts before it).
        server = subprocess.Popen([sys.executable, __file__, "--serve", address], stdout=subprocess.PIPE, text=True,
                                  env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"))
        try:
            if server.stdout.readline().strip() != "ready":
                print("mutation: the fork server did not start (see above)", file=sys.stderr)
                return 1
            for module in args.modules:
                if run_mutmut(module, address) != 0:
                    print(f"mutation: mutmut failed on {module} (its tests must pass unmutated; see above)",
                          file=sys.stderr)
                    return 1
        finally:
            server.kill()
            server.wait()
    below = []
    print(f"{'module':40s} {'mutants':>8s} {'killed':>7s} {'timeout':>8s} {'survived':>9s} {'score':>7s}")
    for module in args.modules:
        statuses = [status for _, status in mutants(module)]
        killed = sum(status in KILLED for status in statuses)
        score = 100.0 * killed / len(statuses)
        print(f"{module:40s} {len(statuses):8d} {killed - statuses.count('bad_timeout'):7d} "
              f"{statuses.count('bad_timeout'):8d} "
              f"{len(statuses) - killed:9d} {score:6.1f}%")
        if score < args.min_score:
            below.append(module)
    for module in args.modules:
        for mutant_id, status in mutants(module):
            if status not in KILLED:
                print(f"\n{module}: mutant {mutant_id} {status}")
                subprocess.run([sys.executable, "-m", "mutmut", "show", str(mutant_id)], check=True)
    if below:
        print(f"mutation: below {args.min_score:g}% killed: {', '.join(below)}", file=sys.stderr)
    return 1 if below else 0


if __name__ == "__main__":
    sys.exit(main())
