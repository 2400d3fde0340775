"""Tests for keras_disentangle.metrics.leakage (Jacobian influence maps) and .saliency."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_disentangle import configs
from keras_disentangle.metrics import leakage, saliency

H, W = 6, 4


def _linear_generator(weights):
    """y = reshape(e @ weights): its Jacobian w.r.t. e is `weights` itself."""
    matrix = tf.constant(weights.reshape(weights.shape[0], -1), tf.float32)

    def generate(embedding, heatmaps):
        del heatmaps
        return tf.reshape(embedding @ matrix, [-1, H, W, 3])

    return generate


def test_exact_jacobian_norms_of_a_linear_generator(rng):
    weights = rng.normal(size=(5, H, W, 3)).astype(np.float32)
    blocks = [("a", slice(0, 2)), ("b", slice(2, 5))]
    maps = leakage.jacobian_norm_maps(_linear_generator(weights), rng.normal(size=5), np.zeros((H, W, 18)), blocks)
    expected = [np.sqrt((weights[block] ** 2).sum(axis=(0, 3))) for _, block in blocks]
    np.testing.assert_allclose(maps, np.stack(expected), rtol=1e-5)


def test_hutchinson_estimate_approaches_the_exact_norm(rng):
    weights = rng.normal(size=(6, H, W, 3)).astype(np.float32)
    blocks = [("a", slice(0, 6))]
    generate = _linear_generator(weights)
    exact = leakage.jacobian_norm_maps(generate, np.zeros(6), np.zeros((H, W, 18)), blocks)
    estimate = leakage.jacobian_norm_maps(generate, np.zeros(6), np.zeros((H, W, 18)), blocks, projections=512)
    # Mean over 24 pixels of the relative error of a 512-sample estimate: a few percent.
    assert np.mean(np.abs(estimate - exact) / exact) < 0.06
    with pytest.raises(ValueError, match="projections"):
        leakage.jacobian_norm_maps(generate, np.zeros(6), np.zeros((H, W, 18)), blocks, projections=-1)


def test_code_that_only_moves_its_region_has_share_one_and_spread_code_its_area():
    weights = np.zeros((2, H, W, 3), np.float32)
    weights[0, :2, :2] = 1.0  # block a: only the top-left 2 x 2 pixels
    weights[1] = 1.0  # block b: every pixel equally
    blocks = [("a", slice(0, 1)), ("b", slice(1, 2))]
    maps = leakage.jacobian_norm_maps(_linear_generator(weights), np.zeros(2), np.zeros((H, W, 18)), blocks)
    region = np.zeros((H, W), np.float32)
    region[:2, :2] = 1.0
    shares = leakage.region_share(maps, np.stack([region, region]))
    np.testing.assert_allclose(shares, [1.0, 4 / (H * W)], rtol=1e-6)
    assert np.isnan(leakage.region_share(np.zeros((1, H, W)), region[np.newaxis]))[0]


def test_code_regions_box_the_roi_joints_and_complement_the_mask():
    cfg = configs.get_config("synthetic", "tiny")
    keypoints = np.full((18, 2), -1.0, np.float32)
    keypoints[0] = (10, 16)  # nose only: the head ROI, single-joint padding
    mask = np.zeros((cfg.data.height, cfg.data.width, 1), np.float32)
    mask[5:20, 10:20] = 1.0
    regions, defined = leakage.code_regions(cfg, keypoints, mask)
    assert regions.shape == (8, cfg.data.height, cfg.data.width)
    assert defined.tolist() == [True] + [False] * 6 + [True]
    pad = cfg.data.roi_pad_single
    rows, cols = np.nonzero(regions[0])
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (10 - pad, 10 + pad, 16 - pad, 16 + pad)
    np.testing.assert_array_equal(regions[-1], 1.0 - mask[..., 0])
    assert [name for name, _ in leakage.code_blocks(cfg)][-1] == leakage.BACKGROUND



def test_leakage_averages_each_codes_share_over_the_images_and_the_measured_codes(monkeypatch):
    """With every code's region the top third: a code moving only its region has share 1, one moving
    every pixel alike the area 1/3, one moving only the rest 0; a code without influence is not measured
    (n 0). mean_share averages the measured codes' shares, (1 + 1/3 + 0) / 3, not their areas (1/3)."""
    cfg = configs.get_config("synthetic", "micro")
    blocks = leakage.code_blocks(cfg)
    region = np.zeros((H, W), np.float32)
    region[:2] = 1.0
    weights = np.zeros((blocks[-1][1].stop, H, W, 3), np.float32)
    weights[blocks[0][1], :2] = 1.0
    weights[blocks[1][1]] = 1.0
    weights[blocks[2][1], 2:] = 1.0
    monkeypatch.setattr(leakage, "code_regions", lambda cfg, keypoints, body_mask: (
        np.stack([region] * len(blocks)), np.ones(len(blocks), bool)))
    summary, _ = leakage.measure_leakage(cfg, _linear_generator(weights), np.zeros((2, len(weights)), np.float32),
                                         np.zeros((2, H, W, 18)), np.zeros((2, 18, 2)), np.zeros((2, H, W, 1)))
    codes = [summary["codes"][name] for name, _ in blocks]
    assert [c["share"] for c in codes[:3]] == pytest.approx([1.0, 1 / 3, 0.0], abs=1e-6)
    assert [c["n"] for c in codes] == [2, 2, 2] + [0] * (len(blocks) - 3)
    assert summary["mean_share"] == pytest.approx(4 / 9, abs=1e-6), "mean_share is not the measured codes' mean share"
    assert summary["mean_area"] == pytest.approx(1 / 3)


