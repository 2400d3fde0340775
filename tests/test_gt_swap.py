"""The gt_swap wiring (`metrics.disentangle.TASK_SOURCES`) checked against an oracle and the baselines.

An oracle "generator" that renders its inputs' true factors the way the data path makes a photo
(render at stored size, JPEG, antialiased resize) must score at the JPEG/resize floor in every task:
that proves the generator is fed the sources its target is rendered from. The trivial baselines
then pin down what each task means: the photo a task keeps must match the target outside the
scored region, and differ from it inside. Together they fail if `TASK_SOURCES` is permuted.
"""

import io
import json

import numpy as np
import pytest

N_PAIRS = 12


@pytest.fixture(scope="module")
def setup(synthetic_records):
    from keras_disentangle import configs, data

    cfg = configs.get_config("synthetic", "tiny")
    examples = data.load_examples(synthetic_records, cfg, "test")
    return cfg, examples


def _photo(factors: list[dict], data_cfg) -> np.ndarray:
    """What the data path makes of render(factors): JPEG q95 at stored size, then the pipeline's resize."""
    import tensorflow as tf
    from PIL import Image

    from keras_disentangle import synthetic

    out = []
    for f in factors:
        stored = synthetic.render(f["fg"], f["bg"], f["pose"], size=(data_cfg.stored_height, data_cfg.stored_width))
        buffer = io.BytesIO()
        Image.fromarray(stored).save(buffer, format="JPEG", quality=95, subsampling=0)
        decoded = tf.io.decode_jpeg(buffer.getvalue(), channels=3)
        resized = tf.image.resize(decoded, (data_cfg.height, data_cfg.width), antialias=True)
        out.append(np.clip(resized.numpy() / 127.5 - 1.0, -1.0, 1.0))
    return np.stack(out).astype(np.float32)


def _oracle(examples, data_cfg):
    """(encode, generate) whose codes are the true factors and whose pose is looked up from the heatmaps."""
    factors = [json.loads(f) for f in examples["factors"]]
    pose_of = {examples["heatmaps"][i].tobytes(): factors[i]["pose"] for i in range(len(factors))}
    index_of = {f: i for i, f in enumerate(examples["factors"])}

    def encode(batch):
        rows = np.array([index_of[f] for f in batch["factors"]])
        return {"fg": rows, "bg": rows}

    def generate(codes, heatmaps):
        return _photo([{"fg": factors[fg]["fg"], "bg": factors[bg]["bg"], "pose": pose_of[h.tobytes()]}
                       for fg, bg, h in zip(codes["fg"], codes["bg"], np.asarray(heatmaps))], data_cfg)

    return encode, generate


def _l1(output, target, mask):
    from keras_disentangle.metrics import image as image_metrics

    keep = mask.reshape(mask.shape[0], -1).sum(axis=1) > 0
    return image_metrics.region_l1(output[keep], target[keep], mask[keep])


def test_oracle_generator_scores_at_the_jpeg_floor_in_every_task(setup):
    from keras_disentangle.metrics import disentangle

    cfg, examples = setup
    encode, generate = _oracle(examples, cfg.data)
    images = {}
    result = disentangle.gt_swap(examples, generate, encode, cfg.data, n=N_PAIRS, seed=0, batch_size=N_PAIRS,
                                 images=images)
    assert result["n"] == N_PAIRS
    tasks = result["tasks"]
    # The scored outputs and their exact targets come back for FID and sharpness (bench.adversarial).
    for task in disentangle.TASKS:
        assert images[task]["model"].shape == images[task]["target"].shape == (N_PAIRS, cfg.data.height,
                                                                                cfg.data.width, 3)
    # The floor: A's own photo against the exact render of A's factors.
    floor = tasks["reconstruction"]["baseline_a"]["region_l1"]["mean"]
    assert 0.0 < floor < 0.02
    for task in disentangle.TASKS:
        oracle = tasks[task]["model"]["region_l1"]["mean"]
        assert oracle <= 1.5 * floor, (task, oracle, floor)
        if task != "reconstruction":
            # Every swap changes its region: both baselines are far from the target there.
            for baseline in ("baseline_a", "baseline_b"):
                assert tasks[task][baseline]["region_l1"]["mean"] > 5 * floor, (task, baseline, tasks[task])
    # Colour: the oracle's garments keep their colour up to the JPEG/resize floor in every task; the
    # target with every garment in its mean colour does not.
    for task in disentangle.TASKS:
        for garment, by_output in result["colour"][task].items():
            model, neutral = by_output["model"], by_output["no_appearance"]
            assert model["n"] >= N_PAIRS - 2, (task, garment, model)
            assert model["delta_e"] < 3.0 and 0.9 < model["chroma_ratio"] < 1.1, (task, garment, model)
            assert neutral["delta_e"] > 10.0, (task, garment, neutral)


