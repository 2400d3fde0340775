"""Photos as people take them, at the two decoders: `keypoints.read_image` (the command-line tools, and
the browser demo's uploads) and the SavedModel's in-graph `photo_graph.decode_photo` (`transfer_photo`).
Both read every format to the same upright pixels and refuse the same files. The surfaces' end-to-end
tests (keypoints, tfrecords.build, generate, the app, transfer_photo) use these files too."""

import io
import re

import numpy as np
import pytest
from PIL import Image

import photo_files


@pytest.fixture(scope="module")
def rgb():
    """A 40x24 picture with structure in every direction, so a wrong turn or flip shows."""
    y, x = np.mgrid[:40, :24]
    return np.stack([y * 6, x * 10, y * x * 255 // (39 * 23)], -1).astype(np.uint8)


@pytest.fixture(scope="module")
def decode():
    import tensorflow as tf

    from keras_disentangle.serving import photo_graph

    function = tf.function(photo_graph.decode_photo, input_signature=[tf.TensorSpec([], tf.string)])
    return lambda data: function(tf.constant(data)).numpy()


def test_every_format_reads_upright_and_alike_at_both_decoders(rgb, decode, tmp_path):
    from keras_disentangle.pose import keypoints

    # What each file should read as (transparency over white, grey by PIL's rule); mean error allowed.
    alpha = np.linspace(0, 255, rgb.shape[1], dtype=np.uint8)[None, :, None].astype(int)
    grey = np.asarray(Image.fromarray(rgb).convert("L"))[..., None].repeat(3, -1)
    expected = {"rgba.png": (rgb * alpha + 255 * (255 - alpha) + 127) // 255,
                "grey_alpha.png": ((rgb[..., 2:3] * alpha + 255 * (255 - alpha) + 127) // 255).repeat(3, -1),
                "grey.png": grey, "grey16.png": grey, "grey.jpg": grey}
    lossy = {"palette.png": 10, "palette.gif": 10, "cmyk.jpg": 3, "lossy.webp": 3}
    for name, data in photo_files.readable(rgb).items():
        path = tmp_path / name
        path.write_bytes(data)
        read = keypoints.read_image(path)
        assert read.shape == rgb.shape and read.dtype == np.uint8, name
        np.testing.assert_array_equal(decode(data), read, err_msg=f"{name}: the graph decodes otherwise")
        if name != "palette_transparent.png":  # its first palette colour turns white
            error = np.abs(read.astype(int) - expected.get(name, rgb)).mean()
            assert error <= lossy.get(name, 2.0 if name.endswith(".jpg") else 0.0), (name, error)


def test_refused_files_get_one_clear_message_at_both_decoders(rgb, decode, tmp_path):
    import tensorflow as tf

    from keras_disentangle.pose import keypoints

    for name, (data, message, graph_message) in photo_files.refused(rgb).items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(ValueError, match=f"{name}: .*{re.escape(message)}") as error:
            keypoints.read_image(path)
        assert "\n" not in str(error.value)
        with pytest.raises(tf.errors.InvalidArgumentError, match=graph_message):
            decode(data)


def test_header_sizes_and_exif_orientations_in_graph(rgb):
    """The header parser reads every format's size, and the EXIF parser all 8 orientations (and none for
    0 and 9) as PIL reads them, in the little-endian TIFF block PIL writes and in a big-endian one."""
    import struct

    import tensorflow as tf

    from keras_disentangle.serving import photo_graph

    for name, data in photo_files.readable(rgb).items():
        stored = Image.open(io.BytesIO(data)).size[::-1]
        assert tuple(photo_graph.stored_size(tf.constant(data)).numpy()) == stored, name
    plain = photo_files.encode(Image.fromarray(rgb), "JPEG")
    for orientation in range(0, 10):
        image = Image.fromarray(rgb)
        exif = image.getexif()
        exif[photo_files.ORIENTATION] = orientation
        little = photo_files.encode(image, "JPEG", exif=exif)
        tiff = (b"MM\x00\x2a" + struct.pack(">IH", 8, 1) + struct.pack(">HHIHH", photo_files.ORIENTATION, 3, 1,
                                                                       orientation, 0) + struct.pack(">I", 0))
        big = plain[:2] + b"\xff\xe1" + struct.pack(">H", len(tiff) + 8) + b"Exif\x00\x00" + tiff + plain[2:]
        for data in (little, big):
            assert Image.open(io.BytesIO(data)).getexif().get(photo_files.ORIENTATION) == orientation
            got = int(photo_graph.exif_orientation(tf.constant(data)))
            assert got == (orientation if 1 <= orientation <= 8 else 1), orientation
