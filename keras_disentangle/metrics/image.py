"""Paired image-quality metrics: SSIM, mask-SSIM and region L1, as pure NumPy functions.

Every function scores a batch of generated images against a batch of targets and returns one
value per image (`(batch,)`, float64); the caller averages. Images are either uint8 in [0, 255] or
float in [-1, 1] (the models' output range), shaped `(batch, height, width, 3)`; SSIM converts
floats with `to_uint8` first, because both reference protocols scored 8-bit files read from disk.

Two SSIM protocols exist in the literature and give very different numbers for the same images,
so every SSIM function takes `protocol`:

* `"original"`: what the paper (and PG2, by the same authors) ran, i.e. skimage's old
  `compare_ssim` with its defaults: a 7x7 uniform window and the sample covariance
  (`use_sample_covariance=True`, K1 = 0.01, K2 = 0.03).
  - SSIM (`score.py`): on grayscale. Each uint8 RGB image is converted with
    `skimage.color.rgb2gray`, i.e. scaled to [0, 1] and weighted 0.2125 R + 0.7154 G + 0.0721 B
    (float64); `data_range` is the target's gray max - min.
  - mask-SSIM (`score_mask.py`): on colour. Both uint8 images are multiplied by the binary mask,
    then scored per channel and averaged (`multichannel=True`), `data_range` = 255 (the uint8
    dtype range skimage picks when none is given).
  Published numbers: Ma et al. 2018 Market-1501 SSIM 0.099 and mask-SSIM 0.614, DeepFashion SSIM
  0.614; PG2 (Ma et al. 2017) Market 0.253 / 0.792, DeepFashion 0.762.
* `"gaussian"`: the Pose-Transfer toolkit (`tool/getMetrics_*.py`, inherited from Deformable GAN),
  which the later pose-transfer papers use: colour uint8 images, an 11x11 Gaussian window
  (`gaussian_weights=True, sigma=1.5`), the population covariance
  (`use_sample_covariance=False`), per-channel SSIM averaged (`channel_axis=-1`) and
  `data_range` = the generated image's max - min (about 255 for natural images; the toolkit
  computes it per image this way, not as the fixed 255). Its mask-SSIM multiplies both images by
  the *target's* body mask.

Reference: Ma et al., "Disentangled Person Image Generation", CVPR 2018, Sec. 5 (Table 1, 2).
"""

from __future__ import annotations

import numpy as np
from skimage.color import rgb2gray
from skimage.metrics import structural_similarity

from keras_disentangle import configs
from keras_disentangle.data.visualize import to_uint8  # noqa: F401 (the one conversion; scored images use it)

SSIM_PROTOCOLS = tuple(protocol.value for protocol in configs.SsimProtocol)

# skimage's old `compare_ssim` defaults, which the paper's scripts relied on.
_ORIGINAL_WINDOW = 7
# The Pose-Transfer toolkit's Gaussian window.
_GAUSSIAN_SIGMA = 1.5


def _to_unit(images) -> np.ndarray:
    """uint8 [0, 255] or float [-1, 1] -> float64 [0, 1], without quantizing floats."""
    images = np.asarray(images)
    if images.dtype == np.uint8:
        return images.astype(np.float64) / 255.0
    if not np.issubdtype(images.dtype, np.floating):
        raise ValueError(
            f"images: expected uint8 in [0, 255] or float in [-1, 1], got dtype {images.dtype}.")
    return (images.astype(np.float64) + 1.0) / 2.0


def _check_pair(generated, target) -> tuple[np.ndarray, np.ndarray]:
    generated, target = np.asarray(generated), np.asarray(target)
    if generated.ndim != 4 or generated.shape[-1] != 3:
        raise ValueError(
            f"generated: expected shape (batch, height, width, 3), got {generated.shape}.")
    if target.shape != generated.shape:
        raise ValueError(
            f"target: expected the shape of generated {generated.shape}, got {target.shape}.")
    return generated, target


def _check_mask(mask, image_shape) -> np.ndarray:
    """Returns the mask as float64 `(batch, height, width, 1)` with values in [0, 1]."""
    mask = np.asarray(mask)
    if mask.ndim == 3:
        mask = mask[..., np.newaxis]
    if mask.shape != tuple(image_shape[:3]) + (1,):
        raise ValueError(
            f"mask: expected shape {tuple(image_shape[:3])} or {tuple(image_shape[:3]) + (1,)}, "
            f"got {np.asarray(mask).shape}.")
    mask = mask.astype(np.float64)
    if mask.size and (mask.min() < 0.0 or mask.max() > 1.0):
        raise ValueError(
            f"mask: expected values in [0, 1], got [{mask.min()}, {mask.max()}] "
            "(divide a 0/255 mask image by 255).")
    return mask


