"""metrics.disentangle's gt_swap against its docstring written out again, on six synthetic examples held in
memory (no TFRecords): every task's target, region and outputs, every score and colour, the pose check and
the sampled checks, the images handed back. An oracle generator draws the true factors of the codes it is
given exactly (the factors of the example each code names), so a task fed the wrong source or scored against
the wrong target or region moves a score. `tests/test_gt_swap.py` checks the same wiring through the real
data path; this file is the fast one `make mutation` runs (seconds)."""

import dataclasses
import json

import numpy as np
import pytest

# The module docstring's table: task -> sources of (FG, BG, pose) and the region scored.
DOCSTRING_TASKS = {"reconstruction": ("a", "a", "a", "all"), "fg_swap": ("a", "b", "b", "body"),
                   "bg_swap": ("b", "a", "b", "background"), "pose_transfer": ("a", "a", "b", "body")}
FG_IDS, BG_IDS = np.array([0, 0, 1, 1, 2, 2]), np.array([0, 1, 0, 1, 2, 2])


def _target(factors: dict, data_cfg) -> np.ndarray:
    """render(fg, bg, pose) at stored size, antialiased resize to the model's, [-1, 1]."""
    import tensorflow as tf

    from keras_disentangle import synthetic

    stored = synthetic.render(factors["fg"], factors["bg"], factors["pose"],
                              size=(data_cfg.stored_height, data_cfg.stored_width))
    resized = tf.image.resize(stored.astype(np.float32), (data_cfg.height, data_cfg.width), antialias=True)
    return resized.numpy() / 127.5 - 1.0


@pytest.fixture(scope="module")
def world():
    """(data_cfg, examples, factors): three people, three backgrounds, six poses, each image exact."""
    from keras_disentangle import configs, synthetic

    data_cfg = configs.get_config("synthetic", "micro").data
    rng = np.random.default_rng(0)
    people = [synthetic.sample_identity(rng) for _ in range(3)]
    people[1]["backpack"] = None
    scenes = [synthetic.sample_background(rng, synthetic.sample_camera(rng, c), 0) for c in range(3)]
    factors = [{"fg": people[f], "bg": scenes[b], "pose": synthetic.sample_pose(rng)} for f, b in zip(FG_IDS, BG_IDS)]
    body = np.zeros((6, data_cfg.height, data_cfg.width, 1), np.float32)
    for i in range(6):
        body[i, 4 + i:20 + i, 3:12 - i % 3] = 1.0
    index = np.arange(6)
    examples = {"image": np.stack([_target(f, data_cfg) for f in factors]).astype(np.float32), "body_mask": body,
                "heatmaps": index.reshape(6, 1, 1, 1).astype(np.float32), "pose_vector": -index[:, None],
                "factors": np.array([json.dumps(f).encode() for f in factors]), "fg_id": FG_IDS, "bg_id": BG_IDS,
                "index": index}
    return data_cfg, examples, factors


def _oracle(factors, data_cfg):
    """encode: each example's code is its index; generate draws the factors the codes and heatmaps name;
    decode_pose gives the next example's pose; sample draws example 5's person or background."""

    def encode(batch):
        return {"fg": batch["index"], "bg": None if not data_cfg.has_background else batch["index"]}

    def generate(codes, heatmaps):
        bgs = codes["fg"] if codes["bg"] is None else codes["bg"]
        return np.stack([_target({"fg": factors[fg]["fg"], "bg": factors[bg]["bg"],
                                  "pose": factors[int(h.flat[0])]["pose"]}, data_cfg)
                         for fg, bg, h in zip(codes["fg"], bgs, np.asarray(heatmaps))])

    def decode_pose(vectors):
        return ((-np.asarray(vectors) + 1) % 6).reshape(-1, 1, 1, 1).astype(np.float32)

    def sample(factor, count):
        return np.full(count, 5)

    return encode, generate, decode_pose, sample


def _summary(chunks):
    values = np.concatenate(chunks)
    return {"mean": pytest.approx(float(np.mean(values)), abs=1e-9),
            "std": pytest.approx(float(np.std(values)), abs=1e-9)}


