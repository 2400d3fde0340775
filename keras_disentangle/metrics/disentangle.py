"""Disentanglement measured on ground truth: the `gt_swap` metric.

Only the synthetic sets can do this (`tfrecords.synthetic`, and `tfrecords.synthetic_fashion` in the
DeepFashion layout): every image records the exact parameters it was drawn from (`factors` in its
TFRecord), so any recombination of factors has an exact target image, `synthetic.render(fg, bg, pose)`.
No public dataset allows it.

For held-out pairs (A, B) of different identities and backgrounds, four tasks:
  reconstruction   G(fg_A, bg_A, pose_A)   target render(fg_A, bg_A, pose_A)
  fg_swap          G(fg_A, bg_B, pose_B)   target render(fg_A, bg_B, pose_B)  region: B's body mask
  bg_swap          G(fg_B, bg_A, pose_B)   target render(fg_B, bg_A, pose_B)  region: outside it
  pose_transfer    G(fg_A, bg_A, pose_B)   target render(fg_A, bg_A, pose_B)  region: B's body mask
Each is scored with SSIM, L1 over the whole image and L1 inside the region the task changes, next
to the trivial baselines "output = A's image" and "output = B's image". SSIM alone favours a
baseline that keeps the structure and gets the colours wrong; region L1 is the decisive figure.
L1 is in [0, 1] intensity units. Poses enter the generator as heatmaps of the real keypoints, so
these four isolate the appearance encoders.

A dataset without a background factor (`has_background` False: DeepFashion's two factors, one studio
backdrop) pairs different identities only and scores `NO_BACKGROUND_TASKS`: the generator gets no BG
code, so fg_swap would draw the same image as pose_transfer (A's code, B's pose) against the same
target (the one backdrop behind A's person in B's pose), and bg_swap has nothing to swap.

Region L1 mostly rewards lightness: a person drawn in the right lightness but a dataset-average hue
scores well on it. So each task whose target shows a person is also scored on colour, per garment
(`synthetic.GARMENTS`): the garment's pixels are those its colour sets for at least half
(`synthetic.garment_coverage` at model resolution, in the target's pose), and per pair the mean RGB
colour of those pixels in the output and in the target is taken to CIELAB (scikit-image).
  delta_e       the CIE76 distance between the two mean colours, averaged over pairs;
  chroma_ratio  the mean over pairs of the output's chroma C* over the mean of the target's (a ratio
                of means: near-grey targets make per-pair ratios meaningless).
Next to the model and the A / B baselines, a `no_appearance` baseline is scored on colour: the target
re-rendered with every garment colour set to its mean over the scored images, i.e. what a model that
gets everything right but the clothes' colours would draw.

Checks of the factors as stage II samples them, where the ground truth allows:
  pose_transfer_embedded  as pose_transfer, but B's pose goes through the pose auto-encoder
                          (54-d vector -> pose embedding -> decoded keypoints -> heatmaps), the
                          space stage II samples poses in; needs `decode_pose`.
  sampled_fg              G(z_fg, bg_A, pose_A): a sampled person must leave A's background alone;
                          target render(fg_A, bg_A, pose_A), region outside A's body mask.
  sampled_bg              G(fg_A, z_bg, pose_A): a sampled background must leave A's person alone;
                          region A's body mask.
No image exists for a sampled code, so the sampled tasks score only region L1 in the region the
sampled factor must not touch, against the model's own reconstruction of A in the same region
(`reconstruction` output): a gap between the two is leakage of the sampled factor. They need
`sample` (stage II's mappers).
"""

from __future__ import annotations

import json
from typing import Callable, Iterable

