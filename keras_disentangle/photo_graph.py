"""Photos in, pictures out, inside the TensorFlow graph: the SavedModel's bytes-in/bytes-out signature.

A TF Serving client sends encoded image bytes (JPEG, PNG, BMP or GIF, any size; grayscale and
16-bit converted, alpha dropped) and the 18 keypoints in that photo's own pixels; the graph decodes the photo, frames it on
the person at the model's aspect ratio exactly as `keypoints.frame` does (a box around the keypoints
with `keypoints.FRAME_MARGIN`, widened or heightened, never squashed, the outside filled with the
photo's edge pixels), resizes it as the input pipeline does (`data.prepare_example`: antialiased,
keypoints scaled pixel centre to pixel centre), runs the model and encodes the picture as PNG.

The keypoints must be given: the BlazePose estimator is a `.tflite` model and stays outside the graph
(`python -m keras_disentangle.keypoints IMG --format=json` or any OpenPose-18 estimator).

  transfer_photo(image_bytes, keypoints, target_keypoints) -> {png_bytes, image}
      image_bytes: string (batch,); keypoints: float32 (batch, 18, 2), (y, x) pixels of that photo,
      -1 for a missing joint, at least 2 present; target_keypoints: float32 (batch, 18, 2), the pose
      in any image's pixels (they are framed on their own extent the same way).
      png_bytes: string (batch,), the H x W picture as PNG; image: float32 (batch, H, W, 3) in [-1, 1].

The `_bytes` suffixes follow TF Serving's REST convention: inputs so named are sent as
{"b64": "..."}, and outputs so named come back base64-encoded.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from keras_disentangle import configs, geometry
from keras_disentangle.keypoints import FRAME_MARGIN


def frame_box(keypoints, aspect: float, margin: float = FRAME_MARGIN) -> tf.Tensor:
    """The crop box of `keypoints.frame` for keypoints `(18, 2)` (float pixels, -1 missing).

    Returns:
      int32 `(4,)`: top, left, height, width in the keypoints' pixels.
    """
    # float64 and round-half-to-even, as NumPy and Python's round compute it in `keypoints.frame`.
    points = tf.floor(tf.cast(keypoints, tf.float64))
    present = tf.reduce_all(points >= 0, axis=1)
    tf.debugging.assert_greater_equal(tf.math.count_nonzero(present, dtype=tf.int32), 2,
                                      message="keypoints: need at least 2 present joints to frame the person")
    visible = tf.boolean_mask(points, present)
    lo = tf.reduce_min(visible, axis=0)
    hi = tf.reduce_max(visible, axis=0) + 1.0
    pad = margin * tf.reduce_max(hi - lo)
    lo, hi = lo - pad, hi + pad
    h, w = hi[0] - lo[0], hi[1] - lo[1]
    wide = h / w < aspect
    h, w = tf.where(wide, w * aspect, h), tf.where(wide, w, h / aspect)
    centre = (lo + hi) / 2.0
    box = tf.stack([tf.round(centre[0] - h / 2.0), tf.round(centre[1] - w / 2.0), tf.round(h), tf.round(w)])
    return tf.cast(box, tf.int32)


def framed_keypoints(keypoints, box, size) -> tf.Tensor:
    """Keypoints `(18, 2)` of a photo moved into the crop `box` and scaled to `size` (H, W)."""
    points = tf.floor(tf.cast(keypoints, tf.float32))
    present = tf.reduce_all(points >= 0, axis=1, keepdims=True)
    moved = tf.where(present, points - tf.cast(box[:2], tf.float32), -1.0)
    return geometry.scale_keypoints(moved, (box[2], box[3]), size)


def frame_photo(image_bytes, keypoints, data_cfg: configs.DataConfig) -> tuple[tf.Tensor, tf.Tensor]:
    """One encoded photo and its keypoints -> the model's image (H, W, 3) in [-1, 1] and keypoints."""
    height, width = data_cfg.height, data_cfg.width
    photo = tf.io.decode_image(image_bytes, channels=3, dtype=tf.uint8, expand_animations=False)
    box = frame_box(keypoints, height / width)
    shape = tf.shape(photo)
    rows = tf.clip_by_value(tf.range(box[0], box[0] + box[2]), 0, shape[0] - 1)
    cols = tf.clip_by_value(tf.range(box[1], box[1] + box[3]), 0, shape[1] - 1)
    crop = tf.gather(tf.gather(photo, rows, axis=0), cols, axis=1)
    # As `data.prepare_example` resizes a stored photo (a crop of the model's size is kept as is).
    image = tf.cond(tf.reduce_all(tf.shape(crop)[:2] == [height, width]),
                    lambda: tf.cast(crop, tf.float32),
                    lambda: tf.image.resize(crop, [height, width], antialias=True))
    image = tf.ensure_shape(tf.clip_by_value(image / 127.5 - 1.0, -1.0, 1.0), [height, width, 3])
    return image, framed_keypoints(keypoints, box, (height, width))


def target_pose(keypoints, data_cfg: configs.DataConfig) -> tf.Tensor:
    """A target pose `(18, 2)` in any image's pixels, framed on its own extent, at the model's size."""
    height, width = data_cfg.height, data_cfg.width
    return framed_keypoints(keypoints, frame_box(keypoints, height / width), (height, width))


def encode_png(images) -> tf.Tensor:
    """float (batch, H, W, 3) in [-1, 1] -> PNG strings (batch,), by `visualize.to_uint8`'s rule."""
    pixels = tf.cast(tf.clip_by_value(tf.round((images + 1.0) * 127.5), 0.0, 255.0), tf.uint8)
    return tf.map_fn(tf.io.encode_png, pixels, fn_output_signature=tf.string)


class PhotoServing:
    """The bytes-in/bytes-out functions over a `runtime.Stage1Serving` (stage I suffices)."""

    def __init__(self, serving):
        self.serving = serving
        self.data_cfg = serving.cfg.data

    def inputs(self, image_bytes, keypoints, target_keypoints) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """The model's images, keypoints and target keypoints for a batch of encoded photos."""
        h, w = self.data_cfg.height, self.data_cfg.width
        images, points = tf.map_fn(
            lambda args: frame_photo(args[0], args[1], self.data_cfg), (image_bytes, keypoints),
            fn_output_signature=(tf.TensorSpec([h, w, 3], tf.float32),
                                 tf.TensorSpec([configs.NUM_KEYPOINTS, 2], tf.float32)))
        targets = tf.map_fn(lambda k: target_pose(k, self.data_cfg), tf.cast(target_keypoints, tf.float32))
        return images, points, targets

    def transfer_photo(self, image_bytes, keypoints, target_keypoints) -> dict:
        images, points, targets = self.inputs(image_bytes, keypoints, target_keypoints)
        image = self.serving.transfer(images, points, targets)["image"]
        return {"png_bytes": encode_png(image), "image": image}

    def add_endpoints(self, archive: keras.export.ExportArchive) -> None:
        keypoints = [configs.NUM_KEYPOINTS, 2]
        archive.add_endpoint("transfer_photo", self.transfer_photo, [
            tf.TensorSpec([None], tf.string, name="image_bytes"),
            tf.TensorSpec([None, *keypoints], tf.float32, name="keypoints"),
            tf.TensorSpec([None, *keypoints], tf.float32, name="target_keypoints")])
