"""reid: person re-identification from a stage-I embedding, Market-1501 protocol (`metrics.reid`).

Every record of the `query` split is matched against every record of `--split` (the gallery,
`test` by default) on the FG, BG or pose embedding of the stage-I encoders; `fg_pca` projects the FG
embedding on `--pca_dims` principal axes fitted on the `train` split only (the paper's Table 2);
`fg_kissme` then ranks by the KISSME distance learned on the same `train` records (`metrics.kissme`).
"""

from __future__ import annotations

from keras_disentangle import configs
from keras_disentangle.metrics.metric import Flag, Inputs, Metric, Needs

QUERY_SPLIT = "query"
PCA_SPLIT = "train"


def _features(inputs: Inputs, split: str, factor) -> dict:
    import numpy as np  # noqa: PLC0415

    from keras_disentangle import data  # noqa: PLC0415
    from keras_disentangle.serving.runtime import encode_factor  # noqa: PLC0415

    chunks = {"features": [], "person_id": [], "camera": []}
    for batch in data.eval_dataset(inputs.data_dir, inputs.cfg, split=split, batch_size=inputs.options.batch_size):
        chunks["features"].append(np.asarray(encode_factor(inputs.stage1, batch, factor)))
        chunks["person_id"].append(batch["person_id"].numpy())
        chunks["camera"].append(batch["camera"].numpy())
    return {key: np.concatenate(value) for key, value in chunks.items()}


class ReidFeatures(configs.StrEnum):
    """The embedding --reid_features matches."""

    FG = "fg"
    FG_PCA = "fg_pca"  # PCA fitted on train
    FG_KISSME = "fg_kissme"  # PCA + KISSME fitted on train
    BG = "bg"
    POSE = "pose"


def compute(inputs: Inputs) -> dict:
    from keras_disentangle import data  # noqa: PLC0415
    from keras_disentangle.metrics import reid  # noqa: PLC0415

    options, cfg = inputs.options, inputs.cfg
    features = options.reid_features
    factor = {ReidFeatures.FG: configs.Factor.FOREGROUND, ReidFeatures.FG_PCA: configs.Factor.FOREGROUND,
              ReidFeatures.FG_KISSME: configs.Factor.FOREGROUND, ReidFeatures.BG: configs.Factor.BACKGROUND,
              ReidFeatures.POSE: configs.Factor.POSE}[features]
    if factor == configs.Factor.BACKGROUND and not cfg.data.has_background:
        raise ValueError(f"--reid_features=bg: the {cfg.data.name!r} run has no background embedding.")
    try:
        data.shard_files(inputs.data_dir, QUERY_SPLIT)
    except ValueError:
        raise ValueError(f"--data_dir={inputs.data_dir}: no '{QUERY_SPLIT}' records; the re-ID queries come from a "
                         "Market folder's query/ with its market-annotation-query.csv (docs/data.md, Converters): "
                         "rebuild with `python -m tfrecords.build`.") from None
    query = _features(inputs, QUERY_SPLIT, factor)
    gallery = _features(inputs, options.split, factor)
    protocol = (f"'{QUERY_SPLIT}' records vs the '{options.split}' records (gallery), {features} embedding, "
                "L2-normalised, Euclidean; same identity + same camera and junk (id -1) removed per query, "
                "distractors (id 0) are negatives; Market's trapezoidal AP")
    extra, distances = {}, None
    if features == ReidFeatures.FG_PCA:
        mean, axes = reid.fit_pca(_features(inputs, PCA_SPLIT, factor)["features"], options.pca_dims)
        query["features"], gallery["features"] = (reid.project(s["features"], mean, axes) for s in (query, gallery))
        extra = {"pca_dims": axes.shape[1], "pca_fitted_on": PCA_SPLIT}
        protocol += f"; PCA to {axes.shape[1]} dims (asked {options.pca_dims}) fitted on '{PCA_SPLIT}' only"
    if features == ReidFeatures.FG_KISSME:
        from keras_disentangle.metrics import kissme  # noqa: PLC0415

        train = _features(inputs, PCA_SPLIT, factor)
        distances, dims = kissme.learned_distances(train["features"], train["person_id"], query["features"],
                                                   gallery["features"], options.pca_dims)
        extra = {"pca_dims": dims, "pca_fitted_on": PCA_SPLIT, "kissme_fitted_on": PCA_SPLIT}
        protocol += (f"; ranked instead by the KISSME distance: L2-normalised, PCA to {dims} dims (asked "
                     f"{options.pca_dims}) and KISSME, both fitted on '{PCA_SPLIT}' only")
    result = reid.evaluate(query["features"], query["person_id"], query["camera"],
                           gallery["features"], gallery["person_id"], gallery["camera"], distances=distances)
    return {**result, **extra, "features": features, "dims": extra.get("pca_dims", int(query["features"].shape[1])),
            "value": result["rank1"], "std": None, "n": result["queries"], "protocol": protocol}


def table(result: dict) -> list[str]:
    from keras_disentangle.metrics.report import number  # noqa: PLC0415

    ranks = [k for k in result if k.startswith("rank")]
    return [f"\nreid ({result['features']}, {result['dims']} dims): {result['queries']} queries "
            f"({result['queries_without_match']} without a match), gallery {result['gallery']}",
            "".join(f"{k:>8}" for k in ranks) + f"{'mAP':>8}{'chance':>8}",
            "".join(f"{number(result[k]):>8}" for k in ranks) + f"{number(result['mAP']):>8}"
            f"{number(result['chance_rank1']):>8}"]


METRIC = Metric(
    name="reid", help="person re-ID (CMC rank-1/5/10, mAP) on an embedding, Market-1501 protocol",
    needs=(Needs.STAGE1,), compute=compute, table=table,
    flags=(Flag("reid_features", "enum", ReidFeatures.FG, "Embedding matched by reid: fg, fg_pca (PCA fitted on "
                "train), fg_kissme (PCA + KISSME fitted on train), bg or pose.",
                choices=ReidFeatures),
           Flag("pca_dims", "integer", 256, "PCA dimensions of --reid_features=fg_pca / fg_kissme (capped at the train "
                "split's rank).", lower_bound=1)))
