"""The reader machinery every dataset layout shares: image checks and `Split`, the lazy sequence of
records one split yields.

The annotation / pairs CSV format and the bad-input reports are the package's
(`keras_disentangle.data.annotations`), the folder and file names of each layout too
(`keras_disentangle.data.layouts`); their names are re-exported here for the readers and the tests.
Problems with one item (a row, an image, a pair) come back as `BadInput` values so that the caller
decides whether to stop or skip; problems that spoil a whole split (a missing or malformed CSV
header, a missing image folder) are raised.
"""

from __future__ import annotations

import dataclasses
import pathlib
import re
from typing import Callable, Iterator

import tensorflow as tf

from keras_disentangle.data.annotations import (  # noqa: F401 (re-exported: the converters' and tests' names)
    ANNOTATION_HEADER,
    PAIRS_HEADER,
    Annotation,
    AnnotationFile,
    BadInput,
    Pair,
    Reason,
    annotation_row,
    read_annotation_csv,
    read_pairs_csv,
    write_annotation_csv,
    write_pairs_csv,
)
from keras_disentangle.data.layouts import SPLITS  # noqa: F401 (re-exported)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")

_JPEG_MAGIC = b"\xff\xd8\xff"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@dataclasses.dataclass(frozen=True)
class RawExample:
    """One image record before serialization; the fields are `records.image_features`' arguments."""

    image: bytes
    name: str
    height: int
    width: int
    keypoints: tuple[tuple[int, int], ...]
    person_id: int
    camera: int = -1
    fg_id: int = -1
    bg_id: int = -1
    factors: bytes = b""

    def features(self) -> dict:
        """The keyword arguments of `records.serialize_image` (and halves of `serialize_pair`)."""
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}


def check_keypoints(annotation: Annotation, height: int, width: int) -> None:
    """Checks that every present joint lies inside a `height x width` image.

    A joint with -1 in either coordinate is missing (docs/CONTRACTS.md); any other value must be a
    pixel index.

    Raises:
      BadInput: naming the first joint outside the image.
    """
    for joint, (y, x) in enumerate(annotation.keypoints):
        if y == -1 or x == -1:
            continue
        if not (0 <= y < height and 0 <= x < width):
            raise annotation.bad(
                f"keypoint {joint} (y={y}, x={x}) is outside the {height}x{width} (HxW) image; "
                "expected 0 <= y < height and 0 <= x < width, or -1 for a missing joint",
                Reason.KEYPOINT_OUTSIDE)


