"""`python -m tfrecords.build`: a supported dataset folder -> sharded TFRecords, with counted skips.

    python -m tfrecords.build --dataset=market --root=data/Market-1501 --out=data/market_records \
        [--splits=train,test,query] [--shards=8] [--skip_bad]
    python -m tfrecords.build --dataset=folder --root=my_photos --out=data/my_records \
        [--identity_from=subfolder|none] [--size=128x64] [--skip_bad]

Writes, per split, one `records.serialize_image` record per annotated image into
`records.shard_name(split, i, n)` (records dealt round-robin over the shards, in annotation-CSV
order) and, when the split has a pairs CSV, one `records.serialize_pair` record per pair into
`records.pairs_name(split)`. Nothing else goes into `--out`. Every image is decoded to check it; the
stored bytes are the file's, never re-encoded.

Bad input (a malformed CSV row, a keypoint outside the image, a missing, corrupt or wrongly sized
image, a pair naming an image that has no record) stops the run with one line
`FILE:ROW: what is wrong` on stderr and exit status 1, leaving `--out` as it was. With
`--skip_bad` the item is skipped, reported on stderr, and counted by reason. Images in a split
folder that no annotation row names are always skipped and counted as `no annotation`. Problems
that spoil a whole split (a missing or mis-headed CSV, a missing image folder, a bad factors.json)
always stop the run.

The readers are `tfrecords.market`, `tfrecords.deepfashion`, `tfrecords.synthetic_reader` and
`tfrecords.folder` (photos with no annotations: keypoints from the estimator, crops framed and
re-encoded as PNG); see them for each layout and for how person ids are derived.
"""

from __future__ import annotations

import os

# Before TensorFlow loads: its C++ logs would bury the one-line error report.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import collections  # noqa: E402
import dataclasses  # noqa: E402
import pathlib  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import zlib  # noqa: E402
from typing import Sequence  # noqa: E402

import tensorflow as tf  # noqa: E402
from absl import flags  # noqa: E402

from keras_disentangle import cli, progress  # noqa: E402
from keras_disentangle.data import records  # noqa: E402
from tfrecords import deepfashion, folder, market, synthetic_reader  # noqa: E402
from tfrecords.common import BadInput, Pair, Reason, Split  # noqa: E402

__all__ = ["BadInput", "Reason", "Summary", "build"]

READERS = {"market": market, "deepfashion": deepfashion, "synthetic": synthetic_reader, "folder": folder}
# Every layout's splits (Market-1501's and the synthetic set's add `query`).
SPLITS = tuple(dict.fromkeys(split for reader in READERS.values() for split in reader.SPLITS))


@dataclasses.dataclass
class Summary:
    """What `build` wrote and skipped.

    Attributes:
      records: dict split -> int. Image records written.
      shards: dict split -> int. Shard files written.
      pairs: dict split -> int. Pair records written (splits with a pairs CSV only).
      skipped: dict split -> collections.Counter of Reason -> int. Items not written.
    """

    records: dict[str, int] = dataclasses.field(default_factory=dict)
    shards: dict[str, int] = dataclasses.field(default_factory=dict)
    pairs: dict[str, int] = dataclasses.field(default_factory=dict)
    skipped: dict[str, collections.Counter] = dataclasses.field(default_factory=dict)

    def skipped_by_reason(self) -> collections.Counter:
        """Skips summed over the splits, keyed by Reason."""
        return sum(self.skipped.values(), collections.Counter())

    def report(self) -> str:
        """The lines the CLI prints: one per split, then the skips by reason."""
        lines = []
        for split, count in self.records.items():
            line = f"{split}: {count} records in {self.shards[split]} shard(s)"
            if split in self.pairs:
                line += f", {self.pairs[split]} pairs"
            lines.append(line + f", {sum(self.skipped[split].values())} skipped")
        totals = self.skipped_by_reason()
        lines.append("skipped by reason:" + ("" if totals else " none"))
        for reason, count in sorted(totals.items(), key=lambda item: item[0].value):
            per_split = ", ".join(f"{split} {c[reason]}" for split, c in self.skipped.items() if c[reason])
            lines.append(f"  {reason.value}: {count} ({per_split})")
        return "\n".join(lines)


def _skip(error: BadInput, skip_bad: bool, skipped: collections.Counter) -> None:
    if not skip_bad:
        raise error
    skipped[error.reason] += 1
    print(f"skipped: {error}", file=sys.stderr)


