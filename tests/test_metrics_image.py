"""Tests for keras_disentangle.metrics.image: SSIM protocols, mask-SSIM, region L1."""

import numpy as np
import pytest

from keras_disentangle.metrics import image

PROTOCOLS = image.SSIM_PROTOCOLS


def _random_pair(rng, shape=(3, 24, 16, 3)):
    target = rng.integers(0, 256, size=shape, dtype=np.uint8)
    noise = rng.integers(-40, 41, size=shape)
    generated = np.clip(target.astype(int) + noise, 0, 255).astype(np.uint8)
    return generated, target


def test_to_uint8_round_trips_and_clips():
    values = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1).repeat(3, axis=-1)
    as_float = values.astype(np.float32) / 127.5 - 1.0
    np.testing.assert_array_equal(image.to_uint8(as_float), values)
    np.testing.assert_array_equal(image.to_uint8(np.array([-1.5, -1.0, 0.0, 1.0, 2.0])),
                                  [0, 0, 128, 255, 255])
    assert image.to_uint8(values) is values
    with pytest.raises(ValueError, match="images: expected uint8"):
        image.to_uint8(np.zeros(3, dtype=np.int32))


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_ssim_of_identical_images_is_one(rng, protocol):
    images = rng.integers(0, 256, size=(2, 20, 12, 3), dtype=np.uint8)
    np.testing.assert_allclose(image.ssim(images, images.copy(), protocol=protocol), 1.0)
    floats = images / 127.5 - 1.0
    np.testing.assert_allclose(image.ssim(floats, floats, protocol=protocol), 1.0)


def test_original_ssim_matches_hand_computed_single_window():
    # A 7x7 image holds exactly one 7x7 window, so the mean SSIM is the textbook formula on the
    # whole image: gray = 0.2125 R + 0.7154 G + 0.0721 B in [0, 1], sample (N - 1) covariance,
    # L = the target's gray range.
    rng = np.random.default_rng(3)
    generated = rng.integers(0, 256, size=(1, 7, 7, 3), dtype=np.uint8)
    target = rng.integers(60, 200, size=(1, 7, 7, 3), dtype=np.uint8)
    weights = np.array([0.2125, 0.7154, 0.0721])
    x = (generated[0] / 255.0) @ weights
    y = (target[0] / 255.0) @ weights
    data_range = y.max() - y.min()
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mx, my = x.mean(), y.mean()
    vx, vy = x.var(ddof=1), y.var(ddof=1)
    cxy = ((x - mx) * (y - my)).sum() / (x.size - 1)
    expected = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    np.testing.assert_allclose(image.ssim(generated, target, protocol="original"), [expected],
                               rtol=1e-10)


def test_gaussian_ssim_matches_hand_computed_single_window():
    # An 11x11 image holds exactly one window of the sigma 1.5 Gaussian (radius 5): weighted
    # means and population (co)variances per channel, averaged over the 3 channels, with
    # L = the generated image's max - min.
    rng = np.random.default_rng(4)
    generated = rng.integers(0, 256, size=(1, 11, 11, 3), dtype=np.uint8)
    target = rng.integers(0, 256, size=(1, 11, 11, 3), dtype=np.uint8)
    taps = np.exp(-np.arange(-5, 6) ** 2 / (2 * 1.5**2))
    window = np.outer(taps, taps) / np.outer(taps, taps).sum()
    data_range = float(generated.max()) - float(generated.min())
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    per_channel = []
    for c in range(3):
        x, y = generated[0, ..., c].astype(float), target[0, ..., c].astype(float)
        mx, my = (window * x).sum(), (window * y).sum()
        vx, vy = (window * x * x).sum() - mx**2, (window * y * y).sum() - my**2
        cxy = (window * x * y).sum() - mx * my
        per_channel.append(((2 * mx * my + c1) * (2 * cxy + c2))
                           / ((mx**2 + my**2 + c1) * (vx + vy + c2)))
    np.testing.assert_allclose(image.ssim(generated, target, protocol="gaussian"),
                               [np.mean(per_channel)], rtol=1e-6)


def _reference_ssim(x, y, window, data_range, sample_covariance):
    """Mean SSIM of two 2-D float images over every window that fits inside them, written out.

    `window` holds the weights of one window (summing to 1); the (co)variances are the weighted
    population ones, times N / (N - 1) for the sample covariance of a uniform window of N pixels.
    Independent of skimage: a direct transcription of Wang et al. (2004), Eq. 13, with K1 = 0.01,
    K2 = 0.03 and the mean over valid window positions (what skimage's border crop amounts to).
    """
    from numpy.lib.stride_tricks import sliding_window_view

    k = window.shape[0]
    xs, ys = sliding_window_view(x, (k, k)), sliding_window_view(y, (k, k))

    def weighted(a):
        return np.einsum("ijkl,kl->ij", a, window)

    mx, my = weighted(xs), weighted(ys)
    vx, vy = weighted(xs * xs) - mx**2, weighted(ys * ys) - my**2
    cxy = weighted(xs * ys) - mx * my
    if sample_covariance:
        n = window.size
        vx, vy, cxy = (v * n / (n - 1) for v in (vx, vy, cxy))
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    score = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return float(score.mean())


