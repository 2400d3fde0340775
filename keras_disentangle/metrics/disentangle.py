"""Disentanglement measured on ground truth: the `gt_swap` metric.

Only the synthetic set can do this: every image records the exact parameters it was drawn from
(`factors` in its TFRecord), so any recombination of factors has an exact target image,
`synthetic.render(fg, bg, pose)`. No public dataset allows it.

For held-out pairs (A, B) of different identities and backgrounds, four tasks:
  reconstruction   G(fg_A, bg_A, pose_A)   target render(fg_A, bg_A, pose_A)
  fg_swap          G(fg_A, bg_B, pose_B)   target render(fg_A, bg_B, pose_B)  region: B's body mask
  bg_swap          G(fg_B, bg_A, pose_B)   target render(fg_B, bg_A, pose_B)  region: outside it
  pose_transfer    G(fg_A, bg_A, pose_B)   target render(fg_A, bg_A, pose_B)  region: B's body mask
Each is scored with SSIM, L1 over the whole image and L1 inside the region the task changes, next
to the trivial baselines "output = A's image" and "output = B's image". SSIM alone favours a
baseline that keeps the structure and gets the colours wrong; region L1 is the decisive figure.
L1 is in [0, 1] intensity units. Poses enter the generator as heatmaps of the real keypoints (the
pose auto-encoder is scored separately), so this isolates the appearance encoders.
"""

from __future__ import annotations

import json
from typing import Callable, Iterable

import numpy as np
import tensorflow as tf

from keras_disentangle import configs, synthetic
from keras_disentangle.metrics import image as image_metrics

# task -> which image of the pair gives the FG, the BG and the pose, and the region scored.
TASK_SOURCES = {
    "reconstruction": ("a", "a", "a", "all"),
    "fg_swap": ("a", "b", "b", "body"),
    "bg_swap": ("b", "a", "b", "background"),
    "pose_transfer": ("a", "a", "b", "body"),
}
TASKS = tuple(TASK_SOURCES)
SIDE = {"a": 0, "b": 1}  # index of each side in a (a, b) pair
OUTPUTS = ("model", "baseline_a", "baseline_b")


def render_target(fg: dict, bg: dict, pose: dict, data_cfg: configs.DataConfig) -> np.ndarray:
    """The exact target at model resolution, resized the way the input pipeline resizes photos.

    Returns:
      float32 (H, W, 3) in [-1, 1].
    """
    stored = synthetic.render(fg, bg, pose, size=(data_cfg.stored_height, data_cfg.stored_width))
    resized = tf.image.resize(tf.cast(stored, tf.float32), (data_cfg.height, data_cfg.width),
                              antialias=True)
    return (resized.numpy() / 127.5 - 1.0).astype(np.float32)


def pair_indices(fg_ids: np.ndarray, bg_ids: np.ndarray, n: int, seed: int) -> list[tuple[int, int]]:
    """Up to `n` pairs (a, b) with different identities AND backgrounds, drawn reproducibly."""
    rng = np.random.default_rng(seed)
    pairs = []
    for a in rng.permutation(len(fg_ids)):
        candidates = np.flatnonzero((fg_ids != fg_ids[a]) & (bg_ids != bg_ids[a]))
        if candidates.size:
            pairs.append((int(a), int(rng.choice(candidates))))
        if len(pairs) == n:
            break
    return pairs


def _score(outputs: np.ndarray, targets: np.ndarray, region: np.ndarray) -> dict[str, np.ndarray]:
    return {
        "ssim": image_metrics.ssim(outputs, targets, protocol="gaussian"),
        "l1": image_metrics.region_l1(outputs, targets),
        "region_l1": image_metrics.region_l1(outputs, targets, region),
    }


def gt_swap(
    examples: dict[str, np.ndarray],
    generate: Callable[[dict, dict], np.ndarray],
    encode: Callable[[dict], dict],
    data_cfg: configs.DataConfig,
    n: int = 200,
    seed: int = 0,
    batch_size: int = 32,
    progress: Callable[[Iterable], Iterable] = lambda it: it,
) -> dict:
    """Scores the four tasks on held-out synthetic images.

    Args:
      examples: numpy batch dict of held-out examples (the keys of `data.eval_dataset`), all of one
        split, with `factors`, `fg_id` and `bg_id`.
      encode: inputs dict (numpy batch) -> {"fg": ..., "bg": ...} appearance codes.
      generate: (codes {"fg", "bg"}, heatmaps) -> images in [-1, 1], (batch, H, W, 3).
      data_cfg: the run's data config (image size, mask radius).
      n: pairs to score. Defaults to 200.
      seed: pair draw seed.
      batch_size: images per model call.
      progress: wraps the batch loop (e.g. a progress bar).

    Returns:
      {"n": pairs, "tasks": {task: {output: {metric: {"mean", "std"}}}}}.

    Raises:
      ValueError: if the examples carry no ground-truth factors (not the synthetic set).
    """
    if not all(examples["factors"]):
        raise ValueError("gt_swap needs the synthetic set's ground-truth factors; these records have none.")
    pairs = pair_indices(examples["fg_id"], examples["bg_id"], n, seed)
    factors = [json.loads(f) for f in examples["factors"]]
    scores: dict = {t: {o: {} for o in OUTPUTS} for t in TASKS}
    for start in progress(range(0, len(pairs), batch_size)):
        chunk = pairs[start:start + batch_size]
        a_idx = np.array([a for a, _ in chunk])
        b_idx = np.array([b for _, b in chunk])
        batch_a = {k: v[a_idx] for k, v in examples.items()}
        batch_b = {k: v[b_idx] for k, v in examples.items()}
        batches = {"a": batch_a, "b": batch_b}
        codes = {"a": encode(batch_a), "b": encode(batch_b)}
        for task, (fg_from, bg_from, pose_from, region_kind) in TASK_SOURCES.items():
            targets = np.stack([
                render_target(factors[pair[SIDE[fg_from]]]["fg"], factors[pair[SIDE[bg_from]]]["bg"],
                              factors[pair[SIDE[pose_from]]]["pose"], data_cfg)
                for pair in chunk])
            body = batches[pose_from]["body_mask"]
            region = {"all": np.ones_like(body), "body": body, "background": 1.0 - body}[region_kind]
            outputs = {
                "model": np.asarray(generate({"fg": codes[fg_from]["fg"], "bg": codes[bg_from].get("bg")},
                                             batches[pose_from]["heatmaps"])),
                "baseline_a": batch_a["image"],
                "baseline_b": batch_b["image"],
            }
            for name, output in outputs.items():
                for metric, values in _score(output, targets, region).items():
                    scores[task][name].setdefault(metric, []).append(values)
    summary = {t: {o: {m: {"mean": float(np.mean(np.concatenate(v))), "std": float(np.std(np.concatenate(v)))}
                       for m, v in by_metric.items()}
                   for o, by_metric in by_output.items()}
               for t, by_output in scores.items()}
    return {"n": len(pairs), "tasks": summary}
