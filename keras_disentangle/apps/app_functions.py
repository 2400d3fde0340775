"""The functions behind the browser demo's buttons (`app`), over the exported SavedModels.

`Demo` answers each tab of the page (pose transfer, swap, sample, interpolate) with signatures of the
SavedModels (`export.py`) only, the keypoints of a photo coming from the BlazePose estimator
(`keypoints.py`) or, for the gallery's photos, from their annotation rows. The page that shows them
is `app_page`; the command is `app`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import pathlib

import numpy as np
import tensorflow as tf
from PIL import Image

from keras_disentangle import apps
from keras_disentangle.data import annotations, geometry, visualize
from keras_disentangle.pose import keypoints

WALKS = ("two seeds", "two photos", "two photos, inverse (through z)")
GALLERY_SIZE = 10
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


class AppError(ValueError):
    """A request the models cannot answer; the page shows its message."""


@dataclasses.dataclass(frozen=True)
class Person:
    """A photo with its keypoints, and the model's framed view of it."""

    photo: np.ndarray  # uint8 (h, w, 3)
    keypoints: np.ndarray  # (18, 2) (y, x) pixels of `photo`, -1 missing
    image: np.ndarray  # float32 (H, W, 3) in [-1, 1], framed as the input pipeline frames
    framed_keypoints: np.ndarray  # (18, 2) pixels of `image`


def _pixels_key(photo: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(photo, np.uint8).tobytes() + str(photo.shape).encode()).hexdigest()


