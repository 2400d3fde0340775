"""ssim: per-image SSIM of each generated image against its target photo (`metrics.image.ssim`)."""

from __future__ import annotations

from keras_disentangle.metrics.metric import SSIM_PROTOCOL, Inputs, Metric, Needs


def compute(inputs: Inputs) -> dict:
    from keras_disentangle.metrics import image as image_metrics  # noqa: PLC0415
    from keras_disentangle.metrics import report  # noqa: PLC0415

    protocol, images = inputs.options.ssim_protocol, inputs.images
    scores = report.chunked(lambda g, t: image_metrics.ssim(g, t, protocol), images.generated, images.targets)
    return {**report.mean_std(scores), "protocol": f"ssim protocol '{protocol}'"}


METRIC = Metric(
    name="ssim", help="per-image SSIM of generated vs target (--ssim_protocol)",
    needs=(Needs.IMAGES, Needs.TARGETS), compute=compute, flags=(SSIM_PROTOCOL,))
