"""leakage: the share of each appearance code's Jacobian mass inside its own region
(`metrics.leakage`), on the task's first `--leakage_n` images; writes leakage.png."""

from __future__ import annotations

import os

from keras_disentangle.metrics.metric import DEFAULTS, Flag, Inputs, Metric, Needs


def compute(inputs: Inputs) -> dict:
    import numpy as np  # noqa: PLC0415
    import tensorflow as tf  # noqa: PLC0415

    from keras_disentangle.metrics import leakage, report  # noqa: PLC0415
    from keras_disentangle.serving.runtime import appearance_embedding, encoder_inputs  # noqa: PLC0415

    options, cfg, stage1 = inputs.options, inputs.cfg, inputs.stage1
    source, target = report.first_pairs(cfg, inputs.data_dir, options, options.leakage_n)
    embeddings = np.asarray(appearance_embedding(stage1.appearance_encoder(encoder_inputs(source), training=False)))

    def generate(embedding, heatmaps):
        return stage1.generator({"appearance_embedding": embedding, "heatmaps": heatmaps}, training=False)

    count = len(embeddings)
    summary, arrays = leakage.measure_leakage(
        cfg, generate, embeddings, target["heatmaps"], target["keypoints"], target["body_mask"],
        projections=options.leakage_projections, seed=options.seed, progress=report.progress_bar(count, "image"))
    generated = np.asarray(generate(tf.constant(embeddings), tf.constant(target["heatmaps"])))
    rows = leakage.leakage_rows(generated, arrays["maps"], arrays["regions"], arrays["defined"])
    titles = ["output"] + [name for name, _ in leakage.code_blocks(cfg)]
    path = report.write_grid(os.path.join(options.out_dir, "leakage.png"), rows, titles, cfg)
    estimator = ("exact (one forward-mode JVP per code dimension)" if not options.leakage_projections else
                 f"Hutchinson, {options.leakage_projections} Gaussian JVP tangents per code block")
    return {**summary, "value": summary["mean_share"], "std": None, "n": count, "png": path,
            "estimator": estimator,
            "protocol": (f"share of the per-pixel Jacobian Frobenius norm inside the code's region ({estimator}); "
                         "FG code: its ROI box in the target pose; BG code: outside the target's body mask")}


def table(result: dict) -> list[str]:
    from keras_disentangle.metrics.report import number  # noqa: PLC0415

    lines = [f"\nleakage on {result['n']} images: share of each code's influence inside its own region "
             "(higher is better; area = the share of an evenly spread code)",
             f"{'code':<12}{'share':>8}{'std':>8}{'area':>8}{'n':>5}"]
    for code, m in result["codes"].items():
        lines.append(f"{code:<12}{number(m['share']):>8}{number(m['share_std']):>8}{number(m['area']):>8}"
                     f"{m['n']:>5}")
    return lines


METRIC = Metric(
    name="leakage", help="share of each appearance code's Jacobian mass inside its own region; PNG grid",
    needs=(Needs.STAGE1,), compute=compute, table=table,
    flags=(Flag("leakage_n", "integer", DEFAULTS.leakage_n, "Images the leakage maps are computed on.",
                lower_bound=1),
           Flag("leakage_projections", "integer", DEFAULTS.leakage_projections,
                "0: exact Jacobian norms; K: Hutchinson estimate, K tangents.", lower_bound=0)))
