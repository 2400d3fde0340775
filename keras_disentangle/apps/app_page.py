"""The browser demo's page: the Gradio layout of `app_functions.Demo`'s tabs, and its server.

Each button is also an HTTP API endpoint (`gradio_client`): transfer, swap, sample, walk, frame.
Nothing is fetched from the internet: analytics are off and the theme uses system fonts.
"""

from __future__ import annotations

import os

# Gradio: no analytics or version check calls, no Hugging Face hub look-ups.
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import atexit  # noqa: E402
import hashlib  # noqa: E402
import logging  # noqa: E402
import pathlib  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402

import numpy as np  # noqa: E402

from keras_disentangle.data import geometry  # noqa: E402
from keras_disentangle.apps.app_functions import WALKS, AppError, Demo, png_bytes  # noqa: E402

FACTOR_LABELS = {"fg": "foreground (clothes, body)", "bg": "background", "pose": "pose"}
# A phone photo is 2-12 MB; the limit keeps a client from filling the server's disk and memory.
MAX_UPLOAD_MB = 20


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
        data = png_bytes(value)
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
