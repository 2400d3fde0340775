"""The full presets run what the authors' TF1 code ran (docs/differences.md, "Differences from the paper and the
authors' code"): the pose auto-encoder, its step budget, TF1's optimizers, the discriminators'
initialisation and DeepFashion's joint D1 batch. A run's config.json written before these fields
existed reads as what that run trained with."""

import dataclasses
import json

import numpy as np
import pytest

from keras_disentangle import configs

MARKET = configs.get_config("market", "full")
DEEPFASHION = configs.get_config("deepfashion", "full")


def _slopes(model) -> dict[str, float]:
    import keras

    return {layer.name: float(layer.negative_slope) for layer in model.layers
            if isinstance(layer, keras.layers.LeakyReLU)}


def test_pose_autoencoder_has_leaky_slope_0_2_and_a_linear_first_decoder_layer():
    from keras_disentangle.models.pose_autoencoder import build_pose_decoder, build_pose_encoder

    for cfg in (MARKET, DEEPFASHION, configs.get_config("synthetic", "tiny")):
        encoder, decoder = build_pose_encoder(cfg), build_pose_decoder(cfg)
        assert set(_slopes(encoder).values()) == set(_slopes(decoder).values()) == {0.2}
        assert "act_in" in _slopes(encoder) and "act_in" not in _slopes(decoder)
        # dense_in feeds the first residual block directly.
        assert decoder.get_layer("block0_dense1").input is decoder.get_layer("dense_in").output


def test_missing_joints_enter_the_pose_vector_as_minus_one():
    from keras_disentangle import data
    from keras_disentangle.data import geometry

    keypoints = np.full((1, 18, 2), -1.0, np.float32)
    keypoints[0, 1] = (64, 32)
    for cfg in (MARKET, DEEPFASHION, configs.get_config("synthetic", "micro")):
        vector = data.pose_features(keypoints, cfg.data)["pose_vector"].numpy()[0]
        coordinates = vector[:36].reshape(18, 2)
        np.testing.assert_allclose(np.delete(coordinates, 1, axis=0), -1.0)
        np.testing.assert_allclose(vector[36:], np.eye(18)[1])
    np.testing.assert_allclose(geometry.pose_vector(keypoints, 128, 64).numpy()[0, :2], 0.0)


def test_pose_budget_and_what_model_both_does_with_it():
    from keras_disentangle.training.stage1 import phases
    from keras_disentangle.training.steps import Stage1Part as Part

    assert (MARKET.train.steps, MARKET.train.pose_steps) == (70_000, 60_000)
    assert (DEEPFASHION.train.steps, DEEPFASHION.train.pose_steps) == (100_000, 120_000)
    assert phases(Part.BOTH, MARKET.train) == [(Part.BOTH, 60_000), (Part.APPEARANCE, 70_000)]
    assert phases(Part.BOTH, DEEPFASHION.train) == [(Part.BOTH, 100_000), (Part.POSE, 120_000)]
    assert phases(Part.POSE, DEEPFASHION.train) == [(Part.POSE, 120_000)]
    legacy = dataclasses.replace(MARKET.train, pose_steps=0)
    assert phases(Part.BOTH, legacy) == [(Part.BOTH, 70_000)] and phases(Part.POSE, legacy) == [(Part.POSE, 70_000)]


def test_model_both_trains_the_pose_autoencoder_on_past_the_appearance_budget(synthetic_records, tmp_path):
    import tensorflow as tf

    from keras_disentangle.training import stage1, steps

    cfg = configs.override(configs.get_config("synthetic", "micro"), batch_size=4, pose_batch_size=4, steps=1,
                           pose_steps=2, log_every=1, checkpoint_every=100, image_every=1000, adversarial_weight=0.0)
    stage1.train_stage1(cfg, data_dir=synthetic_records, logdir=str(tmp_path), part=steps.Stage1Part.BOTH,
                        strategy=tf.distribute.get_strategy(), verbose=False)
    _, optimizers, keeper = stage1.training_state(cfg, str(tmp_path), tf.distribute.get_strategy())
    assert keeper.restore_latest() == 2
    assert int(optimizers["g1"].iterations.numpy()) == 1 and int(optimizers["pose"].iterations.numpy()) == 2


