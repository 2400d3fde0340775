"""Where the stage-I training step's time goes: a `tf.profiler` trace, summed by op group.

    python -m keras_disentangle.tools.bench.profile --scale=tiny --steps=5 --out=/tmp/prof
    python -m keras_disentangle.tools.bench.profile --scale=full --adversarial_weight=1 --steps=1 --out=/tmp/prof-full

Runs the stage-I appearance step (`steps.stage1_step` in `loop.distributed_step`, float32 unless
`--precision`) on random records, warms it up, traces `--steps` steps and prints the op time per
step by group (conv forward / weight gradient / input gradient, einsum and matmul, optimizer,
concat-tile-slice-pad, layout conversions, the rest), the generator's 370-channel stem, and the
slowest ops. The trace stays in `--out` for TensorBoard's profile plugin. Op times are summed over
the executor's threads, and include time a thread was descheduled: on a shared machine, compare
groups within one trace.
"""

from __future__ import annotations

import collections
import glob
import os
import time

import keras
import tensorflow as tf
from absl import flags
from tensorflow.tsl.profiler.protobuf import xplane_pb2

from keras_disentangle import cli, configs, precision
from keras_disentangle.tools.bench.measurements import data_batches, sync_losses
from keras_disentangle.tools.bench.random_records import write_random_records
from keras_disentangle.tools.bench.timing import Settings
from keras_disentangle.models.stage1 import build_stage1
from keras_disentangle.training import loop, steps
from keras_disentangle.training import stage1 as stage1_training

_FRAMEWORK_EVENTS = ("__inference", "ExecutorState", "KernelAndDevice", "EagerLocal")
_LAYOUT_OPS = ("_MklToTf", "Reorder", "Transpose")
_SHAPE_OPS = ("ConcatV2", "Tile", "Slice", "StridedSlice", "Pad", "Reshape", "Split", "SplitV")


def op_group(op_name: str, op_type: str) -> str:
    """The group an op's time is counted in."""
    if "Conv2D" in op_type:
        return ("conv weight gradient" if "Filter" in op_type else
                "conv input gradient" if "Input" in op_type else "conv forward")
    if "Einsum" in op_type or "MatMul" in op_type:
        return "einsum/matmul (RoiAlign, FC)"
    if any(kind in op_type for kind in _LAYOUT_OPS):
        return "layout conversion"
    if "adam" in op_name.lower() or op_type.startswith(("Assign", "ResourceApply")):
        return "optimizer (Adam)"
    if op_type in _SHAPE_OPS:
        return "concat/tile/slice/pad"
    return "elementwise/other"


def op_times(xplane_path: str) -> collections.Counter:
    """Seconds per `(op_name, op_type)` on the host CPU planes of one trace."""
    space = xplane_pb2.XSpace()
    with open(xplane_path, "rb") as file:
        space.ParseFromString(file.read())
    times: collections.Counter = collections.Counter()
    for plane in space.planes:
        if not plane.name.startswith("/host:CPU"):
            continue
        for line in plane.lines:
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                if ":" not in name or name.startswith(_FRAMEWORK_EVENTS):
                    continue
                op_name, op_type = name.rsplit(":", 1)
                if op_type and op_type[0].isupper() or op_type.startswith("_"):
                    times[(op_name, op_type)] += event.duration_ps / 1e12
    return times


def define_flags() -> None:
    cli.define_shared("dataset", default="market")
    cli.define_shared("scale", default="tiny")
    cli.define_shared("precision", default="float32")
    cli.define_shared("adversarial_weight", default=0.0, note="The tiny preset's L1 step; 1: the paper's loss (D1).")
    cli.define_shared("warmup", default=2, note="Before tracing (tracing, primitive caches).")
    cli.define_shared("steps", default=5, note="Traced.")
    flags.DEFINE_integer("top", 15, "Slowest ops listed.")
    cli.define_shared("out", default="/tmp/keras-disentangle-profile", note="The trace and random records.")


def main(argv):
    cli.no_positional(argv)
    values = flags.FLAGS
    policy = precision.apply(values.precision)
    cfg = configs.override(configs.get_config(values.dataset, values.scale),
                           adversarial_weight=values.adversarial_weight)
    batch_size = cfg.train.batch_size
    records_dir = os.path.join(values.out, "records")
    if not os.path.isdir(records_dir):
        write_random_records(records_dir, cfg.data, num_records=4 * batch_size, num_shards=1)
    batches = data_batches(Settings(cfg=cfg, data_dir=records_dir, batch_size=batch_size), batch_size, count=2)
    keras.utils.set_random_seed(cfg.train.seed)
    stage1 = build_stage1(cfg)
    optimizers = stage1_training.build_optimizers(cfg.train)
    step = loop.distributed_step(tf.distribute.get_strategy(), steps.stage1_step(
        steps.Stage1Part.APPEARANCE, stage1, optimizers, cfg.train, batch_size))
    for index in range(values.warmup):
        sync_losses(step(batches[index % 2]))
    start = time.perf_counter()
    tf.profiler.experimental.start(os.path.join(values.out, "trace"))
    for index in range(values.steps):
        sync_losses(step(batches[index % 2]))
    tf.profiler.experimental.stop()
    wall = (time.perf_counter() - start) / values.steps
    path = sorted(glob.glob(os.path.join(values.out, "trace", "**", "*.xplane.pb"), recursive=True))[-1]
    times = op_times(path)
    groups: collections.Counter = collections.Counter()
    for (op_name, op_type), seconds in times.items():
        groups[op_group(op_name, op_type)] += seconds / values.steps
    total = sum(groups.values())
    stem = sum(s for (name, _), s in times.items() if "generator" in name and "/stem" in name) / values.steps
    print(f"{values.scale} stage-I step, {policy}, batch {batch_size}, adversarial weight "
          f"{values.adversarial_weight}: {wall:.3f} s/step wall, {total:.3f} s/step op time (summed over threads)")
    for group, seconds in groups.most_common():
        print(f"  {group:30s} {seconds:9.3f} s  {100 * seconds / total:5.1f}%")
    print(f"  (generator stem, 370 channels in: {stem:.3f} s, {100 * stem / total:.1f}%)")
    print("slowest ops:")
    for (op_name, op_type), seconds in times.most_common(values.top):
        print(f"  {seconds / values.steps:9.3f} s  {op_type:40s} {op_name}")


if __name__ == "__main__":
    cli.run(main, define_flags)