def png_bytes(photo: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(photo).save(buffer, format="PNG")
    return buffer.getvalue()


class Demo:
    """The functions behind the page, over SavedModels loaded with `tf.saved_model.load`.

    Args:
      stage1: path of a stage-I (or stage-II) SavedModel: transfer, swap, render, encode, decode.
      stage2: optional path of a stage-II SavedModel: sample, noise, map_<factor> (sampling tabs).
      gallery: photo paths offered as test images and test poses.
      gallery_keypoints: dict photo name -> (18, 2) annotated keypoints; other photos get BlazePose's
        (loaded when first needed).
    """

    def __init__(self, stage1: str, stage2: str | None = None, gallery=(), gallery_keypoints=None):
        stage1 = savedmodel_dir(stage1, "stage1")
        stage2 = None if stage2 is None else savedmodel_dir(stage2, "stage2")
        self.stage1 = tf.saved_model.load(stage1)
        self.stage2 = None if stage2 is None else (self.stage1 if stage2 == stage1 else tf.saved_model.load(stage2))
        self.signatures = self.stage1.signatures
        info = {k: int(v) for k, v in self.signatures["model_info"]().items()}
        self.size = (info["height"], info["width"])
        self.roi_parts = info["roi_parts"]
        self.factors = [f for f in ("fg", "bg", "pose") if f in self.signatures["encode"].structured_outputs]
        self.gallery = [str(p) for p in gallery]
        self._known = {}
        for path in self.gallery:
            points = (gallery_keypoints or {}).get(pathlib.Path(path).name)
            if points is not None:
                self._known[_pixels_key(keypoints.read_image(path))] = np.asarray(points, np.int64)
        self._estimator = None

    # Photos in.
    def person(self, photo, what: str) -> Person:
        """Keypoints (annotated for a gallery photo, else estimated) and the framed model input.

        `photo` is a file (an upload, read by `keypoints.read_image`) or uint8 RGB pixels."""
        if photo is None:
            raise AppError(f"{what}: no photo; upload one or pick a test image.")
        if isinstance(photo, (str, os.PathLike)):
            try:
                photo = keypoints.read_image(photo)
            except ValueError as error:
                raise AppError(f"{what}: {str(error).removeprefix(f'{photo}: ')}") from None
        photo = np.asarray(photo)
        if photo.ndim != 3 or photo.shape[2] != 3 or photo.dtype != np.uint8:
            raise AppError(f"{what}: expected an RGB photo, got an array of shape {photo.shape} ({photo.dtype}).")
        if min(photo.shape[:2]) < keypoints.MIN_IMAGE_SIDE:
            raise AppError(f"{what}: the photo is {photo.shape[1]}x{photo.shape[0]} pixels, expected at least "
                           f"{keypoints.MIN_IMAGE_SIDE} on each side.")
        points = self._known.get(_pixels_key(photo))
        if points is None:
            if self._estimator is None:
                self._estimator = keypoints.Estimator()
            try:
                points = self._estimator(photo, name=what).keypoints
            except ValueError as error:
                raise AppError(str(error)) from None
        if (points >= 0).all(1).sum() < 2:
            raise AppError(f"{what}: fewer than 2 body joints found; a person must be visible.")
        image, framed = keypoints.frame_to_size(photo, points, self.size)
        return Person(photo, points, (image.astype(np.float32) / 127.5 - 1.0), framed.astype(np.float32))

    @staticmethod
    def skeleton(person: Person) -> np.ndarray:
        radius = max(2, min(person.photo.shape[:2]) // 60)
        return visualize.draw_keypoints(person.photo, person.keypoints, radius=radius)

    def _encode(self, *people: Person) -> dict:
        codes = self.signatures["encode"](image=tf.constant(np.stack([p.image for p in people])),
                                          keypoints=tf.constant(np.stack([p.framed_keypoints for p in people])))
        return {k: tf.cast(v, tf.float32).numpy() for k, v in codes.items()}

    def _render(self, codes: dict, points) -> np.ndarray:
        inputs = {f: tf.constant(codes[f], tf.float32) for f in self.factors if f != "pose"}
        return self.signatures["render"](keypoints=tf.constant(points, tf.float32), **inputs)["image"]

    def _decode(self, codes: dict) -> tf.Tensor:
        return self.signatures["decode"](**{f: tf.constant(codes[f], tf.float32) for f in self.factors})["image"]

    def _sampling(self):
        if self.stage2 is None:
            raise AppError("Sampling needs stage-II models: start the app with --stage2=EXPORT_DIR.")
        return self.stage2.signatures

    # Tab 1: pose transfer (the bytes-in/bytes-out signature, as a TF Serving client calls it).
    def transfer(self, source, target):
        """Returns (source with skeleton, target with skeleton, the source person in the target pose)."""
        src, tgt = self.person(source, "person photo"), self.person(target, "target pose photo")
        out = self.signatures["transfer_photo"](image_bytes=tf.constant([png_bytes(src.photo)]),
                                                keypoints=tf.constant(src.keypoints[None], tf.float32),
                                                target_keypoints=tf.constant(tgt.keypoints[None], tf.float32))
        result = np.asarray(Image.open(io.BytesIO(out["png_bytes"][0].numpy())).convert("RGB"))
        return self.skeleton(src), self.skeleton(tgt), result

    # Tab 2: swaps.
    def swap(self, source, target, factors, parts):
        """The target photo with the ticked factors (and FG body parts) taken from the source."""
        factors, parts = list(factors or []), list(parts or [])
        if not factors:
            raise AppError("Swap: tick at least one factor to take from the source.")
        if parts and "fg" not in factors:
            raise AppError("Swap: body parts choose which parts of the foreground to take; tick foreground too.")
        if parts and not self.roi_parts:
            raise AppError("Swap: this model encodes the whole body at once (no per-part codes).")
        src, tgt = self.person(source, "source photo"), self.person(target, "target photo")
        codes = self._encode(src, tgt)
        mixed = {f: codes[f][1:] for f in self.factors}
        for factor in factors:
            if factor != "pose":
                mixed[factor] = codes[factor][:1]
        if parts:
            selector = np.repeat([name in parts for name in geometry.ROI_NAMES],
                                 codes["fg"].shape[-1] // len(geometry.ROI_NAMES)).astype(np.float32)
            mixed["fg"] = selector * codes["fg"][:1] + (1.0 - selector) * codes["fg"][1:]
        points = (src if "pose" in factors else tgt).framed_keypoints[None]
        return visualize.to_uint8(self._render(mixed, points)[0])

    # Tab 3: sampling.
    def sample(self, seed, sampled, photo=None):
        """A new person from noise: the ticked factors sampled with `seed`, the others from `photo`."""
        signatures = self._sampling()
        sampled = list(sampled or [])
        if not sampled:
            raise AppError("Sample: tick at least one factor to sample.")
        drawn = signatures["sample"](n=tf.constant(1), seed=tf.constant(int(seed or 0)))
        codes = {f: tf.cast(drawn[f], tf.float32).numpy() for f in self.factors}
        kept = [f for f in self.factors if f not in sampled]
        if not kept:
            return visualize.to_uint8(drawn["image"][0])
        if photo is None:
            raise AppError(f"Sample: {', '.join(kept)} are kept from a photo; upload one or pick a test image.")
        person = self.person(photo, "photo")
        codes.update({f: v for f, v in self._encode(person).items() if f in kept})
        image = self._render(codes, person.framed_keypoints[None]) if "pose" in kept else self._decode(codes)
        return visualize.to_uint8(image[0])

    # Tab 4: interpolation. `walk` fixes the two ends; `frame` renders any point between them.
    def walk(self, mode, seed_a, seed_b, photo_a=None, photo_b=None, invert_steps: int = 300):
        """The walk's ends: noise z of two seeds, codes of two photos, or z inverted from two photos.

        Returns:
          (state dict, text): state `{"space": "z" or "code", "ends": {factor: (2, K) list}}`; the
          inverse walk adds `relative_error`: {factor: [A, B]}, ||Phi(z) - e||^2 / ||e||^2.
        """
        if mode == WALKS[0]:
            signatures = self._sampling()
            ends = {f: np.concatenate([signatures["noise"](n=tf.constant(1), seed=tf.constant(int(s or 0)))[f]
                                       for s in (seed_a, seed_b)]) for f in self.factors}
            return {"space": "z", "ends": {f: v.tolist() for f, v in ends.items()}}, "Walk between two seeds' noise."
        codes = self._encode(self.person(photo_a, "photo A"), self.person(photo_b, "photo B"))
        if mode == WALKS[1]:
            state = {"space": "code", "ends": {f: v.tolist() for f, v in codes.items()}}
            return state, "Walk between the photos' codes."
        if mode != WALKS[2]:
            raise AppError(f"Interpolate: unknown walk {mode!r}; expected one of {', '.join(WALKS)}.")
        signatures = self._sampling()
        stddev = float(self.stage2.signatures["model_info"]()["noise_stddev"])
        ends, errors = {}, {}
        for factor in self.factors:
            mapper = signatures[f"map_{factor}"]
            z, error = apps.invert(lambda z, training=False, m=mapper: tf.cast(m(z=z)["embedding"], tf.float32),
                                   codes[factor], invert_steps, stddev=stddev)
            ends[factor] = z.tolist()
            errors[factor] = (error / np.maximum(np.sum(codes[factor] ** 2, axis=-1), 1e-12)).tolist()
        notes = "; ".join(f"{factor} {a:.3f}, {b:.3f}" for factor, (a, b) in errors.items())
        return ({"space": "z", "ends": ends, "relative_error": errors},
                f"Inverted each photo's codes into z ({invert_steps} Adam steps); relative error "
                f"||Phi(z) - e||^2 / ||e||^2 of A, B: {notes}.")

    def frames(self, state, method, ts) -> np.ndarray:
        """Images uint8 (len(ts), H, W, 3) at the points `ts` in [0, 1] of the walk in `state`."""
        if not state:
            raise AppError("Interpolate: press 'Start walk' first.")
        ts = np.asarray(ts, np.float32)
        path = {"linear": apps.lerp, "slerp": apps.slerp}.get(method)
        if path is None:
            raise AppError(f"Interpolate: method {method!r}; expected linear or slerp.")
        codes = {}
        for factor, ends in state["ends"].items():
            ends = np.asarray(ends, np.float32)
            point = path(ends[:1], ends[1:], ts)[0]
            if state["space"] == "z":
                point = tf.cast(self._sampling()[f"map_{factor}"](z=tf.constant(point))["embedding"], tf.float32)
            codes[factor] = point
        return visualize.to_uint8(self._decode(codes))

    def frame(self, state, method, t):
        return self.frames(state, method, [float(t)])[0]

    def strip(self, state, method, count: int = 8):
        return np.concatenate(list(self.frames(state, method, np.linspace(0.0, 1.0, count))), axis=1)


def read_gallery(directory: str, annotation_csv: str | None = None) -> tuple[list[str], dict]:
    """Up to `GALLERY_SIZE` photos of `directory` (sorted) and their keypoints from an annotation CSV.

    Raises:
      ValueError: naming the folder or file, if it has no photo or the CSV does not parse.
    """
    folder = pathlib.Path(directory)
    photos = sorted(p for p in folder.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES) if folder.is_dir() else []
    if not photos:
        raise ValueError(f"--gallery: {folder} holds no photo ({', '.join(PHOTO_SUFFIXES)}).")
    points = {}
    if annotation_csv:
        rows = annotations.read_annotation_csv(pathlib.Path(annotation_csv)).entries
        points = {row.name: row.keypoints for row in rows if isinstance(row, annotations.Annotation)}
        # Annotated photos first: they need no estimator (the synthetic people are no photos for BlazePose).
        photos.sort(key=lambda p: p.name not in points)
    return [str(p) for p in photos[:GALLERY_SIZE]], points


def savedmodel_dir(path: str, flag: str) -> str:
    """A SavedModel folder, or in a TF Serving base folder (numbered version folders) the newest version.

    Raises:
      ValueError: naming the flag, if `path` is neither.
    """
    folder = pathlib.Path(path)
    if (folder / "saved_model.pb").is_file():
        return str(folder)
    versions = [p for p in folder.iterdir() if p.name.isdigit() and (p / "saved_model.pb").is_file()] \
        if folder.is_dir() else []
    if not versions:
        raise ValueError(f"--{flag}: {path} is neither a SavedModel folder (no saved_model.pb) nor a TF Serving "
                         "base folder (no numbered version holding one); write one with "
                         "`python -m keras_disentangle.serving.export`.")
    return str(max(versions, key=lambda p: int(p.name)))
