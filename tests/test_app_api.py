"""The browser demo's HTTP API (`gradio_client` against the app of tests/conftest.py's `server`), and
every output of every surface (SavedModel signatures, the tabs, the API) against the in-process
applications on the same inputs."""

import dataclasses
import os
import pathlib

import numpy as np
import pytest
from PIL import Image

from conftest import DF_PHOTO, HANG_GUARD_SECONDS, UPLOAD_LIMIT_MB, image_array


def _client(url: str):
    """A gradio client of the test app; its HTTP calls wait up to the hang guard (httpx's default 5 s
    would fail a slow machine's call, not a hung one)."""
    from gradio_client import Client

    return Client(url, verbose=False, httpx_kwargs={"timeout": HANG_GUARD_SECONDS})


def test_http_api_of_each_tab(server, tmp_path):
    """Every tab's function through the HTTP API: picture sizes, seeds reproduce, errors are messages."""
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    url, demo = server
    client = _client(url)
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


def test_phone_photos_and_bad_uploads_through_the_http_api(server, fixtures_dir, tmp_path):
    """A phone photo stored turned with its EXIF tag transfers exactly as its upright pixels do, and as the
    SavedModel's transfer_photo does on the phone photo's own bytes (the three decoders agree). Truncated,
    huge and over-the-limit uploads are one clear message each, and the server goes on serving."""
    import tensorflow as tf
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    import photo_files
    from keras_disentangle.pose import keypoints

    url, demo = server
    client = _client(url)
    phone = photo_files.phone_jpeg(photo_files.portrait(keypoints.read_image(fixtures_dir / DF_PHOTO)))
    files = {"phone.jpg": phone, "upright.png": photo_files.upright_png(phone),
             "truncated.jpg": phone[:len(phone) // 2], "huge.png": photo_files.grey_png(12_000, 9_000),
             "big.png": os.urandom(int(1.5 * UPLOAD_LIMIT_MB * 2 ** 20))}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    target = handle_file(demo.gallery[1])
    results = {name: [image_array((pathlib.Path(p)).read_bytes()) for p in
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
    np.testing.assert_array_equal(image_array(served["png_bytes"][0].numpy()), results["phone.jpg"][2])

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
    from gradio_client import handle_file

    from keras_disentangle.tools import loadtest

    url, demo = server
    clients = [_client(url) for _ in range(2)]
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


def _agrees(got, expected, wrong, tolerance: float, what: str, margin: float = 50) -> None:
    """`got` equals `expected` within `tolerance`, and the output of a wrong input (another image,
    factor or seed) is far outside it (`margin` times), so that a surface mixing them up would fail."""
    got, expected, wrong = (np.asarray(a, np.float64) for a in (got, expected, wrong))
    error = np.abs(got - expected).max()
    assert error <= tolerance, (what, error)
    assert np.abs(wrong - expected).max() > margin * tolerance, (what, np.abs(wrong - expected).max())


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


# Runs every stage-I and stage-II signature of the export in argv[1] on the inputs in argv[2] (images and
# keypoints: the first half sources, the second targets) in an interpreter without keras_disentangle.
FRESH_PROCESS_CHECK = """
import sys
import numpy as np
import tensorflow as tf
sig = tf.saved_model.load(sys.argv[1]).signatures
x = {k: tf.constant(v) for k, v in np.load(sys.argv[2]).items()}
half = len(x["image"]) // 2
src = dict(source_image=x["image"][:half], source_keypoints=x["keypoints"][:half])
codes = sig["encode"](image=x["image"], keypoints=x["keypoints"])
out = {"encode_" + k: v for k, v in codes.items()}
out["reconstruct"] = sig["reconstruct"](image=x["image"], keypoints=x["keypoints"])["image"]
out["decode"] = sig["decode"](fg=codes["fg"], bg=codes["bg"], pose=codes["pose"])["image"]
for name in ("transfer", "serving_default"):
    out[name] = sig[name](**src, target_keypoints=x["keypoints"][half:])["image"]
out.update({"swap_" + k: v for k, v in sig["swap"](**src, target_image=x["image"][half:],
                                                   target_keypoints=x["keypoints"][half:]).items()})
out.update({"sample_" + k: v for k, v in sig["sample"](n=tf.constant(3), seed=tf.constant(7)).items()})
assert "keras_disentangle" not in sys.modules
np.savez(sys.argv[3], **{k: v.numpy() for k, v in out.items()})
"""


def test_savedmodel_round_trip_in_fresh_process(exported, reference, pairs, tmp_path):
    """The export (stage I and II, every signature the serving docs name) loads in a fresh interpreter that
    never imports keras_disentangle, and gives the in-process model's outputs (one process for both stages:
    the stage-I-only export of `export_stage1` holds the same networks and endpoints)."""
    import subprocess
    import sys

    import tensorflow as tf

    source, target = pairs
    image, keypoints = (np.concatenate([source[k], target[k]]) for k in ("image", "keypoints"))
    np.savez(tmp_path / "in.npz", image=image, keypoints=keypoints)
    result = subprocess.run([sys.executable, "-c", FRESH_PROCESS_CHECK, os.path.join(exported[0], "1"),
                             str(tmp_path / "in.npz"), str(tmp_path / "out.npz")], cwd=tmp_path, capture_output=True,
                            text=True, timeout=HANG_GUARD_SECONDS, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert result.returncode == 0, result.stderr[-3000:]
    served = np.load(tmp_path / "out.npz")
    # Graph mode, as in the SavedModel: eagerly, a micro ROI box ending on the image border can round the
    # other way in crop_and_resize's inside test and change the whole output.
    encode, reconstruct, decode, transfer, swap, sample = (tf.function(f) for f in (
        reference.encode, reference.reconstruct, reference.decode, reference.transfer, reference.swap,
        reference.sample))
    codes = encode(image, keypoints)
    expected = {**{f"encode_{k}": v for k, v in codes.items()},
                "reconstruct": reconstruct(image, keypoints)["image"],
                "decode": decode(codes["fg"], codes["pose"], codes["bg"])["image"]}
    expected["transfer"] = expected["serving_default"] = transfer(image[:2], keypoints[:2], keypoints[2:])["image"]
    expected.update({f"swap_{k}": v for k, v in swap(image[:2], keypoints[:2], image[2:], keypoints[2:]).items()})
    expected.update({f"sample_{k}": v for k, v in sample(tf.constant(3), tf.constant(7)).items()})
    assert set(served.files) == set(expected)
    for name, value in expected.items():
        np.testing.assert_allclose(served[name], np.asarray(value), atol=1e-5, err_msg=name)


def test_each_tab_and_its_http_api_equal_the_in_process_applications(server, reference):
    """The transfer, swap and sample tabs (the Demo's functions) and the same calls through the HTTP API
    give the in-process application's picture on the same photos, to the grey level (PNG in between)."""
    import tensorflow as tf
    from gradio_client import handle_file

    from keras_disentangle import apps
    from keras_disentangle.apps import app
    from keras_disentangle.pose import keypoints
    from keras_disentangle.serving.photo_graph import PhotoServing
    from keras_disentangle.data.visualize import to_uint8

    url, demo = server
    client = _client(url)
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
            return image_array(pathlib.Path(client.predict(*files, api_name="/transfer")[2]).read_bytes())
        if tab == "swap":
            return image_array(pathlib.Path(client.predict(*files, ["fg", "pose"], ["head", "legs"], api_name="/swap"))
                          .read_bytes())
        return image_array(pathlib.Path(client.predict(a, ["fg", "bg", "pose"], None, api_name="/sample")).read_bytes())

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


def test_the_interpolate_tab_and_its_http_api_equal_the_in_process_walks(server, reference):
    """A frame of the walk between two seeds' noise (slerp in z, through each Phi) and of the walk between
    two photos' codes (linear) equals the in-process model's on the same ends, to the grey level; the walk
    the other way (B to A) is far outside that. Ends: seeds 3 + i, or the gallery's photos i."""
    import tensorflow as tf
    from gradio_client import handle_file

    from keras_disentangle import apps
    from keras_disentangle.apps import app
    from keras_disentangle.pose import keypoints
    from keras_disentangle.data.visualize import to_uint8

    url, demo = server
    client = _client(url)
    paths = demo.gallery[:2]
    people = [demo.person(keypoints.read_image(p), p) for p in paths]
    photo_codes = reference.encode(np.stack([p.image for p in people]), np.stack([p.framed_keypoints for p in people]))
    method = {app.WALKS[0]: "slerp", app.WALKS[1]: "linear"}

    def expected(mode, a, b, t):
        codes = {}
        for factor in reference.factors:
            if mode == app.WALKS[0]:
                ends = np.concatenate([reference.noise(factor, 1, 3 + i) for i in (a, b)])
                codes[factor.value] = reference.mapper(factor)(apps.slerp(ends[:1], ends[1:], [t])[0], training=False)
            else:
                ends = np.asarray(photo_codes[factor.value])[[a, b]]
                codes[factor.value] = tf.constant(apps.lerp(ends[:1], ends[1:], [t])[0])
        return to_uint8(reference.decode(codes["fg"], codes["pose"], codes.get("bg"))["image"])[0]

    def in_tab(mode, a, b, t):
        state, _ = demo.walk(mode, 3 + a, 3 + b, keypoints.read_image(paths[a]), keypoints.read_image(paths[b]))
        return demo.frame(state, method[mode], t)

    def through_api(mode, a, b, t):
        client.predict(mode, 3 + a, 3 + b, handle_file(paths[a]), handle_file(paths[b]), api_name="/walk")
        return image_array(pathlib.Path(client.predict(method[mode], t, api_name="/frame")).read_bytes())

    # The untrained model's reconstructions of two gallery photos differ by only 36-54 grey levels at
    # most, and the frames a quarter and three quarters along their walk by 36: a smaller guard there.
    margin = {app.WALKS[0]: 50, app.WALKS[1]: 20}
    for mode in method:
        right, wrong = expected(mode, 0, 1, 0.25), expected(mode, 1, 0, 0.25)
        for surface in (in_tab, through_api):
            _agrees(surface(mode, 0, 1, 0.25), right, wrong, 1, f"{mode} {surface.__name__}", margin[mode])
