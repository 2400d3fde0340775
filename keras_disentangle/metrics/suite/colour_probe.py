"""colour_probe: where along the FG path a garment's colour is lost (linear probes of CIELAB per stage).

For each garment of the synthetic people (`synthetic.GARMENTS`), the target is the CIELAB colour of
its pixels' mean in the input photo (`disentangle.garment_masks`, `disentangle.mean_lab`). A ridge
regression (standardised features, closed form) is fitted on the `train` split and scored by R² per
axis (L*, a*, b*) on the `test` split, from the features at each stage of the path the colour takes:

  first_block      the first block's features averaged over the garment's pixels;
  roi_crop         the garment's body ROI cropped from the masked features (BodyROI7 only);
  roi_encoder      the shared ROI encoder's flattened last level on that crop (BodyROI7 only);
  roi_code         that ROI's code, `roi_embedding_dim` values (BodyROI7 only);
  fg_code          the whole FG embedding;
  reconstruction   the mean colour of the same pixels in G1(x, h).

An R² that falls between two stages locates the loss. L* is lightness, a* and b* the hue plane:
a code that keeps L* but not a*/b* reconstructs people in the right lightness and a grey hue.
"""

from __future__ import annotations

from keras_disentangle.metrics.metric import Inputs, Metric, Needs

# The body ROI (`geometry.ROI_NAMES`) that holds each garment.
GARMENT_ROI = {"upper": "upper_body", "lower": "legs"}
STAGES = ("first_block", "roi_crop", "roi_encoder", "roi_code", "fg_code", "reconstruction")
AXES = ("L", "a", "b")
# Ridge penalty per example on the standardised features: small, the probes read what is linear.
RIDGE = 1e-2


def ridge_r2(fit_x, fit_y, test_x, test_y, ridge: float = RIDGE):
    """R² per output column on (test_x, test_y) of a ridge regression fitted on (fit_x, fit_y)."""
    import numpy as np  # noqa: PLC0415

    mean, scale = fit_x.mean(axis=0), fit_x.std(axis=0) + 1e-6
    fit = np.hstack([(fit_x - mean) / scale, np.ones((len(fit_x), 1))])
    test = np.hstack([(test_x - mean) / scale, np.ones((len(test_x), 1))])
    weights = np.linalg.solve(fit.T @ fit + ridge * len(fit) * np.eye(fit.shape[1]), fit.T @ fit_y)
    residual = ((test @ weights - test_y) ** 2).sum(axis=0)
    return 1.0 - residual / ((test_y - test_y.mean(axis=0)) ** 2).sum(axis=0)


def _stage_features(cfg, stage1, examples) -> tuple[dict, dict]:
    """({garment: Lab targets}, {garment: {stage: features}}) of one split's examples."""
    import json  # noqa: PLC0415

    import keras  # noqa: PLC0415
    import numpy as np  # noqa: PLC0415
    import tensorflow as tf  # noqa: PLC0415

    from keras_disentangle import configs  # noqa: PLC0415
    from keras_disentangle.data import geometry  # noqa: PLC0415
    from keras_disentangle.metrics import disentangle  # noqa: PLC0415
    from keras_disentangle.models.encoders import FG_FEATURES_LAYER  # noqa: PLC0415
    from keras_disentangle.models.layers import RoiAlign  # noqa: PLC0415
    from keras_disentangle.models.stage1 import encoder_inputs, reconstruct  # noqa: PLC0415

    encoder = stage1.appearance_encoder
    inputs = {k: tf.constant(v) for k, v in encoder_inputs(examples).items()}
    fg_features = keras.Model(encoder.input, encoder.get_layer(FG_FEATURES_LAYER[cfg.model.fg_features_masked]).output)
    features = np.asarray(fg_features(inputs), np.float32)
    first = np.asarray(encoder.get_layer("first_block")(inputs["image"]), np.float32)
    fg_code = np.asarray(encoder(inputs)["fg_embedding"])
    reconstruction = np.asarray(reconstruct(stage1, {**inputs, "heatmaps": tf.constant(examples["heatmaps"])}))
    roi7 = cfg.model.fg_encoder == configs.FgEncoderKind.BODY_ROI7
    if roi7:
        crops = np.asarray(RoiAlign(cfg.model.roi_size)([features, inputs["roi_boxes"]]), np.float32)
        roi_encoder = encoder.get_layer("fg_encoder").get_layer("roi_encoder")
        flatten = keras.Model(roi_encoder.input, roi_encoder.get_layer("encoder_flatten").output)
    factors = [json.loads(f) for f in examples["factors"]]
    masks = [disentangle.garment_masks(f["fg"], f["pose"], cfg.data) for f in factors]
    targets, stages = {}, {}
    for garment, roi_name in GARMENT_ROI.items():
        mask = np.stack([m[garment] for m in masks])
        weights = mask[..., None].astype(np.float32)
        targets[garment] = disentangle.mean_lab(examples["image"], mask)
        by_stage = {"first_block": (first * weights).sum((1, 2)) / np.maximum(weights.sum((1, 2)), 1.0),
                    "fg_code": fg_code, "reconstruction": disentangle.mean_lab(reconstruction, mask)}
        if roi7:
            roi = geometry.ROI_NAMES.index(roi_name)
            crop = crops[:, roi]
            dim = cfg.model.roi_embedding_dim
            by_stage.update(roi_crop=crop.reshape(len(crop), -1), roi_encoder=np.asarray(flatten(crop)),
                            roi_code=fg_code[:, roi * dim:(roi + 1) * dim])
        stages[garment] = by_stage
    return targets, stages


