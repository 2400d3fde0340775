"""Shared test fixtures: quiet TensorFlow, fixed seeds, paths to the shared real-photo fixtures."""

import os
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_FIXTURES = REPO_ROOT.parent / "shared" / "fixtures"


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def fixtures_dir():
    if not SHARED_FIXTURES.is_dir():
        pytest.fail(f"missing {SHARED_FIXTURES}: the real-photo fixtures live in ../shared/fixtures")
    return SHARED_FIXTURES


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory):
    """A tiny synthetic set in the Market-1501 layout (8 identities x 4 images), made once."""
    from keras_disentangle import synthetic

    root = tmp_path_factory.mktemp("synthetic")
    synthetic.generate(root, ids=8, images_per_id=4, cameras=3, seed=3)
    return root


@pytest.fixture(scope="session")
def synthetic_records(synthetic_root, tmp_path_factory):
    """TFRecords of `synthetic_root` (train and test splits, with pairs)."""
    from tfrecords.build import build

    out = tmp_path_factory.mktemp("records")
    build("synthetic", synthetic_root, out)
    return str(out)
