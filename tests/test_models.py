"""Shapes, layer numerics and mixed precision of every network (keras_disentangle.models)."""


import os
import tempfile

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_disentangle import configs, precision
from keras_disentangle.models import layers
from keras_disentangle.models.discriminators import build_critic, build_d1
from keras_disentangle.models.encoders import build_appearance_encoder, build_bg_encoder, build_fg_encoder
from keras_disentangle.models.generator import build_generator
from keras_disentangle.models.mapper import build_mapper
from keras_disentangle.models.pose_autoencoder import build_pose_decoder
from keras_disentangle.models.stage1 import appearance_embedding, build_reconstructor, build_stage1

# Paper sizes at full scale (REFERENCE.md, Stage I/II); tiny sizes follow from the tiny presets.
FULL_SIZES = {
    "market": {"image": (128, 64), "fg": 224, "bg": 128, "pose": 32},
    "synthetic": {"image": (128, 64), "fg": 224, "bg": 128, "pose": 32},
    "deepfashion": {"image": (256, 256), "fg": 224, "bg": None, "pose": 32},
}


@pytest.fixture(autouse=True)
def _fresh_keras_state():
    keras.utils.set_random_seed(0)
    yield
    # Without garbage collection: late in the suite the heap is large and a collection per test
    # cost ~2.5 s each (80 s in all); the interpreter still collects on its own thresholds.
    keras.backend.clear_session(free_memory=False)


def _random_boxes(rng, batch, count):
    corners = np.sort(rng.uniform(-0.2, 1.2, size=(batch, count, 2, 2)), axis=2)
    return np.stack([corners[..., 0, 0], corners[..., 0, 1], corners[..., 1, 0], corners[..., 1, 1]],
                    axis=-1).astype("float32")


def _crop_and_resize(features, boxes, size):
    batch, count = boxes.shape[:2]
    crops = tf.image.crop_and_resize(features, boxes.reshape(-1, 4), np.repeat(np.arange(batch), count), [size, size])
    return crops.numpy().reshape(batch, count, size, size, features.shape[-1])


def _zeros_like_inputs(model, batch=1):
    """Zeros for a functional model's (possibly dict) inputs."""
    return keras.tree.map_structure(lambda t: np.zeros((batch,) + tuple(t.shape[1:]), "float32"), model.input)


def _random_like_inputs(model, rng, batch=2):
    return keras.tree.map_structure(
        lambda t: tf.constant(rng.uniform(0.0, 1.0, (batch,) + tuple(t.shape[1:])), tf.float32), model.input)


# --- layers ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [5, 1])
def test_roi_align_matches_crop_and_resize(rng, size):
    features = rng.normal(size=(2, 16, 10, 3)).astype("float32")
    boxes = _random_boxes(rng, 2, 7)
    boxes[0, 0] = [0.7, 0.9, 0.1, 0.2]  # flipped boxes are sampled upside down by crop_and_resize
    boxes[1, 1] = [0.0, 0.0, 1.0, 1.0]
    out = layers.RoiAlign(size)([features, boxes])
    assert out.shape == (2, 7, size, size, 3)
    np.testing.assert_allclose(out.numpy(), _crop_and_resize(features, boxes, size), atol=1e-4)


def test_roi_align_compiles_under_xla_and_accepts_bfloat16(rng):
    features = rng.normal(size=(2, 12, 8, 4)).astype("float32")
    boxes = _random_boxes(rng, 2, 7)
    expected = _crop_and_resize(features, boxes, 6)
    layer = layers.RoiAlign(6)
    compiled = tf.function(lambda f, b: layer([f, b]), jit_compile=True)
    np.testing.assert_allclose(compiled(features, boxes).numpy(), expected, atol=1e-4)

    bf16_layer = layers.RoiAlign(6, dtype="mixed_bfloat16")
    out = tf.function(lambda f, b: bf16_layer([f, b]), jit_compile=True)(features, boxes)
    assert out.dtype == tf.bfloat16
    # bfloat16 keeps ~3 significant digits; boxes stay float32, so the error is the features' rounding.
    np.testing.assert_allclose(tf.cast(out, tf.float32).numpy(), expected, atol=0.05)