def _reference(world, pairs, batch_size, data_cfg):
    """gt_swap's result as its docstring defines it, chunk by chunk."""
    from keras_disentangle import synthetic
    from keras_disentangle.metrics import disentangle, image

    _, examples, factors = world
    encode, generate, decode_pose, sample = _oracle(factors, data_cfg)
    table = {t: v for t, v in DOCSTRING_TASKS.items() if data_cfg.has_background or t in ("reconstruction",
                                                                                          "pose_transfer")}
    table["pose_transfer_embedded"] = DOCSTRING_TASKS["pose_transfer"]
    sampled = {"sampled_fg": ("fg", "background")}
    if data_cfg.has_background:
        sampled["sampled_bg"] = ("bg", "body")
    neutralize = disentangle.mean_garment_identity([factors[i] for pair in pairs for i in pair])
    scores, colours, images = {}, {}, {}
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start:start + batch_size]
        side = {"a": [a for a, _ in chunk], "b": [b for _, b in chunk]}
        for task, (fg_from, bg_from, pose_from, region_kind) in table.items():
            fgs, bgs, poses = side[fg_from], side[bg_from], side[pose_from]
            truth = [{"fg": factors[f]["fg"], "bg": factors[b]["bg"], "pose": factors[p]["pose"]}
                     for f, b, p in zip(fgs, bgs, poses)]
            targets = np.stack([_target(t, data_cfg) for t in truth])
            neutral = np.stack([_target(dict(t, fg=neutralize(t["fg"])), data_cfg) for t in truth])
            body = examples["body_mask"][poses]
            region = {"all": np.ones_like(body), "body": body, "background": 1.0 - body}[region_kind]
            heatmaps = examples["heatmaps"][poses]
            if task == "pose_transfer_embedded":
                heatmaps = decode_pose(examples["pose_vector"][poses])
            codes = {"fg": np.array(fgs), "bg": np.array(bgs) if data_cfg.has_background else None}
            outputs = {"model": generate(codes, heatmaps), "baseline_a": examples["image"][side["a"]],
                       "baseline_b": examples["image"][side["b"]]}
            images.setdefault(task, {"model": [], "target": []})
            images[task]["model"].append(outputs["model"])
            images[task]["target"].append(targets)
            for name, output in outputs.items():
                by_metric = scores.setdefault(task, {}).setdefault(name, {})
                by_metric.setdefault("ssim", []).append(image.ssim(output, targets, protocol="gaussian"))
                by_metric.setdefault("l1", []).append(image.region_l1(output, targets))
                by_metric.setdefault("region_l1", []).append(image.region_l1(output, targets, region))
            for garment in synthetic.GARMENTS:
                masks = np.stack([_garment_mask(t, garment, data_cfg) for t in truth])
                for name, output in dict(outputs, no_appearance=neutral, target=targets).items():
                    colours.setdefault(task, {}).setdefault(garment, {}).setdefault(name, []).append(
                        disentangle.mean_lab(output, masks))
        a = side["a"]
        targets = np.stack([_target(factors[i], data_cfg) for i in a])
        body = examples["body_mask"][a]
        own = {"fg": np.array(a), "bg": np.array(a) if data_cfg.has_background else None}
        for task, (factor, region_kind) in sampled.items():
            region = body if region_kind == "body" else 1.0 - body
            mixed = dict(own, **{factor: sample(factor, len(chunk))})
            for name, codes in (("model", mixed), ("reconstruction", own)):
                scores.setdefault(task, {}).setdefault(name, {}).setdefault("region_l1", []).append(
                    image.region_l1(generate(codes, examples["heatmaps"][a]), targets, region))
    summary = {t: {o: {m: _summary(v) for m, v in by_metric.items()} for o, by_metric in by_output.items()}
               for t, by_output in scores.items()}
    colour = {t: {g: {o: disentangle.colour_scores(np.concatenate(by_output[o]), np.concatenate(by_output["target"]))
                      for o in ("model", "baseline_a", "baseline_b", "no_appearance")}
                  for g, by_output in by_garment.items()}
              for t, by_garment in colours.items()}
    return {"n": len(pairs), "tasks": summary, "colour": colour}, images