def test_colour_scores_on_known_colours():
    """Mean colour over the mask only, CIE76 between the means, chroma as a ratio of means."""
    from skimage.color import rgb2lab

    from keras_disentangle.metrics import disentangle

    red, grey = np.array([1.0, -1.0, -1.0]), np.array([0.0, 0.0, 0.0])
    target = np.zeros((2, 4, 4, 3)) + red
    mask = np.zeros((2, 4, 4), bool)
    mask[0, :2] = True
    mask[1, 1:3, 1:3] = True
    # Outside the mask the output is anything: it must not count.
    output = np.where(mask[..., None], grey, red)
    lab_red = rgb2lab(np.array([[[1.0, 0.0, 0.0]]]))[0, 0]
    lab_grey = rgb2lab(np.array([[[0.5, 0.5, 0.5]]]))[0, 0]
    scores = disentangle.colour_scores(disentangle.mean_lab(output, mask), disentangle.mean_lab(target, mask))
    assert scores["n"] == 2
    assert scores["delta_e"] == pytest.approx(np.linalg.norm(lab_red - lab_grey), rel=1e-6)
    assert scores["chroma_ratio"] == pytest.approx(0.0, abs=1e-3)
    exact = disentangle.colour_scores(disentangle.mean_lab(target, mask), disentangle.mean_lab(target, mask))
    assert exact["delta_e"] == 0.0 and exact["chroma_ratio"] == pytest.approx(1.0)
    # A pair whose garment is not seen is left out, not scored as black.
    mask[1] = False
    assert disentangle.colour_scores(disentangle.mean_lab(output, mask), disentangle.mean_lab(target, mask))["n"] == 1


def test_each_baseline_matches_the_target_where_its_task_keeps_it(setup, monkeypatch):
    """Targets and regions as gt_swap scores them, checked against what each task means."""
    from keras_disentangle.metrics import disentangle

    cfg, examples = setup
    calls = []
    score = disentangle._score

    def recording_score(outputs, targets, region):
        calls.append((targets, region))
        return score(outputs, targets, region)

    monkeypatch.setattr(disentangle, "_score", recording_score)
    encode, generate = _oracle(examples, cfg.data)
    disentangle.gt_swap(examples, generate, encode, cfg.data, n=N_PAIRS, seed=0, batch_size=N_PAIRS)
    # One batch: for each task, one call per output (model, baseline_a, baseline_b), same target.
    assert len(calls) == len(disentangle.TASKS) * len(disentangle.OUTPUTS)
    scored = {task: calls[i * len(disentangle.OUTPUTS)] for i, task in enumerate(disentangle.TASKS)}

    pairs = disentangle.pair_indices(examples["fg_id"], examples["bg_id"], N_PAIRS, seed=0)
    factors = [json.loads(f) for f in examples["factors"]]
    fa = [factors[p[0]] for p in pairs]
    fb = [factors[p[1]] for p in pairs]
    a = examples["image"][[p[0] for p in pairs]]
    b = examples["image"][[p[1] for p in pairs]]
    body_a = examples["body_mask"][[p[0] for p in pairs]].astype(np.float32)
    body_b = examples["body_mask"][[p[1] for p in pairs]].astype(np.float32)
    # Exact silhouettes (any pixel a person touches, one pixel of margin for JPEG ringing): the
    # "kept" regions are where a photo must equal the target, up to the floor.
    person = {name: _silhouette([x["fg"] for x in fg], [x["pose"] for x in pose], cfg.data)
              for name, (fg, pose) in {"aa": (fa, fa), "bb": (fb, fb), "ab": (fa, fb)}.items()}
    outside = {k: 1 - v[0] for k, v in person.items()}
    floor = _l1(a, scored["reconstruction"][0], np.ones_like(body_a)).mean()
    near, far = 2 * floor, 10 * floor

    def check(task, region, photo, kept, changed=None):
        target, scored_region = scored[task]
        np.testing.assert_array_equal(scored_region, region, err_msg=f"{task}: scored region")
        assert _l1(photo, target, kept).mean() < near, f"{task}: the kept photo differs where it is kept"
        if changed is not None:
            assert _l1(photo, target, changed).mean() > far, f"{task}: the kept photo matches where it must change"

    check("reconstruction", np.ones_like(body_a), a, np.ones_like(body_a))
    assert _l1(b, scored["reconstruction"][0], np.ones_like(body_a)).mean() > far
    # FG swap: A's person in B's scene and pose: B's photo away from both people, not on B's body.
    check("fg_swap", body_b, b, outside["bb"] * outside["ab"], body_b)
    # BG swap: B's person and pose in A's scene: B's photo inside B's person, not in the background;
    # A's photo away from A's and B's people.
    check("bg_swap", 1 - body_b, b, person["bb"][1], 1 - body_b)
    assert _l1(a, scored["bg_swap"][0], outside["aa"] * outside["bb"]).mean() < near
    # Pose transfer: A's person and scene in B's pose: A's photo away from both poses, not on B's body.
    check("pose_transfer", body_b, a, outside["aa"] * outside["ab"], body_b * (1 - body_a))


