"""inversion: inverse interpolation's endpoints on test images (`metrics.sampling.inversion_report`):
SSIM of decode(Phi(z*)) against the stage-I reconstruction, and the relative inversion errors."""

from __future__ import annotations

from keras_disentangle.metrics.metric import DEFAULTS, Flag, Inputs, Metric, Needs, json_table


def compute(inputs: Inputs) -> dict:
    from keras_disentangle.metrics import sampling  # noqa: PLC0415

    options = inputs.options
    result = sampling.inversion_report(inputs.stage2, inputs.data_dir, options.inversions, options.invert_steps,
                                       options.seed)
    return {**result, "value": result["ssim_vs_reconstruction"], "n": result["images"],
            "protocol": ("SSIM (the paper's grayscale protocol) of decode(Phi(z*)) against G1(x, h); relative error "
                         "||Phi(z*) - e||^2 / ||e||^2 per factor")}


METRIC = Metric(
    name="inversion", help="stage II: inverse interpolation endpoints against the reconstructions",
    needs=(Needs.STAGE2,), compute=compute, table=json_table("inversion on {n} images"),
    flags=(Flag("inversions", "integer", DEFAULTS.inversions, "inversion: test image pairs.", lower_bound=1),
           Flag("invert_steps", "integer", DEFAULTS.invert_steps, "inversion: gradient steps per inversion.",
                lower_bound=0)))
