"""Painting the synthetic backgrounds (a camera scene: wall, floor, shapes, light and tint), rendered
at twice the size and averaged (anti-aliasing), cached per (params, size). `render_background` is the
public API (see `keras_disentangle.synthetic`); `painting` draws the people over it.
"""

from __future__ import annotations

import functools
import json

import numpy as np


def _noise(seed: int, cells: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """Smooth value noise in [0, 1]: a seeded grid of `cells`, bilinearly resampled to `size`."""
    grid = np.random.default_rng(seed).random((cells[0] + 1, cells[1] + 1))
    gy = (np.arange(size[0]) + 0.5) / size[0] * cells[0]
    gx = (np.arange(size[1]) + 0.5) / size[1] * cells[1]
    iy, ix = np.minimum(gy.astype(int), cells[0] - 1), np.minimum(gx.astype(int), cells[1] - 1)
    fy, fx = (gy - iy)[:, None], (gx - ix)[None, :]
    a, b = grid[iy][:, ix], grid[iy][:, ix + 1]
    c, d = grid[iy + 1][:, ix], grid[iy + 1][:, ix + 1]
    return (a * (1 - fx) + b * fx) * (1 - fy) + (c * (1 - fx) + d * fx) * fy


def _lines(coord: np.ndarray, period: float, width_px: float, px_per_unit) -> np.ndarray:
    """Soft line intensity in [0, 1] at the integer multiples of `period` of `coord`."""
    distance = np.abs(np.mod(coord / period + 0.5, 1.0) - 0.5) * period * px_per_unit
    return np.clip(width_px / 2 - distance + 0.5, 0.0, 1.0)


def _background(bg: dict, size: tuple[int, int]) -> np.ndarray:
    height, width = size
    y = ((np.arange(height) + 0.5) / height)[:, None]
    x = ((np.arange(width) + 0.5) / width)[None, :] * (width / height)  # in heights
    horizon, seed = bg["horizon"], bg["seed"]
    wall, floor = bg["wall"], bg["floor"]
    t = np.clip(y / horizon, 0.0, 1.0)[..., None]
    wall_rgb = np.asarray(wall["top"], np.float32) * (1 - t) + np.asarray(wall["bottom"], np.float32) * t
    wall_rgb = np.broadcast_to(wall_rgb, (height, width, 3))
    cell = wall["cell"]
    if wall["texture"] == "bricks":
        row = np.floor(y / cell)
        brick_x = x + 0.5 * 2.2 * cell * np.mod(row, 2)
        column = np.floor(brick_x / (2.2 * cell))
        table = np.random.default_rng(seed).uniform(0.85, 1.1, 97)
        tone = table[np.mod(row * 31 + column * 7, 97).astype(int)]
        mortar = np.maximum(_lines(y, cell, 1.0, height), _lines(brick_x, 2.2 * cell, 1.0, height))
        wall_rgb = wall_rgb * (tone * (1 - 0.35 * mortar))[..., None]
    elif wall["texture"] == "panels":
        seams = _lines(x, 3 * cell, 1.5, height) * np.ones_like(y)
        wall_rgb = wall_rgb * (1 - 0.3 * seams)[..., None]
    elif wall["texture"] == "foliage":
        leaves = 0.6 * _noise(seed, (24, 12), size) + 0.4 * _noise(seed + 1, (48, 24), size)
        wall_rgb = wall_rgb * (0.6 + 0.7 * leaves)[..., None]
    # Perspective floor: rows below the horizon map to ground depth 1 / (y - horizon).
    below = np.maximum(y - horizon, 1e-3)
    depth = 0.25 / below
    ground_x = (x - 0.5 * width / height) * depth
    near = np.clip(below / (1 - horizon), 0.0, 1.0)[..., None]
    floor_rgb = np.asarray(floor["far"], np.float32) * (1 - near) + np.asarray(floor["near"], np.float32) * near
    px_per_depth = height * below * below / 0.25
    fade = np.clip(below * 8, 0.0, 1.0)
    if floor["texture"] == "tiles":
        grout = np.maximum(_lines(depth, floor["cell"], 1.0, px_per_depth),
                           _lines(ground_x, floor["cell"], 1.0, height / depth))
        floor_rgb = floor_rgb * (1 - 0.3 * grout * fade)[..., None]
    elif floor["texture"] == "planks":
        seams = _lines(ground_x, 0.5 * floor["cell"], 1.0, height / depth) * np.ones_like(y)
        floor_rgb = floor_rgb * (1 - 0.25 * seams * fade)[..., None]
    else:
        grain = _noise(seed + 2, (64, 32), size)
        floor_rgb = floor_rgb * (0.88 + 0.24 * grain)[..., None]
    ground = np.clip((y - horizon) * height + 0.5, 0.0, 1.0)[..., None]
    image = wall_rgb * (1 - ground) + floor_rgb * ground
    for shape in bg["shapes"]:
        y0, x0, y1, x1 = shape["box"]
        x0, x1 = x0 * width / height, x1 * width / height
        if shape["kind"] == "ellipse":
            cy, cx, ry, rx = (y0 + y1) / 2, (x0 + x1) / 2, (y1 - y0) / 2, (x1 - x0) / 2
            d = (np.hypot((y - cy) / ry, (x - cx) / rx) - 1.0) * min(ry, rx)
        else:
            d = np.maximum(np.maximum(y0 - y, y - y1), np.maximum(x0 - x, x - x1))
        alpha = np.clip(0.5 - d * height, 0.0, 1.0)[..., None]
        shade = 1.0 - 0.15 * np.clip((y - y0) / max(y1 - y0, 1e-3), 0.0, 1.0)[..., None]
        image = image + alpha * (np.asarray(shape["color"], np.float32) * shade - image)
    light = 1.0 + bg["light"] * (x / (width / height) - 0.5) * 2
    image = image * light[..., None] * np.asarray(bg["tint"], np.float32)
    return np.clip(image, 0.0, 255.0)


@functools.lru_cache(maxsize=256)
def _background_cached(bg_json: str, size: tuple[int, int]) -> np.ndarray:
    height, width = size
    big = _background(json.loads(bg_json), (2 * height, 2 * width))
    small = big.reshape(height, 2, width, 2, 3).mean(axis=(1, 3)).astype(np.float32)
    small.flags.writeable = False
    return small


def render_background(bg: dict, size: tuple[int, int] = (128, 64)) -> np.ndarray:
    """The background alone, float32 `(H, W, 3)` in [0, 255]; a pure function of `bg` and `size`."""
    return _background_cached(json.dumps(bg, sort_keys=True), tuple(int(v) for v in size))