def test_roi_align_gradient_reaches_features(rng):
    features = tf.constant(rng.normal(size=(1, 8, 8, 2)).astype("float32"))
    boxes = np.array([[[0.0, 0.0, 0.5, 0.5]]], "float32")
    with tf.GradientTape() as tape:
        tape.watch(features)
        out = layers.RoiAlign(3)([features, boxes])
    grad = tape.gradient(out, features).numpy()
    assert grad[0, :4, :4].sum() > 0 and np.all(grad[0, 5:] == 0) and np.all(grad[0, :, 5:] == 0)


def test_roi_align_rejects_bad_boxes():
    with pytest.raises(ValueError, match="boxes"):
        layers.RoiAlign(4)([np.zeros((1, 8, 8, 2), "float32"), np.zeros((1, 7, 3), "float32")])


def test_tile_embedding_repeats_the_vector():
    vectors = np.arange(6, dtype="float32").reshape(2, 3)
    tiled = layers.TileEmbedding(4, 5)(vectors).numpy()
    assert tiled.shape == (2, 4, 5, 3)
    np.testing.assert_array_equal(tiled[:, 3, 4], vectors)
    np.testing.assert_array_equal(tiled[1, 2, 1], vectors[1])


@pytest.mark.parametrize("layer, inputs", [
    (layers.RoiAlign(4, name="roi"), [np.ones((1, 8, 6, 2), "float32"), np.array([[[0, 0, 0.5, 1]]], "float32")]),
    (layers.TileEmbedding(3, 2, name="tile"), np.ones((2, 5), "float32")),
    (layers.StraightThroughRound(name="round"), np.array([[0.2, 0.7]], "float32")),
    (layers.TiledInputConv2D(2, 3, 3, activation="relu", name="stem"), np.ones((1, 4, 3, 5), "float32")),
])
def test_custom_layers_round_trip_through_serialization(layer, inputs):
    restored = keras.layers.deserialize(keras.layers.serialize(layer))
    assert type(restored) is type(layer)
    assert restored.get_config() == layer.get_config()
    expected = layer(inputs).numpy()
    restored(inputs)
    restored.set_weights(layer.get_weights())
    np.testing.assert_array_equal(restored(inputs).numpy(), expected)


def test_straight_through_round_binarizes_with_identity_gradient():
    x = tf.constant([0.2, 0.7, 0.49, 0.51])
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layers.straight_through_round(x)
        loss = tf.reduce_sum(y * tf.constant([1.0, 2.0, 3.0, 4.0]))
    np.testing.assert_array_equal(y.numpy(), [0.0, 1.0, 0.0, 1.0])
    np.testing.assert_array_equal(tape.gradient(loss, x).numpy(), [1.0, 2.0, 3.0, 4.0])


def test_residual_blocks_project_only_when_the_width_changes():
    image = keras.Input((8, 8, 4))
    same = keras.Model(image, layers.residual_conv_block(image, 4, "same"))
    wider = keras.Model(image, layers.residual_conv_block(image, 6, "wider"))
    assert "same_projection" not in [layer.name for layer in same.layers]
    assert wider.get_layer("wider_projection").kernel.shape == (1, 1, 4, 6)
    assert wider.output.shape == (None, 8, 8, 6)

    vector = keras.Input((5,))
    fc = keras.Model(vector, layers.residual_fc_block(vector, 7, keras.layers.ReLU, "fc"))
    assert fc.output.shape == (None, 7)
    assert fc.get_layer("fc_projection").kernel.shape == (5, 7)
    # With zero weights the block is the identity: the skip really bypasses the two layers.
    identity = keras.Model(vector, layers.residual_fc_block(vector, 5, keras.layers.ReLU, "id"))
    for weight in identity.weights:
        weight.assign(np.zeros(weight.shape, "float32"))
    x = np.arange(10, dtype="float32").reshape(2, 5)
    np.testing.assert_array_equal(identity(x).numpy(), x)


# --- model shapes at every preset -------------------------------------------------------------------


