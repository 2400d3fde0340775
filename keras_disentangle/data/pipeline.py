"""The tf.data input pipeline: TFRecord shards -> parsed records -> batches of model-ready example dicts.

Every record goes through `examples.prepare_example` (decode, frame, resize, scale and optionally
mirror the keypoints, derive the geometry inputs); its dict is the batch contract of
`docs/CONTRACTS.md`, tabled in `examples`.

Three datasets are built on it: `train_dataset` (shuffled, randomly mirrored, repeated, full
batches), `eval_dataset` (in order, every record once) and `pairs_dataset` ((source, target) test
pairs); `random_pairs_dataset` draws seeded same-identity pairs from a split's images instead.
"""


import os
import struct

import numpy as np
import tensorflow as tf

from keras_disentangle.data import records
from keras_disentangle.configs import Config
from keras_disentangle.data.examples import prepare_example, prepare_pose_vector

# Records (a few KB each) held by the shuffle buffer: a third of Market-1501's training split,
# enough to mix identities across shards.
SHUFFLE_BUFFER = 4096


def shard_files(data_dir: str, split: str) -> list[str]:
    """The sorted TFRecord shards of `split` in `data_dir`.

    Raises:
      ValueError: if there is none.
    """
    pattern = os.path.join(data_dir, records.shard_pattern(split))
    files = tf.io.gfile.glob(pattern)
    if not files:
        raise ValueError(
            f"data_dir: no {split!r} shards in {data_dir!r} (expected files matching "
            f"{records.shard_pattern(split)!r}); build them with `python -m tfrecords.build`.")
    return sorted(files)


class DamagedShardError(ValueError):
    """A TFRecord shard that cannot be read to its end (truncated or corrupted)."""


def check_shard(path: str) -> int:
    """Walks the record headers of a TFRecord file without reading the records; returns their count.

    Cheap (one 12-byte read per record), so training runs it on every shard before starting:
    a file cut short (a copy or build that died) would otherwise fail mid-training with an error
    that names no file.

    Raises:
      DamagedShardError: naming the file, the record and the byte where it ends early.
    """
    size = tf.io.gfile.stat(path).length
    offset = count = 0
    with tf.io.gfile.GFile(path, "rb") as f:
        while offset < size:
            f.seek(offset)
            header = f.read(12)
            end = offset + 12 + (struct.unpack("<Q", header[:8])[0] + 4 if len(header) == 12 else 0)
            if len(header) < 12 or end > size:
                raise DamagedShardError(
                    f"{path}: truncated TFRecord shard: record {count} at byte {offset} runs past the end "
                    f"of the file ({size} bytes); rebuild the records with `python -m tfrecords.build`.")
            offset, count = end, count + 1
    return count


def find_damaged_shard(data_dir: str, split: str = "train") -> str | None:
    """Reads every record of every shard of `split`; the first problem found as one line naming the
    shard, or None. For a read error the pipeline reported without a file name."""
    for path in shard_files(data_dir, split):
        try:
            check_shard(path)
            for _ in tf.data.TFRecordDataset(path):
                pass
        except (DamagedShardError, tf.errors.DataLossError) as error:
            reason = str(error).strip().splitlines()[0]
            return reason if isinstance(error, DamagedShardError) else f"{path}: unreadable TFRecord shard ({reason})"
    return None


def _records(data_dir: str, split: str, shuffle: bool, seed: int) -> tf.data.Dataset:
    files = shard_files(data_dir, split)
    if len(files) == 1:
        return tf.data.TFRecordDataset(files)
    shards = tf.data.Dataset.from_tensor_slices(files)
    if shuffle:
        shards = shards.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    return shards.interleave(
        tf.data.TFRecordDataset, cycle_length=min(len(files), 8), block_length=1,
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=not shuffle)


def _batch_size(cfg: Config, batch_size: int | None) -> int:
    size = cfg.train.batch_size if batch_size is None else int(batch_size)
    if size < 1:
        raise ValueError(f"batch_size: expected a positive integer, got {batch_size}.")
    return size


