"""Resume keeps everything: unreadable checkpoints fall back, signals save, damaged shards are named."""

import os
import pathlib

import numpy as np
import pytest


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