def test_saliency_body_share_is_each_maps_mass_inside_the_body_mask(monkeypatch):
    """A map on one body pixel has share 1, a flat one the mask's area (1/2), one outside the body 0;
    an empty map (an image where the block has no influence) is left out of the mean."""
    from types import SimpleNamespace

    body = np.zeros((2, H, W, 1), np.float32)
    body[:, :3] = 1.0
    on_body, flat, off_body = np.zeros((2, H, W)), np.ones((2, H, W)), np.zeros((2, H, W))
    on_body[0, 1, 1] = 1.0  # image 1: no influence at all
    off_body[:, 4:] = 0.5
    monkeypatch.setattr(saliency, "d1_maps", lambda d1, images: {"saliency": flat, "grad_cam": flat})
    monkeypatch.setattr(saliency, "encoder_maps", lambda cfg, stage1, batch, progress: {
        "saliency": {"head": on_body, "background": off_body}, "grad_cam": {"head": flat, "background": off_body}})
    batch = {"image": np.zeros((2, H, W, 3), np.float32), "body_mask": body}
    summary, _, _ = saliency.saliency_report(configs.get_config("synthetic", "micro"), SimpleNamespace(d1=None), batch)
    assert summary["body_share"] == {"saliency": {"head": 1.0, "background": 0.0},
                                     "grad_cam": {"head": 0.5, "background": 0.0}}

@pytest.fixture(scope="module")
def tiny_stage1():
    from keras_disentangle.models.stage1 import build_stage1

    keras.utils.set_random_seed(0)
    cfg = configs.get_config("synthetic", "tiny")
    return cfg, build_stage1(cfg)


def _batch(cfg, rng, size=2):
    from keras_disentangle.data import geometry

    h, w = cfg.data.height, cfg.data.width
    keypoints = np.array([[[10 + 2 * j, 8 + (j % 4) * 4] for j in range(18)]] * size, np.float32)
    boxes, visibility = geometry.roi_boxes(keypoints, h, w, pad=cfg.data.roi_pad, pad_single=cfg.data.roi_pad_single)
    return {"image": rng.uniform(-1, 1, (size, h, w, 3)).astype(np.float32),
            "body_mask": geometry.body_mask(keypoints, h, w, cfg.data.mask_radius, cfg.data.mask_close_size).numpy(),
            "roi_boxes": boxes.numpy(), "roi_visibility": visibility.numpy()}


def test_d1_saliency_matches_tf_keras_vis(tiny_stage1, rng):
    from tf_keras_vis.saliency import Saliency

    cfg, stage1 = tiny_stage1
    images = _batch(cfg, rng)["image"]
    ours = saliency.d1_maps(stage1.d1, images)
    with pytest.warns(UserWarning):  # Keras 3 notes that tf-keras-vis passes a list, not a tensor
        theirs = Saliency(stage1.d1, clone=False)(lambda logit: logit[:, 0], images)
    # tf-keras-vis adds an epsilon to the normalizing range; the maps agree to that.
    np.testing.assert_allclose(ours["saliency"], theirs, atol=1e-4)
    assert ours["grad_cam"].shape == images.shape[:3]
    assert 0.0 <= ours["grad_cam"].min() and ours["grad_cam"].max() <= 1.0


def test_encoder_saliency_stays_on_its_branch_side_of_the_mask(tiny_stage1, rng):
    """The first block (3x3 conv + a residual block of two 3x3 convs) sees 3 pixels around each
    feature, so an FG code cannot depend on pixels more than 3 pixels outside the body mask, nor
    the BG code on pixels more than 3 pixels inside it."""
    cfg, stage1 = tiny_stage1
    batch = _batch(cfg, rng)
    maps = saliency.encoder_maps(cfg, stage1, batch)["saliency"]
    mask = tf.constant(batch["body_mask"])
    grown = tf.nn.max_pool2d(mask, 7, 1, "SAME").numpy()[..., 0]
    shrunk = -tf.nn.max_pool2d(-mask, 7, 1, "SAME").numpy()[..., 0]
    assert maps["head"].max() > 0 and maps["background"].max() > 0
    assert np.all(maps["head"][grown == 0] == 0)
    assert np.all(maps["upper_body"][grown == 0] == 0)
    assert np.all(maps["background"][shrunk == 1] == 0)
