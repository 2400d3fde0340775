"""Known answers of the registered metrics (each value, not only its keys), and the masks and regions
they score: mask-SSIM with the target's body mask, gt_swap and the sampled checks in their regions."""

import numpy as np
import pytest

from keras_disentangle.metrics import registry


def test_mask_ssim_masks_with_the_targets_pose_not_the_sources(stage1_run, synthetic_records):
    """The authors' score_mask.py masked with the source's pose (their documented bug); the default is the target's."""
    from keras_disentangle import data
    from keras_disentangle.metrics import image, report
    from keras_disentangle.metrics.suite import mask_ssim
    from keras_disentangle.runtime import load_stage1

    cfg, stage1 = load_stage1(stage1_run)
    options = registry.EvalOptions(metrics=("mask_ssim",), task="transfer", n=4, batch_size=4)
    images = report.model_images(cfg, stage1, synthetic_records, options)
    source, target = next(iter(data.pairs_dataset(synthetic_records, cfg, "test", 4)))

    def mask(keypoints):
        return report.metrics_masks(cfg.data, keypoints)

    np.testing.assert_array_equal(images.masks["target"], mask(target["keypoints"]))
    assert np.abs(mask(target["keypoints"]) - mask(source["keypoints"])).sum() > 10  # the poses differ
    scored = mask_ssim.compute(registry.Inputs(options, images))
    with_target = image.mask_ssim(images.generated, images.targets, mask(target["keypoints"]))
    with_source = image.mask_ssim(images.generated, images.targets, mask(source["keypoints"]))
    assert scored["value"] == pytest.approx(float(np.mean(with_target)), abs=1e-9)
    assert abs(float(np.mean(with_source)) - float(np.mean(with_target))) > 1e-3
    assert "target's pose" in scored["protocol"]


def test_sharpness_of_stripes_against_a_checkerboard_is_a_quarter():
    """In [0, 1] units the 4-neighbour Laplacian is +-4 on a checkerboard (energy 16) and +-2 on
    one-pixel vertical stripes (energy 4): the ratio is exactly 1/4."""
    from keras_disentangle.metrics import report
    from keras_disentangle.metrics.suite import sharpness

    rows, cols = np.indices((8, 6))
    checker = np.repeat(((rows + cols) % 2 * 255).astype(np.uint8)[None, ..., None], 3, axis=-1)
    stripes = np.repeat((cols % 2 * 255).astype(np.uint8)[None, ..., None], 3, axis=-1)
    options = registry.EvalOptions(metrics=("sharpness",))
    result = sharpness.compute(registry.Inputs(options, report.ImageSet(stripes, checker, {}, [], "")))
    assert (result["generated_energy"], result["target_energy"], result["value"]) == pytest.approx((4.0, 16.0, 0.25))
    assert sharpness.compute(registry.Inputs(options, report.ImageSet(checker, checker, {}, [], "")))["value"] == 1.0


def _labels_as_codes(monkeypatch):
    """Stage-I codes replaced by one-hot labels: the FG code is the identity, the BG code the scene, the
    pose code a constant (it carries nothing)."""
    import tensorflow as tf

    from keras_disentangle import runtime

    def encode_factor(stage1, batch, factor):
        field = {"fg": "person_id", "bg": "bg_id"}.get(factor.value)
        if field is None:
            return tf.ones([tf.shape(batch["image"])[0], 4])
        return tf.one_hot(tf.math.floormod(batch[field], 64), 64)

    monkeypatch.setattr(runtime, "encode_factor", encode_factor)


def test_probe_and_reid_on_codes_that_are_the_labels(stage1_run, synthetic_records, monkeypatch):
    """A code that is the identity is probed and re-identified perfectly; a constant code scores chance."""
    from keras_disentangle import runtime
    from keras_disentangle.metrics.suite import probe, reid

    cfg, _ = runtime.load_stage1(stage1_run)
    _labels_as_codes(monkeypatch)
    inputs = registry.Inputs(registry.EvalOptions(metrics=("probe",)), cfg=cfg, data_dir=synthetic_records)
    probes = probe.compute(inputs)
    assert probes["value"] == probes["probes"]["identity"]["fg"]["accuracy"] == 1.0
    assert probes["probes"]["background"]["bg"]["accuracy"] == 1.0
    for target, by_factor in probes["probes"].items():
        assert by_factor["pose"]["accuracy"] == pytest.approx(by_factor["pose"]["chance"]), target
    inputs.options = registry.EvalOptions(metrics=("reid",), params={"reid_features": "fg"})
    result = reid.compute(inputs)
    assert result["queries"] > 0 and result["rank1"] == result["mAP"] == result["value"] == 1.0


def test_sample_checks_identity_reads_the_body_region_where_half_the_training_poses_have_the_body(
        synthetic_records, rng):
    """sample_check's identity test looks at the fixed body region only: noise outside it changes
    nothing (training photos stay training people), noise inside it makes them chance."""
    from keras_disentangle import configs, data
    from keras_disentangle.metrics import report, sampling
    from keras_disentangle.visualize import to_uint8

    cfg = configs.get_config("synthetic", "micro")
    train = data.load_examples(synthetic_records, cfg, split="train")
    test = data.load_examples(synthetic_records, cfg, split="test")
    poses = train["keypoints"][[0, 0, 5]]  # pose 0 in two of three: its body alone reaches half
    masks = report.metrics_masks(cfg.data, poses)[..., 0] > 0
    assert (masks[0] != masks[2]).any()
    np.testing.assert_array_equal(sampling.body_region(poses, cfg.data), masks[0])

    region = sampling.body_region(train["keypoints"], cfg.data)[None, ..., None]
    photos = to_uint8(train["image"])
    noise = rng.integers(0, 256, photos.shape, dtype=np.uint8)
    outside = np.where(region, photos, noise)
    inside = np.where(region, noise, photos)
    shares = {name: sampling.identity_check(images, train, test, cfg.data)["share"]
              for name, images in (("photos", photos), ("outside", outside), ("inside", inside))}
    assert shares["outside"] == shares["photos"] == 1.0 and shares["inside"] <= 0.1, shares
