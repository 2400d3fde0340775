"""Resume keeps everything: unreadable checkpoints fall back, signals save, damaged shards are named."""

import os
import pathlib
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import HANG_GUARD_SECONDS, communicate_within_hang_guard

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
TF_LOG_LINE = re.compile(r"^([IWEF]\d{4} |WARNING: All log messages before absl)")
# The micro preset: cheaper to build, trace and run per process than tiny; nothing here depends on size.
MICRO = ["--dataset=synthetic", "--scale=micro", "--batch_size=2", "--log_every=1", "--image_every=1000"]


def _env(**extra):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(REPO_ROOT))
    env.pop("TF_CONFIG", None)
    env.update(extra)
    return env


def _sigint_as_at_a_terminal():
    """Run in the child before exec: a shell's background job (`make test &`, nohup) ignores SIGINT, exec keeps
    an ignored signal ignored and Python then installs no KeyboardInterrupt handler, so the Ctrl-C the test
    sends would never reach train.py (seen: the control run trained on for the hang guard's 30 minutes)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _own_lines(stderr: str) -> list[str]:
    """stderr without TensorFlow's C++ log lines."""
    return [line for line in stderr.strip().splitlines() if line and not TF_LOG_LINE.match(line)]


def _toy_state(seed=0):
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4), keras.layers.BatchNormalization(),
                              keras.layers.Dense(1)])
    optimizer = keras.optimizers.Adam(1e-2)
    optimizer.build(model.trainable_variables)
    return model, optimizer, tf.Variable(0, dtype=tf.int64, trainable=False)


def _toy_step(model, optimizer):
    import tensorflow as tf

    def step(batch):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(batch["x"], training=True) - batch["y"]))
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
        return {"loss": loss}

    return step


def _toy_dataset():
    import tensorflow as tf

    x = tf.random.stateless_normal([64, 3], seed=[1, 2])
    y = tf.reduce_sum(x, axis=1, keepdims=True)
    return tf.data.Dataset.from_tensor_slices({"x": x, "y": y}).repeat().batch(8)


def _saved_run(logdir, steps=(2, 4)):
    """A keeper that saved at `steps`, with different weights at each; returns the saved kernels."""
    from keras_disentangle.training.checkpoint import CheckpointKeeper

    model, optimizer, step = _toy_state()
    keeper = CheckpointKeeper(logdir, step, keep=3, model=model, optimizer=optimizer)
    kernels = {}
    for at in steps:
        model.layers[0].kernel.assign(np.full((3, 4), float(at), np.float32))
        step.assign(at)
        keeper.save()
        kernels[at] = model.layers[0].kernel.numpy().copy()
    return kernels


def _damage(prefix: pathlib.Path, how: str):
    data = pathlib.Path(f"{prefix}.data-00000-of-00001")
    index = pathlib.Path(f"{prefix}.index")
    if how == "truncated_data":
        data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    elif how == "corrupted_data":
        raw = bytearray(data.read_bytes())
        for i in range(0, len(raw), 7):
            raw[i] ^= 0xFF
        data.write_bytes(bytes(raw))
    elif how == "truncated_index":
        index.write_bytes(index.read_bytes()[:10])
    elif how == "missing_data":
        data.unlink()


@pytest.mark.parametrize("how", ["truncated_data", "corrupted_data", "truncated_index", "missing_data"])
def test_unreadable_latest_checkpoint_falls_back_to_the_previous_one(tmp_path, capsys, how):
    from keras_disentangle.training.checkpoint import CheckpointKeeper

    kernels = _saved_run(tmp_path)
    _damage(tmp_path / "checkpoints" / "ckpt-4", how)
    model, optimizer, step = _toy_state(seed=1)
    keeper = CheckpointKeeper(tmp_path, step, keep=3, model=model, optimizer=optimizer)
    assert keeper.restore_latest() == 2
    np.testing.assert_array_equal(model.layers[0].kernel.numpy(), kernels[2])
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "ckpt-4" in lines[0] and "resuming from" in lines[0] and "ckpt-2" in lines[0], lines


