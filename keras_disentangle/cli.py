"""The command-line convention every tool of the project follows.

* Flags are absl flags, defined in the tool's `define_flags()`, which `run` calls only when the
  module runs as a program (so importing a tool as a library defines nothing). Choices are
  `flags.DEFINE_enum`, required flags are marked with `flags.mark_flag_as_required`, so both show in
  `--help` and fail while parsing.
* A flag renamed or removed before the first release is declared with `renamed` in `define_flags()`:
  the old name then fails while parsing with one line naming what replaces it, not a compat shim.
* Exit codes: 2 for a usage error (an unknown or malformed flag, a missing required flag, a stray
  or unknown positional argument, a bad combination of flags: `UsageError`); 1 for a runtime error
  (a missing file or run directory, bad data: `ValueError`, `OSError`). Either is one line on stderr,
  `<tool>: error: <message>`, with no traceback and no flag dump.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable, Sequence

from absl import app, flags

USAGE = 2
RUNTIME = 1

# The running tool's renamed flags: old name -> what replaces it (`renamed`); `run` empties it first, so
# that the tools the tests run one after another in one process do not see each other's.
_RENAMED: dict[str, str] = {}


class UsageError(Exception):
    """A bad command line: reported as one line, exit code 2."""


def fail(prog: str, message: object, code: int) -> None:
    """Prints `prog: error: <first line of message>` to stderr and exits with `code`."""
    lines = str(message).strip().splitlines() or [type(message).__name__]
    print(f"{prog}: error: {lines[0]}", file=sys.stderr)
    sys.exit(code)


def renamed(**old_to_new: str) -> None:
    """Declares flags of the running tool that were renamed or removed: `--old` then exits 2 with
    `<tool>: error: --old was renamed: use <new>`. Call it from the tool's `define_flags()`; `new` is
    the replacement as a user types it (`"--stage1_dir"`)."""
    _RENAMED.update(old_to_new)


def no_positional(argv: Sequence[str]) -> None:
    """Raises UsageError for positional arguments after the program name."""
    if len(argv) > 1:
        raise UsageError(f"unexpected arguments: {' '.join(argv[1:])}")


def mode(argv: Sequence[str], modes: Sequence[str]) -> str:
    """The one positional argument, which must be one of `modes`; raises UsageError otherwise."""
    if len(argv) != 2 or argv[1] not in modes:
        raise UsageError(f"expected one mode from {', '.join(modes)}, got {' '.join(argv[1:]) or 'none'}.")
    return argv[1]


def run(main: Callable[[list[str]], int | None], define_flags: Callable[[], None] | None = None,
        argv: Sequence[str] | None = None) -> None:
    """Defines the tool's flags, parses `argv` (default `sys.argv`) and runs `main` by the convention.

    Never returns: exits with what `main` returns (0 for None), 2 on a usage error, 1 on a runtime error.
    """
    argv = list(sys.argv if argv is None else argv)
    prog = os.path.basename(argv[0]) if argv else "keras_disentangle"
    _RENAMED.clear()
    if define_flags is not None:
        define_flags()

    def parse(arguments: list[str]) -> list[str]:
        try:
            return flags.FLAGS(arguments)
        except flags.UnrecognizedFlagError as error:
            new = _RENAMED.get(error.flagname)
            fail(prog, f"--{error.flagname} was renamed: use {new}" if new else error, USAGE)
        except flags.Error as error:
            fail(prog, error, USAGE)

    def checked(arguments: list[str]) -> int | None:
        try:
            return main(arguments)
        except (UsageError, app.UsageError) as error:
            fail(prog, error, USAGE)
        except (ValueError, OSError) as error:
            fail(prog, error, RUNTIME)
        except Exception as error:
            # TensorFlow's file errors (tf.errors.OpError) are runtime errors too; cli.py itself does
            # not load TensorFlow, so it is looked up only once a tool has.
            tf = sys.modules.get("tensorflow")
            if tf is not None and isinstance(error, tf.errors.OpError):
                fail(prog, error.message, RUNTIME)
            raise

    app.run(checked, argv=argv, flags_parser=parse)


def _entry(module_name: str) -> Callable[[], None]:
    """A console-script entry point (pyproject.toml) that runs the tool `module_name` by `run`."""

    def entry() -> None:
        module = importlib.import_module(module_name)
        run(module.main, getattr(module, "define_flags", None))

    entry.__name__ = module_name.rsplit(".", 1)[-1]
    return entry


export = _entry("keras_disentangle.export")
generate = _entry("keras_disentangle.generate")
demo = _entry("keras_disentangle.demo")
visualize = _entry("keras_disentangle.visualize")
fid_weights = _entry("keras_disentangle.metrics.fid_weights")
keypoints = _entry("keras_disentangle.keypoints")
pose_models = _entry("keras_disentangle.blazepose")
pose_pck = _entry("keras_disentangle.metrics.pose_pck")
synthetic = _entry("tfrecords.synthetic")
build = _entry("tfrecords.build")
litert = _entry("keras_disentangle.litert")
web_app = _entry("keras_disentangle.app")  # not `app`: that is absl.app here
virtual_market = _entry("keras_disentangle.virtual_market")
reid_train = _entry("keras_disentangle.reid.train")
reid_evaluate = _entry("keras_disentangle.reid.evaluate")
