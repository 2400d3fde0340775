"""The browser demo (`keras_disentangle.app`) over an exported SavedModel: driven in a real headless
Chromium (Debian's `chromium` through Playwright) and through its HTTP API (`gradio_client`).

The model is an untrained micro one, exported once per module: the tests check the page and the
API, not what a trained model draws. KD_APP_SCREENSHOTS=DIR keeps the browser's screenshots;
KD_APP_DEMO=out/demo runs the tests on the models and gallery of `make demo && make app` instead
(how the screenshots of docs/browser-demo.md were taken).
"""

import dataclasses
import io
import os
import pathlib
import shutil

import numpy as np
import pytest
from PIL import Image

from conftest import HANG_GUARD_SECONDS

MARKET = "market1501_mini"
DF_PHOTO = "deepfashion_mini/test/fashionWOMENDressesid0000386607_1front.jpg"
# Flags without which Chromium keeps calling Google's services, which a closed network answers slowly.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
INSTALL_CHROMIUM = "sudo apt-get install -y --no-install-recommends chromium"
# Playwright's and httpx's own limits (30 s, 5 s) would be speed assertions on a loaded machine: every
# browser and HTTP wait gets the suite's hang guard instead (a healthy request takes well under a second).
HANG_GUARD_MS = 1000 * HANG_GUARD_SECONDS


UPLOAD_LIMIT_MB = 1  # the test server's; a test photo is well under it


@pytest.fixture(scope="module")
def untrained():
    """The untrained micro synthetic model (stage I and every mapper) in process, seeded."""
    import keras

    from keras_disentangle import configs
    from keras_disentangle.models.mapper import build_mapper
    from keras_disentangle.models.stage1 import build_stage1
    from keras_disentangle.runtime import Stage2Serving

    cfg = configs.get_config("synthetic", "micro")
    keras.utils.set_random_seed(0)
    return Stage2Serving(cfg, build_stage1(cfg), {f: build_mapper(cfg, f) for f in configs.Factor})


@pytest.fixture(scope="module")
def exported(tmp_path_factory, request):
    """(stage-I, stage-II) TF Serving base folders (`export`'s OUT/<name>, one version each): `untrained`
    exported (every signature of stage I and II) or, with KD_APP_DEMO, the demo's exports."""
    if os.environ.get("KD_APP_DEMO"):
        export_dir = pathlib.Path(os.environ["KD_APP_DEMO"]) / "export"
        return str(export_dir / "stage1"), str(export_dir / "stage2")
    from keras_disentangle import export

    base = tmp_path_factory.mktemp("app_export")
    export.write_serving(request.getfixturevalue("untrained"), str(base / "1"))
    return str(base), str(base)


@pytest.fixture(scope="module")
def reference(exported, request):
    """The in-process model the export was written from (not the demo's: its runs are not at hand)."""
    if os.environ.get("KD_APP_DEMO"):
        pytest.skip("KD_APP_DEMO: the comparisons with the in-process model run on the default untrained export")
    return request.getfixturevalue("untrained")


@pytest.fixture(scope="module")
def server(exported, fixtures_dir):
    """The app on a free localhost port, its gallery the Market test fixtures; yields (url, Demo)."""
    from keras_disentangle import app

    demo_dir = os.environ.get("KD_APP_DEMO")
    root = pathlib.Path(demo_dir) / "synthetic" if demo_dir else fixtures_dir / MARKET
    gallery, points = app.read_gallery(root / "bounding_box_test", root / "market-annotation-test.csv")
    demo = app.Demo(*exported, gallery, points)
    port = app.free_port()
    page = app.launch(demo, "127.0.0.1", port, block=False, max_upload_mb=UPLOAD_LIMIT_MB)
    yield f"http://127.0.0.1:{port}", demo
    page.close()