UNIFORM_7 = np.full((7, 7), 1 / 49)
_TAPS = np.exp(-np.arange(-5, 6) ** 2 / (2 * 1.5**2))
GAUSSIAN_11 = np.outer(_TAPS, _TAPS) / np.outer(_TAPS, _TAPS).sum()


def _reference_score_py(generated, target):
    """The authors' score.py rule: gray via rgb2gray, data_range = the target's gray max - min."""
    from skimage.color import rgb2gray

    gen, tgt = rgb2gray(generated), rgb2gray(target)
    return _reference_ssim(gen, tgt, UNIFORM_7, tgt.max() - tgt.min(), sample_covariance=True)


def _photo_pairs(fixtures_dir, count=4, size=(128, 64)):
    """Real photos as targets, each against a blurred, shifted and noised copy of itself."""
    from PIL import Image, ImageFilter

    paths = sorted((fixtures_dir / "market1501_mini" / "bounding_box_train").glob("*.jpg"))[:count]
    rng = np.random.default_rng(5)
    generated, target = [], []
    for path in paths:
        photo = Image.open(path).convert("RGB").resize(size[::-1])
        degraded = np.asarray(photo.filter(ImageFilter.GaussianBlur(1.2)), dtype=int)
        degraded = np.roll(degraded, 1, axis=1) + rng.integers(-20, 21, size=degraded.shape)
        generated.append(np.clip(degraded, 0, 255).astype(np.uint8))
        target.append(np.asarray(photo))
    return np.stack(generated), np.stack(target)


def test_original_ssim_matches_a_direct_numpy_implementation(rng, fixtures_dir):
    for generated, target in (_random_pair(rng), _photo_pairs(fixtures_dir)):
        expected = [_reference_score_py(g, t) for g, t in zip(generated, target)]
        np.testing.assert_allclose(image.ssim(generated, target, protocol="original"), expected, rtol=1e-9)


def test_gaussian_ssim_matches_a_direct_numpy_implementation(rng, fixtures_dir):
    for generated, target in (_random_pair(rng), _photo_pairs(fixtures_dir)):
        expected = [np.mean([_reference_ssim(g[..., c].astype(float), t[..., c].astype(float), GAUSSIAN_11,
                                             float(g.max()) - float(g.min()), sample_covariance=False)
                             for c in range(3)])
                    for g, t in zip(generated, target)]
        actual = image.ssim(generated, target, protocol="gaussian")
        np.testing.assert_allclose(actual, expected, rtol=1e-9)
        assert np.all(np.abs(image.ssim(generated, target, protocol="original") - actual) > 1e-3)


def test_mask_ssim_matches_a_direct_numpy_implementation(rng):
    generated, target = _random_pair(rng)
    full = np.ones(generated.shape[:3])
    np.testing.assert_allclose(image.mask_ssim(generated, target, full, protocol="gaussian"),
                               image.ssim(generated, target, protocol="gaussian"))
    # The original mask-SSIM is colour with the 7x7 window and data_range 255 (score_mask.py).
    mask = np.zeros(generated.shape[:3] + (1,))
    mask[:, 4:20, 3:12] = 1
    expected = [np.mean([_reference_ssim((m * g)[..., c], (m * t)[..., c], UNIFORM_7, 255, sample_covariance=True)
                         for c in range(3)])
                for g, t, m in zip(generated.astype(float), target.astype(float), mask)]
    np.testing.assert_allclose(image.mask_ssim(generated, target, mask, protocol="original"), expected, rtol=1e-9)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_mask_ssim_ignores_differences_outside_the_mask(rng, protocol):
    target = rng.integers(0, 256, size=(2, 24, 16, 3), dtype=np.uint8)
    generated = target.copy()
    generated[:, :, 10:] = 255 - generated[:, :, 10:]
    mask = np.zeros((2, 24, 16), dtype=bool)
    mask[:, :, :10] = True
    np.testing.assert_allclose(image.mask_ssim(generated, target, mask, protocol=protocol), 1.0)
    assert np.all(image.ssim(generated, target, protocol=protocol) < 0.9)


def test_region_l1_hand_values():
    generated = np.zeros((2, 2, 2, 3), dtype=np.uint8)
    target = np.zeros((2, 2, 2, 3), dtype=np.uint8)
    target[0, 0, 0] = 255          # one pixel fully wrong in image 0
    target[1, 1, 1, 0] = 51        # one channel of one pixel off by 0.2 in image 1
    np.testing.assert_allclose(image.region_l1(generated, target), [1 / 4, 0.2 / 12])
    mask = np.array([[[1, 1], [0, 0]], [[0, 0], [0, 1]]])
    np.testing.assert_allclose(image.region_l1(generated, target, mask), [1 / 2, 0.2 / 3])
    # Floats in [-1, 1] are the same images and are not quantized.
    np.testing.assert_allclose(
        image.region_l1(generated / 127.5 - 1.0, target / 127.5 - 1.0, mask[..., None]),
        [1 / 2, 0.2 / 3])
    np.testing.assert_allclose(
        image.region_l1(np.zeros((1, 1, 1, 3)), np.full((1, 1, 1, 3), 0.5)), [0.25])


