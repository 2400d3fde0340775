"""keras_disentangle.training.steps on one-weight networks, against the losses written out again: which loss
each update descends, which networks it moves and when (the D1 options, the warm-up), and what it logs.

The networks are single scalar weights whose output also shows the `training` flag and which images
shared a call (in training mode each subtracts the mean of its batch), so that a step calling a network
in inference mode, or D1 on another batch split, gives other numbers. Plain SGD at rate 1: an update is
minus the gradient. Eager and in-process: a few seconds in all (the networks of `build_stage1` are not
needed to check the step's arithmetic; `reconstruct` is replaced by the two networks in a row)."""

import numpy as np
import pytest

POSE_SIZE = 54  # (y, x) of 18 joints, then 18 visibility flags: losses.pose_reconstruction_loss


def _probe(weight: float, input_shape: tuple, name: str):
    import keras
    import tensorflow as tf

    class Probe(keras.layers.Layer):
        def build(self, shape):
            self.w = self.add_weight(shape=(), initializer=keras.initializers.Constant(weight), name="w")

        def call(self, x, training=None):
            return self.w * x - tf.reduce_mean(x, axis=0, keepdims=True) if training else self.w * x

    return keras.Sequential([keras.Input(input_shape), Probe()], name=name)


@pytest.fixture
def world(monkeypatch):
    """(stage1, batch, steps): one-weight networks, two 2x2 images and two pose vectors."""
    import keras
    import tensorflow as tf

    from keras_disentangle.models.stage1 import Stage1
    from keras_disentangle.training import steps

    def reconstruct(stage1, batch, training):
        return stage1.generator(stage1.appearance_encoder(batch["image"], training=training), training=training)

    monkeypatch.setattr(steps, "reconstruct", reconstruct)
    mean = keras.layers.Dense(1, use_bias=False, kernel_initializer=keras.initializers.Constant(1 / 3), trainable=False)
    d1 = keras.Sequential([_probe(-0.7, (2, 2, 3), "d1_probe"), keras.layers.GlobalAveragePooling2D(), mean],
                          name="d1")  # one logit per image, as build_d1's
    stage1 = Stage1(appearance_encoder=_probe(0.5, (2, 2, 3), "encoder"), generator=_probe(1.5, (2, 2, 3), "generator"),
                    d1=d1, pose_encoder=_probe(0.8, (POSE_SIZE,), "pose_encoder"),
                    pose_decoder=_probe(0.6, (POSE_SIZE,), "pose_decoder"))
    rng = np.random.default_rng(0)
    pose = rng.uniform(-1, 1, (2, POSE_SIZE)).astype(np.float32)
    pose[:, 36:] = [[1, 0] * 9, [0, 1] * 9]
    batch = {"image": tf.constant(rng.uniform(-1, 1, (2, 2, 2, 3)), tf.float32), "pose_vector": tf.constant(pose)}
    return stage1, batch, steps


def _train(**fields):
    from keras_disentangle import configs

    fields = {"adversarial_weight": 0.5, "adversarial_start_step": 0, "d1_joint_batch": False, **fields}
    return configs.override(configs.get_config("synthetic", "micro"), **fields).train


def _sgd(variables):
    import keras

    optimizer = keras.optimizers.SGD(1.0)
    optimizer.build(variables)
    return optimizer


def _weights(model) -> np.ndarray:
    return np.array([float(v.numpy()) for v in model.trainable_variables])


def _expected(stage1, image, train, global_batch=2):
    """Logs and gradients of one appearance step, the losses written out again (training mode)."""
    import tensorflow as tf

    from keras_disentangle import losses

    image = tf.constant(image)
    g_variables = stage1.appearance_encoder.trainable_variables + stage1.generator.trainable_variables
    with tf.GradientTape(persistent=True) as tape:
        fake = stage1.generator(stage1.appearance_encoder(image, training=True), training=True)
        l1 = tf.reduce_sum(losses.l1_reconstruction_loss(image, fake)) / global_batch
        with tf.GradientTape() as r1_tape:
            r1_tape.watch(image)
            if train.d1_joint_batch:
                real_logits, fake_logits = tf.split(stage1.d1(tf.concat([image, fake], 0), training=True), 2)
            else:
                real_logits, fake_logits = stage1.d1(image, training=True), stage1.d1(fake, training=True)
            real_sum = tf.reduce_sum(real_logits)
        hinge = train.d1_loss == "hinge"
        d_loss = (losses.hinge_discriminator_loss(real_logits, fake_logits) if hinge
                  else losses.bce_discriminator_loss(real_logits, fake_logits, train.real_label))
        d_loss += train.d1_r1_weight * losses.r1_penalty(r1_tape.gradient(real_sum, image))
        d_mean = tf.reduce_sum(d_loss) / global_batch
        adversarial = (losses.hinge_generator_loss if hinge else losses.bce_generator_loss)(fake_logits)
        adversarial = tf.reduce_sum(adversarial) / global_batch
        g_loss = train.l1_weight * l1 + train.adversarial_weight * adversarial
    d_gradients = tape.gradient(d_mean, stage1.d1.trainable_variables)
    logs = {"loss/g1/l1": l1, "loss/g1/adversarial": adversarial, "loss/d1": d_mean,
            "d1/real_probability": tf.reduce_mean(tf.sigmoid(real_logits)),
            "d1/fake_probability": tf.reduce_mean(tf.sigmoid(fake_logits)), "loss/g1/total": g_loss}
    g_gradients = [float(g) for g in tape.gradient(g_loss, g_variables)]
    return {key: float(value) for key, value in logs.items()}, g_gradients, [float(g) for g in d_gradients]


