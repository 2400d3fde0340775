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
    from keras_disentangle.serving.runtime import load_stage1

    cfg, stage1 = load_stage1(stage1_run)
    options = registry.EvalOptions(metrics=("mask_ssim",), task="transfer", n=4, batch_size=4)
    images = report.model_images(cfg, stage1, synthetic_records, options)
    source, target = next(iter(data.pairs_dataset(synthetic_records, cfg, "test", 4)))

    def mask(keypoints):
        return report.metrics_masks(cfg.data, keypoints)

    np.testing.assert_array_equal(images.masks["target"], mask(target["keypoints"]),
                                  err_msg="the target masks are not those of the target's pose")
    assert np.abs(mask(target["keypoints"]) - mask(source["keypoints"])).sum() > 10  # the poses differ
    scored = mask_ssim.compute(registry.Inputs(options, images))
    with_target = image.mask_ssim(images.generated, images.targets, mask(target["keypoints"]))
    with_source = image.mask_ssim(images.generated, images.targets, mask(source["keypoints"]))
    assert scored["value"] == pytest.approx(float(np.mean(with_target)), abs=1e-9), (
        f"mask_ssim scored {scored['value']}, not mask-SSIM under the target's mask ({np.mean(with_target)}; under "
        f"the source's: {np.mean(with_source)})")
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

    from keras_disentangle.serving import runtime

    def encode_factor(stage1, batch, factor):
        field = {"fg": "person_id", "bg": "bg_id"}.get(factor.value)
        if field is None:
            return tf.ones([tf.shape(batch["image"])[0], 4])
        return tf.one_hot(tf.math.floormod(batch[field], 64), 64)

    monkeypatch.setattr(runtime, "encode_factor", encode_factor)


def test_probe_and_reid_on_codes_that_are_the_labels(stage1_run, synthetic_records, monkeypatch):
    """A code that is the identity is probed and re-identified perfectly; a constant code scores chance."""
    from keras_disentangle.serving import runtime
    from keras_disentangle.metrics.suite import probe, reid

    cfg, _ = runtime.load_stage1(stage1_run)
    _labels_as_codes(monkeypatch)
    inputs = registry.Inputs(registry.EvalOptions(metrics=("probe",)), cfg=cfg, data_dir=synthetic_records)
    probes = probe.compute(inputs)
    assert probes["value"] == probes["probes"]["identity"]["fg"]["accuracy"] == 1.0, (
        "probe's value is not the FG code's identity accuracy", probes["value"])
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
    from keras_disentangle.data.visualize import to_uint8

    cfg = configs.get_config("synthetic", "micro")
    train = data.load_examples(synthetic_records, cfg, split="train")
    test = data.load_examples(synthetic_records, cfg, split="test")
    poses = train["keypoints"][[0, 0, 5]]  # pose 0 in two of three: its body alone reaches half
    masks = report.metrics_masks(cfg.data, poses)[..., 0] > 0
    assert (masks[0] != masks[2]).any()
    np.testing.assert_array_equal(sampling.body_region(poses, cfg.data), masks[0],
                                  err_msg="the identity region is not where half the poses have the body")

    region = sampling.body_region(train["keypoints"], cfg.data)[None, ..., None]
    photos = to_uint8(train["image"])
    noise = rng.integers(0, 256, photos.shape, dtype=np.uint8)
    outside = np.where(region, photos, noise)
    inside = np.where(region, noise, photos)
    shares = {name: sampling.identity_check(images, train, test, cfg.data)["share"]
              for name, images in (("photos", photos), ("outside", outside), ("inside", inside))}
    assert shares["outside"] == shares["photos"] == 1.0 and shares["inside"] <= 0.1, shares


def test_is_and_mask_is_of_a_classifier_sure_by_one_pixel_outside_the_body(monkeypatch):
    """A classifier sure of one of two classes by a pixel the target's body mask leaves out: images
    alternating between the two score IS 2 (confident, evenly spread in each fold); masked by the
    target's mask they are all one class, mask_is 1; the source's mask (here the whole image) would keep 2."""
    from keras_disentangle.metrics import report
    from keras_disentangle.metrics.suite import inception_score, mask_inception_score

    images = np.full((20, 8, 4, 3), 90, np.uint8)
    images[::2, -1, -1] = 255
    target = np.zeros((20, 8, 4, 1), np.float32)
    target[:, :4] = 1.0
    monkeypatch.setattr(inception_score, "keras_classifier",
                        lambda options: lambda batch: 50.0 * np.eye(2)[(batch[:, -1, -1, 0] > 128).astype(int)])
    masks = {"target": target, "source": np.ones_like(target)}
    inputs = registry.Inputs(registry.EvalOptions(metrics=("is", "mask_is")),
                             images=report.ImageSet(images, None, masks, [], ""))
    assert inception_score.compute(inputs)["value"] == pytest.approx(2.0), "is of two confident, evenly spread classes"
    assert mask_inception_score.compute(inputs)["value"] == pytest.approx(1.0), (
        "mask_is did not classify the images times the target's body mask")


