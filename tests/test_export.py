"""Serving exports: TF Serving's layout, stage-I transfer/swap, the bytes-in/bytes-out signature and its
REST body (docs/serving.md), in-graph framing against `keypoints.frame`, and the LiteRT flatbuffer."""

import base64
import io
import json
import pathlib
import re

import numpy as np
import pytest
from PIL import Image

from conftest import REPO_ROOT


@pytest.fixture(scope="module")
def served(stage1_export):
    """The stage-I run exported the way `export --out=BASE` does: (BASE, name, BASE/<name>/<version>)."""
    base, name, path = stage1_export
    return pathlib.Path(base), name, path


@pytest.fixture(scope="module")
def serving(stage1_run):
    from keras_disentangle.serving.runtime import Stage1Serving, load_stage1

    return Stage1Serving(*load_stage1(stage1_run))


def _graph(method):
    """`method` run as a graph, as in the SavedModel: eagerly, a micro ROI box ending on the image border
    can round the other way (by 6e-8) in crop_and_resize's inside test and change the whole output."""
    import tensorflow as tf

    return tf.function(method)


def test_tf_serving_layout_and_existing_version_refused(served, stage1_run):
    from keras_disentangle.serving import export

    base, name, path = served
    assert name == "dpig-synthetic-micro"
    versions = [p.name for p in (base / name).iterdir()]
    assert versions == ["2"], versions  # the run's newest checkpoint step; no temporary folder left
    assert (base / name / "2" / "saved_model.pb").is_file() and (base / name / "2" / "variables").is_dir()
    with pytest.raises(ValueError, match=r"already exists"):
        export.write_versioned(str(base), name, 2, lambda tmp: export.export_stage1(stage1_run, tmp))


def test_stage1_savedmodel_transfer_and_swap(served, serving, synthetic_records):
    import tensorflow as tf

    from keras_disentangle import data

    loaded = tf.saved_model.load(served[2])
    assert {"transfer", "swap", "serving_default", "transfer_photo"} <= set(loaded.signatures)
    batch = next(iter(data.eval_dataset(synthetic_records, serving.cfg, split="test", batch_size=2)))
    image, keypoints = batch["image"], batch["keypoints"]
    got = loaded.signatures["transfer"](source_image=image[:1], source_keypoints=keypoints[:1],
                                        target_keypoints=keypoints[1:])["image"]
    np.testing.assert_allclose(got, _graph(serving.transfer)(image[:1], keypoints[:1], keypoints[1:])["image"],
                               atol=1e-5)
    swapped = loaded.signatures["swap"](source_image=image[:1], source_keypoints=keypoints[:1],
                                        target_image=image[1:], target_keypoints=keypoints[1:])
    expected = _graph(serving.swap)(image[:1], keypoints[:1], image[1:], keypoints[1:])
    assert set(swapped) == {"fg", "bg", "pose"}
    for key in swapped:
        np.testing.assert_allclose(swapped[key], expected[key], atol=1e-5, err_msg=key)


