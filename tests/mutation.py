"""`make mutation`: mutmut over the core modules, each against the fast unit tests that cover it, and the score.

mutmut 2.5 (requirements-mutation.txt), not mutmut 3: mutmut 3 runs each mutant in a child forked from the
process that has already run the tests, and TensorFlow is not fork-safe: a forked child's first op waits
forever on the parent's thread pools (seen here: a child's first `tf.random.uniform` still hung after 60 s).
Every mutant would time out, and a timeout counts as killed. mutmut 2 starts one pytest process per mutant.

The score of a module is killed / all its mutants, where a timeout counts as killed (the mutant broke
something, e.g. an endless loop) and a mutant that no test runs counts as survived: each mutant is run
against the module's tests, so a mutant in code they never call passes them and survives. mutmut's
"suspicious" mutants (the tests passed, only slowly) count as survived too.

Usage: python tests/mutation.py [--min_score=85] MODULE...   (from the repository's root; MODULE as in
MODULE_TESTS). mutmut mutates the source files in place and keeps its results in .mutmut-cache: a
killed mutant stays killed when tests are added, the others are run again.
"""

from __future__ import annotations

import argparse
import sqlite3
import subprocess
import sys

# The fast unit tests that cover each module: each mutant costs one pytest process (TensorFlow's import
# included), so the run takes minutes, not the suite's time per mutant.
MODULE_TESTS = {
    "keras_disentangle/losses.py": ["tests/test_losses.py"],
    "keras_disentangle/geometry.py": ["tests/test_geometry.py"],
}
# Seconds added to twice the unmutated tests' time before a mutant's run counts as a timeout: a loaded
# machine must not turn a slow survivor into a killed mutant.
TIMEOUT_BASE_SECONDS = 60
KILLED = ("ok_killed", "bad_timeout")


def run_mutmut(module: str) -> int:
    runner = " ".join([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:xdist", *MODULE_TESTS[module]])
    return subprocess.run([sys.executable, "-m", "mutmut", "run", "--paths-to-mutate", module, "--tests-dir", "tests",
                           "--runner", runner, f"--test-time-base={TIMEOUT_BASE_SECONDS}", "--simple-output",
                           "--no-progress", "--CI"]).returncode


def mutants(module: str) -> list[tuple[int, str]]:
    """(mutmut id, status) of every mutant of `module` in .mutmut-cache."""
    with sqlite3.connect(".mutmut-cache") as cache:
        return cache.execute("SELECT Mutant.id, Mutant.status FROM Mutant JOIN Line ON Mutant.line = Line.id "
                             "JOIN SourceFile ON Line.sourcefile = SourceFile.id WHERE SourceFile.filename = ? "
                             "ORDER BY Mutant.id", (module,)).fetchall()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="+", metavar="MODULE")
    parser.add_argument("--min_score", type=float, default=85.0, help="percent killed each module needs")
    args = parser.parse_args(argv)
    unknown = [module for module in args.modules if module not in MODULE_TESTS]
    if unknown:
        print(f"mutation: no tests are listed for {', '.join(unknown)}; MODULE is one of "
              f"{', '.join(MODULE_TESTS)} (tests/mutation.py, MODULE_TESTS)", file=sys.stderr)
        return 2
    for module in args.modules:
        if run_mutmut(module) != 0:
            print(f"mutation: mutmut failed on {module} (its tests must pass unmutated; see above)", file=sys.stderr)
            return 1
    below = []
    print(f"{'module':40s} {'mutants':>8s} {'killed':>7s} {'timeout':>8s} {'survived':>9s} {'score':>7s}")
    for module in args.modules:
        statuses = [status for _, status in mutants(module)]
        killed = sum(status in KILLED for status in statuses)
        score = 100.0 * killed / len(statuses)
        print(f"{module:40s} {len(statuses):8d} {statuses.count('ok_killed'):7d} {statuses.count('bad_timeout'):8d} "
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
