"""One parsed TFRecord (`records.parse_image`) -> the model-ready example dict, the batch contract.

Every dataset goes through `prepare_example`, which decodes, frames (`frame_photo`) and resizes the photo, scales (and
optionally mirrors) the keypoints, then derives the heatmaps, body mask, ROI boxes and pose vector
with `geometry`. The resulting dict is the batch contract of `docs/CONTRACTS.md`:

| key | dtype | shape | values |
|---|---|---|---|
| image | float32 | (H, W, 3) | [-1, 1] |
| heatmaps | float32 | (H, W, 18) | {-1, +1} |
| body_mask | float32 | (H, W, 1) | {0, 1} |
| roi_boxes | float32 | (7, 4) | normalized y1, x1, y2, x2 |
| roi_visibility | float32 | (7,) | {0, 1} |
| pose_vector | float32 | (54,) | see `geometry.pose_vector` |
| keypoints | float32 | (18, 2) | pixels at H x W, -1 missing |
| person_id, camera, fg_id, bg_id | int64 | () | |
| name, factors | string | () | |

The datasets that batch these examples are `data`'s.
"""

from __future__ import annotations

import tensorflow as tf

from keras_disentangle.data import geometry
from keras_disentangle.configs import DataConfig

_ID_KEYS = ("person_id", "camera", "fg_id", "bg_id")
_STRING_KEYS = ("name", "factors")


def prepare_example(parsed: dict[str, tf.Tensor], data_cfg: DataConfig, flip=False) -> dict[str, tf.Tensor]:
    """Turns one parsed record (`records.parse_image`) into the model-ready example dict.

    The photo is decoded (JPEG or PNG), resized with antialiasing from its stored size to
    `data_cfg.height x data_cfg.width` and mapped to [-1, 1]; the keypoints are scaled alike.
    When `flip` is true the image and the keypoints are mirrored before anything is derived from
    the keypoints, so heatmaps, mask, ROIs and pose vector always agree with the image.

    Args:
      parsed: dict of the record's features; `keypoints` int64 `(18, 2)`.
      data_cfg: DataConfig. Output size and the geometry radii.
      flip: bool or scalar bool tensor. Mirror the example horizontally.

    Returns:
      The dict of the module docstring's table, unbatched.
    """
    height, width = data_cfg.height, data_cfg.width
    image = tf.io.decode_image(parsed["image"], channels=3, expand_animations=False)
    image, keypoints = frame_photo(image, parsed["keypoints"], height, width)
    # Keypoints are pixels of the photo as stored, so they scale with its decoded size.
    stored_hw = tf.shape(image)[:2]
    keypoints = geometry.scale_keypoints(keypoints, (stored_hw[0], stored_hw[1]), (height, width))
    image = tf.cond(
        tf.reduce_all(stored_hw == [height, width]),
        lambda: tf.cast(image, tf.float32),
        lambda: tf.image.resize(image, [height, width], antialias=True))
    # Resampling rounds a few ulps past 255, and the contract promises [-1, 1] exactly.
    image = tf.ensure_shape(tf.clip_by_value(image / 127.5 - 1.0, -1.0, 1.0), [height, width, 3])
    if isinstance(flip, bool):
        if flip:
            image = tf.image.flip_left_right(image)
            keypoints = geometry.flip_keypoints(keypoints, width)
    else:
        image = tf.where(flip, tf.image.flip_left_right(image), image)
        keypoints = tf.where(flip, geometry.flip_keypoints(keypoints, width), keypoints)
    example = {"image": image, **_pose_features(keypoints, data_cfg), "keypoints": keypoints}
    example.update({key: parsed[key] for key in _ID_KEYS + _STRING_KEYS})
    return example


def _frame_columns(stored_height, stored_width, height: int, width: int):
    """(left padding, framed width) that give a photo narrower than `height:width` that aspect."""
    framed = tf.cast(tf.round(tf.cast(stored_height, tf.float32) * (width / height)), tf.int32)
    framed = tf.maximum(framed, tf.cast(stored_width, tf.int32))
    return (framed - tf.cast(stored_width, tf.int32)) // 2, framed