def _message(call, *args, **kwargs) -> str:
    with pytest.raises(ValueError) as error:
        call(*args, **kwargs)
    return str(error.value)


def test_errors_name_the_argument_in_one_whole_line(rng):
    generated, target = _random_pair(rng)
    assert _message(image.ssim, generated, target, protocol="fancy") == (
        "protocol: expected one of ('original', 'gaussian'), got 'fancy'.")
    assert _message(image.ssim, generated, target[:, :-1]) == (
        "target: expected the shape of generated (3, 24, 16, 3), got (3, 23, 16, 3).")
    assert _message(image.region_l1, generated[..., 0], target[..., 0]) == (
        "generated: expected shape (batch, height, width, 3), got (3, 24, 16).")
    assert _message(image.ssim, generated[0], target[0]) == (  # 3 channels, but no batch axis
        "generated: expected shape (batch, height, width, 3), got (24, 16, 3).")
    assert _message(image.region_l1, generated.astype(np.int32), target.astype(np.int32)) == (
        "images: expected uint8 in [0, 255] or float in [-1, 1], got dtype int32.")
    assert _message(image.mask_ssim, generated, target, np.full(generated.shape[:3], 255)) == (
        "mask: expected values in [0, 1], got [255.0, 255.0] (divide a 0/255 mask image by 255).")
    above_one = np.zeros(generated.shape[:3])
    above_one[0, 0, 0] = 1.5
    assert _message(image.region_l1, generated, target, above_one) == (
        "mask: expected values in [0, 1], got [0.0, 1.5] (divide a 0/255 mask image by 255).")
    assert _message(image.region_l1, generated, target, np.ones(generated.shape[1:3])) == (
        "mask: expected shape (3, 24, 16) or (3, 24, 16, 1), got (24, 16).")
    mask = np.ones(generated.shape[:3])
    mask[1] = 0
    assert _message(image.region_l1, generated, target, mask) == (
        "mask: image 1 has an empty mask; region L1 needs at least one pixel.")
    flat = np.full_like(target, 7)
    assert _message(image.ssim, generated, flat, protocol="original") == (
        "target[0]: the 'original' protocol takes data_range from the target's gray max - min, which is 0 for "
        "this constant image.")
    assert _message(image.ssim, flat, target, protocol="gaussian") == (
        "generated[0]: the 'gaussian' protocol takes data_range from the generated image's max - min, which "
        "is 0 for this constant image.")
    assert _message(image.laplacian_energy, np.zeros((1, 2, 8, 3), np.uint8)) == (
        "images: the 3x3 Laplacian needs at least 3x3 pixels, got (2, 8).")


def test_region_l1_of_an_empty_batch_is_empty():
    # The mask's range is checked only when it holds a value: min() of an empty mask would raise.
    empty = np.zeros((0, 4, 4, 3), np.uint8)
    assert image.region_l1(empty, empty, np.zeros((0, 4, 4))).shape == (0,)


def test_laplacian_energy_known_answer(rng):
    images = rng.uniform(-1.0, 1.0, size=(2, 5, 4, 3))
    unit = (images + 1.0) / 2.0
    expected = np.zeros(2)
    for b in range(2):
        for y in range(1, 4):
            for x in range(1, 3):
                response = (unit[b, y - 1, x] + unit[b, y + 1, x] + unit[b, y, x - 1] + unit[b, y, x + 1]
                            - 4.0 * unit[b, y, x])
                expected[b] += np.square(response).sum() / (3 * 2 * 3)
    np.testing.assert_allclose(image.laplacian_energy(images), expected, rtol=1e-12)
    # 3x3 is enough: one interior pixel.
    impulse = np.zeros((1, 3, 3, 3), np.uint8)
    impulse[0, 1, 1] = 255
    np.testing.assert_allclose(image.laplacian_energy(impulse), [16.0])


def test_sharpness_ratio_is_one_for_identity_and_below_one_for_a_blur(rng):
    from scipy import ndimage

    target = rng.integers(0, 256, size=(4, 32, 16, 3), dtype=np.uint8)
    assert image.sharpness_ratio(target, target.copy()) == pytest.approx(1.0)
    blurred = ndimage.uniform_filter(target.astype(np.float64), size=(1, 3, 3, 1)).round().astype(np.uint8)
    assert image.sharpness_ratio(blurred, target) < 0.5
    # Floats in [-1, 1] and uint8 score the same images alike.
    assert image.sharpness_ratio(blurred / 127.5 - 1.0, target) == pytest.approx(
        image.sharpness_ratio(blurred, target), rel=1e-3)
