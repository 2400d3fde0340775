"""The stage-I D1 options beyond the paper's defaults (docs/training.md, "The adversarial term"): the update
ratio (`d1_every`, `d1_steps`), D1's normalization, the hinge loss and the R1 penalty."""

import numpy as np
import pytest


def _setup(records, **fields):
    import keras
    import tensorflow as tf

    from keras_disentangle import configs, data
    from keras_disentangle.models.stage1 import build_stage1
    from keras_disentangle.training import stage1 as stage1_training
    from keras_disentangle.training import steps

    cfg = configs.override(configs.get_config("synthetic", "micro"), batch_size=2, adversarial_weight=1.0,
                           d1_joint_batch=True, **fields)
    keras.utils.set_random_seed(0)
    batch = next(iter(data.eval_dataset(records, cfg, split="train", batch_size=2)))
    stage1 = build_stage1(cfg)
    optimizers = stage1_training.build_optimizers(cfg.train)
    step = tf.function(steps.appearance_step(stage1, optimizers["g1"], optimizers["d1"], cfg.train, 2))
    return stage1, optimizers, step, batch


def _d1_weights(stage1):
    return [v.numpy().copy() for v in stage1.d1.trainable_variables]


def _moved(before, stage1):
    return not all(np.array_equal(a, v.numpy()) for a, v in zip(before, stage1.d1.trainable_variables))


def test_d1_every_2_updates_d1_on_every_second_step_only(synthetic_records):
    stage1, optimizers, step, batch = _setup(synthetic_records, d1_every=2)
    moved = []
    for _ in range(4):
        before = _d1_weights(stage1)
        step(batch)
        moved.append(_moved(before, stage1))
    assert moved == [True, False, True, False]
    assert int(optimizers["d1"].iterations) == 2 and int(optimizers["g1"].iterations) == 4


def test_d1_steps_3_updates_d1_three_times_per_step(synthetic_records):
    stage1, optimizers, step, batch = _setup(synthetic_records, d1_steps=3)
    step(batch)
    assert int(optimizers["d1"].iterations) == 3 and int(optimizers["g1"].iterations) == 1


@pytest.mark.parametrize("normalization", ["none", "spectral"])
def test_d1_normalization_drops_batch_norm(normalization, synthetic_records):
    import keras
    import tensorflow as tf

    from keras_disentangle import configs
    from keras_disentangle.models.discriminators import build_d1

    cfg = configs.override(configs.get_config("synthetic", "micro"), d1_normalization=normalization)
    d1 = build_d1(cfg)
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in d1.layers)
    spectral = [layer for layer in d1.layers if isinstance(layer, keras.layers.SpectralNormalization)]
    assert len(spectral) == (len(cfg.model.d1_channels) + 1 if normalization == "spectral" else 0)
    images = tf.random.stateless_uniform((2, cfg.data.height, cfg.data.width, 3), (0, 1), -1.0, 1.0)
    for _ in range(20):  # power iterations
        d1(images, training=True)
    for layer in spectral:  # each normalized kernel's largest singular value is ~1
        kernel = layer.layer.kernel.numpy().reshape(-1, layer.layer.kernel.shape[-1])
        assert np.linalg.svd(kernel, compute_uv=False)[0] == pytest.approx(1.0, rel=0.05), layer.name


def test_unknown_d1_normalization_is_refused():
    from keras_disentangle import configs
    from keras_disentangle.models.discriminators import build_d1

    with pytest.raises(ValueError, match="d1_normalization='layer'"):
        build_d1(configs.override(configs.get_config("synthetic", "micro"), d1_normalization="layer"))


def test_hinge_losses():
    from keras_disentangle import losses

    real, fake = [[2.0], [0.5]], [[-2.0], [0.0]]
    np.testing.assert_allclose(losses.hinge_discriminator_loss(real, fake), [0.0, 0.5 * (0.5 + 1.0)])
    np.testing.assert_allclose(losses.hinge_generator_loss(fake), [2.0, 0.0])
    np.testing.assert_allclose(losses.r1_penalty(np.full((2, 2, 1, 1), 3.0, np.float32)), [9.0, 9.0])


@pytest.mark.slow  # three micro models traced and stepped (~28 CPU s loaded); make test-all runs it
def test_hinge_loss_and_r1_penalty_change_d1_loss_and_update(synthetic_records):
    """Same initial networks, same batch: the hinge loss and the R1 penalty each report another D1 loss
    than the default BCE and move D1 differently; G1's L1 (before any update) is the same."""
    plain, _, plain_step, batch = _setup(synthetic_records)
    plain_logs = plain_step(batch)
    for fields, differs in (({"d1_loss": "hinge"}, lambda a, b: abs(a - b) > 0.05),
                            ({"d1_r1_weight": 1e4}, lambda a, b: a > b + 1e-3)):
        other, _, other_step, _ = _setup(synthetic_records, **fields)
        logs = other_step(batch)
        assert differs(float(logs["loss/d1"]), float(plain_logs["loss/d1"])), fields
        assert float(logs["loss/g1/l1"]) == pytest.approx(float(plain_logs["loss/g1/l1"]), rel=1e-5)
        assert float(logs["d1/real_probability"]) == pytest.approx(float(plain_logs["d1/real_probability"]), rel=1e-5)
        assert any(not np.allclose(a.numpy(), b.numpy())
                   for a, b in zip(plain.d1.trainable_variables, other.d1.trainable_variables)), fields