def _check_protocol(protocol: str) -> None:
    if protocol not in SSIM_PROTOCOLS:
        raise ValueError(f"protocol: expected one of {SSIM_PROTOCOLS}, got {protocol!r}.")


def _gaussian_ssim(generated: np.ndarray, target: np.ndarray, index: int) -> float:
    data_range = float(generated.max()) - float(generated.min())
    if data_range == 0:
        raise ValueError(
            f"generated[{index}]: the 'gaussian' protocol takes data_range from the generated "
            "image's max - min, which is 0 for this constant image.")
    return structural_similarity(
        target, generated, gaussian_weights=True, sigma=_GAUSSIAN_SIGMA,
        use_sample_covariance=False, channel_axis=-1, data_range=data_range)


def ssim(generated, target, protocol: str = "original") -> np.ndarray:
    """SSIM of each generated image against its target.

    `"original"` scores grayscale images with a 7x7 uniform window and `data_range` = the target's
    gray max - min: the protocol of the paper's Market SSIM 0.099 and DeepFashion SSIM 0.614.
    `"gaussian"` scores colour with the Pose-Transfer toolkit's Gaussian window; the later
    pose-transfer papers report this one. See the module docstring for every parameter.

    Args:
      generated: `(batch, height, width, 3)`, uint8 or float in [-1, 1].
      target: same shape as `generated`, uint8 or float in [-1, 1].
      protocol: str. `"original"` or `"gaussian"`. Defaults to `"original"`.

    Returns:
      float64 array `(batch,)`: SSIM in [-1, 1], 1 for identical images.

    Raises:
      ValueError: if the shapes differ or are not `(batch, height, width, 3)`, if `protocol` is
        unknown, or if an image is constant where its range sets `data_range` (target gray for
        `"original"`, generated for `"gaussian"`).
    """
    _check_protocol(protocol)
    generated, target = _check_pair(generated, target)
    generated, target = to_uint8(generated), to_uint8(target)
    scores = np.empty(len(generated), dtype=np.float64)
    for i, (gen, tgt) in enumerate(zip(generated, target)):
        if protocol == configs.SsimProtocol.GAUSSIAN:
            scores[i] = _gaussian_ssim(gen, tgt, i)
            continue
        gen_gray, tgt_gray = rgb2gray(gen), rgb2gray(tgt)
        data_range = float(tgt_gray.max() - tgt_gray.min())
        if data_range == 0:
            raise ValueError(
                f"target[{i}]: the 'original' protocol takes data_range from the target's gray "
                "max - min, which is 0 for this constant image.")
        scores[i] = structural_similarity(
            gen_gray, tgt_gray, win_size=_ORIGINAL_WINDOW, gaussian_weights=False,
            use_sample_covariance=True, data_range=data_range)
    return scores


def mask_ssim(generated, target, mask, protocol: str = "original") -> np.ndarray:
    """SSIM of each generated image against its target, both multiplied by a binary mask first.

    Masking happens on the uint8 images, as both reference scripts did, so the background of
    both images becomes 0 and still counts in the mean (it scores as identical).

    `"original"` scores colour (not gray, unlike `ssim`) with a 7x7 uniform window and
    `data_range` = 255: the protocol of the paper's Market mask-SSIM 0.614 (PG2: 0.792).
    `"gaussian"` is the Pose-Transfer toolkit's mask-SSIM.

    Whose mask to pass is the caller's choice, and it matters. The toolkit masks with the
    target's pose. The paper's tester saved the *source* image's mask (`mask_r6` of the input,
    not of `x_target`) into the folder that `score_mask.py` reads: a known bug, so the published
    0.614 / 0.792 were measured under the source's mask. Pass the target's mask for a correct
    score, the source's to reproduce the published protocol.

    Args:
      generated: `(batch, height, width, 3)`, uint8 or float in [-1, 1].
      target: same shape as `generated`, uint8 or float in [-1, 1].
      mask: `(batch, height, width)` or `(batch, height, width, 1)`, values in {0, 1} (bool,
        integer or float).
      protocol: str. `"original"` or `"gaussian"`. Defaults to `"original"`.

    Returns:
      float64 array `(batch,)`: SSIM of the masked images.

    Raises:
      ValueError: on mismatched shapes, mask values outside [0, 1], an unknown `protocol`, or a
        masked generated image that is constant under `"gaussian"`.
    """
    _check_protocol(protocol)
    generated, target = _check_pair(generated, target)
    mask = _check_mask(mask, generated.shape)
    # uint8(mask * image) as in both scripts; a fractional mask value truncates like theirs.
    masked_generated = (mask * to_uint8(generated)).astype(np.uint8)
    masked_target = (mask * to_uint8(target)).astype(np.uint8)
    scores = np.empty(len(generated), dtype=np.float64)
    for i, (gen, tgt) in enumerate(zip(masked_generated, masked_target)):
        if protocol == configs.SsimProtocol.GAUSSIAN:
            scores[i] = _gaussian_ssim(gen, tgt, i)
        else:
            scores[i] = structural_similarity(
                gen, tgt, win_size=_ORIGINAL_WINDOW, gaussian_weights=False,
                use_sample_covariance=True, channel_axis=-1, data_range=255)
    return scores


