"""sharpness: high-frequency (3x3 Laplacian) energy of the generated images over their targets'
(`metrics.image.sharpness_ratio`); 1 is as sharp as the photos, an L1 blur is below 1."""

from __future__ import annotations

from keras_disentangle.metrics.metric import Inputs, Metric, Needs


def compute(inputs: Inputs) -> dict:
    from keras_disentangle.metrics import image as image_metrics  # noqa: PLC0415

    images = inputs.images
    generated = image_metrics.laplacian_energy(images.generated)
    targets = image_metrics.laplacian_energy(images.targets)
    return {"value": image_metrics.sharpness_ratio(images.generated, images.targets), "n": int(len(generated)),
            "generated_energy": float(generated.mean()), "target_energy": float(targets.mean()),
            "protocol": "sum over images of the mean squared 4-neighbour Laplacian (per channel, interior pixels, "
                        "[0, 1] units) of the generated images / of their targets"}


METRIC = Metric(
    name="sharpness", help="Laplacian high-frequency energy of generated / target images (1: as sharp as the target)",
    needs=(Needs.IMAGES, Needs.TARGETS), compute=compute)