def _appearance(world, **fields):
    """One appearance step: (logs, G's change, D1's change, expected logs, G's and D1's gradients)."""
    stage1, batch, steps = world
    train = _train(**fields)
    expected = _expected(stage1, batch["image"], train)
    g_before = np.concatenate([_weights(stage1.appearance_encoder), _weights(stage1.generator)])
    d_before = _weights(stage1.d1)
    g_optimizer = _sgd(stage1.appearance_encoder.trainable_variables + stage1.generator.trainable_variables)
    d_optimizer = _sgd(stage1.d1.trainable_variables)
    logs = steps.appearance_step(stage1, g_optimizer, d_optimizer, train, 2)(batch)
    g_after = np.concatenate([_weights(stage1.appearance_encoder), _weights(stage1.generator)])
    return ({key: float(value) for key, value in logs.items()}, g_after - g_before, _weights(stage1.d1) - d_before,
            *expected)


@pytest.mark.parametrize("fields", [{}, {"d1_loss": "hinge", "d1_joint_batch": True}, {"d1_r1_weight": 0.5}],
                         ids=["bce", "hinge_joint", "r1"])
def test_appearance_step_descends_the_papers_losses_and_logs_them(world, fields):
    logs, g_change, d_change, expected_logs, g_gradients, d_gradients = _appearance(world, **fields)
    assert logs.keys() == expected_logs.keys()
    for key, value in expected_logs.items():
        assert logs[key] == pytest.approx(value, rel=1e-5), key
    np.testing.assert_allclose(d_change, -np.array(d_gradients), rtol=1e-5)
    np.testing.assert_allclose(g_change, -np.array(g_gradients), rtol=1e-5)


def test_without_the_adversarial_term_d1_is_neither_run_nor_moved(world):
    import tensorflow as tf

    from keras_disentangle import losses

    stage1, batch, _ = world
    train = _train(adversarial_weight=0.0)
    with tf.GradientTape() as tape:
        fake = stage1.generator(stage1.appearance_encoder(batch["image"], training=True), training=True)
        l1 = tf.reduce_mean(losses.l1_reconstruction_loss(batch["image"], fake))
        g_loss = train.l1_weight * l1
    gradients = [float(g) for g in tape.gradient(g_loss, stage1.appearance_encoder.trainable_variables
                                                 + stage1.generator.trainable_variables)]
    logs, g_change, d_change, *_ = _appearance(world, adversarial_weight=0.0)
    assert logs == pytest.approx({"loss/g1/l1": float(l1), "loss/g1/total": train.l1_weight * float(l1)})
    np.testing.assert_allclose(g_change, -np.array(gradients), rtol=1e-5)
    assert not d_change.any()


def test_the_adversarial_term_and_d1_wait_for_adversarial_start_step(world):
    stage1, batch, steps = world
    train = _train(adversarial_start_step=1)
    g_optimizer = _sgd(stage1.appearance_encoder.trainable_variables + stage1.generator.trainable_variables)
    d_optimizer = _sgd(stage1.d1.trainable_variables)
    step = steps.appearance_step(stage1, g_optimizer, d_optimizer, train, 2)
    totals, moved = [], []
    for _ in range(2):
        before = _weights(stage1.d1)
        logs = step(batch)
        totals.append(float(logs["loss/g1/total"]) - train.l1_weight * float(logs["loss/g1/l1"]))
        moved.append(bool((_weights(stage1.d1) != before).any()))
    assert totals[0] == pytest.approx(0.0, abs=1e-6)
    assert totals[1] == pytest.approx(0.5 * float(logs["loss/g1/adversarial"]), rel=1e-5)
    assert moved == [False, True]