def _garment_mask(factors, garment, data_cfg):
    import tensorflow as tf

    from keras_disentangle import synthetic

    coverage = synthetic.garment_coverage(factors["fg"], factors["pose"], garment,
                                          size=(data_cfg.stored_height, data_cfg.stored_width))
    resized = tf.image.resize(coverage[..., None], (data_cfg.height, data_cfg.width), antialias=True)
    return resized.numpy()[..., 0] >= 0.5


@pytest.mark.parametrize("has_background", [True, False])
def test_gt_swap_scores_each_task_as_its_docstring_defines_it(world, has_background):
    from keras_disentangle.metrics import disentangle

    data_cfg, examples, factors = world
    data_cfg = dataclasses.replace(data_cfg, has_background=has_background)
    encode, generate, decode_pose, sample = _oracle(factors, data_cfg)
    images, seen = {}, []

    def progress(batches):
        seen.append(list(batches))
        return seen[-1]

    result = disentangle.gt_swap(examples, generate, encode, data_cfg, n=4, seed=1, batch_size=3, progress=progress,
                                 decode_pose=decode_pose, sample=sample, images=images)
    pairs = disentangle.pair_indices(FG_IDS, BG_IDS if has_background else None, 4, 1)
    assert seen == [[0, 3]]
    expected, expected_images = _reference(world, pairs, 3, data_cfg)
    assert result == expected
    assert images.keys() == expected_images.keys()
    for task, by_name in images.items():
        assert by_name.keys() == {"model", "target"}
        for name, value in by_name.items():
            assert value.dtype == np.float32
            np.testing.assert_allclose(value, np.concatenate(expected_images[task][name]), atol=1e-6)
    # The oracle draws every task's target exactly: the figures above are not all zero by accident.
    for task in ("reconstruction", "pose_transfer"):
        assert result["tasks"][task]["model"]["region_l1"]["mean"] < 1e-6
        assert result["tasks"][task]["baseline_b"]["region_l1"]["mean"] > 0.05


def test_gt_swap_with_the_defaults_scores_the_four_tasks_only(world):
    from keras_disentangle.metrics import disentangle

    data_cfg, examples, factors = world
    encode, generate, _, _ = _oracle(factors, data_cfg)
    result = disentangle.gt_swap(examples, generate, encode, data_cfg)
    assert result["n"] == 6  # fewer pairs exist than the default n: one per example
    assert tuple(result["tasks"]) == tuple(result["colour"]) == disentangle.TASKS == tuple(DOCSTRING_TASKS)
    assert all(result["tasks"][t]["model"]["region_l1"]["mean"] < 1e-6 for t in disentangle.TASKS)
    assert disentangle.gt_swap(examples, generate, encode, data_cfg, n=200, seed=0, batch_size=32) == result
    assert disentangle.gt_swap(examples, generate, encode, data_cfg, seed=1) != result  # the seed draws the pairs


def test_gt_swap_without_factors_is_refused_in_one_line(world):
    from keras_disentangle.metrics import disentangle

    data_cfg, examples, factors = world
    encode, generate, _, _ = _oracle(factors, data_cfg)
    with pytest.raises(ValueError) as error:
        disentangle.gt_swap(dict(examples, factors=np.array([b""] * 6)), generate, encode, data_cfg)
    assert str(error.value) == "gt_swap needs the synthetic set's ground-truth factors; these records have none."


def test_pairs_differ_in_identity_and_background_and_are_drawn_reproducibly():
    from keras_disentangle.metrics import disentangle

    def reference(bg_ids, n, seed):
        rng = np.random.default_rng(seed)
        pairs = []
        for a in rng.permutation(6):
            ok = np.flatnonzero((FG_IDS != FG_IDS[a]) & ((bg_ids != bg_ids[a]) if bg_ids is not None else True))
            pairs.append((int(a), int(rng.choice(ok))))
        return pairs[:n]

    for bg_ids in (BG_IDS, None):
        for n in (1, 4, 6, 10):
            pairs = disentangle.pair_indices(FG_IDS, bg_ids, n, seed=2)
            assert pairs == reference(bg_ids, n, 2), (bg_ids, n)
            assert all(type(a) is int and type(b) is int for a, b in pairs)
    # Identities only: some pairs share a background.
    assert any(BG_IDS[a] == BG_IDS[b] for a, b in disentangle.pair_indices(FG_IDS, None, 6, seed=2))
    # An example without a partner gives no pair.
    assert disentangle.pair_indices(np.array([0, 0, 1]), np.array([0, 1, 1]), 3, seed=0) in (
        [(0, 2), (2, 0)], [(2, 0), (0, 2)])