def _expected_sizes(cfg):
    if cfg.scale == "full":
        return FULL_SIZES[cfg.data.name]
    m = cfg.model
    return {"image": (cfg.data.height, cfg.data.width), "fg": m.fg_embedding_dim,
            "bg": m.bg_embedding_dim if cfg.data.has_background else None, "pose": m.pose_embedding_dim}


def _factors(cfg):
    return ["fg", "bg", "pose"] if cfg.data.has_background else ["fg", "pose"]


@pytest.mark.parametrize("dataset", configs.DATASETS)
@pytest.mark.parametrize("scale", configs.SCALES)
def test_every_model_has_the_preset_shapes(dataset, scale):
    cfg = configs.get_config(dataset, scale)
    sizes = _expected_sizes(cfg)
    height, width = sizes["image"]
    appearance_dim = sizes["fg"] + (sizes["bg"] or 0)
    stage1 = build_stage1(cfg)
    reconstructor = build_reconstructor(stage1)
    mappers = {f: build_mapper(cfg, f) for f in _factors(cfg)}
    critics = {f: build_critic(cfg, f) for f in _factors(cfg)}

    embeddings = stage1.appearance_encoder.output
    assert sorted(embeddings) == sorted(f"{f}_embedding" for f in ("fg", "bg") if sizes[f])
    assert embeddings["fg_embedding"].shape == (None, sizes["fg"])
    if sizes["bg"]:
        assert embeddings["bg_embedding"].shape == (None, sizes["bg"])
    assert stage1.generator.input["appearance_embedding"].shape == (None, appearance_dim)
    assert stage1.generator.output.shape == (None, height, width, 3)
    assert reconstructor.output.shape == (None, height, width, 3)
    assert stage1.d1.output.shape == (None, 1)
    assert stage1.pose_encoder.output.shape == (None, sizes["pose"])
    assert stage1.pose_decoder.output.shape == (None, 54)
    for factor in _factors(cfg):
        assert mappers[factor].input.shape == mappers[factor].output.shape == (None, sizes[factor])
        assert critics[factor].input.shape == (None, sizes[factor])
        assert critics[factor].output.shape == (None, 1)

    # Full DeepFashion (256x256, 7 levels) is too slow on a CPU for a unit test: symbolic shapes only.
    if (dataset, scale) == ("deepfashion", "full"):
        return
    assert reconstructor(_zeros_like_inputs(reconstructor)).shape == (1, height, width, 3)
    assert stage1.d1(np.zeros((1, height, width, 3), "float32")).shape == (1, 1)
    pose = stage1.pose_decoder(stage1.pose_encoder(np.zeros((1, 54), "float32")))
    assert pose.shape == (1, 54)
    for factor in _factors(cfg):
        sample = mappers[factor](np.zeros((1, sizes[factor]), "float32"))
        assert critics[factor](sample).shape == (1, 1)


def test_full_market_appearance_encoder_size():
    cfg = configs.get_config("market", "full")
    stage1 = build_stage1(cfg)
    reconstructor = build_reconstructor(stage1)
    # The reconstructor shares the stage-I weights rather than copying them.
    assert reconstructor.count_params() == (stage1.appearance_encoder.count_params()
                                            + stage1.generator.count_params())
    encoder = stage1.appearance_encoder
    assert {layer.name for layer in encoder.layers} >= {"first_block", "fg_encoder", "bg_encoder"}
    assert encoder.get_layer("fg_encoder").get_layer("roi_encoder").input.shape == (None, 48, 48, 128)
    # Two encoders of 5 residual levels (128..640) dominate: about 47M parameters (paper Fig. 10a-b).
    assert 40e6 < encoder.count_params() < 55e6


@pytest.mark.parametrize("dataset", ["market", "deepfashion"])
def test_whole_body_variant_keeps_the_embedding_sizes(dataset, rng):
    cfg = configs.override(configs.get_config(dataset, "tiny"), fg_encoder="whole")
    encoder = build_appearance_encoder(cfg)
    fg_encoder = encoder.get_layer("fg_encoder")
    assert "roi_align" not in [layer.name for layer in fg_encoder.layers]
    out = encoder(_random_like_inputs(encoder, rng))
    assert out["fg_embedding"].shape == (2, cfg.model.fg_embedding_dim)
    assert ("bg_embedding" in out) == cfg.data.has_background
    image = build_generator(cfg)({"appearance_embedding": appearance_embedding(out),
                                  "heatmaps": tf.zeros((2, cfg.data.height, cfg.data.width, 18))})
    assert image.shape == (2, cfg.data.height, cfg.data.width, 3)


