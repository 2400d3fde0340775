"""Reader of the synthetic set written by `python -m tfrecords.synthetic` (docs/CONTRACTS.md).

The root has the Market-1501 layout (read by `tfrecords.market`) plus `factors.json`:

    {"format": "keras-disentangle-synthetic/1", "seed": S, "height": 128, "width": 64,
     "identities":  {"<fg_id>": {...}}, "backgrounds": {"<bg_id>": {...}},
     "images": {"<file name>": {"fg_id": int, "bg_id": int, "pose": {...}}}}

The image size is factors.json's `height` x `width`. Each record also gets the image's `fg_id`,
`bg_id` and `factors` = the JSON bytes of `{"fg": identities[fg_id], "bg": backgrounds[bg_id],
"pose": images[name]["pose"]}` (sorted keys), which `keras_disentangle.synthetic.render` redraws
the image from.
"""

from __future__ import annotations

import json
import pathlib
from typing import Callable

from tfrecords import market
from tfrecords.common import Annotation, BadInput, Reason, Split

FORMAT = "keras-disentangle-synthetic/1"
FACTORS_FILE = "factors.json"

SPLITS = market.SPLITS
available_splits = market.available_splits


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def read_factors(root) -> dict:
    """Loads and checks the top level of `factors.json`.

    Returns:
      The parsed JSON object.

    Raises:
      BadInput: if the file is missing or not JSON, has another `format`, a `height`/`width` that
        is not a positive integer, or `identities`/`backgrounds`/`images` that are not objects.
    """
    path = pathlib.Path(root) / FACTORS_FILE
    try:
        factors = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BadInput(path, None, "file does not exist", Reason.BAD_FILE) from None
    except json.JSONDecodeError as error:
        raise BadInput(path, error.lineno, f"not valid JSON ({error.msg})", Reason.BAD_FILE) from None
    if not isinstance(factors, dict) or factors.get("format") != FORMAT:
        found = factors.get("format") if isinstance(factors, dict) else type(factors).__name__
        raise BadInput(path, None, f"format is {found!r}, expected {FORMAT!r}", Reason.BAD_FILE)
    for key in ("height", "width"):
        if not _is_int(factors.get(key)) or factors[key] < 1:
            raise BadInput(path, None, f"{key} is {factors.get(key)!r}, expected a positive integer",
                           Reason.BAD_FILE)
    for key in ("identities", "backgrounds", "images"):
        if not isinstance(factors.get(key), dict):
            raise BadInput(path, None, f"{key} is {type(factors.get(key)).__name__}, expected an object",
                           Reason.BAD_FILE)
    return factors


def write_factors(root, seed: int, height: int, width: int, identities: dict, backgrounds: dict,
                  images: dict) -> None:
    """Writes `factors.json` (the module docstring's format) into `root`; keys become strings."""
    factors = {"format": FORMAT, "seed": int(seed), "height": int(height), "width": int(width),
               "identities": {str(k): v for k, v in identities.items()},
               "backgrounds": {str(k): v for k, v in backgrounds.items()},
               "images": images}
    with open(pathlib.Path(root) / FACTORS_FILE, "w", newline="\n") as f:
        json.dump(factors, f, separators=(",", ":"))
        f.write("\n")


def factor_labels(root) -> Callable[[Annotation], dict]:
    """The labels `fg_id`, `bg_id` and `factors` of an annotated image, from `root`'s factors.json.

    The returned function raises BadInput with reason `no factors` for an image without a complete
    entry.

    Raises:
      BadInput: for a bad factors.json.
    """
    factors = read_factors(root)
    path = pathlib.Path(root) / FACTORS_FILE

    def labels(annotation: Annotation) -> dict:
        entry = factors["images"].get(annotation.name)
        if not isinstance(entry, dict):
            raise annotation.bad(f"{annotation.name} has no entry in {path} 'images'", Reason.NO_FACTORS)
        fg_id, bg_id, pose = entry.get("fg_id"), entry.get("bg_id"), entry.get("pose")
        if not (_is_int(fg_id) and _is_int(bg_id) and isinstance(pose, dict)):
            raise annotation.bad(
                f"{path} 'images' entry of {annotation.name} is {entry!r}, expected integer fg_id and "
                "bg_id and a pose object", Reason.NO_FACTORS)
        fg = factors["identities"].get(str(fg_id))
        bg = factors["backgrounds"].get(str(bg_id))
        if fg is None or bg is None:
            missing = f"identities[{str(fg_id)!r}]" if fg is None else f"backgrounds[{str(bg_id)!r}]"
            raise annotation.bad(f"{annotation.name} refers to {missing}, which {path} lacks",
                                 Reason.NO_FACTORS)
        params = json.dumps({"fg": fg, "bg": bg, "pose": pose}, sort_keys=True).encode()
        return {"fg_id": fg_id, "bg_id": bg_id, "factors": params}

    return labels


def read_split(root, split: str) -> Split:
    """Opens a split of a synthetic root.

    Args:
      root: str or path. The folder written by `python -m tfrecords.synthetic`.
      split: str. `train`, `test` or `query`.

    Returns:
      Split whose examples carry Market labels plus `fg_id`, `bg_id` and `factors`; an image
      without a complete factors.json entry is a BadInput with reason `no factors`.

    Raises:
      ValueError: for a split other than `train`, `test` or `query`.
      BadInput: for a bad factors.json, a missing folder or annotation CSV, or a wrong CSV header.
    """
    factors = read_factors(root)
    return market.read_split(root, split, height=factors["height"], width=factors["width"],
                             extra_labels=factor_labels(root))
