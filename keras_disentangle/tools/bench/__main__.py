"""`python -m keras_disentangle.tools.bench`: see the package docstring."""

from __future__ import annotations

import tempfile

import tensorflow as tf
from absl import flags

from keras_disentangle import cli, configs, precision
from keras_disentangle.tools.bench.measurements import MEASUREMENTS, run
from keras_disentangle.tools.bench.random_records import write_random_records
from keras_disentangle.tools.bench.timing import Settings

class Xla(configs.StrEnum):
    ON = "on"
    OFF = "off"
    BOTH = "both"


# Per-scale defaults of --warmup/--windows/--window_batches: a full-scale stage-I step takes
# tens of seconds on a 2-core CPU, a tiny one tens of milliseconds.
_DEFAULT_COUNTS = {"full": (1, 3, 1), "tiny": (10, 5, 5), "micro": (10, 5, 5)}


def define_flags() -> None:
    # Defined only when run as a program, so that importing this module next to other command-line
    # modules (visualize, train) cannot clash on shared flag names.
    flags.DEFINE_list("what", list(MEASUREMENTS), f"Measurements to run, from: {', '.join(MEASUREMENTS)}.")
    cli.define_shared("dataset", default="market")
    cli.define_shared("scale", default="full")
    cli.define_shared("batch_size", note="Default: the preset's.")
    flags.DEFINE_list("precision", ["auto"], "Keras dtype policies to measure the models under: auto "
                      "(this machine's choice, see keras_disentangle.precision), float32, mixed_bfloat16.")
    cli.define_enum("xla", Xla.BOTH, Xla, "Compile the steps with XLA.")
    cli.define_shared("data_dir", note="Unset: random records are written to a temporary directory.")
    cli.define_shared("num_records", default=1024, note="When --data_dir is unset.")
    cli.define_shared("warmup", note="Calls after the first (default: 1 full, 10 tiny).")
    flags.DEFINE_integer("windows", None, "Timed windows, the median is reported (default: 3 full, 5 tiny).")
    flags.DEFINE_integer("window_batches", None, "Calls per window at least (default: 1 full, 5 tiny).")
    cli.define_shared("min_window_seconds", default=2.0, note="The warm-up too.")
    flags.DEFINE_integer("memory_steps", 0, "Step on to this many calls and report the resident memory "
                         "there against call 10 (0: off).")
    flags.DEFINE_integer("intra_op_threads", 0, "tf.config.threading intra-op threads (0: TensorFlow's choice).")
    flags.DEFINE_integer("inter_op_threads", 0, "tf.config.threading inter-op threads (0: TensorFlow's choice).")


def main(argv: list[str]) -> None:
    cli.no_positional(argv)
    values = flags.FLAGS
    for name in values.precision:
        try:
            precision.validate(name)
        except ValueError as error:
            raise cli.UsageError(str(error)) from None
    # Retracing warnings (every variant builds new networks) and SavedModel export notes would
    # interleave with the JSON lines.
    tf.get_logger().setLevel("ERROR")
    # Thread pools are fixed when the runtime starts, so before any op runs.
    if values.intra_op_threads or values.inter_op_threads:
        tf.config.threading.set_intra_op_parallelism_threads(values.intra_op_threads)
        tf.config.threading.set_inter_op_parallelism_threads(values.inter_op_threads)
    cfg = configs.override(configs.get_config(values.dataset, values.scale), batch_size=values.batch_size)
    labels = {"dataset": values.dataset, "scale": values.scale, "tensorflow": tf.__version__,
              "intra_op_threads": values.intra_op_threads, "inter_op_threads": values.inter_op_threads}
    warmup, windows, window_batches = (
        default if value is None else value
        for value, default in zip((values.warmup, values.windows, values.window_batches),
                                  _DEFAULT_COUNTS[values.scale]))
    xla = {Xla.ON: (True,), Xla.OFF: (False,), Xla.BOTH: (False, True)}[values.xla]

    def settings(data_dir: str) -> Settings:
        return Settings(cfg=cfg, data_dir=data_dir, batch_size=cfg.train.batch_size, warmup=warmup,
                        windows=windows, window_batches=window_batches,
                        min_window_seconds=values.min_window_seconds, memory_steps=values.memory_steps)

    if values.data_dir:
        run(values.what, settings(values.data_dir), labels, tuple(values.precision), xla)
        return
    with tempfile.TemporaryDirectory(prefix="bench-records-") as directory:
        write_random_records(directory, cfg.data, num_records=values.num_records, num_shards=4)
        run(values.what, settings(directory), labels, tuple(values.precision), xla)


if __name__ == "__main__":
    cli.run(main, define_flags)