def test_invisible_roi_has_a_zero_embedding(rng):
    cfg = configs.get_config("market", "tiny")
    encoder = build_fg_encoder(cfg)
    dim = cfg.model.roi_embedding_dim
    inputs = _random_like_inputs(encoder, rng, batch=1)
    inputs["roi_boxes"] = tf.constant(_random_boxes(rng, 1, 7).clip(0, 1))
    inputs["roi_visibility"] = tf.constant([[1, 0, 1, 1, 1, 1, 0]], tf.float32)
    per_roi = encoder(inputs).numpy().reshape(7, dim)
    np.testing.assert_array_equal(per_roi[[1, 6]], 0.0)
    assert np.all(np.abs(per_roi[[0, 2, 3, 4, 5]]).sum(axis=1) > 0)


def test_fg_encoder_reads_each_roi_from_its_own_box(rng):
    cfg = configs.get_config("market", "tiny")
    encoder = build_fg_encoder(cfg)
    dim = cfg.model.roi_embedding_dim
    inputs = _random_like_inputs(encoder, rng, batch=1)
    boxes = np.tile(np.array([0.0, 0.0, 0.5, 1.0], "float32"), (1, 7, 1))
    boxes[0, 3] = [0.5, 0.0, 1.0, 1.0]
    inputs["roi_boxes"] = tf.constant(boxes)
    inputs["roi_visibility"] = tf.ones((1, 7))
    per_roi = encoder(inputs).numpy().reshape(7, dim)
    np.testing.assert_allclose(per_roi[0], per_roi[6], rtol=1e-5, atol=1e-6)
    assert not np.allclose(per_roi[0], per_roi[3], atol=1e-4)


def test_fg_encoder_saves_and_loads(tmp_path, rng):
    encoder = build_fg_encoder(configs.get_config("market", "tiny"))
    inputs = _random_like_inputs(encoder, rng, batch=1)
    path = tmp_path / "fg_encoder.keras"
    encoder.save(path)
    restored = keras.saving.load_model(path)
    np.testing.assert_allclose(restored(inputs).numpy(), encoder(inputs).numpy(), atol=1e-6)


def test_reconstructor_is_the_composition_of_the_stage1_models(rng):
    stage1 = build_stage1(configs.get_config("synthetic", "tiny"))
    reconstructor = build_reconstructor(stage1)
    inputs = _random_like_inputs(reconstructor, rng)
    embeddings = stage1.appearance_encoder({k: v for k, v in inputs.items() if k != "heatmaps"})
    expected = stage1.generator({"appearance_embedding": appearance_embedding(embeddings),
                                 "heatmaps": inputs["heatmaps"]})
    np.testing.assert_allclose(reconstructor(inputs).numpy(), expected.numpy(), atol=1e-5)


def test_appearance_depends_on_the_mask_split(rng):
    cfg = configs.get_config("market", "tiny")
    encoder = build_appearance_encoder(cfg)
    inputs = _random_like_inputs(encoder, rng, batch=1)
    inputs["body_mask"] = tf.zeros_like(inputs["body_mask"])
    out = encoder(inputs)
    changed = dict(inputs, image=inputs["image"] + 0.5)
    out_changed = encoder(changed)
    # With an empty mask the FG branch sees only zeros, whatever the image, and BG sees the image.
    np.testing.assert_allclose(out["fg_embedding"].numpy(), out_changed["fg_embedding"].numpy(), atol=1e-6)
    assert not np.allclose(out["bg_embedding"].numpy(), out_changed["bg_embedding"].numpy(), atol=1e-4)