def test_no_readable_checkpoint_is_an_error_not_a_fresh_start(tmp_path):
    from keras_disentangle.rundir import RunDirectoryError
    from keras_disentangle.training.checkpoint import CheckpointKeeper

    _saved_run(tmp_path)
    for at in (2, 4):
        _damage(tmp_path / "checkpoints" / f"ckpt-{at}", "truncated_data")
    model, optimizer, step = _toy_state()
    keeper = CheckpointKeeper(tmp_path, step, keep=3, model=model, optimizer=optimizer)
    with pytest.raises(RunDirectoryError, match="no checkpoint can be read: .*ckpt-4.*ckpt-2"):
        keeper.restore_latest()


def test_restore_weights_falls_back_too(tmp_path, capsys):
    from keras_disentangle.rundir import restore_weights

    kernels = _saved_run(tmp_path)
    _damage(tmp_path / "checkpoints" / "ckpt-4", "truncated_data")
    model, _, _ = _toy_state(seed=1)
    assert restore_weights(tmp_path, model=model).endswith("ckpt-2")
    np.testing.assert_array_equal(model.layers[0].kernel.numpy(), kernels[2])
    assert "ckpt-4" in capsys.readouterr().err


def test_restore_weights_of_a_run_named_by_a_relative_path(tmp_path, monkeypatch):
    """`make demo` names its runs relative to the working directory, as users do."""
    from keras_disentangle.rundir import restore_weights

    monkeypatch.chdir(tmp_path)
    kernels = _saved_run("run")
    model, _, _ = _toy_state(seed=1)
    assert restore_weights("run", model=model).endswith("ckpt-4")
    np.testing.assert_array_equal(model.layers[0].kernel.numpy(), kernels[4])


# --- damaged TFRecord shards ------------------------------------------------------------------

def _copy_records(synthetic_records, tmp_path) -> pathlib.Path:
    import shutil

    out = tmp_path / "records"
    shutil.copytree(synthetic_records, out)
    return out


def _train_shard(records: pathlib.Path) -> pathlib.Path:
    from keras_disentangle.data import records as record_names

    return sorted(records.glob(record_names.shard_pattern("train")))[-1]


def test_truncated_shard_is_named_before_training(synthetic_records, tmp_path):
    from keras_disentangle import configs, data

    records = _copy_records(synthetic_records, tmp_path)
    shard = _train_shard(records)
    count = data.check_shard(str(shard))
    assert count > 1
    shard.write_bytes(shard.read_bytes()[:-100])
    cfg = configs.get_config("synthetic", "tiny")
    with pytest.raises(data.DamagedShardError, match=f"{shard}: truncated TFRecord shard: record {count - 1} "):
        data.train_dataset(str(records), cfg, batch_size=2)


