"""is: Inception Score of the generated images (Keras InceptionV3 ImageNet logits, 10 splits)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from keras_disentangle.metrics.metric import INCEPTION_WEIGHTS, Inputs, Metric, Needs, Options, existing_file

IS_SPLITS = 10
NOTE = (f"Keras InceptionV3 ImageNet logits, {IS_SPLITS} splits, mean +- std over splits; the paper used "
        "the 2015 TF graph's 1008-way softmax, so compare only runs of the same network")


def inception_score(images_uint8: np.ndarray, classifier_logits: Callable[[np.ndarray], np.ndarray]) -> dict:
    """IS over `IS_SPLITS` folds from a logits function (uint8 images -> `(n, classes)` logits)."""
    from keras_disentangle.metrics import inception  # noqa: PLC0415

    mean, std = inception.inception_score_from_logits(classifier_logits(images_uint8), splits=IS_SPLITS)
    return {"value": mean, "std": std, "n": int(len(images_uint8))}


def keras_classifier(options: Options) -> Callable[[np.ndarray], np.ndarray]:
    from keras_disentangle.metrics import inception  # noqa: PLC0415

    model = inception.load_inception_classifier(options.inception_weights)
    return lambda images: inception.classifier_logits(model, images, batch_size=options.batch_size)


def check(options: Options) -> None:
    """IS needs `IS_SPLITS` images at least and the Keras InceptionV3 weights file."""
    from keras_disentangle.metrics.inception import KERAS_INCEPTION_WEIGHTS  # noqa: PLC0415

    if options.n < IS_SPLITS:
        raise ValueError(f"--n={options.n}: IS uses {IS_SPLITS} splits, so it needs n >= {IS_SPLITS}.")
    existing_file("inception_weights", options.inception_weights,
                  f"IS needs the Keras InceptionV3 ImageNet file {KERAS_INCEPTION_WEIGHTS}; on a machine with "
                  "internet run `python -c \"import keras; keras.applications.InceptionV3(weights='imagenet')\"` "
                  "and copy it from ~/.keras/models/.")


def compute(inputs: Inputs) -> dict:
    return {**inception_score(inputs.images.generated, keras_classifier(inputs.options)), "protocol": NOTE}


METRIC = Metric(
    name="is", help="Inception Score, 10 splits (--inception_weights)", needs=(Needs.IMAGES,), compute=compute,
    flags=(INCEPTION_WEIGHTS,), check=check)