def test_pose_decoder_outputs_binary_visibility_with_a_gradient(rng):
    cfg = configs.get_config("market", "tiny")
    decoder = build_pose_decoder(cfg)
    embedding = tf.constant(rng.normal(size=(4, cfg.model.pose_embedding_dim)).astype("float32"))
    with tf.GradientTape() as tape:
        pose = decoder(embedding)
        visibility_sum = tf.reduce_sum(pose[:, 36:])
    assert set(np.unique(pose[:, 36:].numpy())) <= {0.0, 1.0}
    kernel = decoder.get_layer("visibility_probability").kernel
    grad = tape.gradient(visibility_sum, kernel)
    assert grad is not None and np.abs(grad.numpy()).sum() > 0


def test_background_models_are_refused_without_a_background():
    cfg = configs.get_config("deepfashion", "tiny")
    with pytest.raises(ValueError, match="bg"):
        build_mapper(cfg, "bg")
    with pytest.raises(ValueError, match="bg"):
        build_critic(cfg, "bg")
    with pytest.raises(ValueError, match="background"):
        build_bg_encoder(cfg)
    with pytest.raises(ValueError, match="factor"):
        build_mapper(cfg, "hair")


def test_generator_rejects_sizes_the_unet_cannot_halve():
    cfg = configs.override(configs.get_config("market", "tiny"), height=60)
    with pytest.raises(ValueError, match="60x32"):
        build_generator(cfg)


# --- mixed precision ------------------------------------------------------------------------------

@pytest.mark.usefixtures("mixed_bfloat16")
def test_mixed_bfloat16_models_return_float32(rng):
    cfg = configs.get_config("market", "tiny")
    stage1 = build_stage1(cfg)
    reconstructor = build_reconstructor(stage1)
    first_conv = stage1.appearance_encoder.get_layer("first_block").get_layer("conv")
    assert first_conv.compute_dtype == "bfloat16"

    image = reconstructor(_random_like_inputs(reconstructor, rng))
    embeddings = stage1.appearance_encoder(_random_like_inputs(stage1.appearance_encoder, rng))
    outputs = [image, stage1.d1(image), stage1.pose_decoder(stage1.pose_encoder(np.zeros((2, 54), "float32"))),
               *embeddings.values()]
    for factor in _factors(cfg):
        dim = cfg.model.embedding_dim(factor)
        outputs.append(build_critic(cfg, factor)(build_mapper(cfg, factor)(np.zeros((2, dim), "float32"))))
    for out in outputs:
        assert out.dtype == tf.float32
        assert np.all(np.isfinite(out.numpy()))


def test_d1_batch_norm_trains_in_training_mode_only(rng):
    d1 = build_d1(configs.get_config("market", "tiny"))
    images = rng.uniform(-1, 1, (4, 64, 32, 3)).astype("float32")
    moving_mean = d1.get_layer("bn1").moving_mean
    before = moving_mean.numpy().copy()
    d1(images, training=False)
    np.testing.assert_array_equal(moving_mean.numpy(), before)
    d1(images, training=True)
    assert not np.allclose(moving_mean.numpy(), before)


def _conv_and_gradients(layer, vector, other, weights=None):
    """The layer's output on concat(tile(vector), other) and the gradients of a weighted sum of it."""
    height, width = other.shape[1:3]
    with tf.GradientTape() as tape:
        tape.watch([vector, other])
        inputs = tf.concat([tf.tile(vector[:, None, None], [1, height, width, 1]), other], axis=-1)
        outputs = layer(inputs)
        if weights is not None:
            layer.set_weights(weights)
            outputs = layer(inputs)
        loss_weights = tf.constant(np.random.default_rng(1).normal(size=outputs.shape), tf.float32)
        loss = tf.reduce_sum(tf.cast(outputs, tf.float32) * loss_weights)
    results = [outputs, *tape.gradient(loss, [vector, other, layer.kernel, layer.bias])]
    return [tf.cast(t, tf.float32).numpy() for t in results]


TILED_CASES = pytest.mark.parametrize("height, width, kernel", [(6, 5, 3), (2, 1, 3), (7, 4, 5), (4, 4, 2)])


