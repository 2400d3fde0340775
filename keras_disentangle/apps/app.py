"""The browser demo: pose transfer, swaps, sampling and interpolation over the exported SavedModels.

  python -m keras_disentangle.apps.app --stage1=EXPORT_DIR [--stage2=EXPORT_DIR] [--gallery=DIR] \
      [--gallery_keypoints=CSV] [--host=127.0.0.1] [--port=7860] [--max_upload_mb=20]
  python -m keras_disentangle.apps.app --stage1=EXPORT_DIR --bench=20 [--bench_photo=IMG]   (latency)

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

import pathlib  # noqa: E402
import socket  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from absl import flags  # noqa: E402

from keras_disentangle import cli  # noqa: E402
from keras_disentangle.pose import keypoints  # noqa: E402
# The functions behind the buttons and the page; their names stay importable from here (`app.Demo`, ...).
from keras_disentangle.apps.app_functions import (  # noqa: E402, F401
    GALLERY_SIZE,
    PHOTO_SUFFIXES,
    WALKS,
    AppError,
    Demo,
    Person,
    png_bytes,
    read_gallery,
    savedmodel_dir,
)
from keras_disentangle.apps.app_page import (  # noqa: E402, F401
    CSS,
    FACTOR_LABELS,
    MAX_UPLOAD_MB,
    build_page,
    launch,
    theme,
)

# The name tests/test_app.py calls.
_png = png_bytes


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
