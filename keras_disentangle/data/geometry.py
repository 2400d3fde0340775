"""Keypoint geometry as TensorFlow ops: heatmaps, body masks, body ROIs, pose vectors, flips.

Every function takes keypoints shaped `[..., 18, 2]` ((y, x) pixels, OpenPose COCO-18 order, a
joint with y < 0 or x < 0 is missing) and works unbatched in `tf.data` maps, batched, and inside
`tf.function`. Sizes (`height`, `width`, radii) are Python ints so that output shapes are static.
No I/O happens here; `data.py` composes these functions per example.

Reference: the body mask, heatmaps and ROIs follow the authors' (PG2 / DPIG) data preparation,
summarised in `REFERENCE.md` (Data, Stage I).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from keras_disentangle.configs import NUM_KEYPOINTS, POSE_VECTOR_DIM

KEYPOINT_NAMES = (
    "nose", "neck", "Rsho", "Relb", "Rwri", "Lsho", "Lelb", "Lwri", "Rhip", "Rkne", "Rank",
    "Lhip", "Lkne", "Lank", "Reye", "Leye", "Rear", "Lear",
)

# The 23 PG2 limbs, 0-based. The last few (hip-hip, hip-shoulder, ear-ear, neck-ear) are not
# skeleton bones: they exist so that the limb disks fill the torso and the head.
LIMBS = tuple((a - 1, b - 1) for a, b in (
    (2, 3), (2, 6), (3, 4), (4, 5), (6, 7), (7, 8), (2, 9), (9, 10), (10, 11), (2, 12), (12, 13),
    (13, 14), (2, 1), (1, 15), (15, 17), (1, 16), (16, 18), (2, 17), (2, 18), (9, 12), (12, 6),
    (9, 3), (17, 18),
))

ROI_NAMES = ("head", "upper_body", "legs", "left_arm", "right_arm", "left_leg", "right_leg")
ROI_JOINTS = (
    (0, 1, 2, 5, 14, 15, 16, 17),
    (2, 3, 4, 5, 6, 7, 8, 11),
    (8, 9, 10, 11, 12, 13),
    (5, 6, 7),
    (2, 3, 4),
    (11, 12, 13),
    (8, 9, 10),
)

# Index i of a mirrored pose holds joint FLIP_PERMUTATION[i] of the original: the person's right
# shoulder becomes the left one, and so on; nose and neck stay.
FLIP_PERMUTATION = (0, 1, 5, 6, 7, 2, 3, 4, 11, 12, 13, 8, 9, 10, 15, 14, 17, 16)

# (7, 18): whether joint j belongs to ROI r.
_ROI_MEMBERSHIP = np.array([[joint in joints for joint in range(NUM_KEYPOINTS)] for joints in ROI_JOINTS])


def _as_keypoints(keypoints) -> tf.Tensor:
    keypoints = tf.cast(tf.convert_to_tensor(keypoints), tf.float32)
    shape = keypoints.shape
    if shape.rank is not None and (
            shape.rank < 2 or shape[-2] not in (None, NUM_KEYPOINTS) or shape[-1] not in (None, 2)):
        raise ValueError(f"keypoints: expected shape [..., {NUM_KEYPOINTS}, 2], got {shape}.")
    return keypoints


def _check_size(height: int, width: int) -> None:
    if int(height) < 2 or int(width) < 2:
        raise ValueError(f"height, width: expected integers >= 2, got {height} x {width}.")


def _present(keypoints: tf.Tensor) -> tf.Tensor:
    return tf.logical_and(keypoints[..., 0] >= 0.0, keypoints[..., 1] >= 0.0)


# Where absent joints are moved before distances are taken, so that nothing is near them and no
# separate presence test is needed on the full pixel grid (the per-pixel ops dominate the cost).
_FAR = -1e6


def _move_absent_far(points: tf.Tensor, present: tf.Tensor) -> tf.Tensor:
    return tf.where(present[..., tf.newaxis], points, _FAR)


def keypoint_visibility(keypoints) -> tf.Tensor:
    """Whether each joint is present.

    Args:
      keypoints: `(..., 18, 2)` (y, x) pixels; negative coordinates mark a missing joint.

    Returns:
      float32 `(..., 18)` of 0 (missing) / 1 (present).
    """
    return tf.cast(_present(_as_keypoints(keypoints)), tf.float32)


def scale_keypoints(keypoints, from_hw, to_hw) -> tf.Tensor:
    """Rescales keypoints from an image of size `from_hw` to one of size `to_hw`.

    Pixel centres map to pixel centres, `y' = (y + 0.5) * s - 0.5`, as `tf.image.resize` (half
    pixel centres) and `synthetic.render` place them; the result is clipped into the image so a
    joint on the border never reads as missing.

    Args:
      keypoints: `(..., 18, 2)` (y, x) pixels at `from_hw`.
      from_hw: (height, width) the keypoints refer to; ints or scalar tensors.
      to_hw: (height, width) of the resized image; ints or scalar tensors.

    Returns:
      float32 `(..., 18, 2)`; missing joints stay -1.
    """
    keypoints = _as_keypoints(keypoints)
    from_hw = tf.cast(tf.stack(from_hw), tf.float32)
    to_hw = tf.cast(tf.stack(to_hw), tf.float32)
    scaled = tf.clip_by_value((keypoints + 0.5) * (to_hw / from_hw) - 0.5, 0.0, to_hw - 1.0)
    return tf.where(_present(keypoints)[..., tf.newaxis], scaled, -1.0)


def flip_keypoints(keypoints, width: int) -> tf.Tensor:
    """Mirrors keypoints horizontally, as `tf.image.flip_left_right` mirrors the image.

    Columns map x -> width - 1 - x, and left/right joints swap (`FLIP_PERMUTATION`), so that the
    person's right shoulder of the mirrored image is again joint 2.

    Args:
      keypoints: `(..., 18, 2)` (y, x) pixels of an image `width` pixels wide.
      width: int. Image width.

    Returns:
      float32 `(..., 18, 2)`; missing joints stay -1.
    """
    keypoints = _as_keypoints(keypoints)
    mirrored = tf.stack([keypoints[..., 0], float(width) - 1.0 - keypoints[..., 1]], axis=-1)
    mirrored = tf.where(_present(keypoints)[..., tf.newaxis], mirrored, -1.0)
    return tf.gather(mirrored, FLIP_PERMUTATION, axis=-2)


def pose_heatmaps(keypoints, height: int, width: int, radius: int, gaussian: bool = False) -> tf.Tensor:
    """One channel per joint: a disk of `radius` pixels around it.

    A pixel (i, j) is inside the disk of joint (y, x) when (i - y)^2 + (j - x)^2 <= radius^2, as in
    the original's solid disks. Fractional keypoints (after resizing) are used as they are.

    Args:
      keypoints: `(..., 18, 2)` (y, x) pixels.
      height, width: int. Heatmap size, the image size the keypoints refer to.
      radius: int. Disk radius in pixels (the Gaussian's sigma when `gaussian`).
      gaussian: bool. Soft maps exp(-d^2 / (2 radius^2)) rescaled to [-1, 1] instead of disks.

    Returns:
      float32 `(..., height, width, 18)`, +1 inside a disk and -1 elsewhere (in [-1, 1] when
      `gaussian`). A missing joint's channel is all -1.
    """
    _check_size(height, width)
    if radius <= 0:
        raise ValueError(f"radius: expected a positive number of pixels, got {radius}.")
    keypoints = _as_keypoints(keypoints)
    keypoints = _move_absent_far(keypoints, _present(keypoints))
    # (..., 1, 1, 18) centres against (H, 1, 1) rows and (1, W, 1) columns -> (..., H, W, 18).
    centre_y = keypoints[..., tf.newaxis, tf.newaxis, :, 0]
    centre_x = keypoints[..., tf.newaxis, tf.newaxis, :, 1]
    rows = tf.reshape(tf.range(height, dtype=tf.float32), [height, 1, 1])
    cols = tf.reshape(tf.range(width, dtype=tf.float32), [1, width, 1])
    dist2 = (rows - centre_y) ** 2 + (cols - centre_x) ** 2
    if gaussian:
        return 2.0 * tf.exp(-dist2 / (2.0 * float(radius) ** 2)) - 1.0
    return tf.where(dist2 <= float(radius) ** 2, 1.0, -1.0)


def heatmaps_from_pose_vector(vector, height: int, width: int, radius: int) -> tf.Tensor:
    """Binary heatmaps `(..., height, width, 18)` of a 54-d pose vector (see `pose_heatmaps`)."""
    return pose_heatmaps(keypoints_from_pose_vector(vector, height, width), height, width, radius)


def _closing(mask: tf.Tensor, size: int) -> tf.Tensor:
    """Morphological close of a `(..., H, W, 1)` {0, 1} mask with a `size` x `size` square.

    `max_pool` with SAME padding ignores the padded cells, so the dilation treats the outside as
    0 and the erosion (`-max_pool(-x)`) treats it as 1. With that border rule the close never
    removes a pixel of the input, even where the body touches the image border.
    """
    if size == 1:
        return mask
    shape = tf.shape(mask)
    images = tf.reshape(mask, tf.concat([[-1], shape[-3:]], axis=0))
    dilated = tf.nn.max_pool2d(images, size, 1, "SAME")
    closed = -tf.nn.max_pool2d(-dilated, size, 1, "SAME")
    return tf.reshape(closed, shape)


def body_mask(keypoints, height: int, width: int, radius: int, close_size: int = 5) -> tf.Tensor:
    """The coarse foreground mask: disks along the 23 PG2 limbs, then a morphological close.

    A pixel is in the mask when it lies within `radius` pixels of a limb segment whose two joints
    are present (the union of the original's disks sampled along each limb, without its gaps);
    the close (dilation then erosion with a `close_size` square) fills the holes between limbs.

    Args:
      keypoints: `(..., 18, 2)` (y, x) pixels.
      height, width: int. Mask size.
      radius: int. Limb half-thickness in pixels.
      close_size: int. Odd side of the square structuring element; 1 skips the close.

    Returns:
      float32 `(..., height, width, 1)` in {0, 1}.

    Raises:
      ValueError: if `close_size` is not a positive odd integer or `radius` is not positive.
    """
    _check_size(height, width)
    if radius <= 0:
        raise ValueError(f"radius: expected a positive number of pixels, got {radius}.")
    if close_size < 1 or close_size % 2 == 0:
        # An even window has no centre pixel: dilation then erosion would shift the mask.
        raise ValueError(f"close_size: expected a positive odd integer, got {close_size}.")
    keypoints = _as_keypoints(keypoints)
    starts = tf.gather(keypoints, [a for a, _ in LIMBS], axis=-2)  # (..., 23, 2)
    ends = tf.gather(keypoints, [b for _, b in LIMBS], axis=-2)
    present = tf.logical_and(_present(starts), _present(ends))  # (..., 23)
    delta = ends - starts
    length2 = tf.reduce_sum(delta ** 2, axis=-1)
    # A limb whose joints coincide gets t = 0 below: its pixels are measured to the joint (a disk).
    inv_length2 = tf.where(length2 > 0.0, 1.0 / tf.maximum(length2, 1e-12), 0.0)
    starts = _move_absent_far(starts, present)

    # Limbs lead the pixel axes, (..., 23, H, W), so that the elementwise work runs along image
    # rows and the union over limbs is a min over whole planes.
    def per_limb(values):
        return values[..., tf.newaxis, tf.newaxis]

    dy, dx = per_limb(delta[..., 0]), per_limb(delta[..., 1])
    rel_y = tf.reshape(tf.range(height, dtype=tf.float32), [height, 1]) - per_limb(starts[..., 0])
    rel_x = tf.reshape(tf.range(width, dtype=tf.float32), [1, width]) - per_limb(starts[..., 1])
    # Projection of each pixel onto each limb, clamped to the segment.
    t = tf.clip_by_value((rel_y * dy + rel_x * dx) * per_limb(inv_length2), 0.0, 1.0)
    dist2 = tf.reduce_min((rel_y - t * dy) ** 2 + (rel_x - t * dx) ** 2, axis=-3)  # (..., H, W)
    mask = tf.cast(dist2 <= float(radius) ** 2, tf.float32)[..., tf.newaxis]
    return _closing(mask, int(close_size))


# A photo shows the whole body when a knee or ankle of each leg is present (the authors'
# DeepFashion rule); otherwise it is a close-up, whose ROIs the authors pad more.
_LOWER_LEGS = ((9, 10), (12, 13))
_NOSE = 0


def roi_boxes(keypoints, height: int, width: int, pad: int, pad_single: int, head_raise: int = 0,
              close_up: tuple[int, int, int] | None = None) -> tuple[tf.Tensor, tf.Tensor]:
    """The 7 body ROIs (`ROI_NAMES`): padded bounding boxes of their present joints.

    Each box spans the min/max of the ROI's present joints, padded by `pad` pixels (`pad_single`
    when only one joint is present), clipped to the image; the nose counts `head_raise` pixels
    higher (clipped at 0), so that the head box holds the hair. A ROI without any present joint
    gets the whole image and visibility 0. With `close_up`, a photo in which the lower legs are not
    both seen (no knee or ankle of one leg) uses its (pad, pad_single, head_raise) instead.

    Args:
      keypoints: `(..., 18, 2)` (y, x) pixels.
      height, width: int. Image size.
      pad: int. Padding in pixels around two or more joints.
      pad_single: int. Padding in pixels around a single joint.
      head_raise: int. Pixels the nose is moved up before the boxes are taken.
      close_up: (pad, pad_single, head_raise) of a close-up, or None to treat every photo alike.

    Returns:
      A tuple `(boxes, visibility)`: float32 `(..., 7, 4)` boxes (y1, x1, y2, x2) normalized as
      `tf.image.crop_and_resize` reads them (pixel / (size - 1)), and float32 `(..., 7)` in {0, 1}.
    """
    _check_size(height, width)
    keypoints = _as_keypoints(keypoints)
    present = _present(keypoints)
    pad, pad_single, head_raise = (tf.constant(float(v)) for v in (pad, pad_single, head_raise))
    if close_up is not None:
        whole_body = tf.logical_and(*(tf.reduce_any(tf.gather(present, list(leg), axis=-1), axis=-1)
                                      for leg in _LOWER_LEGS))
        pad, pad_single, head_raise = (tf.where(whole_body, value, float(other))
                                       for value, other in zip((pad, pad_single, head_raise), close_up))
    raise_y = tf.one_hot(_NOSE, NUM_KEYPOINTS) * head_raise[..., tf.newaxis]  # (..., 18)
    raised_y = tf.maximum(keypoints[..., 0] - raise_y, 0.0)
    keypoints = tf.stack([tf.where(present, raised_y, keypoints[..., 0]), keypoints[..., 1]], axis=-1)
    # (..., 7, 18): joint j counts for ROI r when it belongs to it and is present.
    selected = tf.logical_and(_ROI_MEMBERSHIP, present[..., tf.newaxis, :])
    count = tf.reduce_sum(tf.cast(selected, tf.float32), axis=-1)  # (..., 7)
    coords = keypoints[..., tf.newaxis, :, :]  # (..., 1, 18, 2)
    chosen = selected[..., tf.newaxis]
    low = tf.reduce_min(tf.where(chosen, coords, np.inf), axis=-2)  # (..., 7, 2)
    high = tf.reduce_max(tf.where(chosen, coords, -np.inf), axis=-2)
    padding = tf.where(count == 1.0, pad_single[..., tf.newaxis], pad[..., tf.newaxis])[..., tf.newaxis]
    limit = tf.constant([height - 1, width - 1], tf.float32)
    low = tf.clip_by_value(low - padding, 0.0, limit) / limit
    high = tf.clip_by_value(high + padding, 0.0, limit) / limit
    visible = count > 0.0
    boxes = tf.where(visible[..., tf.newaxis], tf.concat([low, high], axis=-1), [0.0, 0.0, 1.0, 1.0])
    return boxes, tf.cast(visible, tf.float32)


def pose_vector(keypoints, height: int, width: int, missing: float = 0.0) -> tf.Tensor:
    """Encodes keypoints as the 54-d vector of the pose auto-encoder.

    Args:
      keypoints: `(..., 18, 2)` (y, x) pixels of a `height` x `width` image.
      height, width: int. Image size.
      missing: float. Both coordinates of a missing joint (`DataConfig.pose_missing_coordinate`:
        the authors' -1, the pixel (0, 0) normalized).

    Returns:
      float32 `(..., 54)`: `[y0, x0, ..., y17, x17]` as y / height * 2 - 1 and x / width * 2 - 1
      (`missing` for missing joints), then the 18 visibility flags.
    """
    _check_size(height, width)
    keypoints = _as_keypoints(keypoints)
    present = _present(keypoints)
    coords = keypoints / tf.constant([height, width], tf.float32) * 2.0 - 1.0
    coords = tf.where(present[..., tf.newaxis], coords, float(missing))
    flat = tf.reshape(coords, tf.concat([tf.shape(coords)[:-2], [2 * NUM_KEYPOINTS]], axis=0))
    return tf.concat([flat, tf.cast(present, tf.float32)], axis=-1)


def keypoints_from_pose_vector(vector, height: int, width: int) -> tf.Tensor:
    """Decodes a 54-d pose vector (see `pose_vector`) into keypoints.

    Args:
      vector: `(..., 54)`, e.g. the pose auto-encoder's output.
      height, width: int. Image size the keypoints are returned in.

    Returns:
      float32 `(..., 18, 2)` (y, x) pixels; joints whose visibility is < 0.5 are -1.
    """
    _check_size(height, width)
    vector = tf.cast(tf.convert_to_tensor(vector), tf.float32)
    if vector.shape.rank is not None and vector.shape[-1] not in (None, POSE_VECTOR_DIM):
        raise ValueError(f"vector: expected shape [..., {POSE_VECTOR_DIM}], got {vector.shape}.")
    flat = vector[..., :2 * NUM_KEYPOINTS]
    coords = tf.reshape(flat, tf.concat([tf.shape(flat)[:-1], [NUM_KEYPOINTS, 2]], axis=0))
    keypoints = (coords + 1.0) / 2.0 * tf.constant([height, width], tf.float32)
    visible = vector[..., 2 * NUM_KEYPOINTS:] >= 0.5
    return tf.where(visible[..., tf.newaxis], keypoints, -1.0)