import numpy as np
import tensorflow as tf
from skimage.color import rgb2lab

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
NO_BACKGROUND_TASKS = ("reconstruction", "pose_transfer")
SIDE = {"a": 0, "b": 1}  # index of each side in a (a, b) pair
OUTPUTS = ("model", "baseline_a", "baseline_b")
COLOUR_OUTPUTS = OUTPUTS + ("no_appearance",)
# The identity keys that hold a garment's colour: what the no-appearance baseline sets to their means.
_GARMENT_COLOUR_KEYS = ("upper", "lower", "shoes", "backpack")
# sampled task -> (the factor drawn from noise, the region it must leave as in A).
SAMPLED_TASKS = {"sampled_fg": ("fg", "background"), "sampled_bg": ("bg", "body")}


def render_target(fg: dict, bg: dict, pose: dict, data_cfg: configs.DataConfig) -> np.ndarray:
    """The exact target at model resolution, resized the way the input pipeline resizes photos.

    Returns:
      float32 (H, W, 3) in [-1, 1].
    """
    stored = synthetic.render(fg, bg, pose, size=(data_cfg.stored_height, data_cfg.stored_width))
    resized = tf.image.resize(tf.cast(stored, tf.float32), (data_cfg.height, data_cfg.width),
                              antialias=True)
    return (resized.numpy() / 127.5 - 1.0).astype(np.float32)


def pair_indices(fg_ids: np.ndarray, bg_ids: np.ndarray | None, n: int, seed: int) -> list[tuple[int, int]]:
    """Up to `n` pairs (a, b) with different identities AND backgrounds (identities only when `bg_ids`
    is None), drawn reproducibly."""
    rng = np.random.default_rng(seed)
    pairs = []
    for a in rng.permutation(len(fg_ids)):
        differ = fg_ids != fg_ids[a]
        candidates = np.flatnonzero(differ if bg_ids is None else differ & (bg_ids != bg_ids[a]))
        if candidates.size:
            pairs.append((int(a), int(rng.choice(candidates))))
        if len(pairs) == n:
            break
    return pairs


def garment_masks(fg: dict, pose: dict, data_cfg: configs.DataConfig) -> dict[str, np.ndarray]:
    """Each garment's pixels at model resolution: those its colour sets for at least half.

    Returns:
      {garment: bool (H, W)}.
    """
    masks = {}
    for garment in synthetic.GARMENTS:
        coverage = synthetic.garment_coverage(fg, pose, garment, size=(data_cfg.stored_height, data_cfg.stored_width))
        resized = tf.image.resize(coverage[..., None], (data_cfg.height, data_cfg.width), antialias=True)
        masks[garment] = resized.numpy()[..., 0] >= 0.5
    return masks


