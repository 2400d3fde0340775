"""Photos in, pictures out, inside the TensorFlow graph: the SavedModel's bytes-in/bytes-out signature.

A TF Serving client sends encoded image bytes (JPEG, PNG, BMP or GIF, any size; grayscale and
16-bit converted, alpha dropped) and the 18 keypoints in that photo's own pixels; the graph decodes the photo, frames it on
the person at the model's aspect ratio exactly as `keypoints.frame` does (a box around the keypoints
with `keypoints.FRAME_MARGIN`, widened or heightened, never squashed, the outside filled with the
photo's edge pixels), resizes it as the input pipeline does (`data.prepare_example`: antialiased,
keypoints scaled pixel centre to pixel centre), runs the model and encodes the picture as PNG.

The keypoints must be given: the BlazePose estimator is a `.tflite` model and stays outside the graph
(`python -m keras_disentangle.pose.keypoints IMG --format=json` or any OpenPose-18 estimator).

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

from keras_disentangle import configs
from keras_disentangle.data import geometry
from keras_disentangle.pose.keypoints import EXIF_ORIENTATION, FRAME_MARGIN, MAX_PIXELS, MIN_IMAGE_SIDE


# Bytes read for the header and the EXIF block: an APP1 segment holds at most 64 KiB and sits among the
# first segments, so the block and its first directory lie in this prefix.
HEADER_BYTES = 1 << 17


def _prefix(image_bytes) -> tf.Tensor:
    """The first `HEADER_BYTES` bytes as uint8, zero-padded (a short file reads as zeros past its end)."""
    head = tf.io.decode_raw(tf.strings.substr(image_bytes, 0, HEADER_BYTES), tf.uint8)
    return tf.cast(tf.pad(head, [[0, HEADER_BYTES - tf.shape(head)[0]]]), tf.int64)


def _uint(data, offset, size: int, little) -> tf.Tensor:
    """The unsigned `size`-byte integers (int64) at the offsets `offset` (any shape) of `data`, little- or
    big-endian; offsets past the prefix read its last byte."""
    offset = tf.cast(offset, tf.int64)[..., None] + tf.range(size, dtype=tf.int64)
    parts = tf.gather(data, tf.clip_by_value(offset, 0, HEADER_BYTES - 1))
    weights = tf.bitwise.left_shift(tf.constant(1, tf.int64), 8 * tf.range(size, dtype=tf.int64))
    return tf.reduce_sum(parts * tf.where(little, weights, weights[::-1]), axis=-1)


def _starts_with(data, text: bytes, offset: int = 0) -> tf.Tensor:
    return tf.reduce_all(data[offset:offset + len(text)] == list(text))


def stored_size(image_bytes) -> tf.Tensor:
    """(height, width) int64 of an encoded JPEG, PNG, GIF, BMP or WebP from its header alone; (0, 0) for
    other bytes (the decoder then names the problem)."""
    data = _prefix(image_bytes)
    true = tf.constant(True)

    def webp():
        vp8x = (_uint(data, 27, 3, true) + 1, _uint(data, 24, 3, true) + 1)
        bits = _uint(data, 21, 4, true)  # VP8L: 14 bits of width - 1, then 14 of height - 1
        vp8l = (tf.bitwise.bitwise_and(tf.bitwise.right_shift(bits, 14), 0x3FFF) + 1,
                tf.bitwise.bitwise_and(bits, 0x3FFF) + 1)
        vp8 = (tf.bitwise.bitwise_and(_uint(data, 28, 2, true), 0x3FFF),
               tf.bitwise.bitwise_and(_uint(data, 26, 2, true), 0x3FFF))
        return tf.stack(tf.case([(_starts_with(data, b"VP8X", 12), lambda: vp8x),
                                 (_starts_with(data, b"VP8L", 12), lambda: vp8l)], default=lambda: vp8))

    def bmp():
        height = _uint(data, 22, 4, true)
        return tf.stack([tf.abs(tf.where(height >= 2 ** 31, height - 2 ** 32, height)), _uint(data, 18, 4, true)])

    return tf.case([
        (tf.io.is_jpeg(image_bytes), lambda: tf.cast(tf.io.extract_jpeg_shape(image_bytes)[:2], tf.int64)),
        (_starts_with(data, b"\x89PNG"), lambda: tf.stack([_uint(data, 20, 4, False), _uint(data, 16, 4, False)])),
        (_starts_with(data, b"GIF8"), lambda: tf.stack([_uint(data, 8, 2, true), _uint(data, 6, 2, true)])),
        (_starts_with(data, b"BM"), bmp),
        (_starts_with(data, b"RIFF") & _starts_with(data, b"WEBP", 8), webp),
    ], default=lambda: tf.zeros([2], tf.int64))


def exif_orientation(image_bytes) -> tf.Tensor:
    """The EXIF orientation (1-8, int64) of a JPEG, as PIL's `ImageOps.exif_transpose` reads it; 1 when
    there is none: other formats, no APP1 "Exif" segment, or a value outside 1-8."""
    data = _prefix(image_bytes)
    # The APP1 marker FF E1, a 2-byte length, then "Exif\0\0" and the TIFF header.
    marker = [0xFF, 0xE1, -1, -1, *b"Exif\x00\x00"]
    n = HEADER_BYTES - len(marker)
    found = tf.ones([n], tf.bool)
    for i, byte in enumerate(marker):
        if byte >= 0:
            found &= data[i:i + n] == byte
    tiff = tf.argmax(tf.cast(found, tf.int32), output_type=tf.int64) + len(marker)
    little = _starts_with(tf.gather(data, tf.minimum(tiff + [0, 1], HEADER_BYTES - 1)), b"II")
    directory = tiff + _uint(data, tiff + 4, 4, little)
    entries = directory + 2 + 12 * tf.range(tf.minimum(_uint(data, directory, 2, little), 256))
    # An orientation entry is a SHORT (type 3): its value is the first 2 bytes of the value field.
    at = tf.boolean_mask(entries, _uint(data, entries, 2, little) == EXIF_ORIENTATION)[:1]
    value = tf.reduce_sum(_uint(data, at + 8, 2, little))
    ok = tf.io.is_jpeg(image_bytes) & tf.reduce_any(found) & (tf.size(at) > 0) & (value >= 1) & (value <= 8)
    return tf.where(ok, value, tf.constant(1, tf.int64))


def orient(photo, orientation) -> tf.Tensor:
    """`photo` (h, w, c) turned upright for an EXIF `orientation`, as `ImageOps.exif_transpose` turns it."""
    def transpose(image):
        return tf.transpose(image, [1, 0, 2])
    return tf.switch_case(tf.cast(orientation, tf.int32) - 1, [
        lambda: photo,
        lambda: tf.reverse(photo, [1]),
        lambda: tf.image.rot90(photo, 2),
        lambda: tf.reverse(photo, [0]),
        lambda: transpose(photo),
        lambda: tf.image.rot90(photo, 3),
        lambda: tf.image.rot90(transpose(photo), 2),
        lambda: tf.image.rot90(photo, 1)])


def decode_photo(image_bytes, max_pixels: int = MAX_PIXELS) -> tf.Tensor:
    """Encoded photo bytes -> uint8 (h, w, 3) upright, as `keypoints.read_image` reads a file: turned by
    its EXIF orientation (JPEG), transparency over white, 16 bits to their high byte.

    Raises (when run):
      InvalidArgumentError: for more than `max_pixels` pixels (from the header, before decoding), or
        bytes that are not a JPEG, PNG, GIF, BMP or WebP, or are truncated.
    """
    height, width = tf.unstack(stored_size(image_bytes))
    small_enough = tf.debugging.assert_less_equal(height * width, tf.constant(max_pixels, tf.int64), message=(
        f"image_bytes: the photo has more than {max_pixels / 1e6:.0f} MP; downscale it first"))
    # The check must run before the decoder allocates (a decoder does not wait for an assert by itself).
    with tf.control_dependencies([small_enough]):
        # JPEG with libjpeg's accurate integer DCT, as PIL decodes it (the default fast one is a few levels off).
        photo = tf.cond(tf.io.is_jpeg(image_bytes),
                        lambda: tf.io.decode_jpeg(image_bytes, channels=3, dct_method="INTEGER_ACCURATE"),
                        lambda: tf.io.decode_image(image_bytes, channels=0, dtype=tf.uint8, expand_animations=False))
    channels = tf.shape(photo)[2]
    colour = tf.cond(channels < 3, lambda: tf.image.grayscale_to_rgb(photo[..., :1]), lambda: photo[..., :3])
    alpha = tf.cond(channels % 2 == 0, lambda: tf.cast(photo[..., -1:], tf.int32), lambda: tf.fill(
        tf.concat([tf.shape(photo)[:2], [1]], 0), 255))
    # PIL's alpha_composite over white, in integers: (c * a + 255 * (255 - a)) / 255, rounded.
    over_white = (tf.cast(colour, tf.int32) * alpha + 255 * (255 - alpha) + 127) // 255
    photo = tf.cast(over_white, tf.uint8)
    tf.debugging.assert_greater_equal(tf.reduce_min(tf.shape(photo)[:2]), MIN_IMAGE_SIDE, message=(
        f"image_bytes: the photo is smaller than {MIN_IMAGE_SIDE} pixels on a side"))
    return orient(photo, exif_orientation(image_bytes))


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
    photo = decode_photo(image_bytes)
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
