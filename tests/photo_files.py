"""Photos as people send them, made in code: every format `keypoints.read_image` and the SavedModel's
decoder (`photo_graph.decode_photo`) read, and the files they refuse. Shared by the tests of each surface."""

import functools
import io
import struct
import zlib

import numpy as np
from PIL import Image, ImageOps

ORIENTATION = 0x0112
# EXIF orientation 6: the camera stored the picture turned a quarter left; a viewer turns it right.
PHONE_ORIENTATION = 6


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def portrait(photo: np.ndarray) -> np.ndarray:
    """The middle three quarters of a square person photo's width: taller than wide, so a turn shows."""
    width = photo.shape[1]
    return np.ascontiguousarray(photo[:, width // 8:width - width // 8])


def phone_jpeg(upright: np.ndarray) -> bytes:
    """A portrait phone photo: `upright` stored turned (landscape) with the EXIF tag that turns it back."""
    stored = Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90)
    exif = stored.getexif()
    exif[ORIENTATION] = PHONE_ORIENTATION
    return encode(stored, "JPEG", quality=95, exif=exif)


def upright_png(phone: bytes) -> bytes:
    """The pixels a viewer shows for `phone` (EXIF applied by PIL), stored losslessly without EXIF."""
    with Image.open(io.BytesIO(phone)) as image:
        return encode(ImageOps.exif_transpose(image).convert("RGB"), "PNG")


@functools.lru_cache(maxsize=4)  # ~1 s for the 12,000x9,000 one, which several tests send
def grey_png(width: int, height: int, rows: int | None = None) -> bytes:
    """A black 8-bit grey PNG of `width x height` (108 MP in ~100 KB for 12,000x9,000: a decompression
    bomb), written row by row; with `rows`, only that many rows follow the header (a lying header)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    compressor = zlib.compressobj(9)
    row = bytes(width + 1)
    data = b"".join(compressor.compress(row) for _ in range(height if rows is None else rows)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def readable(rgb: np.ndarray) -> dict[str, bytes]:
    """name.ext -> bytes of `rgb` (uint8 (h, w, 3), h and w >= 16) in every format both decoders read."""
    image = Image.fromarray(rgb)
    grey = image.convert("L")
    rgba = np.dstack([rgb, np.linspace(0, 255, rgb.shape[1], dtype=np.uint8)[None].repeat(rgb.shape[0], 0)])
    palette = image.quantize(64)
    grey16 = Image.fromarray(np.asarray(grey, np.uint16) * 256 + np.uint16(200))  # high byte: grey
    exif = image.getexif()
    exif[ORIENTATION] = 3
    return {
        "baseline.jpg": encode(image, "JPEG", quality=90),
        "progressive.jpg": encode(image, "JPEG", quality=90, progressive=True),
        "cmyk.jpg": encode(image.convert("CMYK"), "JPEG", quality=95),
        "grey.jpg": encode(grey, "JPEG", quality=90),
        "phone.jpg": phone_jpeg(rgb),
        "upside_down.jpg": encode(image.rotate(180), "JPEG", quality=90, exif=exif),
        "rgb.png": encode(image, "PNG"),
        "grey.png": encode(grey, "PNG"),
        "grey16.png": encode(grey16, "PNG"),
        "palette.png": encode(palette, "PNG"),
        "palette_transparent.png": encode(palette, "PNG", transparency=0),
        "rgba.png": encode(Image.fromarray(rgba, "RGBA"), "PNG"),
        "grey_alpha.png": encode(Image.fromarray(rgba[..., 2:], "LA"), "PNG"),
        "lossy.webp": encode(image, "WEBP", quality=90),
        "lossless.webp": encode(image, "WEBP", lossless=True),
        "palette.gif": encode(palette, "GIF"),
        "rgb.bmp": encode(image, "BMP"),
    }


def refused(rgb: np.ndarray) -> dict[str, tuple[bytes, str, str]]:
    """name.ext -> (bytes, the shared reader's message, the graph's message) for files no decoder takes."""
    jpeg = encode(Image.fromarray(rgb), "JPEG", quality=90)
    png = encode(Image.fromarray(rgb), "PNG")
    limit = "more than 64 MP"
    return {
        "tiny.png": (encode(Image.fromarray(rgb[:10, :12]), "PNG"), "image is 12x10 pixels, expected at least 16",
                     "smaller than 16 pixels"),
        "truncated.jpg": (jpeg[:len(jpeg) // 2], "truncated or corrupt", "Invalid JPEG data"),
        "truncated.png": (png[:len(png) // 2], "truncated or corrupt", "Invalid PNG data"),
        "notes.jpg": (b"these are notes, not a photo\n" * 20, "not a format PIL knows", "Unknown image file format"),
        "huge.png": (grey_png(12_000, 9_000), "image is 12000x9000 pixels (108 MP), more than the 64 MP read", limit),
        "bomb.png": (grey_png(40_000, 40_000, rows=1), "a decompression bomb", limit),
    }