@dataclasses.dataclass(frozen=True)
class _Kept:
    """A written record that a pair needs, without its image bytes (a large split's would not fit
    in memory); the CRC proves that the file re-read for the pair is the one that was checked."""

    fields: dict
    path: pathlib.Path
    crc: int
    image: bytes | None = None  # a reader that made the image (`folder`) keeps it

    def load(self) -> dict:
        if self.image is not None:
            return {**self.fields, "image": self.image}
        image = self.path.read_bytes()
        if zlib.crc32(image) != self.crc:
            raise BadInput(self.path, None, "image changed while the conversion ran", Reason.CORRUPT_IMAGE)
        return {**self.fields, "image": image}


def _write_images(split: Split, staging: pathlib.Path, shards: int, skip_bad: bool, progress_every: int,
                  keep: set[str], skipped: collections.Counter) -> tuple[int, int, dict[str, _Kept]]:
    """Writes the split's image shards into `staging`.

    Returns:
      (records written, shard files, the written records whose names are in `keep`).
    """
    partial = [staging / f"{split.name}.{index}.partial" for index in range(shards)]
    kept: dict[str, _Kept] = {}
    count = 0
    shown = progress.Progress(split.size, unit="row", label=split.name, verbose=progress_every > 0,
                              stream=sys.stderr)
    writers = [tf.io.TFRecordWriter(str(path)) for path in partial]
    try:
        for done, item in enumerate(split.examples(), start=1):
            if isinstance(item, BadInput):
                _skip(item, skip_bad, skipped)
            else:
                writers[count % shards].write(records.serialize_image(**item.features()))
                if item.name in keep:
                    fields = {k: v for k, v in item.features().items() if k != "image"}
                    kept[item.name] = _Kept(fields, split.image_dir / item.name, zlib.crc32(item.image),
                                            item.image if getattr(split, "in_memory", False) else None)
                count += 1
            shown.update(done, [("records", count)], force=bool(progress_every) and done % progress_every == 0)
    finally:
        for writer in writers:
            writer.close()
    # Round-robin fills the first min(shards, count) files; the name must carry the final count.
    used = max(1, min(shards, count))
    for index, path in enumerate(partial):
        if index < used:
            path.rename(staging / records.shard_name(split.name, index, used))
        else:
            path.unlink()
    return count, used, kept


def _write_pairs(split: Split, staging: pathlib.Path, kept: dict[str, _Kept], skip_bad: bool,
                 skipped: collections.Counter) -> int:
    count = 0
    with tf.io.TFRecordWriter(str(staging / records.pairs_name(split.name))) as writer:
        for pair in split.pairs:
            if isinstance(pair, Pair):
                for name in (pair.source, pair.target):
                    if name not in kept:
                        why = ("its annotation row was skipped" if name in split.annotations.names
                               else f"{split.annotations.path.name} has no row for it")
                        pair = BadInput(pair.file, pair.row, f"{name} has no {split.name} record ({why})",
                                        Reason.PAIR_WITHOUT_RECORD)
                        break
            if isinstance(pair, BadInput):
                _skip(pair, skip_bad, skipped)
                continue
            writer.write(records.serialize_pair(kept[pair.source].load(), kept[pair.target].load()))
            count += 1
    return count


def _publish(staging: pathlib.Path, out: pathlib.Path, splits: Sequence[str]) -> None:
    """Replaces the splits' files in `out` by the staged ones (stale shards of another count too)."""
    for split in splits:
        for stale in out.glob(records.shard_pattern(split)):
            stale.unlink()
        (out / records.pairs_name(split)).unlink(missing_ok=True)
    for path in staging.iterdir():
        path.replace(out / path.name)


