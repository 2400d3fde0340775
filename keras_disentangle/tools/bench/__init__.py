"""Throughput measurements, one JSON line per measurement.

    python -m keras_disentangle.tools.bench --what=train_step,forward,input --dataset=market --scale=full \
        --batch_size=16 --precision=auto,float32 --xla=both [--data_dir=DIR]

Each measurement is a function `measure_<name>(settings) -> dict` registered in `MEASUREMENTS`;
`--what` lists the ones to run:

  train_step      the stage-I appearance step with the paper's loss (lambda * L1 + BCE, D1 trained):
                  `steps.stage1_step` wrapped by `loop.distributed_step`, default strategy.
  train_step_l1   the same step with L1 only (the tiny preset's loss).
  pose_step       the pose auto-encoder step (batch `pose_batch_size`).
  mapper_step     the stage-II FG mapper step: `critic_steps` critic updates + one mapper update.
  forward         stage-I `reconstruct` in process (geometry from keypoints, encoder, generator).
  saved_model     `reconstruct` of an exported stage-I SavedModel, loaded with tf.saved_model.load.
  steps_per_execution
                  the stage-I L1 step run 1 and 10 steps per `tf.function` call (`loop.multi_step`,
                  as `train.py --steps_per_execution`): the rate of each, and the losses after the
                  same 20 steps from the same seed on the same batches.
  input           records/s of `data.train_dataset`, next to what the training steps consume.

Model measurements run once per `--precision` (Keras dtype policy) and `--xla` setting, on
batches held in memory. Times are medians over timed windows after a warm-up, so a burst of load
from another process moves them less than one long timing would. Every model line carries the
analytic FLOPs per example (`FLOP_RULE`, counted from the traced graph, not by a profiler), the
GFLOP/s achieved and its ratio to the best float32 GEMM in the process (`tf.linalg.matmul` or
NumPy's OpenBLAS SGEMM, whichever is faster; both reported) measured just before and just after it
(other processes change both), the share of the CPUs it got, the load average and
the resident memory.

Without `--data_dir`, a temporary set of records is written first (`write_random_records`:
smooth random images with a plausible standing pose), so the benchmark runs anywhere.

Modules: `flops` (analytic FLOP counting), `random_records` (records to measure on), `timing`
(settings, timed windows, reference GEMM rates), `measurements` (the measurements and `run`),
`__main__` (the command line), `profile` (a `tf.profiler` trace of the stage-I step by op group),
`versus_torch` with `torch_reference` (the stage-I step against a PyTorch one of the same network;
benchmark only, PyTorch in its own venv: never imported from here).
"""

from keras_disentangle.tools.bench.flops import FLOP_RULE, graph_flops, op_flops
from keras_disentangle.tools.bench.measurements import MEASUREMENTS, run
from keras_disentangle.tools.bench.random_records import random_images, random_keypoints, write_random_records
from keras_disentangle.tools.bench.timing import Settings, matmul_gflops, measure_matmul, numpy_sgemm_gflops

__all__ = ["FLOP_RULE", "MEASUREMENTS", "Settings", "graph_flops", "matmul_gflops", "measure_matmul",
           "numpy_sgemm_gflops", "op_flops", "random_images", "random_keypoints", "run", "write_random_records"]
