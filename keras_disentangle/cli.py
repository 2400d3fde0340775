"""The command-line convention every tool of the project follows.

* Flags are absl flags, defined in the tool's `define_flags()`, which `run` calls only when the
  module runs as a program (so importing a tool as a library defines nothing). A flag that several
  tools take (`--out`, `--data_dir`, `--seed`, `--dataset`, ...) is defined once, in `SHARED`, with one
  help text; a tool declares it with `define_shared`, giving its own default and a note where the flag
  means something particular there. A choice is a `configs.StrEnum` class, defined with `define_enum`:
  the flag holds the member, the command line spells its value. Required flags are marked with
  `flags.mark_flag_as_required` (or `required=True`), so choices and requirements show in `--help` and
  fail while parsing.
* A flag renamed or removed before the first release is declared with `renamed` in `define_flags()`:
  the old name then fails while parsing with one line naming what replaces it, not a compat shim.
* Exit codes: 2 for a usage error (an unknown or malformed flag, a missing required flag, a stray
  or unknown positional argument, a bad combination of flags: `UsageError`); 1 for a runtime error
  (a missing file or run directory, bad data: `ValueError`, `OSError`). Either is one line on stderr,
  `<tool>: error: <message>`, with no traceback and no flag dump.
"""

from __future__ import annotations

import dataclasses
import enum
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from absl import app, flags

from keras_disentangle import configs  # loads no TensorFlow

USAGE = 2
RUNTIME = 1

# The flags `define_shared` and `define_enum` define belong to the tool that calls them (its key flags,
# which `--help` lists and train.py records), not to this module.
flags.disclaim_key_flags()

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


class _ValueParser(flags.EnumClassParser):
    """absl's enum-class parser, spelled by the members' values (`fg`, `1`) rather than their names
    (`FOREGROUND`, which `DEFINE_enum_class` would ask for): the command lines stay as they were."""

    def __init__(self, enum_class: type[enum.Enum], members: Sequence[enum.Enum]) -> None:
        super().__init__(enum_class, case_sensitive=True)
        self._member_names = tuple(member.value for member in members)

    def parse(self, argument):
        # EnumParser's message for a bad value: "value should be one of <a|b|c>", as DEFINE_enum's.
        return self.enum_class(flags.EnumParser(self._member_names).parse(argument))


class _ValueSerializer(flags.ArgumentSerializer):
    def serialize(self, value) -> str:
        return value.value


def define_enum(name: str, default: Any, enum_class: type[enum.Enum], help: str,  # noqa: A002
                choices: Sequence[enum.Enum] | None = None, **args: Any) -> None:
    """Defines `--name`, one of `enum_class`'s values (a `configs.StrEnum`), or of `choices` where the tool
    takes only some; the flag holds the member. `--help` shows `<a|b|c>: help`, as for `flags.DEFINE_enum`.
    """
    parser = _ValueParser(enum_class, list(choices or enum_class))
    flags.DEFINE_flag(flags.Flag(parser, _ValueSerializer(), name, default,
                                 f"<{'|'.join(parser.member_names)}>: {help}", **args))


@dataclasses.dataclass(frozen=True)
class Shared:
    """A flag several tools take: its kind (absl `DEFINE_<kind>`, or a StrEnum class) and its one help text."""

    kind: str | type[enum.Enum]
    help: str


SHARED = {
    "out": Shared("string", "Output directory."),
    "data_dir": Shared("string", "TFRecords written by `python -m tfrecords.build`."),
    "logdir": Shared("string", "Run directory."),
    "stage1_dir": Shared("string", "The stage-I run directory."),
    "stage2_dir": Shared("multi_string", "A stage-II run directory; repeat once per factor."),
    "stage1": Shared("string", "Stage-I SavedModel: export's OUT/<name> or OUT/<name>/<version>."),
    "gallery": Shared("string", "Folder of photos."),
    "gallery_keypoints": Shared("string", "Annotation CSV of the gallery photos (Market/DeepFashion syntax)."),
    "models_dir": Shared("string", "Folder of the BlazePose .tflite files (default: weights/blazepose)."),
    "split": Shared("string", "Which split's records to read."),
    "size": Shared("string", "HxW (e.g. 128x64) of the framed crops."),
    "dataset": Shared(configs.Dataset, "The dataset preset."),
    "scale": Shared(configs.Scale, "The preset scale: full (the paper's sizes), tiny (CPU minutes) or micro "
                                   "(the demo, CI)."),
    "precision": Shared(configs.Precision, "Keras dtype policy (keras_disentangle.precision)."),
    "factor": Shared(configs.Factor, "The factor."),
    "seed": Shared("integer", "Random seed."),
    "n": Shared("integer", "How many images."),
    "batch_size": Shared("integer", "Batch size."),
    "steps": Shared("integer", "Steps."),
    "warmup": Shared("integer", "Steps before timing."),
    "min_window_seconds": Shared("float", "A timed window lasts at least this many seconds."),
    "num_records": Shared("integer", "Random records written."),
    "ids": Shared("integer", "Identities."),
    "images_per_id": Shared("integer", "Images per identity."),
    "learning_rate": Shared("float", "Adam learning rate."),
    "adversarial_weight": Shared("float", "Weight of the stage-I adversarial loss (0: L1 only)."),
    "max_minutes": Shared("float", "Stop after this much training time (checkpointed; rerun continues)."),
}


def define_shared(*names: str, default: Any = None, note: str = "", required: bool = False, multi: bool = False,
                  **args: Any) -> None:
    """Defines the `SHARED` flags `names` for the running tool, with `default` (one name only) and its
    help followed by `note`, what the flag means in this tool. `multi` makes a string flag repeatable;
    `args` go to absl (`lower_bound`) or, for a choice, to `define_enum` (`choices`)."""
    if len(names) > 1 and (default is not None or note):
        raise TypeError("define_shared: a default or a note goes with one flag.")
    for name in names:
        shared = SHARED[name]
        help_text = f"{shared.help} {note}".strip()
        if isinstance(shared.kind, str):
            getattr(flags, f"DEFINE_{'multi_' if multi else ''}{shared.kind}")(name, default, help_text, **args)
        else:
            define_enum(name, default, shared.kind, help_text, **args)
        if required:
            flags.mark_flag_as_required(name)


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


export = _entry("keras_disentangle.serving.export")
generate = _entry("keras_disentangle.apps.generate")
demo = _entry("keras_disentangle.tools.demo")
visualize = _entry("keras_disentangle.data.visualize")
fid_weights = _entry("keras_disentangle.metrics.fid_weights")
keypoints = _entry("keras_disentangle.pose.keypoints")
pose_models = _entry("keras_disentangle.pose.blazepose")
pose_pck = _entry("keras_disentangle.metrics.pose_pck")
synthetic = _entry("tfrecords.synthetic")
build = _entry("tfrecords.build")
litert = _entry("keras_disentangle.serving.litert")
web_app = _entry("keras_disentangle.apps.app")  # not `app`: that is absl.app here
virtual_market = _entry("keras_disentangle.apps.virtual_market")
reid_train = _entry("keras_disentangle.reid.train")
reid_evaluate = _entry("keras_disentangle.reid.evaluate")
