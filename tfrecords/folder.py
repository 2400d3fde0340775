"""Any folder of person photos, with no annotations: the keypoints come from the estimator.

    python -m tfrecords.build --dataset=folder --root=DIR --out=DIR2 [--identity_from=subfolder|none]
        [--size=128x64] [--skip_bad]

Layout: `DIR/train/` and `DIR/test/` are the splits when either exists, else `DIR` itself is the
`train` split. In a split folder, with `--identity_from=subfolder` (the default) every subfolder is one
person (`DIR/train/alice/*.jpg`, its photos' person id is the subfolder's index in sorted order) and
photos directly in the split folder are not read; with `--identity_from=none` the photos directly in
the split folder are read and each is its own person. Photos are JPEG, PNG, BMP, WebP or TIFF of any
size and mode (`keypoints.read_image` converts them).

Each photo goes through BlazePose (`keras_disentangle.pose.keypoints.Estimator`; the largest person when
several), is framed on the person at the aspect ratio of `--size` (padded, never squashed) and resized
to it (`keypoints.frame_to_size`); the record holds that crop as PNG and its keypoints. A photo that
cannot be read or shows nobody is a BadInput (`--skip_bad` counts it under `corrupt image` / `no
person`). Record names are `<person>_<file stem>.png` (`<file stem>.png` without identities).

Pairs (with identities only): each photo of a person with two or more kept photos is paired with the
next kept photo of that person, in name order (cyclic), so pairs never mix people.

The crops are held in memory until the records are written: a folder of photos, not a dataset of
millions (use the Market or DeepFashion layouts for those).
"""

from __future__ import annotations

import dataclasses
import io
import pathlib
import sys
from collections.abc import Iterator

from PIL import Image

from keras_disentangle.pose import keypoints
from tfrecords.common import SPLITS, AnnotationFile, BadInput, Pair, RawExample, Reason

IDENTITY_SOURCES = ("subfolder", "none")
DEFAULT_SIZE = (128, 64)


def available_splits(root) -> tuple[str, ...]:
    """`train`/`test` subfolders that exist, else (`train`,) for the folder itself."""
    root = pathlib.Path(root)
    found = tuple(split for split in SPLITS if (root / split).is_dir())
    return found or (("train",) if root.is_dir() else ())


def _split_dir(root: pathlib.Path, split: str) -> pathlib.Path:
    return root / split if any((root / s).is_dir() for s in SPLITS) else root


def _photos(folder: pathlib.Path) -> list[pathlib.Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in keypoints.PHOTO_SUFFIXES)


@dataclasses.dataclass
class FolderSplit:
    """A split of a photo folder, estimated and framed when opened; duck-types `common.Split`.

    `in_memory` tells `build` that a record's image is these bytes, not a file in `image_dir`.
    """

    name: str
    image_dir: pathlib.Path
    annotations: AnnotationFile
    pairs: tuple
    items: list
    in_memory: bool = True

    @property
    def size(self) -> int:
        return len(self.items)

    def unannotated(self) -> tuple[str, ...]:
        return ()

    def examples(self) -> Iterator[RawExample | BadInput]:
        yield from self.items


def read_split(root, split: str, identity_from: str = "subfolder", size: tuple[int, int] = DEFAULT_SIZE,
               estimator: keypoints.Estimator | None = None) -> FolderSplit:
    """Estimates and frames every photo of a split (module docstring).

    Raises:
      ValueError: for an unknown split or identity source.
      BadInput: for a missing split folder, or one with no photo.
    """
    if split not in SPLITS:
        raise ValueError(f"split={split!r}; expected one of {', '.join(SPLITS)}.")
    if identity_from not in IDENTITY_SOURCES:
        raise ValueError(f"identity_from={identity_from!r}; expected one of {', '.join(IDENTITY_SOURCES)}.")
    root = pathlib.Path(root)
    folder = _split_dir(root, split)
    if not folder.is_dir():
        raise BadInput(folder, None, f"photo folder of split {split!r} does not exist", Reason.BAD_FILE)
    if identity_from == "subfolder":
        people = sorted(p for p in folder.iterdir() if p.is_dir())
        photos = [(index, f"{person.name}_", path) for index, person in enumerate(people) for path in _photos(person)]
    else:
        photos = [(index, "", path) for index, path in enumerate(_photos(folder))]
    if not photos:
        where = "subfolder (one per person)" if identity_from == "subfolder" else "folder"
        raise BadInput(folder, None, f"no photo ({', '.join(keypoints.PHOTO_SUFFIXES)}) in any {where}",
                       Reason.BAD_FILE)
    estimator = estimator or keypoints.Estimator()
    items, kept, names = [], {}, set()
    for person_id, prefix, path in photos:
        name = f"{prefix}{path.stem}.png"
        if name in names:
            items.append(BadInput(path, None, f"a second photo would be named {name}; rename one",
                                  Reason.BAD_NAME))
            continue
        names.add(name)
        item = _example(path, name, person_id, size, estimator)
        items.append(item)
        if isinstance(item, RawExample):
            kept.setdefault(person_id, []).append(name)
    pairs = []
    if identity_from == "subfolder":
        for group in kept.values():
            if len(group) > 1:
                pairs += [Pair(a, b, str(folder), 0) for a, b in zip(group, group[1:] + group[:1])]
    # No CSV: the folder stands for it in reports.
    return FolderSplit(split, folder, AnnotationFile(folder, (), frozenset(names)), tuple(pairs), items)


def _example(path: pathlib.Path, name: str, person_id: int, size: tuple[int, int],
             estimator: keypoints.Estimator) -> RawExample | BadInput:
    try:
        photo = keypoints.read_image(path)
    except ValueError as error:
        return BadInput(path, None, str(error).removeprefix(f"{path}: "), Reason.CORRUPT_IMAGE)
    try:
        estimate = estimator(photo, str(path))
        if estimate.num_people > 1:
            print(f"{path}: {estimate.num_people} people found; using the largest", file=sys.stderr)
        crop, points = keypoints.frame_to_size(photo, estimate.keypoints, size)
    except ValueError as error:
        return BadInput(path, None, str(error).removeprefix(f"{path}: "), Reason.NO_PERSON)
    encoded = io.BytesIO()
    Image.fromarray(crop).save(encoded, format="PNG")
    return RawExample(image=encoded.getvalue(), name=name, height=size[0], width=size[1],
                      keypoints=tuple((int(y), int(x)) for y, x in points), person_id=person_id)