def compute(inputs: Inputs) -> dict:
    import numpy as np  # noqa: PLC0415

    from keras_disentangle import data  # noqa: PLC0415

    cfg, n = inputs.cfg, inputs.options.n
    sets = {}
    for split, count in (("train", 2 * n), ("test", n)):
        examples = data.load_examples(inputs.data_dir, cfg, split, count)
        if not all(examples["factors"]):
            raise ValueError(f"--data_dir={inputs.data_dir}: colour_probe needs the synthetic set's ground-truth "
                             "factors; these records have none.")
        sets[split] = _stage_features(cfg, inputs.stage1, examples)
    scores = {}
    for garment in GARMENT_ROI:
        fit_y, test_y = sets["train"][0][garment], sets["test"][0][garment]
        scores[garment] = {}
        for stage in (s for s in STAGES if s in sets["train"][1][garment]):
            fit_x, test_x = sets["train"][1][garment][stage], sets["test"][1][garment][stage]
            # A garment that is not seen (shorts hide no trousers, a turned body its front) has no colour.
            fit_keep = ~(np.isnan(fit_y).any(1) | np.isnan(fit_x).any(1))
            test_keep = ~(np.isnan(test_y).any(1) | np.isnan(test_x).any(1))
            r2 = ridge_r2(fit_x[fit_keep], fit_y[fit_keep], test_x[test_keep], test_y[test_keep])
            scores[garment][stage] = {**{axis: float(v) for axis, v in zip(AXES, r2)},
                                      "dim": int(fit_x.shape[1]), "n": int(test_keep.sum())}
    protocol = (f"ridge regression (penalty {RIDGE} per example, standardised features) of each garment's CIELAB "
                "mean colour in the input photo; fitted on 'train', R² on 'test'; garment pixels: its colour sets "
                ">= half of the pixel")
    upper = scores["upper"]["fg_code"]
    return {"probes": scores, "value": (upper["a"] + upper["b"]) / 2, "std": None, "n": upper["n"],
            "protocol": protocol}


def table(result: dict) -> list[str]:
    from keras_disentangle.metrics.report import number  # noqa: PLC0415

    lines = ["\ncolour_probe: R² of each garment's CIELAB colour read linearly from each stage (1: all of it, "
             "<= 0: none)", f"{'garment':<9}{'stage':<16}{'dim':>6}{'L*':>8}{'a*':>8}{'b*':>8}"]
    for garment, by_stage in result["probes"].items():
        for stage, s in by_stage.items():
            lines.append(f"{garment:<9}{stage:<16}{s['dim']:>6}" + "".join(f"{number(s[a], 2):>8}" for a in AXES))
    return lines


METRIC = Metric(
    name="colour_probe", help="linear probes of each garment's colour along the FG path (synthetic set only)",
    needs=(Needs.STAGE1,), compute=compute, table=table)