def _image(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def _shown_image(page, elem_id: str) -> np.ndarray:
    """Waits for the picture of the output component `elem_id` and returns it as the browser got it."""
    img = page.locator(f"#{elem_id} img")
    img.wait_for()
    return _image(page.request.get(img.get_attribute("src"), timeout=HANG_GUARD_MS).body())


def _screenshot(page, path: pathlib.Path) -> None:
    """The whole page as a 256-colour PNG (a tenth of the bytes; docs/browser-demo.md shows these)."""
    Image.open(io.BytesIO(page.screenshot(full_page=True))).convert("RGB").quantize(256).save(path, optimize=True)


def _differs_from(result: np.ndarray, photo: pathlib.Path) -> float:
    """Mean absolute difference of `result` and the photo resized to it, in grey levels."""
    resized = Image.open(photo).convert("RGB").resize(result.shape[1::-1], Image.BICUBIC)
    return float(np.abs(result.astype(np.float64) - np.asarray(resized, np.float64)).mean())


def test_browser_transfer_and_sample(server, fixtures_dir, tmp_path):
    """Upload a photo, transfer it to a test pose and draw a sample in Chromium; nothing leaves localhost."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.fail(f"no Chromium browser for the app's browser test; install it with `{INSTALL_CHROMIUM}` "
                    "(`make test` does it when run as root)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("no playwright; install it with `.venv/bin/python -m pip install -r requirements.txt`")
    url, demo = server
    shots = pathlib.Path(os.environ.get("KD_APP_SCREENSHOTS", tmp_path))
    shots.mkdir(parents=True, exist_ok=True)
    # The documentation's screenshots (KD_APP_DEMO) show synthetic people only: the fixture photos are research-only.
    photo = pathlib.Path(demo.gallery[0]) if os.environ.get("KD_APP_DEMO") else fixtures_dir / DF_PHOTO
    target = pathlib.Path(demo.gallery[1])
    outside = []

    def only_local(route):
        if route.request.url.startswith((url, "data:", "blob:")):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, timeout=HANG_GUARD_MS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.set_default_timeout(HANG_GUARD_MS)
            page.route("**/*", only_local)
            page.goto(url)
            page.locator("#transfer-source input[type=file]").set_input_files(str(photo))
            page.locator("#transfer-target input[type=file]").set_input_files(str(target))
            page.get_by_role("button", name="Transfer", exact=True).click()
            result = _shown_image(page, "transfer-result")
            assert result.shape == (*demo.size, 3)
            assert _differs_from(result, photo) > 5.0
            skeleton = _shown_image(page, "transfer-source-skeleton")  # the photo with BlazePose's joints
            assert skeleton.shape == np.asarray(Image.open(photo)).shape
            _screenshot(page, shots / "app-transfer.png")

            page.get_by_role("tab", name="Swap").click()
            page.locator("#swap-source input[type=file]").set_input_files(demo.gallery[0])
            page.locator("#swap-target input[type=file]").set_input_files(str(target))
            page.get_by_role("button", name="Swap", exact=True).click()
            assert _shown_image(page, "swap-result").shape == (*demo.size, 3)
            _screenshot(page, shots / "app-swap.png")

            page.get_by_role("tab", name="Sample").click()
            page.get_by_role("button", name="Sample", exact=True).click()
            sample = _shown_image(page, "sample-result")
            assert sample.shape == (*demo.size, 3) and sample.std() > 0
            _screenshot(page, shots / "app-sample.png")

            page.get_by_role("tab", name="Interpolate").click()
            page.get_by_role("button", name="Start walk", exact=True).click()
            strip = _shown_image(page, "walk-strip")
            assert strip.shape == (demo.size[0], 8 * demo.size[1], 3)
            _screenshot(page, shots / "app-interpolate.png")
        finally:
            browser.close()
    assert not outside, f"the page asked for outside resources: {outside}"


def test_http_api_of_each_tab(server, tmp_path):
    """Every tab's function through the HTTP API: picture sizes, seeds reproduce, errors are messages."""
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    url, demo = server
    client = Client(url, verbose=False, httpx_kwargs={"timeout": HANG_GUARD_SECONDS})
    a, b = (handle_file(p) for p in demo.gallery[:2])
    size = demo.size[::-1]  # PIL's (width, height)

    source_skeleton, target_skeleton, result = client.predict(a, b, api_name="/transfer")
    assert Image.open(result).size == size
    assert Image.open(source_skeleton).size == Image.open(demo.gallery[0]).size
    assert Image.open(client.predict(a, b, ["fg", "pose"], ["head", "legs"], api_name="/swap")).size == size

    first, again, other = (np.asarray(Image.open(client.predict(seed, ["fg", "bg", "pose"], None, api_name="/sample")))
                           for seed in (3, 3, 4))
    assert first.shape == (*demo.size, 3)
    np.testing.assert_array_equal(first, again)
    assert np.abs(first.astype(int) - other).max() > 0
    kept = client.predict(3, ["fg"], a, api_name="/sample")  # new clothes, the photo's background and pose
    assert Image.open(kept).size == size

    # The walk between two seeds starts at seed A's sample (the same noise through the same mappers).
    client.predict("two seeds", 3, 4, None, None, api_name="/walk")
    start = np.asarray(Image.open(client.predict("slerp", 0.0, api_name="/frame")))
    assert np.abs(start.astype(int) - first).max() <= 1
    client.predict("two photos", 0, 0, a, b, api_name="/walk")
    assert Image.open(client.predict("linear", 0.5, api_name="/frame")).size == size

    blank = tmp_path / "blank.png"
    Image.new("RGB", (64, 128), (200, 200, 200)).save(blank)
    with pytest.raises(AppError, match="no person found"):
        client.predict(handle_file(str(blank)), b, api_name="/transfer")
    not_an_image = tmp_path / "notes.jpg"
    not_an_image.write_text("not a photo")
    with pytest.raises(AppError, match="cannot identify image file"):
        client.predict(handle_file(str(not_an_image)), b, api_name="/transfer")
    with pytest.raises(AppError, match="tick at least one factor"):
        client.predict(3, [], None, api_name="/sample")


def test_inverse_interpolation_reports_its_error(server):
    """Inverse interpolation through the exported mappers' gradients (no training code): Adam lowers
    ||Phi(z) - e||^2 below where it starts, and the walk renders."""
    from keras_disentangle import app, keypoints

    _, demo = server
    a, b = (keypoints.read_image(p) for p in demo.gallery[:2])
    start, _ = demo.walk(app.WALKS[2], 0, 0, a, b, invert_steps=1)
    state, note = demo.walk(app.WALKS[2], 0, 0, a, b, invert_steps=60)
    assert set(state["relative_error"]) == set(demo.factors) and "relative error" in note
    assert (np.sum(list(state["relative_error"].values())) < np.sum(list(start["relative_error"].values())))
    assert demo.frame(state, "linear", 0.5).shape == (*demo.size, 3)


def test_the_app_imports_no_training_code():
    """The app is a client of the serving artefacts: importing it loads nothing of `training/`."""
    import subprocess
    import sys

    from conftest import REPO_ROOT

    code = ("import sys, keras_disentangle.app; "
            "print(sorted(m for m in sys.modules if m.startswith('keras_disentangle.training')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True,
                         timeout=HANG_GUARD_SECONDS)
    assert out.stdout.strip() == "[]", out.stdout


def test_savedmodel_dir_takes_a_version_or_the_newest_in_a_base_folder(tmp_path):
    """As TF Serving picks a version: the largest number (10 after 9), not names that are no numbers."""
    from keras_disentangle import app

    for version in ("1", "9", "10", "11-tmp"):
        (tmp_path / "model" / version).mkdir(parents=True)
        (tmp_path / "model" / version / "saved_model.pb").touch()
    (tmp_path / "model" / "12").mkdir()  # a version being written: no saved_model.pb yet
    assert app.savedmodel_dir(str(tmp_path / "model"), "stage1") == str(tmp_path / "model" / "10")
    assert app.savedmodel_dir(str(tmp_path / "model" / "9"), "stage1") == str(tmp_path / "model" / "9")
    with pytest.raises(ValueError, match=r"--stage2: .*empty is neither a SavedModel folder"):
        (tmp_path / "empty").mkdir()
        app.savedmodel_dir(str(tmp_path / "empty"), "stage2")


def test_phone_photos_and_bad_uploads_through_the_http_api(server, fixtures_dir, tmp_path):
    """A phone photo stored turned with its EXIF tag transfers exactly as its upright pixels do, and as the
    SavedModel's transfer_photo does on the phone photo's own bytes (the three decoders agree). Truncated,
    huge and over-the-limit uploads are one clear message each, and the server goes on serving."""
    import tensorflow as tf
    from gradio_client import Client, handle_file
    from gradio_client.exceptions import AppError

    import photo_files
    from keras_disentangle import keypoints

    url, demo = server
    client = Client(url, verbose=False, httpx_kwargs={"timeout": HANG_GUARD_SECONDS})
    phone = photo_files.phone_jpeg(photo_files.portrait(keypoints.read_image(fixtures_dir / DF_PHOTO)))
    files = {"phone.jpg": phone, "upright.png": photo_files.upright_png(phone),
             "truncated.jpg": phone[:len(phone) // 2], "huge.png": photo_files.grey_png(12_000, 9_000),
             "big.png": os.urandom(int(1.5 * UPLOAD_LIMIT_MB * 2 ** 20))}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    target = handle_file(demo.gallery[1])
    results = {name: [_image((pathlib.Path(p)).read_bytes()) for p in
                      client.predict(handle_file(str(tmp_path / name)), target, api_name="/transfer")]
               for name in ("phone.jpg", "upright.png")}
    for got, expected in zip(results["phone.jpg"], results["upright.png"]):
        np.testing.assert_array_equal(got, expected)
    assert results["phone.jpg"][0].shape[0] > results["phone.jpg"][0].shape[1]  # portrait, as a viewer shows it

    person = demo.person(str(tmp_path / "phone.jpg"), "photo")
    pose = demo.person(demo.gallery[1], "pose")
    signature = demo.signatures["transfer_photo"]
    served = signature(image_bytes=tf.constant([phone]), keypoints=tf.constant(person.keypoints[None], tf.float32),
                       target_keypoints=tf.constant(pose.keypoints[None], tf.float32))
    np.testing.assert_array_equal(_image(served["png_bytes"][0].numpy()), results["phone.jpg"][2])

    for name, message in (("truncated.jpg", "person photo: not a readable image \\(truncated"),
                          ("huge.png", "person photo: image is 12000x9000 pixels \\(108 MP\\)")):
        with pytest.raises(AppError, match=message):
            client.predict(handle_file(str(tmp_path / name)), target, api_name="/transfer")
    with pytest.raises(Exception, match="413|exceeds the maximum file size"):  # refused at upload
        client.predict(handle_file(str(tmp_path / "big.png")), target, api_name="/transfer")
    assert Image.open(client.predict(handle_file(demo.gallery[0]), target, api_name="/transfer")[2]).size == \
        demo.size[::-1]


def test_load_client_counts_requests_errors_and_memory(server):
    """`make load`'s client, briefly: 2 gradio clients for 2 s against the app; a failing call is counted
    as an error; the verdict fails on errors and on memory growth over the limit."""
    from gradio_client import Client, handle_file

    from keras_disentangle import loadtest

    url, demo = server
    clients = [Client(url, verbose=False, httpx_kwargs={"timeout": HANG_GUARD_SECONDS}) for _ in range(2)]
    a, b = handle_file(demo.gallery[0]), handle_file(demo.gallery[1])
    cfg = loadtest.LoadConfig(clients=2, seconds=2.0, warmup_seconds=0.0)
    calls = []

    def call(index):  # how many requests were made, whatever a loaded machine lets fit in 2 s
        calls.append(index)
        clients[index].submit(a, b, api_name="/transfer").result(timeout=HANG_GUARD_SECONDS)

    result = loadtest.measure("app", call, cfg, loadtest.rss)
    assert result.errors == 0 and len(result.latencies) == len(calls) >= 1 and result.rss_warm > 2 ** 20, result
    assert result.row().startswith("| app | ") and loadtest.failures(result, cfg) == []

    broken = loadtest.measure("broken", lambda i: 1 / 0, dataclasses.replace(cfg, seconds=0.2), lambda: 100)
    assert broken.errors > 0 and broken.first_error.startswith("ZeroDivisionError") and not broken.latencies
    grown = dataclasses.replace(result, rss_end=int(result.rss_warm * 1.2))
    assert [len(loadtest.failures(r, cfg)) for r in (broken, grown)] == [2, 1]


# --- every output of every surface equals the in-process application on the same inputs ----------

SAVED_MODEL_TOLERANCE = 1e-5  # the same graph, traced and saved


def _agrees(got, expected, wrong, tolerance: float, what: str) -> None:
    """`got` equals `expected` within `tolerance`, and the output of a wrong input (another image,
    factor or seed) is far outside it, so that a surface mixing them up would fail."""
    got, expected, wrong = (np.asarray(a, np.float64) for a in (got, expected, wrong))
    error = np.abs(got - expected).max()
    assert error <= tolerance, (what, error)
    assert np.abs(wrong - expected).max() > 50 * tolerance, (what, np.abs(wrong - expected).max())


@pytest.fixture(scope="module")
def pairs(synthetic_records):
    """Two (source, target) batches of real examples: the second has source and target exchanged."""
    from keras_disentangle import configs, data

    examples = data.load_examples(synthetic_records, configs.get_config("synthetic", "micro"), "test", limit=4)
    first = {k: examples[k][[0, 1]] for k in ("image", "keypoints")}
    second = {k: examples[k][[2, 3]] for k in ("image", "keypoints")}
    return first, second


def test_savedmodel_signatures_equal_the_in_process_applications(exported, reference, pairs):
    """transfer, swap (fg, bg, pose), render and sample of the SavedModel against `apps` in process."""
    import tensorflow as tf

    from keras_disentangle import apps

    loaded = tf.saved_model.load(os.path.join(exported[0], "1")).signatures
    source, target = pairs
    # In a graph as in the SavedModel (eagerly a ROI box on the border may round the other way).
    swap = tf.function(lambda s, t, factor: apps.swap(reference, s, t, [factor]), reduce_retracing=True)

    transfer = loaded["transfer"](source_image=source["image"], source_keypoints=source["keypoints"],
                                  target_keypoints=target["keypoints"])["image"]
    in_process = tf.function(lambda s, k: apps.transfer(reference, s, k))
    _agrees(transfer, in_process(source, target["keypoints"]), in_process(target, target["keypoints"]),
            SAVED_MODEL_TOLERANCE, "transfer")

    swapped = loaded["swap"](source_image=source["image"], source_keypoints=source["keypoints"],
                             target_image=target["image"], target_keypoints=target["keypoints"])
    assert set(swapped) == {"fg", "bg", "pose"}
    for factor in swapped:
        others = [f for f in swapped if f != factor]
        expected = swap(source, target, factor)
        _agrees(swapped[factor], expected, swap(target, source, factor), SAVED_MODEL_TOLERANCE, f"swap {factor}")
        for other in others:  # nor is it another factor's swap
            assert np.abs(np.asarray(swap(source, target, other)) - expected).max() > 50 * SAVED_MODEL_TOLERANCE

    codes = reference.encode(source["image"], source["keypoints"])
    render = tf.function(lambda c, k: apps.render(reference, c, k)["image"])
    exchanged = {k: tf.reverse(v, [0]) for k, v in codes.items()}
    _agrees(loaded["render"](fg=codes["fg"], bg=codes["bg"], keypoints=target["keypoints"])["image"],
            render(codes, target["keypoints"]), render(exchanged, target["keypoints"]), SAVED_MODEL_TOLERANCE,
            "render")

    sample = tf.function(lambda n, seed: apps.sample(reference, n, seed, ["fg", "bg", "pose"]))
    drawn = loaded["sample"](n=tf.constant(2), seed=tf.constant(7))
    expected, other = sample(tf.constant(2), tf.constant(7)), sample(tf.constant(2), tf.constant(8))
    assert set(drawn) == {"image", "keypoints", "fg", "bg", "pose"}
    for key in drawn:
        _agrees(drawn[key], expected[key], other[key], SAVED_MODEL_TOLERANCE if key != "keypoints" else 1e-3,
                f"sample {key}")


def test_each_tab_and_its_http_api_equal_the_in_process_applications(server, reference):
    """The transfer, swap and sample tabs (the Demo's functions) and the same calls through the HTTP API
    give the in-process application's picture on the same photos, to the grey level (PNG in between)."""
    import tensorflow as tf
    from gradio_client import Client, handle_file

    from keras_disentangle import app, apps, keypoints
    from keras_disentangle.photo_graph import PhotoServing
    from keras_disentangle.visualize import to_uint8

    url, demo = server
    client = Client(url, verbose=False, httpx_kwargs={"timeout": HANG_GUARD_SECONDS})
    paths = demo.gallery[:2]
    people = [demo.person(keypoints.read_image(p), p) for p in paths]
    inputs = [{"image": p.image[None], "keypoints": p.framed_keypoints[None]} for p in people]
    photo = PhotoServing(reference)
    transfer = tf.function(lambda png, points, target: photo.transfer_photo(png, points, target)["image"])
    swap = tf.function(lambda s, t: apps.swap(reference, s, t, ["fg", "pose"], parts=["head", "legs"]))

    def expected(tab, a, b):
        if tab == "transfer":
            return to_uint8(transfer(tf.constant([app._png(people[a].photo)]), people[a].keypoints[None].astype(np.float32),
                                     people[b].keypoints[None].astype(np.float32)))[0]
        if tab == "swap":
            return to_uint8(swap(inputs[a], inputs[b]))[0]
        return to_uint8(apps.sample(reference, 1, a, ["fg", "bg", "pose"])["image"])[0]

    def through_api(tab, a, b):
        files = [handle_file(p) for p in (paths[a], paths[b])]
        if tab == "transfer":
            return _image(pathlib.Path(client.predict(*files, api_name="/transfer")[2]).read_bytes())
        if tab == "swap":
            return _image(pathlib.Path(client.predict(*files, ["fg", "pose"], ["head", "legs"], api_name="/swap"))
                          .read_bytes())
        return _image(pathlib.Path(client.predict(a, ["fg", "bg", "pose"], None, api_name="/sample")).read_bytes())

    def in_tab(tab, a, b):
        photos = [keypoints.read_image(paths[a]), keypoints.read_image(paths[b])]
        if tab == "transfer":
            return demo.transfer(*photos)[2]
        if tab == "swap":
            return demo.swap(*photos, ["fg", "pose"], ["head", "legs"])
        return demo.sample(a, ["fg", "bg", "pose"])

    for tab in ("transfer", "swap", "sample"):
        right, wrong = expected(tab, 0, 1), expected(tab, 1, 0)
        for surface in (in_tab, through_api):
            _agrees(surface(tab, 0, 1), right, wrong, 1, f"{tab} {surface.__name__}")