def build(
    dataset: str,
    root,
    out,
    splits: Sequence[str] | None = None,
    shards: int = 1,
    skip_bad: bool = False,
    progress_every: int = 1000,
    reader_options: dict | None = None,
) -> Summary:
    """Converts a dataset folder into TFRecords (see the module docstring).

    The files are staged in a hidden folder inside `out` and moved into place only when every
    requested split converted, so a failed run leaves `out` untouched.

    Args:
      dataset: str. `market`, `deepfashion` or `synthetic`.
      root: str or path. The dataset folder.
      out: str or path. The output folder (created if needed).
      splits: sequence of str or None. Splits to convert; None converts every split `root` has.
      shards: int. Image shards per split (fewer when a split has fewer records). Defaults to 1.
      skip_bad: bool. Skip and count bad items instead of raising. Defaults to False.
      progress_every: int. Print a progress line to stderr every this many annotation rows and
        at least every `progress.INTERVAL_SECONDS`; 0 prints none. Defaults to 1000.
      reader_options: dict or None. Keyword arguments of the reader's `read_split` (`folder`:
        `identity_from`, `size`).

    Returns:
      Summary of the records, shards and pairs written and the items skipped.

    Raises:
      ValueError: for an unknown dataset or split, repeated splits, or `shards` < 1.
      BadInput: for the first bad item (unless `skip_bad`), or a problem that spoils a whole
        split; `str(error)` is the one-line `FILE:ROW: what is wrong` report.
    """
    if dataset not in READERS:
        raise ValueError(f"dataset={dataset!r}; expected one of {', '.join(READERS)}.")
    if shards < 1:
        raise ValueError(f"shards={shards}; expected at least 1.")
    reader = READERS[dataset]
    root, out = pathlib.Path(root), pathlib.Path(out)
    if splits is None:
        splits = reader.available_splits(root)
        if not splits:
            raise BadInput(root, None, f"no annotation CSV of any split ({', '.join(reader.SPLITS)}) found; "
                           f"is this a {dataset} folder?", Reason.BAD_FILE)
    if len(set(splits)) != len(splits):
        raise ValueError(f"splits={list(splits)}; each split may be given once.")
    opened = [reader.read_split(root, split, **(reader_options or {})) for split in splits]

    out.mkdir(parents=True, exist_ok=True)
    staging = pathlib.Path(tempfile.mkdtemp(prefix=".build-", dir=out))
    summary = Summary()
    try:
        for split in opened:
            skipped = collections.Counter({Reason.NO_ANNOTATION: len(split.unannotated())})
            keep = {name for pair in split.pairs if isinstance(pair, Pair)
                    for name in (pair.source, pair.target)}
            count, used, kept = _write_images(split, staging, shards, skip_bad, progress_every, keep, skipped)
            summary.records[split.name] = count
            summary.shards[split.name] = used
            if split.pairs:
                summary.pairs[split.name] = _write_pairs(split, staging, kept, skip_bad, skipped)
            summary.skipped[split.name] = +skipped  # unary + drops the zero counts
        _publish(staging, out, splits)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return summary


def define_flags() -> None:
    flags.DEFINE_enum("dataset", None, list(READERS), "Dataset layout of --root.")
    flags.DEFINE_string("root", None, "Dataset folder.")
    cli.define_shared("out", note="The TFRecords.")
    flags.DEFINE_list("splits", None, "Splits to convert (train, test, query); default: every split --root has.")
    flags.DEFINE_integer("shards", 1, "Image shards per split.", lower_bound=1)
    flags.DEFINE_bool("skip_bad", False, "Skip bad items and count them, instead of stopping.")
    flags.DEFINE_enum("identity_from", "subfolder", list(folder.IDENTITY_SOURCES), "--dataset=folder: "
                      "subfolder: one subfolder per person (pairs within a person); none: every photo its own.")
    cli.define_shared("size", note="--dataset=folder; default 128x64.")
    flags.DEFINE_integer("progress_every", 1000, "Progress line (stderr) every this many rows and every 30 s; "
                         "0 for none.",
                         lower_bound=0)
    flags.mark_flags_as_required(["dataset", "root", "out"])
    flags.register_validator("splits", lambda splits: splits is None or set(splits) <= set(SPLITS),
                             message=f"--splits takes names from {', '.join(SPLITS)}")


def main(argv: Sequence[str]) -> int:
    cli.no_positional(argv)
    options = flags.FLAGS
    reader_options = None
    if options.dataset == "folder":
        from keras_disentangle.pose.keypoints import parse_size  # noqa: PLC0415 (only folder needs the estimator)

        size = parse_size(options.size) if options.size else folder.DEFAULT_SIZE
        reader_options = {"identity_from": options.identity_from, "size": size}
    elif options.size or flags.FLAGS["identity_from"].present:
        raise cli.UsageError("--size and --identity_from apply to --dataset=folder only")
    try:
        summary = build(options.dataset, options.root, options.out, options.splits, options.shards,
                        options.skip_bad, options.progress_every, reader_options)
    except BadInput as error:
        # The report is `FILE:ROW: what is wrong`, which names the place better than a tool prefix.
        print(error, file=sys.stderr)
        return 1
    print(summary.report())
    return 0


if __name__ == "__main__":
    cli.run(main, define_flags)
