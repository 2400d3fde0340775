"""sampling: how close stage II's samples are to real data (`metrics.sampling.sampling_report`):
per factor the Frechet distance of Phi(z) to held-out embeddings, trained and at initialization,
and with a pose mapper the share of sampled poses that look like bodies."""

from __future__ import annotations

from keras_disentangle.metrics.metric import DEFAULTS, Flag, Inputs, Metric, Needs, json_table


def compute(inputs: Inputs) -> dict:
    from keras_disentangle.metrics import sampling  # noqa: PLC0415

    options = inputs.options
    result = sampling.sampling_report(inputs.stage2, inputs.data_dir, options.sampling_n, options.seed)
    return {**result, "value": None, "n": options.sampling_n,
            "protocol": ("Frechet distance of embeddings (FID's formula on the K-d codes) against the test split's "
                         "stage-I embeddings, for the trained and a freshly initialized mapper (fall = init / "
                         "trained); pose_validity = share of poses with limb lengths and joint angles inside the "
                         "train split's ranges")}


METRIC = Metric(
    name="sampling", help="stage II: Frechet distance of sampled to real embeddings, sampled pose validity",
    needs=(Needs.STAGE2,), compute=compute, table=json_table("sampling ({n} samples per factor)"),
    flags=(Flag("sampling_n", "integer", DEFAULTS.sampling_n, "sampling: sampled embeddings per factor.",
                lower_bound=2),))