def train_dataset(
    data_dir: str,
    cfg: Config,
    split: str = "train",
    batch_size: int | None = None,
    shuffle: bool = True,
    flip: bool = True,
    repeat: bool = True,
    seed: int = 0,
) -> tf.data.Dataset:
    """Batches of training examples.

    Shards are interleaved (in a random order when shuffling), records are shuffled in a
    `SHUFFLE_BUFFER`-record buffer, and each example is mirrored with probability 1/2 when `flip`.
    Only full batches are produced, so the batch dimension is static.

    Args:
      data_dir: str. Directory of `{split}-?????-of-?????.tfrecord` shards.
      cfg: Config. `cfg.data` shapes the examples; `cfg.train.batch_size` is the default batch.
      split: str. Shard prefix.
      batch_size: int or None. Examples per batch; None means `cfg.train.batch_size`.
      shuffle: bool. Shuffle shards and records.
      flip: bool. Random horizontal flips (image and keypoints together).
      repeat: bool. Repeat forever.
      seed: int. Seed of the shuffling and of the flips.

    Returns:
      A `tf.data.Dataset` of dicts, each value with a leading batch dimension `batch_size`.

    Raises:
      ValueError: if `data_dir` has no shard of `split`.
      DamagedShardError: if a shard is truncated (named in the message).
    """
    size = _batch_size(cfg, batch_size)
    for path in shard_files(data_dir, split):
        check_shard(path)
    dataset = _records(data_dir, split, shuffle, seed)
    if shuffle:
        dataset = dataset.shuffle(SHUFFLE_BUFFER, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()
    data_cfg = cfg.data
    if flip:
        # A seeded random stream zipped beside the records keeps the flips reproducible even
        # though the map below runs in parallel.
        coins = tf.data.Dataset.random(seed=seed).map(lambda value: value % 2 == 0)
        dataset = tf.data.Dataset.zip(dataset, coins).map(
            lambda serialized, coin: prepare_example(records.parse_image(serialized), data_cfg, coin),
            num_parallel_calls=tf.data.AUTOTUNE, deterministic=not shuffle)
    else:
        dataset = dataset.map(
            lambda serialized: prepare_example(records.parse_image(serialized), data_cfg),
            num_parallel_calls=tf.data.AUTOTUNE, deterministic=not shuffle)
    return dataset.batch(size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def pose_dataset(data_dir: str, cfg: Config, batch_size: int, split: str = "train", seed: int = 0) -> tf.data.Dataset:
    """Batches of pose vectors alone, for the pose auto-encoder: shuffled, mirrored with probability
    1/2, repeated, full batches. No image is decoded (the keypoints scale with the record's stored
    size), so a pose batch costs next to nothing beside an image batch.

    Returns:
      A `tf.data.Dataset` of dicts `{"pose_vector": (batch_size, 54)}`.

    Raises:
      ValueError: if `data_dir` has no shard of `split`.
    """
    size = _batch_size(cfg, batch_size)

    def prepare(serialized, coin):
        return prepare_pose_vector(records.parse_image(serialized), cfg.data, coin)

    dataset = _records(data_dir, split, shuffle=True, seed=seed).shuffle(
        SHUFFLE_BUFFER, seed=seed, reshuffle_each_iteration=True).repeat()
    coins = tf.data.Dataset.random(seed=seed).map(lambda value: value % 2 == 0)
    dataset = tf.data.Dataset.zip(dataset, coins).map(prepare, num_parallel_calls=tf.data.AUTOTUNE,
                                                      deterministic=False)
    return dataset.batch(size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def eval_dataset(data_dir: str, cfg: Config, split: str = "test",
                 batch_size: int | None = None) -> tf.data.Dataset:
    """Every record of `split` once, in shard order, as batches (the last one may be smaller).

    Args:
      data_dir: str. Directory of `{split}-?????-of-?????.tfrecord` shards.
      cfg: Config. `cfg.data` shapes the examples.
      split: str. Shard prefix.
      batch_size: int or None. Examples per batch; None means `cfg.train.batch_size`.

    Returns:
      A `tf.data.Dataset` of dicts with a leading batch dimension.

    Raises:
      ValueError: if `data_dir` has no shard of `split`.
    """
    size = _batch_size(cfg, batch_size)
    data_cfg = cfg.data
    dataset = _records(data_dir, split, shuffle=False, seed=0).map(
        lambda serialized: prepare_example(records.parse_image(serialized), data_cfg),
        num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.batch(size).prefetch(tf.data.AUTOTUNE)


def pairs_dataset(data_dir: str, cfg: Config, split: str = "test",
                  batch_size: int | None = None) -> tf.data.Dataset:
    """The (source, target) pairs of `{split}-pairs.tfrecord`, in file order, as batches.

    Args:
      data_dir: str. Directory holding the pairs file.
      cfg: Config. `cfg.data` shapes both examples.
      split: str. Pairs file prefix.
      batch_size: int or None. Pairs per batch; None means `cfg.train.batch_size`.

    Returns:
      A `tf.data.Dataset` of `(source, target)` tuples of example dicts with a leading batch
      dimension (the last batch may be smaller).

    Raises:
      ValueError: if the pairs file does not exist.
    """
    size = _batch_size(cfg, batch_size)
    path = os.path.join(data_dir, records.pairs_name(split))
    if not tf.io.gfile.exists(path):
        raise ValueError(
            f"data_dir: no {split!r} pairs in {data_dir!r} (expected {records.pairs_name(split)!r}); "
            f"build it with `python -m tfrecords.build`.")
    data_cfg = cfg.data

    def prepare_pair(serialized):
        source, target = records.parse_pair(serialized)
        return prepare_example(source, data_cfg), prepare_example(target, data_cfg)

    dataset = tf.data.TFRecordDataset(path).map(prepare_pair, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.batch(size).prefetch(tf.data.AUTOTUNE)


def count_pairs(data_dir: str, split: str = "test") -> int:
    """Pair records in `{split}-pairs.tfrecord` (0 when there is no such file)."""
    path = os.path.join(data_dir, records.pairs_name(split))
    if not tf.io.gfile.exists(path):
        return 0
    return int(tf.data.TFRecordDataset(path).reduce(np.int64(0), lambda count, _: count + 1))


def count_records(data_dir: str, split: str) -> int:
    """Image records of a split's shards."""
    return int(_records(data_dir, split, shuffle=False, seed=0).reduce(np.int64(0), lambda count, _: count + 1))


def same_identity_pairs(person_ids, n: int, seed: int, min_person_id: int = 0) -> tuple[np.ndarray, int]:
    """Draws up to `n` distinct ordered pairs of two different images of one identity, uniformly.

    Every ordered pair (a, b), a != b, of images whose `person_id` is equal and at least
    `min_person_id` is equally likely; no pair is drawn twice. Identities are never enumerated
    pair by pair: a pair is an index into the concatenated k(k-1) pairs of each identity.

    Args:
      person_ids: int array `(images,)`.
      n: int. Pairs wanted.
      seed: int. Seed of `np.random.default_rng`.
      min_person_id: int. Identities below it are skipped (Market-1501's 0 distractors, -1 junk).

    Returns:
      (int64 `(min(n, available), 2)` image indices (source, target), available pairs).
    """
    ids = np.asarray(person_ids, np.int64)
    order = np.flatnonzero(ids >= min_person_id)
    order = order[np.argsort(ids[order], kind="stable")]
    _, first, counts = np.unique(ids[order], return_index=True, return_counts=True)
    keep = counts >= 2
    first, counts = first[keep], counts[keep]
    sizes = counts * (counts - 1)
    ends = np.cumsum(sizes)
    available = int(ends[-1]) if len(ends) else 0
    picks = np.random.default_rng(seed).choice(available, size=min(n, available), replace=False)
    group = np.searchsorted(ends, picks, side="right")
    within = picks - (ends[group] - sizes[group])
    k = counts[group]
    source = within // (k - 1)
    target = within % (k - 1)
    target += target >= source  # skip the source itself
    return np.stack([order[first[group] + source], order[first[group] + target]], axis=1), available


def random_pairs_dataset(data_dir: str, cfg: Config, split: str, n: int, seed: int, min_person_id: int = 0,
                         batch_size: int | None = None) -> tuple[tf.data.Dataset, int]:
    """`same_identity_pairs` of a split's image records, shaped like `pairs_dataset`.

    The split's serialized records (a few KB each) are read once and held in memory.

    Returns:
      (dataset of `(source, target)` batches of up to `n` pairs, the number of pairs available).

    Raises:
      ValueError: if `data_dir` has no shard of `split`.
    """
    size = _batch_size(cfg, batch_size)
    serialized = [r.numpy() for r in _records(data_dir, split, shuffle=False, seed=0)]
    person_ids = [int(v) for v in tf.io.parse_example(
        tf.constant(serialized, tf.string), {"person_id": records.IMAGE_FEATURES["person_id"]})["person_id"]]
    pairs, available = same_identity_pairs(person_ids, n, seed, min_person_id)
    table = tf.constant(serialized, tf.string)
    data_cfg = cfg.data

    def prepare_pair(pair):
        return tuple(prepare_example(records.parse_image(table[pair[i]]), data_cfg) for i in (0, 1))

    dataset = tf.data.Dataset.from_tensor_slices(pairs).map(prepare_pair, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.batch(size).prefetch(tf.data.AUTOTUNE), available


def load_examples(data_dir: str, cfg: Config, split: str = "test", limit: int | None = None) -> dict:
    """The first `limit` examples of a split (all when None) as one numpy batch dict, for evaluation."""
    import numpy as np  # noqa: PLC0415 (the pipeline itself is pure TF)

    chunks: dict[str, list] = {}
    seen = 0
    for batch in eval_dataset(data_dir, cfg, split=split, batch_size=64):
        for key, value in batch.items():
            chunks.setdefault(key, []).append(value.numpy())
        seen += len(batch["image"])
        if limit is not None and seen >= limit:
            break
    return {k: np.concatenate(v)[:limit] for k, v in chunks.items()}