def test_render_target_and_garment_masks_are_the_render_resized(world):
    from keras_disentangle import synthetic
    from keras_disentangle.metrics import disentangle

    data_cfg, _, factors = world
    target = disentangle.render_target(factors[2]["fg"], factors[2]["bg"], factors[2]["pose"], data_cfg)
    assert target.dtype == np.float32 and target.shape == (data_cfg.height, data_cfg.width, 3)
    np.testing.assert_allclose(target, _target(factors[2], data_cfg), atol=1e-6)
    masks = disentangle.garment_masks(factors[2]["fg"], factors[2]["pose"], data_cfg)
    assert tuple(masks) == synthetic.GARMENTS
    for garment, mask in masks.items():
        np.testing.assert_array_equal(mask, _garment_mask(factors[2], garment, data_cfg))
        assert mask.any() and not mask.all()


def test_a_garment_pixel_is_one_its_colour_sets_for_at_least_half(world, monkeypatch):
    from keras_disentangle import synthetic
    from keras_disentangle.metrics import disentangle

    data_cfg, _, factors = world
    monkeypatch.setattr(synthetic, "garment_coverage", lambda fg, pose, garment, size: np.full(size, 0.5, np.float32))
    masks = disentangle.garment_masks(factors[0]["fg"], factors[0]["pose"], data_cfg)
    assert all(mask.all() for mask in masks.values())


def test_mean_garment_identity_sets_each_garment_colour_to_its_mean():
    from keras_disentangle.metrics import disentangle

    def fg(upper, backpack, accent):
        return {"upper": upper, "lower": [0, 0, 0], "shoes": [9, 9, 9], "backpack": backpack, "skin": [1, 2, 3],
                "pattern": {"kind": "stripes", "color": accent}}

    factors = [{"fg": fg([10, 20, 31], [5, 5, 5], [0, 0, 0])}, {"fg": fg([20, 40, 30], None, [100, 51, 3])}]
    neutral = disentangle.mean_garment_identity(factors)(fg([1, 1, 1], [7, 7, 7], [9, 9, 9]))
    assert neutral == {"upper": [15, 30, 30], "lower": [0, 0, 0], "shoes": [9, 9, 9], "backpack": [5, 5, 5],
                       "skin": [1, 2, 3], "pattern": {"kind": "stripes", "color": [50, 26, 2]}}
    assert disentangle.mean_garment_identity(factors)(fg([1, 1, 1], None, [9, 9, 9]))["backpack"] is None
    nobody = [{"fg": fg([1, 1, 1], None, [0, 0, 0])}]
    assert disentangle.mean_garment_identity(nobody)(fg([1, 1, 1], [7, 7, 7], [9, 9, 9]))["backpack"] is None


def test_mean_lab_of_a_one_pixel_mask_and_colour_scores_of_no_pair():
    from skimage.color import rgb2lab

    from keras_disentangle.metrics import disentangle

    images = np.full((2, 2, 2, 3), -1.0)
    images[0, 0, 0] = [1.0, 0.0, -1.0]
    images[1] = 2.0  # clipped to white
    mask = np.zeros((2, 2, 2), bool)
    mask[0, 0, 0] = True
    mask[1] = True
    lab = disentangle.mean_lab(images, mask)
    np.testing.assert_allclose(lab, rgb2lab(np.array([[[1.0, 0.5, 0.0], [1.0, 1.0, 1.0]]]))[0], atol=1e-9)
    none = np.full((1, 3), np.nan)
    assert disentangle.colour_scores(none, lab[:1]) == {"delta_e": None, "chroma_ratio": None, "chroma": None,
                                                        "target_chroma": None, "n": 0}
    scores = disentangle.colour_scores(lab[:1], np.array([[50.0, 3.0, 4.0]]))
    chroma = float(np.hypot(*lab[0, 1:]))
    assert scores == pytest.approx({"delta_e": float(np.linalg.norm(lab[0] - [50.0, 3.0, 4.0])),
                                    "chroma_ratio": chroma / 5.0, "chroma": chroma, "target_chroma": 5.0, "n": 1})
