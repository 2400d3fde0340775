"""The browser demo: pose transfer, swaps, sampling and interpolation over the exported SavedModels.

  python -m keras_disentangle.app --stage1=EXPORT_DIR [--stage2=EXPORT_DIR] [--gallery=DIR] \
      [--gallery_keypoints=CSV] [--host=127.0.0.1] [--port=7860] [--max_upload_mb=20]
  python -m keras_disentangle.app --stage1=EXPORT_DIR --bench=20 [--bench_photo=IMG]   (latency)

A client of the serving artefacts only: every picture comes from a signature of the SavedModels
(`export.py`), the keypoints of a photo from the BlazePose estimator (`keypoints.py`), or, for the
gallery's photos, from their annotation rows. What works here works in TF Serving. Gradio serves the
page and an HTTP API (`gradio_client`) with one endpoint per button: transfer, swap, sample, walk,
frame. Nothing is fetched from the internet: analytics are off and the theme uses system fonts.

EXPORT_DIR is what `export` writes: the TF Serving base folder `OUT/<name>`, whose newest numeric
version is served (as TF Serving does), or one version folder `OUT/<name>/<version>`. Uploads reach
the functions as the files sent (Gradio's `type="filepath"`), read by `keypoints.read_image` as the
command-line tools read photos: upright by their EXIF orientation, the same pixels `transfer_photo`
decodes. Uploads above `--max_upload_mb` are refused by the server before they are stored.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Gradio: no analytics or version check calls, no Hugging Face hub look-ups.
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import atexit  # noqa: E402
import dataclasses  # noqa: E402
import hashlib  # noqa: E402
import io  # noqa: E402
import logging  # noqa: E402
import pathlib  # noqa: E402
import shutil  # noqa: E402
import socket  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import flags  # noqa: E402
from PIL import Image  # noqa: E402

from keras_disentangle import apps, cli, geometry, keypoints, visualize  # noqa: E402
from tfrecords import common  # noqa: E402

FACTOR_LABELS = {"fg": "foreground (clothes, body)", "bg": "background", "pose": "pose"}
WALKS = ("two seeds", "two photos", "two photos, inverse (through z)")
GALLERY_SIZE = 10
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
# A phone photo is 2-12 MB; the limit keeps a client from filling the server's disk and memory.
MAX_UPLOAD_MB = 20


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


def _png(photo: np.ndarray) -> bytes:
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
        out = self.signatures["transfer_photo"](image_bytes=tf.constant([_png(src.photo)]),
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
        rows = common.read_annotation_csv(pathlib.Path(annotation_csv)).entries
        points = {row.name: row.keypoints for row in rows if isinstance(row, common.Annotation)}
        # Annotated photos first: they need no estimator (the synthetic people are no photos for BlazePose).
        photos.sort(key=lambda p: p.name not in points)
    return [str(p) for p in photos[:GALLERY_SIZE]], points


# The generated pictures are a few dozen pixels: the outputs fill their boxes, enlarged without blurring.
CSS = (".result img { width: 100% !important; height: 100% !important; object-fit: contain; "
       "image-rendering: pixelated; }")


def build_page(demo: Demo):
    """The Gradio page: one tab per application; each button is also an HTTP API endpoint."""
    import gradio as gr  # noqa: PLC0415 (the bench and the tests of `Demo` need no web server)

    # Pictures go out as files written here once per content. Gradio 6.31 caches a returned array by
    # rewriting its content-addressed file on every request (truncate, then write): a client downloading
    # the same picture meanwhile (the same gallery pair) got a cut-off body under load. A returned file
    # is copied into its cache atomically, and only when absent.
    pictures = pathlib.Path(tempfile.mkdtemp(prefix="keras-disentangle-app-"))
    atexit.register(shutil.rmtree, pictures, ignore_errors=True)

    def as_file(value):
        if not isinstance(value, np.ndarray):
            return value
        data = _png(value)
        path = pictures / f"{hashlib.sha1(data).hexdigest()}.png"
        if not path.exists():
            partial = path.with_suffix(f".{threading.get_ident()}.partial")
            partial.write_bytes(data)
            partial.replace(path)
        return str(path)

    def shown(fn):
        def call(*args):
            try:
                out = fn(*args)
            except AppError as error:
                raise gr.Error(str(error)) from None
            return tuple(map(as_file, out)) if isinstance(out, tuple) else as_file(out)
        return call

    def photo(label, elem_id):
        # The file as sent (image_mode None: Gradio neither converts nor re-encodes it), for the shared reader.
        return gr.Image(label=label, type="filepath", image_mode=None, sources=["upload"], height=240,
                        elem_id=elem_id)

    def result(label, elem_id):
        return gr.Image(label=label, type="numpy", format="png", interactive=False, height=240, buttons=["download"],
                        elem_id=elem_id, elem_classes=["result"])

    def examples(component, label):
        if demo.gallery:
            gr.Examples([[p] for p in demo.gallery], inputs=[component], label=label, examples_per_page=5)

    factor_choices = [(FACTOR_LABELS[f], f) for f in demo.factors]
    with gr.Blocks(title="Disentangled person image generation") as page:
        gr.Markdown("## Disentangled person image generation (Ma et al., CVPR 2018)\nUpload a photo or pick a "
                    "test image. Keypoints come from the test annotations or the BlazePose estimator.")
        with gr.Tab("Pose transfer"):
            with gr.Row():
                source = photo("Person", "transfer-source")
                target = photo("Target pose (a second photo)", "transfer-target")
            with gr.Row():
                examples(source, "Test images")
                examples(target, "Test poses")
            run = gr.Button("Transfer", variant="primary")
            with gr.Row():
                outputs = [result("Person, skeleton", "transfer-source-skeleton"),
                           result("Target pose, skeleton", "transfer-target-skeleton"),
                           result("Person in the target pose", "transfer-result")]
            run.click(shown(demo.transfer), [source, target], outputs, api_name="transfer")
        with gr.Tab("Swap"):
            with gr.Row():
                source, target = photo("Source (give)", "swap-source"), photo("Target (receive)", "swap-target")
            with gr.Row():
                examples(source, "Test images")
                examples(target, "Test images")
            factors = gr.CheckboxGroup(factor_choices, value=["fg"], label="Take from the source")
            parts = gr.CheckboxGroup(list(geometry.ROI_NAMES), label="Only these body parts of the foreground "
                                     "(none ticked: all)", visible=bool(demo.roi_parts))
            run = gr.Button("Swap", variant="primary")
            swapped = result("Target with the source's factors", "swap-result")
            run.click(shown(demo.swap), [source, target, factors, parts], swapped, api_name="swap")
        with gr.Tab("Sample"):
            with gr.Row():
                seed = gr.Number(0, precision=0, label="Seed")
                sampled = gr.CheckboxGroup(factor_choices, value=list(demo.factors), label="Sample from noise")
            kept = photo("Photo the other factors are kept from", "sample-photo")
            examples(kept, "Test images")
            run = gr.Button("Sample", variant="primary")
            sample = result("Sample", "sample-result")
            run.click(shown(demo.sample), [seed, sampled, kept], sample, api_name="sample")
        with gr.Tab("Interpolate"):
            with gr.Row():
                mode = gr.Radio(list(WALKS), value=WALKS[0], label="Walk between")
                method = gr.Radio(["linear", "slerp"], value="linear", label="Path")
            with gr.Row():
                seed_a, seed_b = gr.Number(0, precision=0, label="Seed A"), gr.Number(1, precision=0, label="Seed B")
            with gr.Row():
                photo_a, photo_b = photo("Photo A", "walk-a"), photo("Photo B", "walk-b")
            with gr.Row():
                examples(photo_a, "Test images")
                examples(photo_b, "Test images")
            run = gr.Button("Start walk", variant="primary")
            note = gr.Markdown()
            t = gr.Slider(0.0, 1.0, value=0.5, step=0.05, label="Position on the walk (A = 0, B = 1)")
            state = gr.State()
            with gr.Row():
                frame = result("Frame at the slider", "walk-frame")
                strip = result("The walk, A to B", "walk-strip")
            run.click(shown(demo.walk), [mode, seed_a, seed_b, photo_a, photo_b], [state, note], api_name="walk").then(
                shown(demo.frame), [state, method, t], frame, api_name=False).then(
                shown(demo.strip), [state, method], strip, api_name=False)
            t.change(shown(demo.frame), [state, method, t], frame, api_name="frame", show_progress="hidden")
            method.change(shown(demo.frame), [state, method, t], frame, api_name=False, show_progress="hidden")
    return page


def theme():
    import gradio as gr  # noqa: PLC0415

    # System fonts: the default theme imports Google Fonts, which an offline page waits for.
    return gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"],
                             font_mono=["ui-monospace", "Consolas", "monospace"])


def launch(demo: Demo, host: str, port: int, block: bool = True, max_upload_mb: float = MAX_UPLOAD_MB):
    """Serves the page at http://host:port; returns the Gradio app (without blocking when `block` is False).
    Uploads above `max_upload_mb` megabytes are refused (HTTP 413)."""
    # Gradio checks its own page with httpx at start-up; those requests are no news on the console.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    page = build_page(demo)
    page.queue(default_concurrency_limit=1)
    page.launch(server_name=host, server_port=port, theme=theme(), css=CSS, show_error=True, ssr_mode=False,
                pwa=False, mcp_server=False, prevent_thread_lock=not block, quiet=not block, footer_links=["api"],
                max_file_size=int(max_upload_mb * 1024 * 1024))
    return page


def _timed(call, count: int) -> str:
    for _ in range(2):  # warm-up: the first calls trace and allocate
        call()
    times = []
    for _ in range(count):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return f"median {1000 * np.median(times):.0f} ms, slowest {1000 * max(times):.0f} ms over {count} requests"


def bench(demo: Demo, count: int, photo: str | None) -> None:
    """Prints the latency of a transfer after warm-up: the Transfer tab's function in process, and a
    request to the page's HTTP API (`gradio_client`, on a free localhost port)."""
    from gradio_client import Client, handle_file  # noqa: PLC0415

    pairs = [("gallery pair (annotated keypoints)", demo.gallery[0], demo.gallery[min(1, len(demo.gallery) - 1)])]
    if photo:
        pairs.append((f"{pathlib.Path(photo).name} (BlazePose keypoints)", photo, demo.gallery[0]))
    port = free_port()
    page = launch(demo, "127.0.0.1", port, block=False)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        for label, source, target in pairs:
            arrays = keypoints.read_image(source), keypoints.read_image(target)
            print(f"transfer, {label}, in process: {_timed(lambda: demo.transfer(*arrays), count)}")
            files = handle_file(source), handle_file(target)
            print(f"transfer, {label}, HTTP API: "
                  f"{_timed(lambda: client.predict(*files, api_name='/transfer'), count)}")
    finally:
        page.close()


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
                         "`python -m keras_disentangle.export`.")
    return str(max(versions, key=lambda p: int(p.name)))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