def _shift_x(keypoints, left) -> tf.Tensor:
    keypoints = tf.cast(keypoints, tf.float32)
    present = tf.reduce_all(keypoints >= 0.0, axis=-1, keepdims=True)
    return tf.where(present, keypoints + tf.stack([0.0, tf.cast(left, tf.float32)]), keypoints)


def frame_photo(image: tf.Tensor, keypoints, height: int, width: int) -> tuple[tf.Tensor, tf.Tensor]:
    """Edge-pads a photo narrower than `height:width` equally left and right, shifting its keypoints.

    DeepFashion's PATN / GFLA release is the 256x256 photos with 40 px cut off each side (256x176):
    this puts them back into the 256x256 frame, with the studio backdrop's border columns repeated
    instead of the lost ones, so the preset's networks and pixel geometry apply unchanged. Photos of
    the frame's aspect (or wider) pass unchanged.

    Args:
      image: `(h, w, 3)` the decoded photo.
      keypoints: `(18, 2)` (y, x) pixels of it, -1 missing.
      height, width: int. The frame the photo is fed at (only its aspect matters here).

    Returns:
      (image `(h, w', 3)`, float32 keypoints `(18, 2)`) with w' >= w.
    """
    shape = tf.shape(image)
    left, framed = _frame_columns(shape[0], shape[1], height, width)
    columns = tf.clip_by_value(tf.range(framed) - left, 0, shape[1] - 1)
    return tf.gather(image, columns, axis=1), _shift_x(keypoints, left)


def pose_features(keypoints: tf.Tensor, data_cfg: DataConfig) -> dict[str, tf.Tensor]:
    """What the networks read besides the image, derived from keypoints `(..., 18, 2)` at H x W.

    The one definition of the geometry inputs: the pipeline and `runtime.model_inputs` both use it.

    Returns:
      dict of `heatmaps`, `body_mask`, `roi_boxes`, `roi_visibility`, `pose_vector` (the table of the
      module docstring), batched like `keypoints`.
    """
    height, width = data_cfg.height, data_cfg.width
    boxes, visibility = geometry.roi_boxes(keypoints, height, width, **data_cfg.roi_options)
    return {
        "heatmaps": geometry.pose_heatmaps(keypoints, height, width, radius=data_cfg.heatmap_radius),
        "body_mask": geometry.body_mask(
            keypoints, height, width, radius=data_cfg.mask_radius, close_size=data_cfg.mask_close_size),
        "roi_boxes": boxes,
        "roi_visibility": visibility,
        "pose_vector": geometry.pose_vector(keypoints, height, width, data_cfg.pose_missing_coordinate),
    }


# The pose features are ~15 elementwise passes over (18 or 23, H, W) planes; XLA fuses them into a
# few loops, which halves the CPU time of the whole input pipeline (measured with `bench`). The
# results are bit-identical to the unfused ops (checked in tests/test_data.py).
_pose_features = tf.function(pose_features, jit_compile=True)


def prepare_pose_vector(parsed: dict[str, tf.Tensor], data_cfg: DataConfig, flip) -> dict[str, tf.Tensor]:
    """The pose vector of one parsed record, framed and scaled as `prepare_example` does, mirrored when
    `flip` (a scalar bool tensor); no image is decoded (the keypoints scale with the record's stored size).

    Returns:
      `{"pose_vector": (54,)}`.
    """
    height, width = data_cfg.height, data_cfg.width
    left, framed = _frame_columns(parsed["height"], parsed["width"], height, width)
    keypoints = geometry.scale_keypoints(_shift_x(parsed["keypoints"], left),
                                         (tf.cast(parsed["height"], tf.int32), framed), (height, width))
    keypoints = tf.where(flip, geometry.flip_keypoints(keypoints, width), keypoints)
    return {"pose_vector": geometry.pose_vector(keypoints, height, width, data_cfg.pose_missing_coordinate)}
