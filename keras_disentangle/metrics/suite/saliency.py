"""saliency: saliency and Grad-CAM maps of D1 and the encoders (`metrics.saliency`) on the task's first
`--saliency_n` source images; writes saliency.png."""

from __future__ import annotations

import os

from keras_disentangle.metrics.metric import DEFAULTS, Flag, Inputs, Metric, Needs


def compute(inputs: Inputs) -> dict:
    from keras_disentangle.metrics import report, saliency  # noqa: PLC0415

    options, cfg = inputs.options, inputs.cfg
    source, _ = report.first_pairs(cfg, inputs.data_dir, options, options.saliency_n)
    summary, rows, titles = saliency.saliency_report(cfg, inputs.stage1, source, progress=report.progress_bar)
    path = report.write_grid(os.path.join(options.out_dir, "saliency.png"), rows, titles, cfg)
    return {**summary, "value": None, "png": path,
            "protocol": ("vanilla gradient saliency (max |grad| over channels) and Grad-CAM (D1: last LeakyReLU; "
                         "encoders: the masked first-block features), each scaled to [0, 1] per image; "
                         "body_share = mean share of a map inside the body mask")}


METRIC = Metric(
    name="saliency", help="saliency / Grad-CAM of D1 and the encoders; PNG grid", needs=(Needs.STAGE1,),
    compute=compute,
    flags=(Flag("saliency_n", "integer", DEFAULTS.saliency_n, "Images in the saliency grid.", lower_bound=1),))