def _tiled_case(height, width, kernel):
    """(vector, other, the float32 Conv2D's weights, its outputs and gradients) of one case."""
    rng = np.random.default_rng(0)
    vector = tf.constant(rng.normal(size=(3, 4)), tf.float32)
    other = tf.constant(rng.normal(size=(3, height, width, 2)), tf.float32)
    conv = keras.layers.Conv2D(5, kernel, padding="same", activation="relu")
    truth = _conv_and_gradients(conv, vector, other)
    return vector, other, conv.get_weights(), truth


@TILED_CASES
def test_tiled_input_conv_equals_conv2d_on_a_tiled_input(height, width, kernel):
    vector, other, weights, truth = _tiled_case(height, width, kernel)
    for actual, expected in zip(_conv_and_gradients(
            layers.TiledInputConv2D(4, 5, kernel, activation="relu"), vector, other, weights), truth):
        np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())


@pytest.mark.bf16
@TILED_CASES
def test_tiled_input_conv_under_mixed_bfloat16_is_no_less_accurate_than_conv2d(height, width, kernel):
    """Both against float32: the tiled stem loses no more to bf16 than the Conv2D it replaces."""
    vector, other, weights, truth = _tiled_case(height, width, kernel)
    with precision.global_policy("mixed_bfloat16"):
        errors = [[np.abs(a - t).max() / np.abs(t).max() for a, t in zip(_conv_and_gradients(
            layer, vector, other, weights), truth)] for layer in (
            keras.layers.Conv2D(5, kernel, padding="same", activation="relu"),
            layers.TiledInputConv2D(4, 5, kernel, activation="relu"))]
    for conv_error, tiled_error in zip(*errors):
        assert tiled_error <= max(1.5 * conv_error, 1e-2)


def test_generator_restores_a_checkpoint_of_the_plain_conv2d_stem():
    # TiledInputConv2D replaced keras.layers.Conv2D as the stem: generator checkpoints written with
    # the plain layer (same variables, same position) must restore and give the same image.
    cfg = configs.get_config("market", "micro")
    generator = build_generator(cfg)

    def plain_stem(layer):
        if isinstance(layer, layers.TiledInputConv2D):
            config = {k: v for k, v in layer.get_config().items() if k != "constant_channels"}
            return keras.layers.Conv2D(**config, padding="same")
        return layer.__class__.from_config(layer.get_config())

    plain = keras.models.clone_model(generator, clone_function=plain_stem)
    assert type(plain.get_layer("stem")) is keras.layers.Conv2D
    path = tf.train.Checkpoint(generator=plain).save(os.path.join(tempfile.mkdtemp(), "ckpt"))
    tf.train.Checkpoint(generator=generator).restore(path).assert_consumed()
    rng = np.random.default_rng(0)
    inputs = {"appearance_embedding": rng.normal(size=(2, cfg.model.appearance_embedding_dim)).astype("float32"),
              "heatmaps": rng.choice([-1.0, 1.0], size=(2, cfg.data.height, cfg.data.width, 18)).astype("float32")}
    np.testing.assert_allclose(generator(inputs).numpy(), plain(inputs).numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("up_path", [False, True])
def test_the_up_path_reads_the_appearance_only_when_configured(up_path, rng):
    """With the stem's appearance weights zeroed, the image depends on the embedding only through the up path."""
    cfg = configs.override(configs.get_config("synthetic", "micro"), appearance_in_up_path=up_path)
    generator = build_generator(cfg)
    stem = generator.get_layer("stem")
    kernel = stem.kernel.numpy()
    kernel[:, :, :cfg.model.appearance_embedding_dim, :] = 0.0
    stem.kernel.assign(kernel)
    heatmaps = np.where(rng.random((1, cfg.data.height, cfg.data.width, 18)) < 0.1, 1.0, -1.0).astype(np.float32)
    images = [np.asarray(generator({"appearance_embedding": rng.normal(size=(1, cfg.model.appearance_embedding_dim))
                                    .astype(np.float32), "heatmaps": heatmaps})) for _ in range(2)]
    changed = np.abs(images[0] - images[1]).max()
    if up_path:
        assert changed > 1e-3
        assert [layer.name for layer in generator.layers if layer.name.endswith("_tile_appearance")] == [
            f"up{level}_tile_appearance" for level in reversed(range(len(cfg.model.generator_channels)))]
    else:
        assert changed == 0.0