FLAGS = flags.FLAGS


def define_flags() -> None:
    cli.define_shared("stage1", note="The newest version of OUT/<name> is served; a stage-II one works too.",
                      required=True)
    flags.DEFINE_string("stage2", None, "Stage-II SavedModel (base or version folder): the Sample and Interpolate tabs.")
    cli.define_shared("gallery", note="Test photos offered in the page (the first 10).")
    cli.define_shared("gallery_keypoints", note="Photos without a row get BlazePose keypoints.")
    flags.DEFINE_string("host", "127.0.0.1", "Address to bind; the default serves this machine only.")
    flags.DEFINE_integer("port", 7860, "Port.", lower_bound=1, upper_bound=65535)
    flags.DEFINE_float("max_upload_mb", MAX_UPLOAD_MB, "Largest upload accepted, in megabytes.", lower_bound=0.01)
    flags.DEFINE_integer("bench", 0, "Instead of serving: time N transfer requests after warm-up.", lower_bound=0)
    flags.DEFINE_string("bench_photo", None, "--bench: also time a transfer of this photo (BlazePose on every "
                        "request).")


def main(argv):
    cli.no_positional(argv)
    for name in ("stage1", "stage2"):
        if getattr(FLAGS, name) is not None:
            savedmodel_dir(getattr(FLAGS, name), name)  # a bad folder is reported before anything loads
    gallery, points = read_gallery(FLAGS.gallery, FLAGS.gallery_keypoints) if FLAGS.gallery else ([], {})
    if FLAGS.bench and not gallery:
        raise cli.UsageError("--bench needs --gallery (the photos it transfers).")
    demo = Demo(FLAGS.stage1, FLAGS.stage2, gallery, points)
    if FLAGS.bench:
        bench(demo, FLAGS.bench, FLAGS.bench_photo)
    else:
        launch(demo, FLAGS.host, FLAGS.port, max_upload_mb=FLAGS.max_upload_mb)


if __name__ == "__main__":
    cli.run(main, define_flags)
