"""Leakage: where in the generated image each appearance code has influence.

For a generated image y = G(e, h) (e the appearance embedding, h the target pose's heatmaps) and
one block e_k of e (a body ROI's code, or the background code), the influence of e_k on pixel p is
the Frobenius norm of the Jacobian block J_pk = dy_p / de_k, shape `(3, dim_k)`. Summed over the
image it is the code's "mass"; the share of that mass inside the code's own region says how well
the code is disentangled: the head code should move the head's pixels, the background code the
pixels outside the body. The region is the ROI box in the *target* pose for an FG code (the box
`geometry.roi_boxes` gives the encoder, drawn at the generated pose) and the complement of the
target's body mask for the BG code. Each share is reported next to the region's area fraction,
the share a code whose influence is spread evenly would get.

Estimator: forward-mode Jacobian-vector products (`tf.autodiff.ForwardAccumulator`), one batched
forward pass per chunk of tangents. With `projections=0` the tangents are the block's basis vectors
and ||J_pk||_F^2 = sum_j |J_pk u_j|^2 is exact (dim_k passes per block). With `projections=K > 0`
they are K standard-normal vectors v supported on the block, and E|J_pk v|^2 = ||J_pk||_F^2
(Hutchinson), so the mean over the K draws is an unbiased estimate of the squared norm (its square
root, the reported norm, is biased low by Jensen's inequality). The exact form costs 88 passes per
image at tiny scale and 352 at full Market scale; use K ~ 16 at full scale.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import tensorflow as tf

from keras_disentangle import configs
from keras_disentangle.data import geometry
from keras_disentangle.data.visualize import to_uint8

BACKGROUND = "background"
# Tangents per batched forward pass: bounds the memory of one pass to `_CHUNK` generator calls.
_CHUNK = 32


def code_blocks(cfg: configs.Config) -> list[tuple[str, slice]]:
    """The blocks of the generator's appearance embedding: 7 ROI codes, then the BG code if any.

    Returns:
      list of (name, slice into the embedding's last axis): `ROI_NAMES` in order, each
      `roi_embedding_dim` wide (WholeBody encoders fill the same layout), then `"background"`
      `bg_embedding_dim` wide when the dataset has a background factor.
    """
    dim = cfg.model.roi_embedding_dim
    blocks = [(name, slice(i * dim, (i + 1) * dim)) for i, name in enumerate(geometry.ROI_NAMES)]
    if cfg.data.has_background:
        start = cfg.model.fg_embedding_dim
        blocks.append((BACKGROUND, slice(start, start + cfg.model.bg_embedding_dim)))
    return blocks


def _tangents(block: slice, width: int, projections: int, rng: np.random.Generator) -> np.ndarray:
    size = block.stop - block.start
    tangents = np.zeros((projections or size, width), np.float32)
    if projections:
        tangents[:, block] = rng.standard_normal((projections, size))
    else:
        tangents[:, block] = np.eye(size, dtype=np.float32)
    return tangents


def jacobian_norm_maps(
    generate: Callable[[tf.Tensor, tf.Tensor], tf.Tensor],
    embedding,
    heatmaps,
    blocks: Sequence[tuple[str, slice]],
    projections: int = 0,
    seed: int = 0,
) -> np.ndarray:
    """Per-pixel Frobenius norm of the Jacobian of one generated image w.r.t. each code block.

    Args:
      generate: `(embedding (k, E), heatmaps (k, H, W, 18)) -> images (k, H, W, 3)`, differentiable
        in `embedding` (e.g. the stage-I generator).
      embedding: `(E,)` the appearance embedding of one image.
      heatmaps: `(H, W, 18)` the pose it is generated in.
      blocks: list of (name, slice) from `code_blocks`.
      projections: int. 0 for the exact norm (one tangent per code dimension), K > 0 for the
        Hutchinson estimate from K Gaussian tangents per block. Defaults to 0.
      seed: int. Seed of the Gaussian tangents.

    Returns:
      float32 `(len(blocks), H, W)`: ||dy_p / de_k||_F for every block k and pixel p.

    Raises:
      ValueError: if `projections` is negative or `embedding` is not 1-D.
    """
    if projections < 0:
        raise ValueError(f"projections: expected 0 (exact) or a positive count, got {projections}.")
    embedding = np.asarray(embedding, np.float32)
    if embedding.ndim != 1:
        raise ValueError(f"embedding: expected shape (E,), got {embedding.shape}.")
    heatmaps = np.asarray(heatmaps, np.float32)
    rng = np.random.default_rng(seed)

    @tf.function(reduce_retracing=True)
    def squared_jvp_sum(tangents):
        count = tf.shape(tangents)[0]
        primal = tf.tile(embedding[np.newaxis], [count, 1])
        with tf.autodiff.ForwardAccumulator(primal, tangents) as accumulator:
            images = generate(primal, tf.tile(heatmaps[np.newaxis], [count, 1, 1, 1]))
        return tf.reduce_sum(tf.square(accumulator.jvp(images)), axis=[0, 3])

    maps = []
    for _, block in blocks:
        tangents = _tangents(block, embedding.shape[0], projections, rng)
        total = sum(squared_jvp_sum(tf.constant(tangents[i:i + _CHUNK])).numpy()
                    for i in range(0, len(tangents), _CHUNK))
        maps.append(np.sqrt(total / projections if projections else total))
    return np.stack(maps).astype(np.float32)


def code_regions(cfg: configs.Config, keypoints, body_mask) -> tuple[np.ndarray, np.ndarray]:
    """Each code's own region in the generated image, and whether it is defined.

    Args:
      cfg: Config. Image size, ROI padding, whether there is a background code.
      keypoints: `(18, 2)` the generated (target) pose, pixels at the model's size.
      body_mask: `(H, W, 1)` or `(H, W)` the target pose's body mask, {0, 1}.

    Returns:
      (regions, defined): float32 `(num_blocks, H, W)` in {0, 1} (ROI box pixels, inclusive, for
      the FG codes; 1 - body mask for the BG code) and bool `(num_blocks,)`, False for a ROI with
      no joint in the target pose.
    """
    h, w = cfg.data.height, cfg.data.width
    boxes, visibility = geometry.roi_boxes(keypoints, h, w, **cfg.data.roi_options)
    pixels = np.round(boxes.numpy() * [h - 1, w - 1, h - 1, w - 1]).astype(int)
    rows, cols = np.arange(h)[:, np.newaxis], np.arange(w)[np.newaxis, :]
    regions = [((rows >= y1) & (rows <= y2) & (cols >= x1) & (cols <= x2)).astype(np.float32)
               for y1, x1, y2, x2 in pixels]
    defined = list(visibility.numpy() > 0)
    if cfg.data.has_background:
        regions.append(1.0 - np.asarray(body_mask, np.float32).reshape(h, w))
        defined.append(True)
    return np.stack(regions), np.array(defined)


def region_share(maps: np.ndarray, regions: np.ndarray) -> np.ndarray:
    """Share of each map's mass inside its region: `sum(map * region) / sum(map)`.

    Args:
      maps: `(num_blocks, H, W)` non-negative influence maps.
      regions: `(num_blocks, H, W)` in [0, 1].

    Returns:
      float64 `(num_blocks,)` in [0, 1]; NaN for a map without mass (a code with no influence).
    """
    maps = np.asarray(maps, np.float64)
    mass = maps.sum(axis=(1, 2))
    inside = (maps * regions).sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(mass > 0, inside / mass, np.nan)


def heat_image(values) -> np.ndarray:
    """Colours a non-negative `(H, W)` map black -> red -> yellow -> white, scaled by its own max.

    Returns:
      uint8 `(H, W, 3)`.
    """
    values = np.asarray(values, np.float64)
    peak = values.max()
    x = values / peak if peak > 0 else np.zeros_like(values)
    rgb = np.stack([np.clip(3 * x, 0, 1), np.clip(3 * x - 1, 0, 1), np.clip(3 * x - 2, 0, 1)], axis=-1)
    return np.round(rgb * 255).astype(np.uint8)


def leakage_rows(images, maps, regions, defined) -> list[list[np.ndarray]]:
    """Grid rows for the leakage PNG: per image, the image then each block's map.

    Each map is coloured by `heat_image` and its region's outline is drawn in green where defined.

    Args:
      images: `(n, H, W, 3)` generated images, float in [-1, 1] or uint8.
      maps: `(n, num_blocks, H, W)`.
      regions: `(n, num_blocks, H, W)`.
      defined: bool `(n, num_blocks)`.

    Returns:
      list of rows of uint8 `(H, W, 3)` cells.
    """
    rows = []
    for image, image_maps, image_regions, image_defined in zip(to_uint8(images), maps, regions, defined):
        row = [image]
        for values, region, is_defined in zip(image_maps, image_regions, image_defined):
            cell = heat_image(values)
            if is_defined:
                inside = region > 0.5
                border = inside & ~(np.roll(inside, 1, 0) & np.roll(inside, -1, 0)
                                    & np.roll(inside, 1, 1) & np.roll(inside, -1, 1))
                cell[border] = (0, 220, 0)
            row.append(cell)
        rows.append(row)
    return rows


def measure_leakage(
    cfg: configs.Config,
    generate: Callable[[tf.Tensor, tf.Tensor], tf.Tensor],
    embeddings,
    heatmaps,
    keypoints,
    body_masks,
    projections: int = 0,
    seed: int = 0,
    progress: Callable = lambda iterable: iterable,
) -> tuple[dict, dict]:
    """Influence maps and region shares of every code block over a set of generated images.

    Args:
      cfg: Config of the run.
      generate: see `jacobian_norm_maps`.
      embeddings: `(n, E)` appearance embeddings (source codes).
      heatmaps: `(n, H, W, 18)` the poses generated in (target poses).
      keypoints: `(n, 18, 2)` those poses' keypoints.
      body_masks: `(n, H, W, 1)` those poses' body masks.
      projections: int. See `jacobian_norm_maps`.
      seed: int. Seed of the Hutchinson tangents (image i uses seed + i).
      progress: wraps the per-image loop (e.g. a progress bar).

    Returns:
      (summary, arrays). summary: {"codes": {name: {"share", "share_std", "area", "n"}},
      "mean_share", "mean_area"}: per code the mean share of its influence inside its own region
      and the mean area fraction of that region, over the images where the region is defined.
      arrays: {"maps", "regions", "defined"} as `leakage_rows` takes them.
    """
    blocks = code_blocks(cfg)
    maps, regions, defined = [], [], []
    for i in progress(range(len(embeddings))):
        maps.append(jacobian_norm_maps(generate, embeddings[i], heatmaps[i], blocks, projections, seed + i))
        image_regions, image_defined = code_regions(cfg, keypoints[i], body_masks[i])
        regions.append(image_regions)
        defined.append(image_defined)
    maps, regions, defined = np.stack(maps), np.stack(regions), np.stack(defined)
    shares = np.stack([region_share(m, r) for m, r in zip(maps, regions)])
    areas = regions.mean(axis=(2, 3))
    codes = {}
    for k, (name, _) in enumerate(blocks):
        valid = defined[:, k] & np.isfinite(shares[:, k])
        codes[name] = {"share": float(shares[valid, k].mean()) if valid.any() else None,
                       "share_std": float(shares[valid, k].std()) if valid.any() else None,
                       "area": float(areas[valid, k].mean()) if valid.any() else None,
                       "n": int(valid.sum())}
    measured = [c for c in codes.values() if c["n"]]
    summary = {"codes": codes,
               "mean_share": float(np.mean([c["share"] for c in measured])) if measured else None,
               "mean_area": float(np.mean([c["area"] for c in measured])) if measured else None}
    return summary, {"maps": maps, "regions": regions, "defined": defined}
