"""Keypoints for any person photo: the BlazePose estimator mapped to OpenPose COCO-18, keypoint
files, framing a photo to the model's aspect ratio, and the `keypoints` command.

    python -m keras_disentangle.pose.keypoints IMG... [--out=DIR] [--format=csv|json] [--draw] [--strict]

writes one annotation row per photo in the Market/DeepFashion CSV syntax (`annotations.py`),
keypoints in pixels of the photo upright (turned by its EXIF orientation, `read_image`), or one JSON
file per photo ({"keypoints": [[y, x], ...], "confidence": [c, ...]}), and with `--draw` the
skeletons on the photos. Photos are read, estimated and written one at a time. In a batch, a photo
that cannot be read or shows nobody gets a row of -1 joints and is counted by reason at the end;
`--strict` (or a single photo) stops at it with its error instead. The conventions are in docs/CONTRACTS.md.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import pathlib
import struct
import sys
import warnings

import numpy as np
from absl import flags
from PIL import Image, ImageOps, UnidentifiedImageError

from keras_disentangle import cli, configs
from keras_disentangle.data import annotations
from keras_disentangle.pose import blazepose

# OpenPose COCO-18 joint -> BlazePose landmark (neck, 1, is the midpoint of the shoulders 11, 12).
# BlazePose's left/right are the person's, as OpenPose's are.
BLAZEPOSE_OF_OPENPOSE = (0, None, 12, 14, 16, 11, 13, 15, 24, 26, 28, 23, 25, 27, 5, 2, 8, 7)
SHOULDERS = (11, 12)
VISIBILITY_THRESHOLD = 0.5
MIN_IMAGE_SIDE = 16
# Photos above this are refused from their header: 50-megapixel phone photos pass, a 108-megapixel one
# (12,000x9,000, 324 MB decoded) or a small file claiming a huge canvas does not.
MAX_PIXELS = 64_000_000
EXIF_ORIENTATION = 0x0112
# What the command takes as photos; any other positional argument is a usage error.
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
# Photos whose long side is below this are person crops (Market-1501 is 128x64): the detector, trained
# on people with context, misses half of them, so the whole frame is the region of interest, and the
# crop is enlarged (bicubic) to this size first.
SMALL_PHOTO = 256
# Fraction of the keypoints' extent `frame` adds on every side (also the SavedModel's in-graph framing).
FRAME_MARGIN = 0.15


def read_image(path) -> np.ndarray:
    """Reads a photo as uint8 RGB [H, W, 3], upright: turned by its EXIF orientation as phones store
    portrait photos, the way a browser shows them. CMYK, grayscale, palette and 16-bit images are
    converted (16 bits keep the high byte, as TensorFlow's decoders do), and transparency is composited
    over white.

    Raises:
      ValueError: naming the file, if it is missing, not an image, truncated or corrupt, smaller than
        `MIN_IMAGE_SIDE` or larger than `MAX_PIXELS` (checked from the header, before any decoding).
    """
    path = pathlib.Path(path)
    try:
        with warnings.catch_warnings():
            # PIL warns above Image.MAX_IMAGE_PIXELS and refuses twice that (DecompressionBombError);
            # MAX_PIXELS is below both, so the warning only precedes this reader's own refusal.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                if width * height > MAX_PIXELS:
                    raise ValueError(f"{path}: image is {width}x{height} pixels ({width * height / 1e6:.0f} MP), "
                                     f"more than the {MAX_PIXELS / 1e6:.0f} MP read; downscale it first")
                rgb = _to_rgb(ImageOps.exif_transpose(image))
    except FileNotFoundError:
        raise ValueError(f"{path}: file does not exist") from None
    except Image.DecompressionBombError:
        raise ValueError(f"{path}: image has more pixels than the {MAX_PIXELS / 1e6:.0f} MP read "
                         "(a decompression bomb?)") from None
    except UnidentifiedImageError:
        raise ValueError(f"{path}: not a readable image (not a format PIL knows)") from None
    except (OSError, SyntaxError, struct.error) as error:  # SyntaxError, struct.error: malformed headers or EXIF
        raise ValueError(f"{path}: not a readable image (truncated or corrupt: {error})") from None
    if min(rgb.shape[:2]) < MIN_IMAGE_SIDE:
        raise ValueError(f"{path}: image is {rgb.shape[1]}x{rgb.shape[0]} pixels, expected at least "
                         f"{MIN_IMAGE_SIDE} on each side")
    return rgb


def stored_upright(path) -> bool:
    """Whether a readable photo's stored pixels are its upright ones: no EXIF orientation turns it."""
    with Image.open(path) as image:
        return image.getexif().get(EXIF_ORIENTATION, 1) not in range(2, 9)


def _to_rgb(image: Image.Image) -> np.ndarray:
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.clip(np.asarray(image, np.int64), 0, 65535) >> 8
        image = Image.fromarray(array.astype(np.uint8))
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return np.asarray(image.convert("RGB"), np.uint8)


def openpose_keypoints(landmarks: blazepose.Landmarks, height: int, width: int,
                       threshold: float = VISIBILITY_THRESHOLD) -> np.ndarray:
    """Maps 33 BlazePose landmarks to OpenPose COCO-18 (y, x) integer pixel indices, -1 missing.

    A joint is missing when its landmark's visibility or presence is below `threshold` or it falls
    outside the `height x width` image; the neck needs both shoulders.
    """
    ok = (landmarks.visibility >= threshold) & (landmarks.presence >= threshold)
    # Continuous coordinates -> the index of the pixel they fall in.
    index = np.floor(landmarks.xy).astype(np.int64)
    inside = (index[:, 0] >= 0) & (index[:, 0] < width) & (index[:, 1] >= 0) & (index[:, 1] < height)
    ok &= inside
    keypoints = np.full((configs.NUM_KEYPOINTS, 2), -1, np.int64)
    for joint, landmark in enumerate(BLAZEPOSE_OF_OPENPOSE):
        if landmark is None:
            if ok[list(SHOULDERS)].all():
                x, y = np.floor(landmarks.xy[list(SHOULDERS)].mean(0)).astype(np.int64)
                keypoints[joint] = (y, x)
        elif ok[landmark]:
            keypoints[joint] = index[landmark][::-1]
    return keypoints


def openpose_confidence(landmarks: blazepose.Landmarks) -> np.ndarray:
    """float32 [18]: each COCO-18 joint's min(visibility, presence), the value `openpose_keypoints`
    thresholds (the neck's is its shoulders' lower one)."""
    per_landmark = np.minimum(landmarks.visibility, landmarks.presence)
    return np.array([per_landmark[list(SHOULDERS)].min() if landmark is None else per_landmark[landmark]
                     for landmark in BLAZEPOSE_OF_OPENPOSE], np.float32)


@dataclasses.dataclass(frozen=True)
class Estimate:
    """Keypoints of one photo. `keypoints` int64 [18, 2] (y, x) in pixels of the photo, -1 missing;
    `confidence` float32 [18] in [0, 1] (`openpose_confidence`; a joint below 0.5 is missing);
    `num_people` how many people the detector kept (the largest was used)."""

    keypoints: np.ndarray
    confidence: np.ndarray
    num_people: int


class Estimator:
    """Photo -> OpenPose-18 keypoints with BlazePose; loads the models once.

    Args:
      models_dir: folder of the BlazePose `.tflite` files; defaults to `blazepose.models_dir()`.
    """

    def __init__(self, models_dir=None):
        self._model = blazepose.BlazePose(models_dir)

    def __call__(self, image: np.ndarray, name: str = "image") -> Estimate:
        """Keypoints of the largest person in `image` (uint8 [H, W, 3]).

        Raises:
          ValueError: `<name>: no person found` when the detector finds nobody.
        """
        height, width = image.shape[:2]
        factor = 1.0
        small = max(height, width) < SMALL_PHOTO
        if small:
            factor = SMALL_PHOTO / max(height, width)
            size = (round(width * factor), round(height * factor))
            image = np.asarray(Image.fromarray(image).resize(size, Image.BICUBIC))
        landmarks = self._model(image, whole_frame=small)
        if landmarks is None:
            raise ValueError(f"{name}: no person found")
        if factor != 1.0:
            landmarks = dataclasses.replace(landmarks, xy=landmarks.xy / factor)
        return Estimate(openpose_keypoints(landmarks, height, width), openpose_confidence(landmarks),
                        landmarks.num_people)


def read_keypoints_json(path, height: int, width: int) -> np.ndarray:
    """Keypoints from a file: OpenPose JSON or ours, as int64 [18, 2] (y, x), -1 missing.

    * OpenPose: `{"people": [{"pose_keypoints_2d": [x0, y0, c0, ..., x17, y17, c17]}, ...]}`, COCO-18;
      the person with the largest keypoint box is used; c = 0 (or a point outside the image) is missing.
    * Ours: `{"keypoints": [[y, x], ...18]}` in pixels of the image; negative = missing.

    Raises:
      ValueError: naming the file, if it is not JSON of either kind or has not 18 joints.
    """
    path = pathlib.Path(path)
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{path}: file does not exist") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: not JSON ({error})") from None
    n = configs.NUM_KEYPOINTS
    if isinstance(content, dict) and "keypoints" in content:
        points = np.asarray(content["keypoints"], dtype=np.float64) if _numeric(content["keypoints"]) else None
        if points is None or points.shape != (n, 2):
            raise ValueError(f"{path}: \"keypoints\" must be {n} [y, x] pairs, got "
                             f"{np.shape(content['keypoints']) if points is not None else 'non-numbers'}")
        yx = points
    elif isinstance(content, dict) and isinstance(content.get("people"), list):
        people = [p.get("pose_keypoints_2d") for p in content["people"] if isinstance(p, dict)]
        if not people:
            raise ValueError(f"{path}: OpenPose JSON with no person in \"people\"")
        best = None
        for values in people:
            if not _numeric(values) or len(values) != 3 * n:
                raise ValueError(f"{path}: pose_keypoints_2d must hold {3 * n} numbers (x, y, c for "
                                 f"COCO-18), got {len(values) if isinstance(values, list) else values!r}")
            triples = np.asarray(values, np.float64).reshape(n, 3)
            yx_person = np.where(triples[:, 2:] > 0, triples[:, 1::-1], -1.0)
            present = (yx_person >= 0).all(1)
            extent = np.ptp(yx_person[present], 0).prod() if present.sum() > 1 else 0.0
            if best is None or extent > best[0]:
                best = (extent, yx_person)
        yx = best[1]
    else:
        raise ValueError(f"{path}: expected {{\"keypoints\": [[y, x], ...{n}]}} or OpenPose JSON "
                         "with \"people\"[i][\"pose_keypoints_2d\"]")
    keypoints = np.floor(yx).astype(np.int64)
    outside = (keypoints[:, 0] >= height) | (keypoints[:, 1] >= width) | (keypoints < 0).any(1)
    keypoints[outside] = -1
    return keypoints


