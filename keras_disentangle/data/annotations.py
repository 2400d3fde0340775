"""The annotation and pairs CSVs: the one home of their format, read and written by the package and
by the converters (`tfrecords/`), and the bad-input reports their readers return.

The public pose-transfer code bases (PG2, Deformable GAN, PATN) ship their keypoints for Market-1501
and DeepFashion in one format, which every converter parses (`tfrecords.market`, `tfrecords.deepfashion`,
`tfrecords.synthetic_reader`) and the writers (`tfrecords.synthetic`, `virtual_market`, `keypoints`)
write:

* annotation CSV: the header `name:keypoints_y:keypoints_x`, then one row per image
  `0002_c1s1_069056_02.jpg: [y0, ..., y17]: [x0, ..., x17]`; 18 integers per list, OpenPose order,
  -1 for a missing joint.
* pairs CSV: the header `from,to`, then `source_name,target_name` per row.

Problems with one item (a row, an image, a pair) come back as `BadInput` values so that the caller
decides whether to stop or skip; problems that spoil a whole file (a missing or malformed CSV
header) are raised. Where the CSVs sit in a dataset folder is `layouts`' business.
"""

from __future__ import annotations

import dataclasses
import enum
import pathlib
import re
from typing import Iterator

from keras_disentangle import configs

ANNOTATION_HEADER = "name:keypoints_y:keypoints_x"
PAIRS_HEADER = "from,to"

_INTEGER = re.compile(r"-?\d+")


def annotation_row(name: str, keypoints) -> str:
    """One annotation CSV line (with its LF) for `keypoints`, 18 (y, x) integer pixels, -1 missing."""
    ys = ", ".join(str(int(y)) for y, _ in keypoints)
    xs = ", ".join(str(int(x)) for _, x in keypoints)
    return f"{name}: [{ys}]: [{xs}]\n"


def write_annotation_csv(path, rows) -> None:
    """An annotation CSV as every converter reads it: the header, then `annotation_row` lines as given."""
    with open(path, "w", newline="\n") as f:
        f.write(ANNOTATION_HEADER + "\n")
        f.writelines(rows)


def write_pairs_csv(path, pairs) -> None:
    """A pairs CSV as every converter reads it: the header, then one `from,to` line per (name, name)."""
    with open(path, "w", newline="\n") as f:
        f.write(PAIRS_HEADER + "\n")
        f.writelines(f"{a},{b}\n" for a, b in pairs)


class Reason(str, enum.Enum):
    """Why an item did not become a record (the keys of the skip counts)."""

    NO_ANNOTATION = "no annotation"
    BAD_ROW = "bad row"
    BAD_NAME = "bad name"
    KEYPOINT_OUTSIDE = "keypoint outside image"
    MISSING_IMAGE = "missing image"
    CORRUPT_IMAGE = "corrupt image"
    WRONG_SIZE = "wrong image size"
    NO_FACTORS = "no factors"
    PAIR_WITHOUT_RECORD = "pair without record"
    BAD_FILE = "bad file"
    NO_PERSON = "no person"


class BadInput(ValueError):
    """A problem in the input data, located by file and 1-based CSV row.

    `str()` is the one-line report `FILE:ROW: message` (`FILE: message` when no row applies).

    Attributes:
      file: str. The CSV (or other file) at fault, or the one referencing the image at fault.
      row: int or None. 1-based line number in `file`; the header is line 1.
      message: str. What is wrong: the value received and what was expected.
      reason: Reason. The category counted when the item is skipped.
    """

    def __init__(self, file, row: int | None, message: str, reason: Reason):
        self.file = str(file)
        self.row = row
        self.message = message
        self.reason = Reason(reason)
        location = self.file if row is None else f"{self.file}:{row}"
        super().__init__(f"{location}: {message}")


@dataclasses.dataclass(frozen=True)
class Annotation:
    """One well-formed annotation row. `keypoints` is 18 (y, x) pairs as written in the CSV."""

    name: str
    keypoints: tuple[tuple[int, int], ...]
    file: str
    row: int

    def bad(self, message: str, reason: Reason) -> BadInput:
        return BadInput(self.file, self.row, message, reason)


@dataclasses.dataclass(frozen=True)
class AnnotationFile:
    """A parsed annotation CSV.

    Attributes:
      path: pathlib.Path. The CSV.
      entries: tuple of Annotation or BadInput, one per data row in file order (blank lines
        excepted); a BadInput marks a malformed or duplicate row.
      names: frozenset of str. Every name the rows give, malformed rows included, so that an image
        whose row is bad is not counted a second time as unannotated.
    """

    path: pathlib.Path
    entries: tuple[Annotation | BadInput, ...]
    names: frozenset[str]


@dataclasses.dataclass(frozen=True)
class Pair:
    """One row of a pairs CSV: a source and a target image name of the same split."""

    source: str
    target: str
    file: str
    row: int