def _silhouette(fgs, poses, data_cfg):
    """(touched, interior) masks `(n, H, W, 1)` at model size: touched is dilated by a pixel, interior
    holds the pixels fully covered by the person and their neighbours."""
    import tensorflow as tf

    from keras_disentangle import synthetic

    stored = np.stack([synthetic.person_mask(fg, pose, size=(data_cfg.stored_height, data_cfg.stored_width))
                       for fg, pose in zip(fgs, poses)]).astype(np.float32)[..., None]
    cover = tf.image.resize(stored, (data_cfg.height, data_cfg.width), antialias=True)
    touched = tf.nn.max_pool2d(tf.cast(cover > 0, tf.float32), 3, 1, "SAME")
    interior = -tf.nn.max_pool2d(-tf.cast(cover >= 1, tf.float32), 3, 1, "SAME")
    return touched.numpy(), interior.numpy()


def _marking_oracle(examples, data_cfg, where: str):
    """The oracle, plus a pose decoder and a sampler whose outputs it renders perfectly but then changes
    by 0.5 in one region of the pose's image: the body mask (`where="body"`) or outside it. A decoded
    pose is the example's own heatmaps doubled (a mark), a sampled code -1 (the other code's person)."""
    factors = [json.loads(f) for f in examples["factors"]]
    pose_index = {examples["heatmaps"][i].tobytes(): i for i in range(len(factors))}
    vector_index = {examples["pose_vector"][i].tobytes(): i for i in range(len(factors))}
    index_of = {f: i for i, f in enumerate(examples["factors"])}

    def encode(batch):
        rows = np.array([index_of[f] for f in batch["factors"]])
        return {"fg": rows, "bg": rows}

    def decode_pose(vectors):
        return np.stack([2 * examples["heatmaps"][vector_index[v.tobytes()]] for v in np.asarray(vectors)])

    def sample(factor, count):
        return np.full(count, -1)

    def generate(codes, heatmaps):
        out = []
        for fg, bg, h in zip(codes["fg"], codes["bg"], np.asarray(heatmaps)):
            marked = h.max() == 2 or min(fg, bg) < 0
            pose = pose_index[(h / 2 if h.max() == 2 else h).tobytes()]
            fg, bg = (bg, bg) if fg < 0 else (fg, fg) if bg < 0 else (fg, bg)
            image = _photo([{"fg": factors[fg]["fg"], "bg": factors[bg]["bg"], "pose": factors[pose]["pose"]}],
                           data_cfg)[0]
            if marked:
                body = examples["body_mask"][pose] > 0
                region = body if where == "body" else ~body
                image = np.where(region, np.where(image < 0.5, image + 0.5, image - 0.5), image)
            out.append(image)
        return np.stack(out)

    return encode, generate, decode_pose, sample