def test_corrupted_record_is_traced_to_its_shard(synthetic_records, tmp_path):
    from keras_disentangle import data

    records = _copy_records(synthetic_records, tmp_path)
    assert data.find_damaged_shard(str(records)) is None
    shard = _train_shard(records)
    raw = bytearray(shard.read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # inside a record: the length is intact, the CRC is not
    shard.write_bytes(bytes(raw))
    data.check_shard(str(shard))  # the headers still add up
    message = data.find_damaged_shard(str(records))
    assert message.startswith(f"{shard}: unreadable TFRecord shard ("), message


@pytest.mark.parametrize("damage", [
    "truncate",  # refused before the model is built: cheap
    # Found at the first batch, after the model is built (~20 s here); the tracing itself is
    # covered cheaply by test_corrupted_record_is_traced_to_its_shard.
    pytest.param("corrupt", marks=pytest.mark.slow),
])
def test_train_py_stops_naming_the_damaged_shard(synthetic_records, tmp_path, damage, capsys):
    from test_cli import run_tool

    records = _copy_records(synthetic_records, tmp_path)
    shard = _train_shard(records)
    raw = bytearray(shard.read_bytes())
    if damage == "truncate":
        raw = raw[:-100]
    else:
        raw[len(raw) // 2] ^= 0xFF
    shard.write_bytes(bytes(raw))
    # In this process through train.py's cli.run (tests/test_cli.py): what it prints and returns is the
    # claim, not the process (no TensorFlow start-up, ~4 CPU-seconds under the AVX2 emulation).
    code, _, lines = run_tool("train.py", [*MICRO, f"--data_dir={records}", f"--logdir={tmp_path / 'run'}",
                                           "--steps=3", "--model=appearance", "--adversarial_weight=0"], capsys)
    assert code == 1, lines
    lines = _own_lines("\n".join(lines))
    assert len(lines) == 1 and lines[0].startswith(f"train.py: {shard}: "), lines


# --- signals ---------------------------------------------------------------------------------

def _checkpoint_steps(logdir: pathlib.Path) -> list[int]:
    return sorted(int(p.name.split("-")[1].split(".")[0]) for p in (logdir / "checkpoints").glob("ckpt-*.index"))


def _wait_until(condition, *procs) -> bool:
    """Polls `condition` until it holds (True) or one of `procs` exits first (False): the test waits on what
    the run writes, however long a loaded machine takes. Runs still going at HANG_GUARD_SECONDS are killed."""
    deadline = time.monotonic() + HANG_GUARD_SECONDS
    while not condition():
        if any(proc.poll() is not None for proc in procs):
            return False
        if time.monotonic() > deadline:
            for proc in procs:
                proc.kill()
            raise AssertionError(f"hang guard: no progress in {HANG_GUARD_SECONDS} s")
        time.sleep(0.1)
    return True


def _wait_for_training_steps(logdir: pathlib.Path, *procs):
    """Waits until the run of `procs` has written summaries past step 1 (the events file grows in chunks)."""
    def progressed():
        events = list((logdir / "train").glob("events.out.tfevents.*"))
        return bool(events) and events[0].stat().st_size > 20_000

    if not _wait_until(progressed, *procs):
        for proc in procs:
            proc.kill()
        errors = "\n".join(proc.communicate()[1][-2000:] for proc in procs)
        raise AssertionError(f"the run ended before training: {errors}")


# --- a rerun continues with a fresh data order and fresh random draws ------------------------

def _record_what_the_steps_draw(logdir: pathlib.Path, total_steps: int, seeds: list) -> np.ndarray:
    """Runs the loop as a new process would (global seed set first) on a stream of numbered examples;
    per step of this run: the 4 example numbers of its batch and one `tf.random.uniform` draw."""
    import tensorflow as tf

    from keras_disentangle.training import checkpoint, loop

    tf.random.set_seed(0)
    drawn = tf.Variable(tf.zeros((3, 5)))
    calls = tf.Variable(0)

    def replica_step(batch):
        row = tf.concat([tf.cast(batch["number"], tf.float32), tf.random.uniform((1,))], 0)
        drawn.scatter_nd_update([[calls]], row[None])
        calls.assign_add(1)
        return {"loss": tf.reduce_sum(row)}

    def make_dataset(seed):
        seeds.append(seed)
        numbers = tf.data.Dataset.range(1000).shuffle(1000, seed=seed).repeat()
        return numbers.map(lambda n: {"number": n}).batch(4, drop_remainder=True)

    keeper = checkpoint.CheckpointKeeper(str(logdir), tf.Variable(0, dtype=tf.int64), weight=tf.Variable(0.0))
    loop.run(strategy=tf.distribute.get_strategy(), replica_step=replica_step, make_dataset=make_dataset, seed=7,
             keeper=keeper, total_steps=total_steps, global_batch_size=4, checkpoint_every=1000, log_every=1000,
             image_every=1000, summary_dir=None, verbose=False)
    return drawn.numpy()


def test_a_rerun_draws_a_fresh_order_and_fresh_noise_not_a_replay(tmp_path):
    """After a preemption the rerun must not replay the first run's batches and noise (a job preempted
    every few hundred steps would train on the head of one order again and again); from the same
    checkpoint it is reproducible, and a fresh run keeps the run's own seed."""
    import shutil

    from keras_disentangle.training.loop import resume_seed

    seeds = []
    first = _record_what_the_steps_draw(tmp_path / "run", 3, seeds)  # steps 1-3, saved on exit
    shutil.copytree(tmp_path / "run", tmp_path / "control")
    rerun = _record_what_the_steps_draw(tmp_path / "run", 6, seeds)  # steps 4-6
    control = _record_what_the_steps_draw(tmp_path / "control", 6, seeds)
    assert seeds == [7, resume_seed(7, 3), resume_seed(7, 3)] and resume_seed(7, 3) != 7
    assert not np.array_equal(rerun[:, :4], first[:, :4]), (rerun, first)
    assert not np.any(rerun[:, 4] == first[:, 4]), (rerun, first)
    np.testing.assert_array_equal(rerun, control)


# --- SIGKILL, SIGTERM, Ctrl-C and a NaN loss on one run ------------------------------------------

def _losses(logdir: pathlib.Path, tags=("loss/g1/l1", "loss/pose/l2")) -> dict[int, tuple]:
    """Per-step losses of the newest events file of a run (the last process that trained it)."""
    import tensorflow as tf

    newest = max((logdir / "train").glob("events.out.tfevents.*"), key=lambda p: p.stat().st_mtime)
    found: dict[int, dict] = {}
    for event in tf.compat.v1.train.summary_iterator(str(newest)):
        for value in event.summary.value:
            if value.tag in tags:
                found.setdefault(event.step, {})[value.tag] = float(tf.make_ndarray(value.tensor))
    return {step: tuple(v[t] for t in tags) for step, v in found.items() if len(v) == len(tags)}


def _committed_step(logdir: pathlib.Path) -> int:
    """Step of the newest checkpoint the state file lists (files written but not listed do not count)."""
    state = logdir / "checkpoints" / "checkpoint"
    found = re.search(r'^model_checkpoint_path: "ckpt-(\d+)"', state.read_text(), re.M) if state.exists() else None
    return int(found.group(1)) if found else 0


def _start(args, logdir: pathlib.Path, **popen):
    """train.py as a process, deterministic; its output in files beside the run (no pipe to fill)."""
    outputs = [open(f"{logdir}.{name}", "w") for name in ("stdout", "stderr")]
    with outputs[0], outputs[1]:
        return subprocess.Popen([sys.executable, str(REPO_ROOT / "train.py"), *args, f"--logdir={logdir}"],
                                cwd=REPO_ROOT, env=_env(TF_DETERMINISTIC_OPS="1"), stdout=outputs[0],
                                stderr=outputs[1], text=True, **popen)


@pytest.fixture(scope="module")
def signalled(synthetic_records, tmp_path_factory):
    """A run SIGKILLed once it had committed a checkpoint (step `last`), kept as it died ("killed"); then two
    processes go on from that checkpoint side by side, each until it has committed step last + 10: the
    rerun in the run's own directory, stopped by SIGTERM, and a control run in a copy, stopped by Ctrl-C.
    One set of train.py processes (each pays TensorFlow's start-up, the model's build and its tracing) for
    the four tests below. Returns {"last": int, "killed": dir, "rerun" / "control": (dir, exit code, stdout,
    stderr)}."""
    import shutil

    root = tmp_path_factory.mktemp("signals")
    common = [*MICRO, f"--data_dir={synthetic_records}", "--model=both", "--adversarial_weight=0",
              "--checkpoint_every=3", "--steps=100000"]
    proc = _start(common, root / "run")
    try:
        assert _wait_until(lambda: _committed_step(root / "run") >= 3, proc), f"the run exited with {proc.returncode}"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    # The checkpoint the run had committed (listed in the state file) when it died.
    last = _committed_step(root / "run")
    for copy in ("killed", "control"):
        shutil.copytree(root / "run", root / copy)
    runs = {"rerun": (_start(common, root / "run"), signal.SIGTERM),
            "control": (_start(common, root / "control", preexec_fn=_sigint_as_at_a_terminal), signal.SIGINT)}
    found, sent = {"last": last, "killed": root / "killed"}, []
    try:
        for name, (proc, signum) in runs.items():
            directory = root / ("run" if name == "rerun" else name)
            _wait_until(lambda: _committed_step(directory) >= last + 10, proc)  # an early exit fails its test
            proc.send_signal(signum)
            sent.append(name)
    finally:
        for name, (proc, _) in runs.items():
            if name not in sent:
                proc.kill()
            communicate_within_hang_guard(proc)
            directory = root / ("run" if name == "rerun" else name)
            found[name] = (directory, proc.returncode, pathlib.Path(f"{directory}.stdout").read_text(),
                           pathlib.Path(f"{directory}.stderr").read_text())
    return found


def test_sigkill_rerun_restores_every_variable_and_optimizer_step(signalled, tmp_path):
    import tensorflow as tf

    from keras_disentangle.rundir import load_config
    from keras_disentangle.training import stage1 as stage1_training

    last, killed = signalled["last"], signalled["killed"]
    prefix = str(killed / "checkpoints" / f"ckpt-{last}")
    # What a rerun restores: every variable of the checkpoint, optimizer step counters included.
    cfg = load_config(killed)
    stage1, optimizers, keeper = stage1_training.training_state(cfg, str(killed), tf.distribute.get_strategy())
    assert keeper.restore_latest() == last
    copy = tf.train.Checkpoint(step=keeper.step, **stage1_training.stage1_trackables(stage1),
                               **{f"{k}_optimizer": v for k, v in optimizers.items()})
    restored = copy.write(str(tmp_path / "restored" / "ckpt"))
    # The object graph and the manager's save counter are bookkeeping, not training state.
    bookkeeping = ("_CHECKPOINTABLE_OBJECT_GRAPH", "save_counter/")
    keys = [k for k, _ in tf.train.list_variables(prefix) if not k.startswith(bookkeeping)]
    assert sorted(keys) == sorted(k for k, _ in tf.train.list_variables(restored) if not k.startswith(bookkeeping))
    assert len(keys) > 100
    for key in keys:
        np.testing.assert_array_equal(tf.train.load_variable(restored, key), tf.train.load_variable(prefix, key),
                                      err_msg=key)
    for name in ("g1", "pose"):
        assert int(optimizers[name].iterations.numpy()) == last
        saved = [k for k in keys if k.startswith(f"{name}_optimizer/") and "iteration" in k]
        assert saved and int(tf.train.load_variable(prefix, saved[0])) == last, saved


def test_the_rerun_continues_deterministically(signalled):
    """The rerun's next 10 steps equal those of the control run from the same checkpoint."""
    last = signalled["last"]
    (rerun_dir, _, rerun_out, _), (control_dir, _, control_out, _) = signalled["rerun"], signalled["control"]
    assert f"Resuming from step {last}" in rerun_out and f"Resuming from step {last}" in control_out
    rerun, control = _losses(rerun_dir), _losses(control_dir)
    steps = list(range(last + 1, last + 11))
    for losses in (rerun, control):  # each process trained on from the checkpoint's step, 10 steps at least
        assert min(losses) == last + 1 and set(steps) <= set(losses), (sorted(rerun), sorted(control))
    assert [rerun[s] for s in steps] == [control[s] for s in steps]


@pytest.mark.parametrize("run, how", [("rerun", "SIGTERM"), ("control", "Ctrl-C")])
def test_a_signal_saves_a_checkpoint_and_exits_130(signalled, run, how):
    """SIGTERM (a scheduler's preemption) and Ctrl-C each stop the run with a checkpoint of the step it
    reached: the one its exit printed (periodic saves print nothing), past the 10 steps it was given."""
    directory, code, stdout, stderr = signalled[run]
    assert code == 130, (how, stderr[-2000:])
    assert "interrupted" in _own_lines(stderr)[-1], how
    interrupted_at = _checkpoint_steps(directory)[-1]
    assert interrupted_at >= signalled["last"] + 10, (how, interrupted_at)
    assert f"Saved checkpoint {directory / 'checkpoints' / f'ckpt-{interrupted_at}'}" in stdout, (how, stdout[-2000:])


def test_a_nan_loss_stops_at_the_last_good_checkpoint(signalled, tmp_path, synthetic_records, capsys):
    """Resumed with lambda = 1e39, which overflows float32: the total loss is inf at the first step. The
    run stops with one line naming that step and the last good checkpoint, and saves nothing after it.
    In this process through train.py's cli.run (tests/test_cli.py): the claim is what it prints and returns."""
    import shutil

    from test_cli import run_tool

    logdir = tmp_path / "run"
    shutil.copytree(signalled["rerun"][0], logdir)
    saved = _checkpoint_steps(logdir)
    code, _, lines = run_tool("train.py", [*MICRO, f"--data_dir={synthetic_records}", f"--logdir={logdir}",
                                           "--model=both", "--adversarial_weight=0", "--checkpoint_every=1",
                                           f"--steps={saved[-1] + 2}", "--l1_weight=1e39"], capsys)
    assert code == 1, lines
    last = _own_lines("\n".join(lines))[-1]  # (before it, NumPy's warning that 1e39 overflows float32)
    assert last.startswith("train.py: ") and f"at step {saved[-1] + 1}" in last and f"ckpt-{saved[-1]}" in last, last
    assert _checkpoint_steps(logdir) == saved


# --- multi-worker preemption -----------------------------------------------------------------

def _free_ports(count: int) -> list[int]:
    """`count` distinct free ports: the sockets are held together while the ports are read, since one
    port closed before the next is asked for can come back as the next one (two workers on one port:
    the second cannot start, and the first reports it as crashed)."""
    import contextlib
    import socket

    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for s in sockets:
            s.bind(("localhost", 0))
        return [s.getsockname()[1] for s in sockets]


def _start_workers(records, logdir, *args, script=None):
    """Two localhost workers of one MultiWorkerMirroredStrategy run: `train.py` with `args`, or `script`."""
    import json

    cluster = {"worker": [f"localhost:{port}" for port in _free_ports(2)]}
    if script is None:
        command = [sys.executable, str(REPO_ROOT / "train.py"), *MICRO, f"--data_dir={records}", f"--logdir={logdir}",
                   "--strategy=multi_worker", "--model=appearance", "--adversarial_weight=0", *args]
    else:
        command = [sys.executable, "-c", script, str(records), str(logdir), *args]
    procs = []
    for index in range(2):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        procs.append(subprocess.Popen(command, cwd=REPO_ROOT, env=_env(TF_CONFIG=tf_config), stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
    return procs


def _worker_errors(outputs) -> str:
    """The end of each worker's stderr, TensorFlow's log lines left out."""
    return "\n".join(f"worker {i}: " + "\n".join(_own_lines(stderr)[-25:]) for i, (_, stderr) in enumerate(outputs))


# Resumes the run in argv[2] to step argv[3] as a worker, then prints a digest of its trainable weights.
RESUMING_WORKER = """
import hashlib, sys
import numpy as np
from keras_disentangle import configs, rundir
from keras_disentangle.serving import runtime
from keras_disentangle.training import loop, stage1, steps
strategy = loop.make_strategy("multi_worker")
cfg = configs.override(rundir.load_config(sys.argv[2]), steps=int(sys.argv[3]))
trained, _ = stage1.train_stage1(cfg, data_dir=sys.argv[1], logdir=sys.argv[2], part=steps.Stage1Part.APPEARANCE,
                                 strategy=strategy, verbose=False)
digest = hashlib.sha256()
# Trainable weights are all-reduced; D1's batch-norm moving statistics are per-worker by design.
for model in runtime.stage1_trackables(trained).values():
    for w in model.trainable_weights:
        digest.update(np.ascontiguousarray(w.numpy()).tobytes())
print("WEIGHTS", digest.hexdigest())
"""


def test_sigterm_to_one_worker_saves_one_consistent_checkpoint_and_the_rerun_resumes(synthetic_records, tmp_path):
    """Two localhost workers: SIGTERM to one makes both save one agreed step and exit; a 2-worker rerun
    resumes from it and ends with the same weights on both workers (the all-reduce works)."""
    logdir = tmp_path / "run"
    procs = _start_workers(synthetic_records, logdir, "--steps=100000", "--checkpoint_every=100000")
    _wait_for_training_steps(logdir, *procs)
    procs[1].send_signal(signal.SIGTERM)
    outputs = [communicate_within_hang_guard(proc) for proc in procs]
    assert [proc.returncode for proc in procs] == [130, 130], _worker_errors(outputs)
    saved = _checkpoint_steps(logdir)
    assert len(saved) == 1 and saved[0] >= 1, saved
    for stdout, _ in outputs:  # both workers saved the same, agreed step
        assert f"Saved the checkpoint of step {saved[0]} with every worker (preempted)." in stdout, stdout[-2000:]
    assert not list(logdir.glob(".worker-*-scratch"))

    procs = _start_workers(synthetic_records, logdir, str(saved[0] + 2), script=RESUMING_WORKER)
    outputs = [communicate_within_hang_guard(proc) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], _worker_errors(outputs)
    digests = []
    for stdout, _ in outputs:
        assert f"Resuming from step {saved[0]}" in stdout
        digests.append([line for line in stdout.splitlines() if line.startswith("WEIGHTS")])
    assert digests[0] and digests[0] == digests[1]
    assert _checkpoint_steps(logdir)[-1] == saved[0] + 2


def test_the_hang_guard_kills_what_it_gave_up_on(monkeypatch):
    """A run that outlives the hang guard fails its test and does not outlive it."""
    import conftest

    monkeypatch.setattr(conftest, "HANG_GUARD_SECONDS", 1)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    with pytest.raises(AssertionError, match="hang guard: .* still ran after 1 s"):
        communicate_within_hang_guard(sleeper)
    assert sleeper.poll() is not None