def _numeric(values) -> bool:
    try:
        np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        return False
    return True


def frame(image: np.ndarray, keypoints: np.ndarray, aspect: float, margin: float = FRAME_MARGIN):
    """Crops the person to a box of `aspect` = height / width, padding (never squashing).

    The box holds every keypoint with `margin` x its size on each side, is widened or heightened to
    `aspect` around its centre, and what lies outside the photo is filled with the photo's edge pixels.

    Args:
      image: uint8 [H, W, 3].
      keypoints: int [18, 2] (y, x) pixels of `image`, -1 missing; at least two present.
      aspect: float. Height / width of the crop (2.0 for Market, 1.0 for DeepFashion).
      margin: float. Fraction of the keypoints' extent added on every side.

    Returns:
      (crop uint8 [h, w, 3] with h / w ~= aspect, keypoints int64 [18, 2] in crop pixels, box
      (top, left, h, w) in photo pixels).
    """
    present = (keypoints >= 0).all(1)
    if present.sum() < 2:
        raise ValueError(f"frame: need at least 2 keypoints, got {int(present.sum())}")
    lo = keypoints[present].min(0).astype(np.float64)
    hi = keypoints[present].max(0).astype(np.float64) + 1
    extent = hi - lo
    lo -= margin * extent.max()
    hi += margin * extent.max()
    h, w = hi - lo
    if h / w < aspect:
        h = w * aspect
    else:
        w = h / aspect
    centre = (lo + hi) / 2
    top, left = int(round(centre[0] - h / 2)), int(round(centre[1] - w / 2))
    h, w = int(round(h)), int(round(w))
    rows = np.clip(np.arange(top, top + h), 0, image.shape[0] - 1)
    cols = np.clip(np.arange(left, left + w), 0, image.shape[1] - 1)
    crop = image[rows][:, cols]
    moved = np.where(present[:, None], keypoints - [top, left], -1)
    return crop, moved.astype(np.int64), (top, left, h, w)


