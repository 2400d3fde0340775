"""The data floor: the tf.data input `pipeline` and the data contract around it.

`records` (the TFRecord schema), `annotations` (the annotation and pairs CSVs), `layouts` (the dataset
folders' names), `geometry` (keypoints -> heatmaps, masks, ROIs, pose vector), `examples` (record ->
example, the batch contract of `docs/CONTRACTS.md`), `pipeline` (shards -> batches) and `visualize`
(its pictures). The pipeline's and `examples`' public names are importable from here
(`data.train_dataset`, `data.prepare_example`, `data.pose_features`, `data.frame_photo`).
"""

# No `from __future__ import annotations` here: it would bind this package's name `annotations`, which
# `from keras_disentangle.data import annotations` would then return instead of the submodule.
from keras_disentangle.data.examples import frame_photo, pose_features, prepare_example, prepare_pose_vector
from keras_disentangle.data.pipeline import (
    SHUFFLE_BUFFER,
    shard_files,
    DamagedShardError,
    check_shard,
    find_damaged_shard,
    train_dataset,
    pose_dataset,
    eval_dataset,
    pairs_dataset,
    count_pairs,
    count_records,
    same_identity_pairs,
    random_pairs_dataset,
    load_examples,
)

__all__ = [
    "frame_photo",
    "pose_features",
    "prepare_example",
    "prepare_pose_vector",
    "SHUFFLE_BUFFER",
    "shard_files",
    "DamagedShardError",
    "check_shard",
    "find_damaged_shard",
    "train_dataset",
    "pose_dataset",
    "eval_dataset",
    "pairs_dataset",
    "count_pairs",
    "count_records",
    "same_identity_pairs",
    "random_pairs_dataset",
    "load_examples",
]