def region_l1(generated, target, mask=None) -> np.ndarray:
    """Mean absolute error in [0, 1] units over the pixels where `mask` is 1, per image.

    Both images are mapped to [0, 1] (uint8 / 255, float (x + 1) / 2; floats are not quantized)
    and the error is averaged over the selected pixels and the 3 channels. A fractional mask
    weights pixels. This is the region L1 the project uses to score foreground/background swaps
    and pose transfer against ground truth (`REFERENCE.md`, "Measured on these machines").

    Args:
      generated: `(batch, height, width, 3)`, uint8 or float in [-1, 1].
      target: same shape as `generated`, uint8 or float in [-1, 1].
      mask: `(batch, height, width)` or `(batch, height, width, 1)`, values in [0, 1], or None
        for the whole image. Defaults to None.

    Returns:
      float64 array `(batch,)` in [0, 1].

    Raises:
      ValueError: on mismatched shapes, mask values outside [0, 1], or an image whose mask is
        all zero (the mean over no pixel is undefined).
    """
    generated, target = _check_pair(generated, target)
    error = np.abs(_to_unit(generated) - _to_unit(target))
    if mask is None:
        return error.mean(axis=(1, 2, 3))
    mask = _check_mask(mask, generated.shape)
    weight = mask.sum(axis=(1, 2, 3))
    empty = np.flatnonzero(weight == 0)
    if empty.size:
        raise ValueError(
            f"mask: image {int(empty[0])} has an empty mask; region L1 needs at least one pixel.")
    return (error * mask).sum(axis=(1, 2, 3)) / (weight * error.shape[-1])


def laplacian_energy(images) -> np.ndarray:
    """Mean squared response of the 3x3 Laplacian (4-neighbour), per image: high-frequency energy.

    Images are mapped to [0, 1] as in `region_l1`; the Laplacian runs per channel over the interior
    pixels (no padding, so borders add no edges of their own). A blur lowers it, sharp detail and
    noise raise it.

    Args:
      images: `(batch, height, width, 3)`, uint8 or float in [-1, 1]; height and width at least 3.

    Returns:
      float64 array `(batch,)`.
    """
    images = _to_unit(_check_pair(images, images)[0])
    if min(images.shape[1:3]) < 3:
        raise ValueError(f"images: the 3x3 Laplacian needs at least 3x3 pixels, got {images.shape[1:3]}.")
    centre = images[:, 1:-1, 1:-1]
    response = (images[:, :-2, 1:-1] + images[:, 2:, 1:-1] + images[:, 1:-1, :-2] + images[:, 1:-1, 2:]
                - 4.0 * centre)
    return np.square(response).mean(axis=(1, 2, 3))


def sharpness_ratio(generated, target) -> float:
    """High-frequency energy of the generated set over the target set's (`laplacian_energy` summed).

    1 means the outputs carry as much fine detail as the photos they should match; an L1-trained
    generator, which averages what it cannot predict, scores below 1. The ratio of sums, not the
    mean of per-image ratios, so that flat targets with almost no energy do not dominate.
    """
    generated, target = _check_pair(generated, target)
    return float(laplacian_energy(generated).sum() / laplacian_energy(target).sum())