def read_image(path: pathlib.Path, annotation: Annotation, height: int, width: int,
               other_sizes: tuple[tuple[int, int], ...] = ()) -> tuple[bytes, tuple[int, int]]:
    """Reads an encoded image and checks it by decoding it as the input pipeline will.

    Args:
      path: pathlib.Path. The JPEG or PNG file.
      annotation: Annotation. The row that references the image (for error messages).
      height, width: int. The size the dataset's images must have.
      other_sizes: (height, width) pairs also accepted (DeepFashion's 256x176 release).

    Returns:
      The file's bytes, unchanged, and the decoded (height, width).

    Raises:
      BadInput: for a missing or unreadable file, data that is not a decodable JPEG or PNG, or a
        decoded size other than `height x width` or one of `other_sizes`.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise annotation.bad(f"{path}: image file does not exist", Reason.MISSING_IMAGE) from None
    except OSError as error:
        raise annotation.bad(f"{path}: cannot read image ({error.strerror})", Reason.CORRUPT_IMAGE) from None
    if not data.startswith((_JPEG_MAGIC, _PNG_MAGIC)):
        raise annotation.bad(f"{path}: not a JPEG or PNG file", Reason.CORRUPT_IMAGE)
    try:
        shape = tf.io.decode_image(data, channels=3, expand_animations=False).shape
    except tf.errors.OpError as error:
        detail = re.sub(r"\s*\[Op:\w+\]$", "", error.message.split("}}")[-1].strip().splitlines()[0])
        raise annotation.bad(f"{path}: cannot decode image ({detail})", Reason.CORRUPT_IMAGE) from None
    size = tuple(int(n) for n in shape[:2])
    accepted = ((height, width), *other_sizes)
    if size not in accepted:
        expected = " or ".join(f"{h}x{w}" for h, w in accepted)
        raise annotation.bad(f"{path}: image is {size[0]}x{size[1]} (HxW), expected {expected}", Reason.WRONG_SIZE)
    return data, size


@dataclasses.dataclass(frozen=True)
class Split:
    """One split of a dataset laid out as an image folder plus annotation (and pairs) CSVs.

    Attributes:
      name: str. The split (`train`, `test`).
      image_dir: pathlib.Path. The folder of the split's images.
      annotations: AnnotationFile. The split's annotation CSV.
      pairs: tuple of Pair or BadInput. The rows of the split's pairs CSV (empty when it has none).
      height, width: int. The image size every image must have (or one of `other_sizes`).
      labels: callable. Maps an Annotation to the RawExample fields other than the image, name,
        size and keypoints (`person_id`, `camera`, and for the synthetic set `fg_id`, `bg_id`,
        `factors`); raises BadInput.
      other_sizes: tuple of (height, width). Further sizes an image may have; a record keeps its
        image's own size and the keypoints as given (`data.prepare_example` frames it).
    """

    name: str
    image_dir: pathlib.Path
    annotations: AnnotationFile
    pairs: tuple[Pair | BadInput, ...]
    height: int
    width: int
    labels: Callable[[Annotation], dict]
    other_sizes: tuple[tuple[int, int], ...] = ()

    @property
    def size(self) -> int:
        """The number of annotation rows: an upper bound on the records."""
        return len(self.annotations.entries)

    def unannotated(self) -> tuple[str, ...]:
        """Names of the images in `image_dir` that no annotation row names, sorted."""
        return tuple(sorted(
            path.name for path in self.image_dir.iterdir()
            if path.suffix.lower() in IMAGE_SUFFIXES and path.name not in self.annotations.names))

    def examples(self) -> Iterator[RawExample | BadInput]:
        """Yields a RawExample, or the BadInput that prevents one, per annotation row in file order."""
        for entry in self.annotations.entries:
            if isinstance(entry, BadInput):
                yield entry
                continue
            try:
                check_keypoints(entry, self.height, self.width)
                labels = self.labels(entry)
                image, (height, width) = read_image(self.image_dir / entry.name, entry, self.height, self.width,
                                                    self.other_sizes)
                check_keypoints(entry, height, width)
            except BadInput as error:
                yield error
                continue
            yield RawExample(image=image, name=entry.name, height=height, width=width,
                             keypoints=entry.keypoints, **labels)


def open_split(
    name: str,
    image_dir: pathlib.Path,
    annotations: AnnotationFile,
    pairs_csv: pathlib.Path,
    height: int,
    width: int,
    labels: Callable[[Annotation], dict],
    other_sizes: tuple[tuple[int, int], ...] = (),
) -> Split:
    """Assembles a split from its parsed annotations (the images are read lazily by `Split.examples`).

    Args:
      name: str. The split.
      image_dir: pathlib.Path. Its image folder; must exist.
      annotations: AnnotationFile. Its parsed annotation CSV (parsed by the caller because
        DeepFashion's labels need every name of the split).
      pairs_csv: pathlib.Path. Its pairs CSV; the split has no pairs when the file does not exist.
      height, width: int. The required image size.
      labels: callable. See `Split.labels`.
      other_sizes: tuple of (height, width). See `Split.other_sizes`.

    Returns:
      Split.

    Raises:
      BadInput: for a missing image folder or a pairs CSV with a wrong header.
    """
    if not image_dir.is_dir():
        raise BadInput(image_dir, None, f"image folder of split {name!r} does not exist", Reason.BAD_FILE)
    pairs = read_pairs_csv(pairs_csv) if pairs_csv.exists() else ()
    return Split(name, image_dir, annotations, pairs, height, width, labels, other_sizes)