def _read_lines(path: pathlib.Path, header: str) -> Iterator[tuple[int, str]]:
    """Yields (1-based line number, stripped text) of the non-blank data lines after `header`.

    Raises:
      BadInput: if the file is missing, is not UTF-8 text, or its first line is not `header`.
    """
    try:
        # utf-8-sig drops a byte-order mark; splitlines() accepts LF and CRLF endings alike.
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except FileNotFoundError:
        raise BadInput(path, None, "file does not exist", Reason.BAD_FILE) from None
    except UnicodeDecodeError as error:
        raise BadInput(path, None, f"not UTF-8 text ({error.reason} at byte {error.start})",
                       Reason.BAD_FILE) from None
    if not lines or lines[0].strip() != header:
        first = lines[0].strip() if lines else ""
        raise BadInput(path, 1, f"header is {first!r}, expected {header!r}", Reason.BAD_FILE)
    for number, line in enumerate(lines[1:], start=2):
        if line.strip():
            yield number, line.strip()


def _check_name(name: str, field: str, path: pathlib.Path, row: int) -> None:
    if not name or name in (".", "..") or "/" in name or "\\" in name:
        raise BadInput(path, row, f"{field} {name!r} is not a file name", Reason.BAD_ROW)


def _parse_int_list(text: str, field: str, path: pathlib.Path, row: int) -> list[int]:
    text = text.strip()
    if not (text.startswith("[") and text.endswith("]")):
        raise BadInput(path, row, f"{field} {text!r} is not a [...] list", Reason.BAD_ROW)
    tokens = [token.strip() for token in text[1:-1].split(",")]
    if len(tokens) != configs.NUM_KEYPOINTS:
        raise BadInput(path, row, f"{field} has {len(tokens)} values, expected {configs.NUM_KEYPOINTS}",
                       Reason.BAD_ROW)
    for index, token in enumerate(tokens):
        if not _INTEGER.fullmatch(token):
            raise BadInput(path, row, f"{field}[{index}] is {token!r}, expected an integer", Reason.BAD_ROW)
    return [int(token) for token in tokens]


def _parse_annotation(line: str, path: pathlib.Path, row: int) -> Annotation:
    fields = line.split(":")
    if len(fields) != 3:
        raise BadInput(path, row, f"{len(fields)} ':'-separated fields, expected 3 ({ANNOTATION_HEADER})",
                       Reason.BAD_ROW)
    name = fields[0].strip()
    _check_name(name, "name", path, row)
    ys = _parse_int_list(fields[1], "keypoints_y", path, row)
    xs = _parse_int_list(fields[2], "keypoints_x", path, row)
    return Annotation(name, tuple(zip(ys, xs)), str(path), row)


def read_annotation_csv(path: pathlib.Path) -> AnnotationFile:
    """Parses an annotation CSV strictly.

    A row must have exactly three `:`-separated fields: a file name and two `[...]` lists of 18
    integers (y first). A second row for the same name is bad too (it would make two records).

    Args:
      path: pathlib.Path. The CSV.

    Returns:
      AnnotationFile with one entry per data row.

    Raises:
      BadInput: for a missing or undecodable file or a wrong header (row 1).
    """
    entries: list[Annotation | BadInput] = []
    names: set[str] = set()
    first_row: dict[str, int] = {}
    for row, line in _read_lines(path, ANNOTATION_HEADER):
        names.add(line.split(":", 1)[0].strip())
        try:
            annotation = _parse_annotation(line, path, row)
        except BadInput as error:
            entries.append(error)
            continue
        if annotation.name in first_row:
            first = first_row[annotation.name]
            entries.append(annotation.bad(f"second row for {annotation.name} (first at row {first})",
                                          Reason.BAD_ROW))
            continue
        first_row[annotation.name] = row
        entries.append(annotation)
    return AnnotationFile(path, tuple(entries), frozenset(names))


def read_pairs_csv(path: pathlib.Path) -> tuple[Pair | BadInput, ...]:
    """Parses a pairs CSV (`from,to` header, then `source,target` names).

    Returns:
      One Pair, or BadInput for a row without exactly two file names, per data row.

    Raises:
      BadInput: for a missing or undecodable file or a wrong header (row 1).
    """
    pairs: list[Pair | BadInput] = []
    for row, line in _read_lines(path, PAIRS_HEADER):
        fields = [field.strip() for field in line.split(",")]
        try:
            if len(fields) != 2:
                raise BadInput(path, row, f"{len(fields)} ','-separated fields, expected 2 ({PAIRS_HEADER})",
                               Reason.BAD_ROW)
            _check_name(fields[0], "from", path, row)
            _check_name(fields[1], "to", path, row)
        except BadInput as error:
            pairs.append(error)
            continue
        pairs.append(Pair(fields[0], fields[1], str(path), row))
    return tuple(pairs)