def test_d1_every_and_d1_steps_set_how_often_d1_moves(world):
    import tensorflow as tf

    stage1, batch, steps = world
    g_optimizer = _sgd(stage1.appearance_encoder.trainable_variables + stage1.generator.trainable_variables)
    d_optimizer = _sgd(stage1.d1.trainable_variables)
    # Traced, as training runs it: both branches of D1's tf.cond are built.
    step = tf.function(steps.appearance_step(stage1, g_optimizer, d_optimizer, _train(d1_every=2), 2))
    moved = []
    for _ in range(4):
        before = _weights(stage1.d1)
        step(batch)
        moved.append(bool((_weights(stage1.d1) != before).any()))
    assert moved == [True, False, True, False]
    # d1_steps=2: the second update descends D1's loss again, on the moved D1 and the same fake images.
    train = _train(d1_steps=2)
    d_start = _weights(stage1.d1)
    first = _expected(stage1, batch["image"], train)[2]
    for variable, gradient in zip(stage1.d1.trainable_variables, first):
        variable.assign_sub(gradient)
    second = _expected(stage1, batch["image"], train)[2]
    for variable, value in zip(stage1.d1.trainable_variables, d_start):
        variable.assign(value)
    d_optimizer = _sgd(stage1.d1.trainable_variables)
    g_optimizer = _sgd(stage1.appearance_encoder.trainable_variables + stage1.generator.trainable_variables)
    steps.appearance_step(stage1, g_optimizer, d_optimizer, train, 2)(batch)
    assert int(d_optimizer.iterations) == 2
    np.testing.assert_allclose(_weights(stage1.d1), d_start - np.array(first) - np.array(second), rtol=1e-5)


def _pose_expected(stage1, batch, global_batch):
    import tensorflow as tf

    from keras_disentangle import losses

    variables = stage1.pose_encoder.trainable_variables + stage1.pose_decoder.trainable_variables
    with tf.GradientTape() as tape:
        decoded = stage1.pose_decoder(stage1.pose_encoder(batch["pose_vector"], training=True), training=True)
        loss = tf.reduce_sum(losses.pose_reconstruction_loss(batch["pose_vector"], decoded)) / global_batch
    return float(loss), np.array([float(g) for g in tape.gradient(loss, variables)])


def _pose_weights(stage1) -> np.ndarray:
    return np.concatenate([_weights(stage1.pose_encoder), _weights(stage1.pose_decoder)])


def test_stage1_step_trains_the_part_asked_for_with_its_optimizers_and_batch(world):
    stage1, batch, steps = world
    train = _train(pose_batch_size=5)

    def optimizers():
        return {"g1": _sgd(stage1.appearance_encoder.trainable_variables + stage1.generator.trainable_variables),
                "d1": _sgd(stage1.d1.trainable_variables),
                "pose": _sgd(stage1.pose_encoder.trainable_variables + stage1.pose_decoder.trainable_variables)}

    # POSE: L2 of the pose vector over the given global batch, only the pose networks move.
    loss, gradients = _pose_expected(stage1, batch, 2)
    before, g_before = _pose_weights(stage1), _weights(stage1.generator)
    logs = steps.stage1_step(steps.Stage1Part.POSE, stage1, optimizers(), train, 2)(batch)
    assert {key: float(value) for key, value in logs.items()} == pytest.approx({"loss/pose/l2": loss}, rel=1e-5)
    np.testing.assert_allclose(_pose_weights(stage1) - before, -gradients, rtol=1e-5)
    assert (_weights(stage1.generator) == g_before).all()
    # APPEARANCE: G1 and D1 move, the pose networks do not.
    before = _pose_weights(stage1)
    logs = steps.stage1_step(steps.Stage1Part.APPEARANCE, stage1, optimizers(), train, 2)(batch)
    assert set(logs) == {"loss/g1/l1", "loss/g1/adversarial", "loss/d1", "d1/real_probability",
                         "d1/fake_probability", "loss/g1/total"}
    assert (_pose_weights(stage1) == before).all() and (_weights(stage1.generator) != g_before).all()
    # BOTH: each part on its own batch, the pose loss over pose_batch_size.
    loss, _ = _pose_expected(stage1, batch, 5)
    expected = _expected(stage1, batch["image"], train)[0]
    logs = steps.stage1_step(steps.Stage1Part.BOTH, stage1, optimizers(), train, 2)(
        {"appearance": {"image": batch["image"]}, "pose": {"pose_vector": batch["pose_vector"]}})
    assert {key: float(value) for key, value in logs.items()} == pytest.approx({**expected, "loss/pose/l2": loss},
                                                                               rel=1e-5)


def test_the_parts_are_the_model_flags_values():
    from keras_disentangle.training import steps

    assert [part.value for part in steps.Stage1Part] == ["appearance", "pose", "both"]


@pytest.mark.parametrize("fields, message", [
    ({"d1_loss": "wgan"}, "d1_loss='wgan'; expected one of bce, hinge."),
    ({"d1_every": 0}, "d1_every=0, d1_steps=1: both must be >= 1."),
    ({"d1_steps": 0}, "d1_every=1, d1_steps=0: both must be >= 1."),
])
def test_bad_d1_options_are_refused_in_one_line(world, fields, message):
    stage1, _, steps = world
    with pytest.raises(ValueError) as error:
        steps.appearance_step(stage1, None, None, _train(**fields), 2)
    assert str(error.value) == message