def test_d1_every_with_a_multi_replica_strategy_is_a_usage_error(tmp_path, capsys):
    from test_cli import run_tool

    # In this process through train.py's cli.run (tests/test_cli.py): the exit code and the line are the claim.
    code, _, lines = run_tool("train.py", ["--stage=1", "--scale=micro", "--d1_every=2", "--strategy=mirrored",
                                           f"--data_dir={tmp_path}", f"--logdir={tmp_path / 'run'}"], capsys)
    assert code == 2, lines
    assert any("--d1_every=2 needs --strategy=default" in line for line in lines), lines
    assert "Traceback" not in "\n".join(lines)


def _g1_update(stage1, initial, train_cfg, batch):
    """G1's change in one appearance step from the `initial` weights, with plain SGD at rate 1 (the
    update is minus G1's gradient), and whether D1 moved."""
    import keras
    import tensorflow as tf

    from keras_disentangle.serving.runtime import stage1_trackables
    from keras_disentangle.training import steps

    for model, weights in zip(stage1_trackables(stage1).values(), initial):
        model.set_weights(weights)
    g_optimizer, d_optimizer = keras.optimizers.SGD(1.0), keras.optimizers.SGD(1.0)
    g_variables = stage1.appearance_encoder.trainable_variables + stage1.generator.trainable_variables
    g_optimizer.build(g_variables)
    d_optimizer.build(stage1.d1.trainable_variables)
    before = [v.numpy().copy() for v in g_variables]
    d1_before = [v.numpy().copy() for v in stage1.d1.trainable_variables]
    tf.function(steps.appearance_step(stage1, g_optimizer, d_optimizer, train_cfg, len(batch["image"])))(batch)
    moved = any(not np.array_equal(a, v.numpy()) for a, v in zip(d1_before, stage1.d1.trainable_variables))
    return np.concatenate([(v.numpy() - b).ravel() for v, b in zip(g_variables, before)]), moved


def test_the_adversarial_term_reaches_g1_with_its_weight_and_the_l1_presets_leave_it_out(synthetic_records):
    import keras
    import tensorflow as tf

    from keras_disentangle import configs, data, losses
    from keras_disentangle.models.stage1 import build_stage1, reconstruct
    from keras_disentangle.serving.runtime import stage1_trackables

    # The tiny and micro presets train L1 only; the full ones with the paper's adversarial weight 1.
    for dataset in configs.DATASETS:
        for scale in configs.SCALES:
            assert configs.get_config(dataset, scale).train.adversarial_weight == float(scale == "full"), (dataset, scale)
    preset = configs.get_config("synthetic", "micro")
    keras.utils.set_random_seed(0)
    stage1 = build_stage1(preset)
    initial = [model.get_weights() for model in stage1_trackables(stage1).values()]
    batch = next(iter(data.eval_dataset(synthetic_records, preset, split="train", batch_size=2)))
    # L1 only: G1's update is minus lambda times the L1 gradient, and D1 stays.
    l1_only, moved = _g1_update(stage1, initial, preset.train, batch)
    assert not moved
    for model, weights in zip(stage1_trackables(stage1).values(), initial):
        model.set_weights(weights)
    g_variables = stage1.appearance_encoder.trainable_variables + stage1.generator.trainable_variables
    with tf.GradientTape() as tape:
        l1 = tf.reduce_mean(losses.l1_reconstruction_loss(batch["image"], reconstruct(stage1, batch, training=True)))
    expected = -preset.train.l1_weight * np.concatenate([g.numpy().ravel() for g in tape.gradient(l1, g_variables)])
    np.testing.assert_allclose(l1_only, expected, rtol=1e-4, atol=1e-6 * np.abs(expected).max())
    # With --adversarial_weight=w > 0 the adversarial gradient adds to it, scaled by w.
    updates = {}
    for weight in (1.0, 2.0):
        train = configs.override(preset, adversarial_weight=weight, adversarial_start_step=0).train
        updates[weight], moved = _g1_update(stage1, initial, train, batch)
        assert moved
    adversarial = updates[1.0] - l1_only
    assert np.abs(adversarial).max() > 1e-3 * np.abs(l1_only).max()
    np.testing.assert_allclose(updates[2.0] - l1_only, 2 * adversarial, rtol=1e-3, atol=1e-4 * np.abs(adversarial).max())