def test_stage1_adam_has_tf1_epsilon_in_the_full_presets():
    from keras_disentangle.training.stage1 import build_optimizers

    for cfg, epsilon in ((MARKET, 1e-8), (DEEPFASHION, 1e-8), (configs.get_config("synthetic", "micro"), 1e-7)):
        assert {o.epsilon for o in build_optimizers(cfg.train).values()} == {epsilon}


def _tf1_rmsprop(variable: np.ndarray, gradients: list, rate: float) -> np.ndarray:
    """tf.train.RMSPropOptimizer (decay 0.9, momentum 0, epsilon 1e-10), written out."""
    mean_square = np.ones_like(variable)
    for gradient in gradients:
        mean_square = 0.9 * mean_square + 0.1 * gradient ** 2
        variable = variable - rate * gradient / np.sqrt(mean_square + 1e-10)
    return variable


def test_stage2_rmsprop_follows_tf1_update_rule():
    import keras

    from keras_disentangle.training import optimizers, stage2

    rng = np.random.default_rng(0)
    start = rng.normal(size=(3, 4))
    gradients = [rng.normal(scale=0.01, size=(3, 4)) for _ in range(5)]
    expected = _tf1_rmsprop(start, gradients, 2e-3)
    assert MARKET.train.stage2_rmsprop == DEEPFASHION.train.stage2_rmsprop == "tf1"
    assert {type(o) for o in stage2.build_optimizers(configs.stage2_train(MARKET.train, "fg")).values()} == {
        optimizers.TF1RMSprop}
    for kind, matches in (("tf1", True), ("keras", False)):
        optimizer = optimizers.rmsprop(kind, 2e-3, name=kind)
        variable = keras.Variable(start.astype(np.float32))
        optimizer.build([variable])
        for gradient in gradients:
            optimizer.apply_gradients([(gradient.astype(np.float32), variable)])
        assert np.allclose(variable.numpy(), expected, rtol=0, atol=1e-6) is matches, kind
    with pytest.raises(ValueError, match="stage2_rmsprop='adam'"):
        optimizers.rmsprop("adam", 2e-3, name="x")


def test_discriminators_start_from_the_authors_initializers():
    from keras_disentangle.models.discriminators import build_critic, build_d1

    d1 = build_d1(MARKET)
    for layer in d1.layers:
        if layer.name.startswith("conv") or layer.name == "logit":
            kernel = layer.kernel.numpy()
            assert np.abs(kernel).max() <= 0.02 * np.sqrt(3) + 1e-7, layer.name
            assert np.std(kernel) == pytest.approx(0.02, rel=0.1), layer.name
    critic = build_critic(MARKET, "fg")
    for index, fan_in in enumerate((224, 512, 512, 512)):
        # He uniform: stddev sqrt(2 / fan_in) (Glorot's would be sqrt(2 / (fan_in + 512))).
        assert np.std(critic.get_layer(f"dense{index}").kernel.numpy()) == pytest.approx(
            np.sqrt(2 / fan_in), rel=0.05)


def test_deepfashion_d1_scores_real_and_fake_in_one_batch():
    assert DEEPFASHION.train.d1_joint_batch and not MARKET.train.d1_joint_batch


def test_a_config_json_without_the_new_fields_reads_as_it_trained():
    raw = json.loads(configs.to_json(MARKET))
    for part, names in (("data", ["pose_missing_coordinate"]),
                        ("model", ["pose_leaky_slope", "pose_decoder_linear_input", "d1_initializer",
                                   "critic_initializer"]),
                        ("train", ["pose_steps", "adam_epsilon", "stage2_rmsprop"])):
        for name in names:
            del raw[part][name]
    old = configs.from_json(json.dumps(raw))
    assert old.data.pose_missing_coordinate == 0.0
    assert (old.model.pose_leaky_slope, old.model.pose_decoder_linear_input) == (0.3, False)
    assert (old.model.d1_initializer, old.model.critic_initializer) == ("glorot_uniform", "glorot_uniform")
    assert (old.train.pose_steps, old.train.adam_epsilon, old.train.stage2_rmsprop) == (0, 1e-7, "keras")