def test_fid_compares_the_generated_features_with_the_real_sets(monkeypatch, rng):
    """With the Inception features replaced by each image's mean colour: the real set against itself
    scores 0, and every channel 10 grey levels lighter scores 3 x 10^2 (equal covariances)."""
    from keras_disentangle.metrics import fid_weights, report
    from keras_disentangle.metrics.suite import fid

    real = rng.integers(0, 200, (16, 4, 4, 3), dtype=np.uint8)
    monkeypatch.setattr(fid_weights, "build_fid_inception", lambda path: None)
    monkeypatch.setattr(fid_weights, "fid_features",
                        lambda model, batch, batch_size: np.asarray(batch, np.float64).mean(axis=(1, 2)))
    options = registry.EvalOptions(metrics=("fid",), n=16)
    for generated, expected in ((real, 0.0), (real + 10, 300.0)):
        inputs = registry.Inputs(options, images=report.ImageSet(generated, None, {}, [], ""),
                                 real_images=lambda: real, real_key={})
        result = fid.compute(inputs)
        assert result["value"] == pytest.approx(expected, abs=1e-6) and result["n_real"] == 16, result


def test_colour_probe_reads_a_code_that_holds_the_colour_and_not_noise(synthetic_records, monkeypatch):
    """Ridge R² on the test split per garment and stage: a code holding the upper garment's a* and b*
    scores ~1 on them (the ridge penalty shrinks by 1/(1 + RIDGE)) and its noise L* ~0 or below; the
    value is upper/fg_code's (a* + b*) / 2; pairs without a colour (NaN) are left out."""
    from keras_disentangle import configs
    from keras_disentangle.metrics.suite import colour_probe

    rng = np.random.default_rng(0)

    def stage_features(cfg, stage1, examples):
        n = len(examples["image"])
        colours = {garment: rng.normal(size=(n, 3)) for garment in colour_probe.GARMENT_ROI}
        colours["upper"][0] = np.nan  # a garment not seen in one photo
        noise = {garment: rng.normal(size=(n, 1)) for garment in colour_probe.GARMENT_ROI}
        code = np.hstack([rng.normal(size=(n, 1)), np.nan_to_num(colours["upper"][:, 1:])])
        return colours, {"upper": {"fg_code": code, "first_block": noise["upper"]},
                         "lower": {"fg_code": noise["lower"], "first_block": noise["lower"]}}

    monkeypatch.setattr(colour_probe, "_stage_features", stage_features)
    inputs = registry.Inputs(registry.EvalOptions(metrics=("colour_probe",), n=8),
                             cfg=configs.get_config("synthetic", "micro"), data_dir=synthetic_records)
    result = colour_probe.compute(inputs)
    upper = result["probes"]["upper"]["fg_code"]
    assert upper["a"] > 0.99 and upper["b"] > 0.99 and upper["L"] < 0.3, upper
    assert result["value"] == pytest.approx((upper["a"] + upper["b"]) / 2), "value: not upper/fg_code's a*, b* R²"
    assert result["n"] == upper["n"] == 7
    for garment, stage in (("upper", "first_block"), ("lower", "fg_code"), ("lower", "first_block")):
        assert max(result["probes"][garment][stage][axis] for axis in colour_probe.AXES) < 0.3, (garment, stage)


def test_inversion_scores_the_walks_ends_against_the_reconstructions(synthetic_records, monkeypatch):
    """ssim_vs_reconstruction compares decode(Phi(z*)) at both ends of each walk with G1(x, h) of that
    end's image: walks that end exactly on the reconstructions score 1, whatever the images are."""
    from types import SimpleNamespace

    from keras_disentangle import apps, configs
    from keras_disentangle.metrics.suite import inversion

    def reconstruct(images, keypoints):  # a picture other than the photo: darker and flipped
        return {"image": np.asarray(images)[:, :, ::-1] * 0.5 - 0.2}

    def invert_interpolate(models, a, b, steps, invert_steps, seed):
        ends = [reconstruct(x["image"], x["keypoints"])["image"] for x in (a, b)]
        walk = [(1 - t) * ends[0] + t * ends[1] for t in np.linspace(0, 1, steps)]
        return {"image": np.stack(walk, axis=1), "relative_error_fg": np.array([[0.1, 0.3], [0.2, 0.4]])}

    monkeypatch.setattr(apps, "invert_interpolate", invert_interpolate)
    models = SimpleNamespace(cfg=configs.get_config("synthetic", "micro"), reconstruct=reconstruct)
    options = registry.EvalOptions(metrics=("inversion",), params={"inversions": 2, "invert_steps": 0})
    result = inversion.compute(registry.Inputs(options, stage2=models, data_dir=synthetic_records))
    assert result["value"] == pytest.approx(1.0), "the walks' ends were not scored against the reconstructions"
    assert result["n"] == 4 and result["relative_error_fg"] == 0.25
    assert result["ssim_reconstruction_vs_image"] < 0.9
