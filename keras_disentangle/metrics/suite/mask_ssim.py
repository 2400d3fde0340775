"""mask_ssim: SSIM of generated and target images both multiplied by a body mask (`--mask_from`)."""

from __future__ import annotations

from keras_disentangle.metrics.metric import MASK_FROM, SSIM_PROTOCOL, Inputs, Metric, Needs


def compute(inputs: Inputs) -> dict:
    from keras_disentangle.metrics import image as image_metrics  # noqa: PLC0415
    from keras_disentangle.metrics import report  # noqa: PLC0415

    options, images = inputs.options, inputs.images
    masks = report.body_masks(images, options.mask_from)
    scores = report.chunked(lambda g, t, m: image_metrics.mask_ssim(g, t, m, options.ssim_protocol),
                            images.generated, images.targets, masks)
    return {**report.mean_std(scores),
            "protocol": f"ssim protocol '{options.ssim_protocol}'; {report.MASK_NOTE[options.mask_from]}"}


METRIC = Metric(
    name="mask_ssim", help="SSIM with both images masked by the body mask (--mask_from, --ssim_protocol)",
    needs=(Needs.IMAGES, Needs.TARGETS), compute=compute, flags=(SSIM_PROTOCOL, MASK_FROM))
