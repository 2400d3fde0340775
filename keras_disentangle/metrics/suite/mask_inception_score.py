"""mask_is: Inception Score of the generated images times the body mask, as the original mask-IS."""

from __future__ import annotations

import numpy as np

from keras_disentangle.metrics.metric import INCEPTION_WEIGHTS, MASK_FROM, Inputs, Metric, Needs
from keras_disentangle.metrics.suite import inception_score


def masked_images(images: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """uint8(mask * image), as the original mask-IS fed the classifier."""
    return (np.asarray(masks, np.float64) * images).astype(np.uint8)


def compute(inputs: Inputs) -> dict:
    from keras_disentangle.metrics import report  # noqa: PLC0415

    options = inputs.options
    masked = masked_images(inputs.images.generated, report.body_masks(inputs.images, options.mask_from))
    return {**inception_score.inception_score(masked, inception_score.keras_classifier(options)),
            "protocol": f"{inception_score.NOTE}; generated images times the body mask, "
                        f"{report.MASK_NOTE[options.mask_from]}"}


METRIC = Metric(
    name="mask_is", help="Inception Score of the images times the body mask (--inception_weights, --mask_from)",
    needs=(Needs.IMAGES,), compute=compute, flags=(INCEPTION_WEIGHTS, MASK_FROM), check=inception_score.check)
