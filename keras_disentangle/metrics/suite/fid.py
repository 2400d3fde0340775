"""fid: Frechet Inception Distance on the 2015 Inception pool-3 features, real statistics cached."""

from __future__ import annotations

import numpy as np

from keras_disentangle.metrics.metric import Flag, Inputs, Metric, Needs, Options, existing_file


def fid_value(generated_features: np.ndarray, real_stats: dict) -> float:
    """FID between generated features and real statistics."""
    from keras_disentangle.metrics import inception, report  # noqa: PLC0415

    fake = report.feature_statistics(generated_features)
    return inception.frechet_distance(fake["mu"], fake["sigma"], real_stats["mu"], real_stats["sigma"])


def check(options: Options) -> None:
    if options.n < 2:
        raise ValueError(f"--n={options.n}: FID needs at least 2 images.")
    existing_file("fid_weights", options.fid_weights,
                  "FID needs the 2015 Inception weights; create them with "
                  "`python -m keras_disentangle.metrics.fid_weights --out=.` (writes fid_inception_2015.npz).")


def compute(inputs: Inputs) -> dict:
    """FID of the generated images against the real set, whose statistics are cached by `real_key`."""
    from keras_disentangle.metrics import fid_weights, report  # noqa: PLC0415 (builds a 24M-parameter network)

    options = inputs.options
    model = fid_weights.build_fid_inception(options.fid_weights)
    features = lambda batch: fid_weights.fid_features(model, batch, batch_size=options.batch_size)  # noqa: E731
    real_stats, cache = report.cached_statistics(options.cache_dir, inputs.real_key,
                                                 lambda: features(inputs.real_images()))
    generated = inputs.images.generated
    return {"value": fid_value(features(generated), real_stats), "n": int(len(generated)),
            "n_real": int(real_stats["n"]), "real_statistics": cache,
            "protocol": ("pool-3 features of the 2015 TF Inception graph (ported, legacy bilinear resize to 299); "
                         "FID is biased upwards for small n: compare equal n only")}


METRIC = Metric(
    name="fid", help="FID on the 2015 Inception pool-3 features (--fid_weights); real statistics in --cache_dir",
    needs=(Needs.IMAGES,), compute=compute, check=check,
    flags=(Flag("fid_weights", "string", None,
                "FID Inception weights (.npz from `python -m keras_disentangle.metrics.fid_weights`), for fid."),))