@pytest.mark.parametrize("where", ["body", "background"])
def test_pose_check_and_sampled_checks_score_the_region_their_docstring_names(setup, where):
    """pose_transfer_embedded: B's body mask (as pose_transfer); sampled_fg: outside A's body mask;
    sampled_bg: A's body mask. Their outputs are changed in one region only: a task's score moves
    (from its unmarked twin's) exactly when that region is the one it scores."""
    from keras_disentangle.metrics import disentangle

    cfg, examples = setup
    encode, generate, decode_pose, sample = _marking_oracle(examples, cfg.data, where)
    tasks = disentangle.gt_swap(examples, generate, encode, cfg.data, n=6, seed=0, batch_size=6,
                                decode_pose=decode_pose, sample=sample)["tasks"]
    scored = {"pose_transfer_embedded": (tasks["pose_transfer_embedded"]["model"], tasks["pose_transfer"]["model"],
                                         "body"),
              "sampled_fg": (tasks["sampled_fg"]["model"], tasks["sampled_fg"]["reconstruction"], "background"),
              "sampled_bg": (tasks["sampled_bg"]["model"], tasks["sampled_bg"]["reconstruction"], "body")}
    for task, (marked, unmarked, region) in scored.items():
        moved = marked["region_l1"]["mean"] - unmarked["region_l1"]["mean"]
        if region == where:
            assert moved > 0.1, (task, where, moved)
        else:
            assert moved == pytest.approx(0, abs=1e-9), (task, where, moved)


@pytest.fixture(scope="module")
def fashion_setup(tmp_path_factory):
    """A tiny DeepFashion-shaped synthetic set (`make demo-deepfashion`'s writer) at the micro preset."""
    from keras_disentangle import configs, data
    from tfrecords import synthetic_fashion
    from tfrecords.build import build

    root = tmp_path_factory.mktemp("fashion")
    synthetic_fashion.generate(root / "data", ids=8, images_per_id=3, seed=2)
    build("deepfashion", root / "data", root / "records", progress_every=0)
    cfg = configs.get_config("deepfashion", "micro")
    return cfg, data.load_examples(str(root / "records"), cfg, "test")


def test_without_a_background_factor_pairs_people_and_scores_pose_transfer(fashion_setup):
    """DeepFashion's two factors: one backdrop (every bg_id equal), no BG code; pairs of different people,
    reconstruction and pose transfer at the oracle's floor, A's and B's photos far from the transfer."""
    from keras_disentangle.metrics import disentangle

    cfg, examples = fashion_setup
    assert not cfg.data.has_background and len(set(examples["bg_id"])) == 1
    encode, generate = _oracle(examples, cfg.data)

    def encode_fg(batch):
        return {"fg": encode(batch)["fg"], "bg": None}

    def generate_fg(codes, heatmaps):
        assert codes["bg"] is None
        return generate(dict(codes, bg=codes["fg"]), heatmaps)  # the one backdrop is every person's

    n = 8
    result = disentangle.gt_swap(examples, generate_fg, encode_fg, cfg.data, n=n, seed=0, batch_size=n)
    assert result["n"] == n
    pairs = disentangle.pair_indices(examples["fg_id"], None, n, seed=0)
    assert all(examples["fg_id"][a] != examples["fg_id"][b] for a, b in pairs)
    assert set(result["tasks"]) == set(result["colour"]) == set(disentangle.NO_BACKGROUND_TASKS)
    tasks = result["tasks"]
    # At 32x32 the JPEG floor nearly vanishes (region L1 ~0.002); the baselines miss by ~0.15.
    for task in disentangle.NO_BACKGROUND_TASKS:
        assert tasks[task]["model"]["region_l1"]["mean"] < 0.01, (task, tasks[task])
    for baseline in ("baseline_a", "baseline_b"):
        assert tasks["pose_transfer"][baseline]["region_l1"]["mean"] > 0.1, (baseline, tasks["pose_transfer"])
    for garment, by_output in result["colour"]["pose_transfer"].items():
        model, neutral = by_output["model"], by_output["no_appearance"]
        assert model["n"] >= n - 2 and model["delta_e"] < 3.0, (garment, model)
        assert neutral["delta_e"] > 10.0, (garment, neutral)