def frame_to_size(image: np.ndarray, keypoints: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """`frame` at the aspect ratio of `size` (H, W), the crop resized (bicubic) to it and the keypoints
    scaled with it: (uint8 [H, W, 3], int64 [18, 2] (y, x) pixels, -1 missing)."""
    crop, keypoints, _ = frame(image, keypoints, size[0] / size[1])
    scale = np.array(size) / crop.shape[:2]
    image = np.asarray(Image.fromarray(crop).resize(size[::-1], Image.BICUBIC))
    keypoints = np.where(keypoints >= 0, np.minimum(np.floor((keypoints + 0.5) * scale),
                                                    np.array(size) - 1), -1).astype(np.int64)
    return image, keypoints


def parse_size(text: str) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise cli.UsageError(f"--size: expected HxW such as 128x64, got {text!r}") from None
    if height < 8 or width < 8:
        raise cli.UsageError(f"--size: expected both sides >= 8, got {text!r}")
    return height, width


class Format(configs.StrEnum):
    CSV = "csv"
    JSON = "json"


def define_flags() -> None:
    cli.define_shared("out", note="Without it the CSV rows go to stdout.")
    cli.define_enum("format", Format.CSV, Format,
                    "csv: one annotation CSV `keypoints.csv` (name:keypoints_y:keypoints_x); json: one "
                    "NAME.json {\"keypoints\": [[y, x], ...18]} per photo.")
    flags.DEFINE_boolean("draw", False, "Also write NAME.skeleton.png with the skeleton on the photo (needs --out).")
    cli.define_shared("size", note="Each person is framed to this aspect ratio (padded, never squashed), resized "
                      "to HxW and the crop written; keypoints then refer to the crop.")
    flags.DEFINE_boolean("strict", False, "Stop at the first photo that cannot be read or shows nobody, instead of "
                         "giving it a row of -1 joints and counting it (a single photo always stops).")
    cli.define_shared("models_dir", note="$KERAS_DISENTANGLE_POSE_MODELS overrides the default.")


def main(argv) -> None:
    """`python -m keras_disentangle.pose.keypoints IMG... [--out=DIR] [--format=csv|json] [--draw] [--size=HxW]
    [--strict]`."""
    paths = [pathlib.Path(a) for a in argv[1:]]
    f = flags.FLAGS
    if not paths:
        raise cli.UsageError("expected one or more image files")
    for path in paths:
        if path.suffix.lower() not in PHOTO_SUFFIXES:
            raise cli.UsageError(f"unexpected argument {str(path)!r}: expected image files ({', '.join(PHOTO_SUFFIXES)})")
    if (f.draw or f.size or f.format == Format.JSON) and not f.out:
        raise cli.UsageError("--draw, --size and --format=json write files: give --out=DIR")
    size = parse_size(f.size) if f.size else None
    names = [p.name if not size else p.stem + ".png" for p in paths]
    if len(set(names)) != len(names):
        raise cli.UsageError("two images have the same file name; the rows would clash")
    out = pathlib.Path(f.out) if f.out else None
    if out:
        out.mkdir(parents=True, exist_ok=True)
    # A batch goes on past a bad photo (a row of -1 joints); one photo, or --strict, stops with its error.
    stop = f.strict or len(paths) == 1
    estimator = Estimator(f.models_dir)
    rows, skipped = [], collections.Counter()
    for path, name in zip(paths, names):
        # One photo in memory at a time: a folder of thousands streams through.
        reason = annotations.Reason.CORRUPT_IMAGE
        try:
            image = read_image(path)
            reason = annotations.Reason.NO_PERSON
            keypoints = _estimate(estimator, image, path, out, name, size)
        except ValueError as error:
            if stop:
                raise
            print(f"{error}; its row has -1 joints", file=sys.stderr)
            skipped[reason] += 1
            keypoints = np.full((configs.NUM_KEYPOINTS, 2), -1, np.int64)
            if out and f.format == Format.JSON:
                _write_json(out / f"{pathlib.Path(name).stem}.json", keypoints,
                            np.zeros(configs.NUM_KEYPOINTS))
        rows.append(annotations.annotation_row(name, keypoints))
    if not out:
        sys.stdout.write(annotations.ANNOTATION_HEADER + "\n" + "".join(rows))
    elif f.format == Format.CSV:
        (out / "keypoints.csv").write_text(annotations.ANNOTATION_HEADER + "\n" + "".join(rows))
    counts = ", ".join(f"{count} {reason.value}" for reason, count in sorted(skipped.items()))
    summary = f"wrote {len(rows)} photo(s) to {out}" if out else f"{len(rows)} row(s)"
    # With no --out, stdout is the CSV.
    print(summary + (f"; -1 joints for {sum(skipped.values())}: {counts}" if skipped else ""),
          file=sys.stdout if out else sys.stderr)


def _estimate(estimator: Estimator, image: np.ndarray, path: pathlib.Path, out, name: str, size) -> np.ndarray:
    """Keypoints of one photo, its files (JSON, crop, skeleton) written to `out`; ValueError for no person."""
    from keras_disentangle.data import visualize  # Deferred: drawing pulls in the data pipeline.

    f = flags.FLAGS
    estimate = estimator(image, str(path))
    if estimate.num_people > 1:
        print(f"{path}: {estimate.num_people} people found; using the largest", file=sys.stderr)
    keypoints = estimate.keypoints
    if size:
        image, keypoints = frame_to_size(image, keypoints, size)
    if out:
        stem = pathlib.Path(name).stem
        if size:
            Image.fromarray(image).save(out / name)
        if f.format == Format.JSON:
            _write_json(out / f"{stem}.json", keypoints, estimate.confidence)
        if f.draw:
            Image.fromarray(visualize.draw_keypoints(image, keypoints, radius=max(2, min(image.shape[:2]) // 64))
                            ).save(out / f"{stem}.skeleton.png")
    return keypoints


def _write_json(path: pathlib.Path, keypoints: np.ndarray, confidence: np.ndarray) -> None:
    path.write_text(json.dumps({"keypoints": keypoints.tolist(),
                                "confidence": np.round(confidence, 3).tolist()}) + "\n")


if __name__ == "__main__":
    cli.run(main, define_flags)
