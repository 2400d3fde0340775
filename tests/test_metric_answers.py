"""Known answers of the registered metrics (each value, not only its keys), and the masks and regions
they score: mask-SSIM with the target's body mask, gt_swap and the sampled checks in their regions."""

import numpy as np
import pytest

from keras_disentangle.metrics import registry


def test_mask_ssim_masks_with_the_targets_pose_not_the_sources(stage1_run, synthetic_records):
    """The authors' score_mask.py masked with the source's pose (their documented bug); the default is the target's."""
    from keras_disentangle import data, geometry
    from keras_disentangle.metrics import image, report
    from keras_disentangle.metrics.suite import mask_ssim
    from keras_disentangle.runtime import load_stage1

    cfg, stage1 = load_stage1(stage1_run)
    options = registry.EvalOptions(metrics=("mask_ssim",), task="transfer", n=4, batch_size=4)
    images = report.model_images(cfg, stage1, synthetic_records, options)
    source, target = next(iter(data.pairs_dataset(synthetic_records, cfg, "test", 4)))
    d = cfg.data

    def mask(keypoints):
        return geometry.body_mask(keypoints, d.height, d.width, report.metrics_mask_radius(d),
                                  close_size=d.mask_close_size).numpy()

    np.testing.assert_array_equal(images.masks["target"], mask(target["keypoints"]))
    assert np.abs(mask(target["keypoints"]) - mask(source["keypoints"])).sum() > 10  # the poses differ
    scored = mask_ssim.compute(registry.Inputs(options, images))
    with_target = image.mask_ssim(images.generated, images.targets, mask(target["keypoints"]))
    with_source = image.mask_ssim(images.generated, images.targets, mask(source["keypoints"]))
    assert scored["value"] == pytest.approx(float(np.mean(with_target)), abs=1e-9)
    assert abs(float(np.mean(with_source)) - float(np.mean(with_target))) > 1e-3
    assert "target's pose" in scored["protocol"]
