"""The applications and their front-ends: `applications` (what a trained model is for, paper
Sec. 4.3-4.5: sampling, factor swaps, pose transfer, interpolation and inverse interpolation, whose
names are importable from here: `apps.sample`, `apps.swap`, ...), the command line `generate` (with
`generate_inputs`), the browser demo `app` (with `app_functions` and `app_page`) and `virtual_market`.
"""

from keras_disentangle.apps.applications import (
    INTERPOLATIONS,
    parse_factors,
    roi_selector,
    render,
    sample,
    swap_codes,
    swap,
    transfer,
    lerp,
    slerp,
    interpolate,
    invert,
    invert_interpolate,
)

__all__ = [
    "INTERPOLATIONS",
    "parse_factors",
    "roi_selector",
    "render",
    "sample",
    "swap_codes",
    "swap",
    "transfer",
    "lerp",
    "slerp",
    "interpolate",
    "invert",
    "invert_interpolate",
]