def test_in_graph_framing_equals_keypoints_frame(rng):
    """The SavedModel frames a photo exactly as `keypoints.frame` does: same box, same pixels."""
    import tensorflow as tf

    from keras_disentangle.pose import keypoints
    from keras_disentangle.serving import photo_graph

    for aspect in (2.0, 1.0):
        for _ in range(6):
            height, width = rng.integers(40, 300, size=2)
            photo = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
            points = np.stack([rng.integers(-5, height + 5, 18), rng.integers(-5, width + 5, 18)], 1)
            points[rng.random(18) < 0.3] = -1
            points[(points >= [height, width]).any(1)] = -1
            points[:2] = [[height // 3, width // 4], [height // 2, width // 2]]
            crop, moved, box = keypoints.frame(photo, points, aspect)
            got = photo_graph.frame_box(tf.constant(points, tf.float32), aspect).numpy()
            assert tuple(got) == box, (got, box)
            rows = np.clip(np.arange(got[0], got[0] + got[2]), 0, height - 1)
            cols = np.clip(np.arange(got[1], got[1] + got[3]), 0, width - 1)
            np.testing.assert_array_equal(photo[rows][:, cols], crop)
            assert abs(crop.shape[0] / crop.shape[1] - aspect) < 0.05 * aspect + 2 / crop.shape[1]


def _readme_rest_body() -> dict:
    """The serving page's REST example body for `transfer_photo` (the JSON block after its heading)."""
    page = (REPO_ROOT / "docs" / "serving.md").read_text(encoding="utf-8")
    block = re.search(r"REST, bytes in and bytes out.*?```json\n(.*?)```", page, re.S)
    assert block, "docs/serving.md: the transfer_photo REST example is missing"
    return json.loads(block.group(1))


def _serve_rest(signature, body: dict) -> dict:
    """What TF Serving does with a row-format ("instances") predict body: {"b64": s} -> the bytes as a
    tf.string, lists -> the input's dtype, batched over instances; outputs named *_bytes go back as b64."""
    import tensorflow as tf

    specs = signature.structured_input_signature[1]
    rows = body["instances"]
    inputs = {}
    for name, spec in specs.items():
        values = [row[name] for row in rows]
        if spec.dtype == tf.string:
            inputs[name] = tf.constant([base64.b64decode(v["b64"]) for v in values], tf.string)
        else:
            inputs[name] = tf.constant(values, spec.dtype)
    outputs = signature(**inputs)
    predictions = []
    for i in range(len(rows)):
        predictions.append({k: ({"b64": base64.b64encode(v[i].numpy()).decode()} if k.endswith("_bytes")
                                else v[i].numpy().tolist()) for k, v in outputs.items()})
    return {"predictions": predictions}


def test_readme_rest_body_through_transfer_photo(served, serving, synthetic_records):
    """The serving page's body, filled with a JPEG of another size, gives the picture the in-process path gives."""
    import tensorflow as tf

    from keras_disentangle import data
    from keras_disentangle.data import records, visualize
    from keras_disentangle.pose import keypoints

    # A synthetic person placed off-centre in a larger JPEG photo; keypoints in that photo's pixels.
    examples = [records.parse_image(r) for r in tf.data.TFRecordDataset(data.shard_files(synthetic_records, "test"))
                .take(2)]
    person = tf.io.decode_image(examples[0]["image"], channels=3).numpy()
    photo = np.full((230, 161, 3), 90, np.uint8)
    photo[50:50 + person.shape[0], 60:60 + person.shape[1]] = person
    points = examples[0]["keypoints"].numpy()
    points = np.where((points >= 0).all(1, keepdims=True), points + [50, 60], -1)
    target = examples[1]["keypoints"].numpy()
    jpeg = io.BytesIO()
    Image.fromarray(photo).save(jpeg, format="JPEG", quality=95)

    body = _readme_rest_body()
    assert body["signature_name"] == "transfer_photo" and len(body["instances"]) == 1
    instance = body["instances"][0]
    assert set(instance) == {"image_bytes", "keypoints", "target_keypoints"} and "b64" in instance["image_bytes"]
    instance.update(image_bytes={"b64": base64.b64encode(jpeg.getvalue()).decode()},
                    keypoints=points.tolist(), target_keypoints=target.tolist())
    body = json.loads(json.dumps(body))  # exactly what goes over the wire

    loaded = tf.saved_model.load(served[2])
    response = _serve_rest(loaded.signatures[body["signature_name"]], body)
    prediction = response["predictions"][0]
    png = np.asarray(Image.open(io.BytesIO(base64.b64decode(prediction["png_bytes"]["b64"]))))
    height, width = serving.cfg.data.height, serving.cfg.data.width
    assert png.shape == (height, width, 3) and png.dtype == np.uint8

    # In process: the photo framed by keypoints.frame and prepared as the pipeline does, then transfer.
    decoded = np.asarray(Image.open(io.BytesIO(jpeg.getvalue())).convert("RGB"))  # as keypoints.read_image reads it
    crop, moved, _ = keypoints.frame(decoded, points, height / width)
    # The target pose is framed on its own extent (the crop of a 1-pixel image has the box's size).
    target_crop, target_moved, _ = keypoints.frame(np.zeros((1, 1, 3), np.uint8), target, height / width)
    source = data.prepare_example({**examples[0], "image": tf.io.encode_png(crop), "keypoints": tf.constant(moved)}, serving.cfg.data)
    pose = data.prepare_example({**examples[1], "image": tf.io.encode_png(target_crop),
                                 "keypoints": tf.constant(target_moved)},
                                serving.cfg.data)
    expected = serving.transfer(source["image"][None], source["keypoints"][None], pose["keypoints"][None])["image"]
    np.testing.assert_allclose(np.asarray(prediction["image"]), expected[0], atol=1e-4)
    # Far outside that: the same person in the source's own pose (a signature that took the wrong keypoints).
    own = serving.transfer(source["image"][None], source["keypoints"][None], source["keypoints"][None])["image"]
    assert np.abs(np.asarray(own) - np.asarray(expected)).max() > 100 * 1e-4
    assert np.abs(png.astype(int) - visualize.to_uint8(np.asarray(expected))[0]).max() <= 1


def test_tflite_transfer_matches_savedmodel(served, synthetic_records, serving):
    """float32 LiteRT == SavedModel to rounding; dynamic-range int8: under 35 % of the size, SSIM vs float >= 0.9."""
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    from keras_disentangle import apps, data
    from keras_disentangle.serving import litert

    batch = next(iter(data.eval_dataset(synthetic_records, serving.cfg, split="test", batch_size=2)))
    inputs = {"source_image": batch["image"][:1].numpy(), "source_keypoints": batch["keypoints"][:1].numpy(),
              "target_keypoints": batch["keypoints"][1:].numpy()}
    reference = tf.saved_model.load(served[2]).signatures["transfer"](**inputs)["image"].numpy()
    outputs, sizes = {}, {}
    for quantize in litert.QUANTIZATIONS:
        flatbuffer = litert.convert_transfer(serving, quantize)
        interpreter = Interpreter(model_content=flatbuffer)
        outputs[quantize] = interpreter.get_signature_runner()(**inputs)["image"]
        sizes[quantize] = len(flatbuffer)
    error = np.abs(outputs["none"] - reference)
    # A body ROI box ending on the image border ties crop_and_resize's inside test (position <= size - 1),
    # which TFLite's arithmetic may decide the other way for a few crops (docs/serving.md); the rest is rounding.
    assert np.median(error) < 1e-5 and error.max() < 0.1, (np.median(error), error.max())
    # In process (apps.transfer, as a graph like the SavedModel), and far from the transfer of the other image.
    transfer = tf.function(lambda source, target: apps.transfer(serving, source, target))
    in_process = transfer({"image": inputs["source_image"], "keypoints": inputs["source_keypoints"]},
                          inputs["target_keypoints"]).numpy()
    error = np.abs(outputs["none"] - in_process)
    assert np.median(error) < 1e-5 and error.max() < 0.1, (np.median(error), error.max())
    # The median is the bound that tells a swapped input apart: the other image's transfer differs by a
    # median of 0.03 here, and by a maximum (0.10) no larger than the few border crops may (this micro
    # model is trained for 2 steps, so its pictures depend little on the person).
    other = transfer({"image": batch["image"][1:], "keypoints": batch["keypoints"][1:]}, inputs["target_keypoints"])
    wrong = np.abs(np.asarray(other) - in_process)
    assert np.median(wrong) > 100 * 1e-5, (np.median(wrong), wrong.max())
    assert sizes["dynamic_int8"] < 0.35 * sizes["none"], sizes
    ssim = float(tf.image.ssim(outputs["dynamic_int8"] + 1.0, outputs["none"] + 1.0, max_val=2.0)[0])
    assert 0.9 <= ssim < 1.0, ssim


def test_tflite_sample_matches_stage2(stage2_runs):
    """Stage-II sampling from given noise: the float32 flatbuffer equals the mappers and generator."""
    from ai_edge_litert.interpreter import Interpreter

    from keras_disentangle import apps
    from keras_disentangle.serving import litert
    from keras_disentangle.serving.runtime import load_stage2

    serving = load_stage2(list(stage2_runs.values()))
    runner = Interpreter(model_content=litert.convert_sample(serving)).get_signature_runner()
    rng = np.random.default_rng(0)
    noise = {f: rng.standard_normal((1, serving.cfg.model.embedding_dim(f))).astype(np.float32)
             for f in serving.factors}
    got = runner(**{f"noise_{f.value}": z for f, z in noise.items()})

    def in_process(noise):  # apps.render of the mapped noise: the application's sampling path
        codes = {f.value: serving.mapper(f)(z * serving.cfg.train.noise_stddev) for f, z in noise.items()}
        return {k: np.asarray(v) for k, v in apps.render(serving, codes).items()}

    expected = in_process(noise)
    # Every factor's noise matters: with fresh noise for any one factor the sample is far outside that.
    others = [in_process({**noise, factor: rng.standard_normal(z.shape).astype(np.float32)})
              for factor, z in noise.items()]
    for key, tolerance in (("keypoints", 1e-3), ("image", 1e-4)):
        np.testing.assert_allclose(got[key], expected[key], atol=tolerance, err_msg=key)
    assert all(np.abs(other["image"] - expected["image"]).max() > 100 * 1e-4 for other in others)


@pytest.mark.parametrize("argv, message", [
    (["--quantize=dynamic_int8"], "--quantize needs --format=tflite"),
    (["--version=0"], "version"),
])
def test_export_usage_errors_exit_2(argv, message, capsys, tmp_path):
    from test_cli import _run

    from keras_disentangle import cli

    code, lines = _run("keras_disentangle.serving.export", ["--stage1_dir=/nonexistent", f"--out={tmp_path}", *argv],
                       capsys)
    assert code == cli.USAGE and len(lines) == 1 and message in lines[0], lines
