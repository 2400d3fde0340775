"""Resume keeps everything: unreadable checkpoints fall back, signals save, damaged shards are named."""

import os
import pathlib
import re
import signal
import subprocess
import sys

import numpy as np
import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
TF_LOG_LINE = re.compile(r"^([IWEF]\d{4} |WARNING: All log messages before absl)")
TINY = ["--dataset=synthetic", "--scale=tiny", "--batch_size=2", "--log_every=1", "--image_every=1000"]


def _env(**extra):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(REPO_ROOT), **extra)
    env.pop("TF_CONFIG", None)
    return env


def _train(*args, timeout=300, **env):
    return subprocess.run([sys.executable, str(REPO_ROOT / "train.py"), *TINY, *args], cwd=REPO_ROOT,
                          env=_env(**env), capture_output=True, text=True, timeout=timeout)


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
    from keras_disentangle.training.checkpoint import CheckpointKeeper, RunDirectoryError

    _saved_run(tmp_path)
    for at in (2, 4):
        _damage(tmp_path / "checkpoints" / f"ckpt-{at}", "truncated_data")
    model, optimizer, step = _toy_state()
    keeper = CheckpointKeeper(tmp_path, step, keep=3, model=model, optimizer=optimizer)
    with pytest.raises(RunDirectoryError, match="no checkpoint can be read: .*ckpt-4.*ckpt-2"):
        keeper.restore_latest()


def test_restore_weights_falls_back_too(tmp_path, capsys):
    from keras_disentangle.training.checkpoint import restore_weights

    kernels = _saved_run(tmp_path)
    _damage(tmp_path / "checkpoints" / "ckpt-4", "truncated_data")
    model, _, _ = _toy_state(seed=1)
    assert restore_weights(tmp_path, model=model).endswith("ckpt-2")
    np.testing.assert_array_equal(model.layers[0].kernel.numpy(), kernels[2])
    assert "ckpt-4" in capsys.readouterr().err


# --- damaged TFRecord shards ------------------------------------------------------------------

def _copy_records(synthetic_records, tmp_path) -> pathlib.Path:
    import shutil

    out = tmp_path / "records"
    shutil.copytree(synthetic_records, out)
    return out


def _train_shard(records: pathlib.Path) -> pathlib.Path:
    from keras_disentangle import records as record_names

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


@pytest.mark.parametrize("damage", ["truncate", "corrupt"])
def test_train_py_stops_naming_the_damaged_shard(synthetic_records, tmp_path, damage):
    records = _copy_records(synthetic_records, tmp_path)
    shard = _train_shard(records)
    raw = bytearray(shard.read_bytes())
    if damage == "truncate":
        raw = raw[:-100]
    else:
        raw[len(raw) // 2] ^= 0xFF
    shard.write_bytes(bytes(raw))
    result = _train(f"--data_dir={records}", f"--logdir={tmp_path / 'run'}", "--steps=3", "--model=appearance",
                    "--adversarial_weight=0")
    assert result.returncode == 1, result.stderr[-2000:]
    lines = _own_lines(result.stderr)
    assert len(lines) == 1 and lines[0].startswith(f"train.py: {shard}: "), lines


# --- signals ---------------------------------------------------------------------------------

def _checkpoint_steps(logdir: pathlib.Path) -> list[int]:
    return sorted(int(p.name.split("-")[1].split(".")[0]) for p in (logdir / "checkpoints").glob("ckpt-*.index"))


def _start_training(records, logdir, *args):
    return subprocess.Popen([sys.executable, str(REPO_ROOT / "train.py"), *TINY, f"--data_dir={records}",
                             f"--logdir={logdir}", "--model=appearance", "--adversarial_weight=0", *args],
                            cwd=REPO_ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_training_steps(proc, logdir: pathlib.Path, timeout=240):
    """Waits until the run has written summaries past step 1 (the events file grows in chunks)."""
    import time

    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        events = list((logdir / "train").glob("events.out.tfevents.*"))
        if events and events[0].stat().st_size > 20_000:
            return
        time.sleep(0.2)
    proc.kill()
    raise AssertionError(f"no training progress: {proc.communicate()[1][-2000:]}")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_sigterm_and_ctrl_c_save_a_checkpoint(synthetic_records, tmp_path, signum):
    logdir = tmp_path / "run"
    # No periodic checkpoint before step 100000: any checkpoint is the one the signal made.
    proc = _start_training(synthetic_records, logdir, "--steps=100000", "--checkpoint_every=100000")
    _wait_for_training_steps(proc, logdir)
    proc.send_signal(signum)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr[-2000:]
    saved = _checkpoint_steps(logdir)
    assert len(saved) == 1 and saved[0] >= 1, saved
    assert f"Saved checkpoint {logdir / 'checkpoints' / f'ckpt-{saved[0]}'}" in stdout
    assert "interrupted" in _own_lines(stderr)[-1]
