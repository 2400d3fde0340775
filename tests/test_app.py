"""The browser demo (`keras_disentangle.apps.app`) over an exported SavedModel: driven in a real headless
Chromium (Debian's `chromium` through Playwright) and its `Demo` in process. Its HTTP API and the
equality of every surface with the in-process applications: tests/test_app_api.py.

The model is an untrained micro one, exported once per run (tests/conftest.py's `exported` and `server`,
shared with test_app_api): the tests check the page and the API, not what a trained model draws.
KD_APP_SCREENSHOTS=DIR keeps the browser's screenshots; KD_APP_DEMO=out/demo runs the tests on the
models and gallery of `make demo && make app` instead (how the screenshots of docs/browser-demo.md were taken).
"""

import io
import os
import pathlib
import shutil

import numpy as np
import pytest
from PIL import Image

from conftest import DF_PHOTO, HANG_GUARD_SECONDS, image_array

# Flags without which Chromium keeps calling Google's services, which a closed network answers slowly.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
INSTALL_CHROMIUM = "sudo apt-get install -y --no-install-recommends chromium"
# Playwright's and httpx's own limits (30 s, 5 s) would be speed assertions on a loaded machine: every
# browser and HTTP wait gets the suite's hang guard instead (a healthy request takes well under a second).
HANG_GUARD_MS = 1000 * HANG_GUARD_SECONDS


def _shown_image(page, elem_id: str) -> np.ndarray:
    """Waits for the picture of the output component `elem_id` and returns it as the browser got it."""
    img = page.locator(f"#{elem_id} img")
    img.wait_for()
    return image_array(page.request.get(img.get_attribute("src"), timeout=HANG_GUARD_MS).body())


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
            # The page's defaults (the source's foreground, every part): which photo gives and which receives
            # is the page's wiring, which the HTTP API does not see (it maps its arguments to the same inputs).
            np.testing.assert_array_equal(_shown_image(page, "swap-result"),
                                          demo.swap(demo.gallery[0], str(target), ["fg"], []),
                                          err_msg="the Swap tab is not the source's foreground on the target")
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


def test_inverse_interpolation_reports_its_error(server):
    """Inverse interpolation through the exported mappers' gradients (no training code): Adam lowers
    ||Phi(z) - e||^2 below where it starts, and the walk renders."""
    from keras_disentangle.apps import app
    from keras_disentangle.pose import keypoints

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

    code = ("import sys, keras_disentangle.apps.app; "
            "print(sorted(m for m in sys.modules if m.startswith('keras_disentangle.training')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True,
                         timeout=HANG_GUARD_SECONDS)
    assert out.stdout.strip() == "[]", out.stdout


def test_savedmodel_dir_takes_a_version_or_the_newest_in_a_base_folder(tmp_path):
    """As TF Serving picks a version: the largest number (10 after 9), not names that are no numbers."""
    from keras_disentangle.apps import app

    for version in ("1", "9", "10", "11-tmp"):
        (tmp_path / "model" / version).mkdir(parents=True)
        (tmp_path / "model" / version / "saved_model.pb").touch()
    (tmp_path / "model" / "12").mkdir()  # a version being written: no saved_model.pb yet
    assert app.savedmodel_dir(str(tmp_path / "model"), "stage1") == str(tmp_path / "model" / "10")
    assert app.savedmodel_dir(str(tmp_path / "model" / "9"), "stage1") == str(tmp_path / "model" / "9")
    with pytest.raises(ValueError, match=r"--stage2: .*empty is neither a SavedModel folder"):
        (tmp_path / "empty").mkdir()
        app.savedmodel_dir(str(tmp_path / "empty"), "stage2")