def mean_lab(images: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """CIELAB of each image's mean RGB colour over its mask; NaN where the mask is empty.

    Args:
      images: (batch, H, W, 3) in [-1, 1].
      masks: bool (batch, H, W).

    Returns:
      float64 (batch, 3): L*, a*, b*.
    """
    rgb = np.clip((np.asarray(images, np.float64) + 1.0) / 2.0, 0.0, 1.0)
    counts = masks.sum(axis=(1, 2))
    sums = np.einsum("bhwc,bhw->bc", rgb, masks.astype(np.float64))
    means = sums / np.maximum(counts, 1)[:, None]
    lab = rgb2lab(means[:, None, :])[:, 0, :]
    lab[counts == 0] = np.nan
    return lab


def colour_scores(outputs_lab: np.ndarray, targets_lab: np.ndarray) -> dict:
    """`delta_e` and `chroma_ratio` (module docstring) over the pairs where both colours exist."""
    valid = ~(np.isnan(outputs_lab).any(axis=1) | np.isnan(targets_lab).any(axis=1))
    out, target = outputs_lab[valid], targets_lab[valid]
    if not len(out):
        return {"delta_e": None, "chroma_ratio": None, "chroma": None, "target_chroma": None, "n": 0}
    chroma = np.hypot(out[:, 1], out[:, 2])
    target_chroma = np.hypot(target[:, 1], target[:, 2])
    return {"delta_e": float(np.mean(np.linalg.norm(out - target, axis=1))),
            "chroma_ratio": float(chroma.mean() / max(target_chroma.mean(), 1e-9)),
            "chroma": float(chroma.mean()), "target_chroma": float(target_chroma.mean()), "n": int(valid.sum())}


def mean_garment_identity(factors: list[dict]) -> Callable[[dict], dict]:
    """A function that sets every garment colour of an identity to its mean over `factors`."""
    means = {}
    for key in _GARMENT_COLOUR_KEYS:
        colours = [f["fg"][key] for f in factors if f["fg"][key] is not None]
        means[key] = [int(round(c)) for c in np.mean(colours, axis=0)] if colours else None
    accents = [f["fg"]["pattern"]["color"] for f in factors]
    accent = [int(round(c)) for c in np.mean(accents, axis=0)]

    def neutralize(fg: dict) -> dict:
        garments = {k: (None if fg[k] is None else means[k]) for k in _GARMENT_COLOUR_KEYS}
        return dict(fg, **garments, pattern=dict(fg["pattern"], color=accent))

    return neutralize


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
    decode_pose: Callable[[np.ndarray], np.ndarray] | None = None,
    sample: Callable[[str, int], np.ndarray] | None = None,
    images: dict | None = None,
) -> dict:
    """Scores the four tasks, or `NO_BACKGROUND_TASKS` without a background factor (and the
    sampled-factor checks that can run), on held-out synthetic images.

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
      decode_pose: optional pose vectors `(batch, 54)` -> heatmaps `(batch, H, W, 18)` through the
        pose auto-encoder; adds `pose_transfer_embedded`.
      sample: optional (factor "fg" | "bg", count) -> `(count, K)` codes drawn by stage II; adds
        `sampled_fg` and (with a background) `sampled_bg`. Codes are drawn in batch order, so a
        seeded sampler makes the scores reproducible.
      images: optional dict, filled with {task: {"model": ..., "target": ...}} float32 arrays in
        [-1, 1] of the scored pairs (FID and sharpness of the swaps, `bench.adversarial`).

    Returns:
      {"n": pairs, "tasks": {task: {output: {metric: {"mean", "std"}}}}, "colour": {task: {garment:
      {output: colour_scores}}}}; outputs are `model`, `baseline_a`, `baseline_b`, except for the
      sampled tasks: `model` and `reconstruction`, scored with `region_l1` only; colour also scores
      `no_appearance` and leaves the sampled tasks out.

    Raises:
      ValueError: if the examples carry no ground-truth factors (not the synthetic set).
    """
    if not all(examples["factors"]):
        raise ValueError("gt_swap needs the synthetic set's ground-truth factors; these records have none.")
    pairs = pair_indices(examples["fg_id"], examples["bg_id"] if data_cfg.has_background else None, n, seed)
    factors = [json.loads(f) for f in examples["factors"]]
    tasks = {t: v for t, v in TASK_SOURCES.items() if data_cfg.has_background or t in NO_BACKGROUND_TASKS}
    if decode_pose is not None:
        tasks["pose_transfer_embedded"] = TASK_SOURCES["pose_transfer"]
    sampled = {}
    if sample is not None:
        sampled = {t: v for t, v in SAMPLED_TASKS.items() if v[0] == "fg" or data_cfg.has_background}
    scores: dict = {t: {o: {} for o in OUTPUTS} for t in tasks}
    scores.update({t: {"model": {}, "reconstruction": {}} for t in sampled})
    # task -> garment -> output (or "target") -> [Lab chunks]
    colours: dict = {t: {g: {o: [] for o in COLOUR_OUTPUTS + ("target",)} for g in synthetic.GARMENTS}
                     for t in tasks}
    neutralize = mean_garment_identity([factors[i] for pair in pairs for i in pair])
    for start in progress(range(0, len(pairs), batch_size)):
        chunk = pairs[start:start + batch_size]
        a_idx = np.array([a for a, _ in chunk])
        b_idx = np.array([b for _, b in chunk])
        batch_a = {k: v[a_idx] for k, v in examples.items()}
        batch_b = {k: v[b_idx] for k, v in examples.items()}
        batches = {"a": batch_a, "b": batch_b}
        codes = {"a": encode(batch_a), "b": encode(batch_b)}
        # Renders per source triple: pose_transfer_embedded shares pose_transfer's, the sampled checks
        # reconstruction's.
        rendered = {}
        for task, (fg_from, bg_from, pose_from, region_kind) in tasks.items():
            if (fg_from, bg_from, pose_from) not in rendered:
                sources = [(factors[pair[SIDE[fg_from]]]["fg"], factors[pair[SIDE[bg_from]]]["bg"],
                            factors[pair[SIDE[pose_from]]]["pose"]) for pair in chunk]
                rendered[fg_from, bg_from, pose_from] = (
                    np.stack([render_target(fg, bg, pose, data_cfg) for fg, bg, pose in sources]),
                    np.stack([render_target(neutralize(fg), bg, pose, data_cfg) for fg, bg, pose in sources]),
                    [garment_masks(fg, pose, data_cfg) for fg, _, pose in sources])
            targets, neutral, masks = rendered[fg_from, bg_from, pose_from]
            body = batches[pose_from]["body_mask"]
            region = {"all": np.ones_like(body), "body": body, "background": 1.0 - body}[region_kind]
            heatmaps = batches[pose_from]["heatmaps"]
            if task == "pose_transfer_embedded":
                heatmaps = np.asarray(decode_pose(batches[pose_from]["pose_vector"]))
            outputs = {
                "model": np.asarray(generate({"fg": codes[fg_from]["fg"], "bg": codes[bg_from].get("bg")},
                                             heatmaps)),
                "baseline_a": batch_a["image"],
                "baseline_b": batch_b["image"],
            }
            if images is not None:
                for name, value in (("model", outputs["model"]), ("target", targets)):
                    images.setdefault(task, {}).setdefault(name, []).append(value)
            for name, output in outputs.items():
                for metric, values in _score(output, targets, region).items():
                    scores[task][name].setdefault(metric, []).append(values)
            coloured = dict(outputs, target=targets, no_appearance=neutral)
            for garment, by_output in colours[task].items():
                garment_mask = np.stack([m[garment] for m in masks])
                for name, chunks in by_output.items():
                    chunks.append(mean_lab(coloured[name], garment_mask))
        if sampled:
            targets = rendered[TASK_SOURCES["reconstruction"][:3]][0]
            body = batch_a["body_mask"]
            reconstruction = np.asarray(generate(codes["a"], batch_a["heatmaps"]))
            for task, (factor, region_kind) in sampled.items():
                region = body if region_kind == "body" else 1.0 - body
                mixed = dict(codes["a"], **{factor: np.asarray(sample(factor, len(chunk)))})
                for name, output in (("model", np.asarray(generate(mixed, batch_a["heatmaps"]))),
                                     ("reconstruction", reconstruction)):
                    scores[task][name].setdefault("region_l1", []).append(
                        image_metrics.region_l1(output, targets, region))
    if images is not None:
        for by_name in images.values():
            for name, chunks in by_name.items():
                by_name[name] = np.concatenate(chunks).astype(np.float32)
    summary = {t: {o: {m: {"mean": float(np.mean(np.concatenate(v))), "std": float(np.std(np.concatenate(v)))}
                       for m, v in by_metric.items()}
                   for o, by_metric in by_output.items()}
               for t, by_output in scores.items()}
    colour = {t: {g: {o: colour_scores(np.concatenate(by_output[o]), np.concatenate(by_output["target"]))
                      for o in COLOUR_OUTPUTS}
                  for g, by_output in by_garment.items()}
              for t, by_garment in colours.items()}
    return {"n": len(pairs), "tasks": summary, "colour": colour}
