"""Shared test fixtures: quiet TensorFlow, fixed seeds, paths to the shared real-photo fixtures."""

import io
import json
import os
import pathlib
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_FIXTURES = REPO_ROOT.parent / "shared" / "fixtures"
# A hang guard, not a speed assertion: the one wall-clock limit of every wait in the suite (subprocesses,
# polls of a run's files, the browser). Tests wait on events (a file written, a checkpoint listed, a
# process exiting); a loaded 2-vCPU machine may take many times as long as a quiet one, and only a run
# that hangs should ever reach this.
HANG_GUARD_SECONDS = 30 * 60


def communicate_within_hang_guard(process) -> tuple[str, str]:
    """`process.communicate()` under the hang guard. A process still running then is killed: TimeoutExpired
    leaves it running (a 100,000-step control run of test_resume trained on after its test had failed)."""
    try:
        return process.communicate(timeout=HANG_GUARD_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        stdout, stderr = process.communicate()
        raise AssertionError(f"hang guard: {' '.join(map(str, process.args))[:300]} still ran after "
                             f"{HANG_GUARD_SECONDS} s; its last output: {(stdout or '')[-500:]} {(stderr or '')[-500:]}") from None


# Run by pytest-xdist as one unit (`make test`'s `--dist loadfile` keeps each file on one worker): the
# app files share the session fixtures `untrained`, `exported` and `server` (~31 CPU-seconds).
ONE_WORKER_FILES = ("tests/test_app.py", "tests/test_app_api.py")
# The files of most CPU-seconds (old-suite durations: test_learning's set-up 213 s, test_resume ~200 s, ...),
# handed out first: xdist orders files by their count of tests, which put test_learning's 8 tests near
# the end, one worker training while the other had run out of files.
LONGEST_FILES = ("tests/test_learning.py", "tests/test_resume.py", "tests/test_training.py", "tests/test_export.py",
                 "tests/test_stage2.py")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """`--dist loadfile` with ONE_WORKER_FILES as one file. `--dist load` deals the first quarter of the
    tests out one at a time to alternate workers, and the rest in chunks that can cut a file: a module
    fixture, or a session fixture of one file, was then built on both workers (every run: the app's
    ~31 CPU-seconds; test_learning's 2,000 steps whenever a cut fell in that file). `--dist loadgroup`
    would do this with marks, but its marks do not reach the scheduler under pytest 9.2 (xdist 3.8 sets
    `item._nodeid`, which pytest 9 no longer reads)."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class FilesAndAppTogether(LoadFileScheduling):
        def _split_scope(self, nodeid):
            scope = super()._split_scope(nodeid)
            return ONE_WORKER_FILES[0] if scope in ONE_WORKER_FILES else scope

        def schedule(self):
            super().schedule()  # each worker got its first file; the others wait in self.workqueue
            for scope in reversed(LONGEST_FILES):
                if scope in self.workqueue:
                    self.workqueue.move_to_end(scope, last=False)

    return FilesAndAppTogether(config, log)


def pytest_collection_modifyitems(config, items):
    """bf16 tests (marked `bf16` or using `mixed_bfloat16`) are skipped, and counted with their reason
    (`-rs`, pytest.ini), where `--precision=auto` would not pick bf16 (`precision.decide`, one predicate):
    under an ONEDNN_MAX_CPU_ISA cap below bf16, how an AVX2 machine is emulated on a newer one, where oneDNN
    finds no bf16 kernel and they fail or crash (docs/performance.md, footnote 3 of the CPU kinds); and on a
    CPU without bf16 units (no avx512_bf16 / amx_bf16), where oneDNN emulates bf16 ~12x slower than float32
    and they cost the suite minutes for a precision no run there uses."""
    bf16 = [item for item in items if item.get_closest_marker("bf16") or "mixed_bfloat16" in item.fixturenames]
    if not bf16:
        return
    from keras_disentangle import precision

    hardware = precision.detect()
    choice = precision.decide("auto", hardware)
    if choice.policy == "mixed_bfloat16":
        return
    cap = precision.isa_cap_below_bf16(hardware)
    reason = (f"bf16 not native under ONEDNN_MAX_CPU_ISA={cap}: oneDNN has no bf16 kernel below AVX512_CORE_BF16 "
              "(an emulation artefact)") if cap else (f"bf16 not native: {choice.reason} (--precision=auto "
                                                      "picks float32; emulated bf16 runs ~12x slower)")
    for item in bf16:
        item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(autouse=True)
def float32_policy_is_left_as_found():
    """Keras' global dtype policy is process state: a test that leaves mixed_bfloat16 behind makes later
    tests in the same process compute in bf16 and fail far from the cause (which tests follow which
    depends on the order and, under `pytest -n`, on the worker). Fails the test that leaked it."""
    yield
    keras = sys.modules.get("keras")
    if keras is not None:
        policy = keras.mixed_precision.global_policy().name
        keras.mixed_precision.set_global_policy("float32")
        assert policy == "float32", f"the test left the global Keras dtype policy at {policy}"


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def mixed_bfloat16():
    """The Keras global dtype policy mixed_bfloat16 for one test, the previous one (float32) again after it."""
    from keras_disentangle import precision

    with precision.global_policy("mixed_bfloat16"):
        yield


@pytest.fixture(scope="session")
def fixtures_dir():
    if not SHARED_FIXTURES.is_dir():
        pytest.fail(f"missing {SHARED_FIXTURES}: the real-photo fixtures live in ../shared/fixtures")
    return SHARED_FIXTURES


def _once_per_run(tmp_path_factory, name: str, build):
    """The value of a session fixture, built once for all pytest-xdist workers of a run (xdist's own
    recipe): the first worker to ask builds it under a file lock and leaves its JSON beside the
    workers' temporary directories; the others read that. Each worker would otherwise build it again,
    ~20 CPU-seconds of the suite for `stage1_run` and `stage2_runs`. Its users only read it."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        return build()
    from filelock import FileLock

    record = tmp_path_factory.getbasetemp().parent / f"{name}.json"
    with FileLock(f"{record}.lock"):
        if not record.is_file():
            record.write_text(json.dumps(build()))
        return json.loads(record.read_text())


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory):
    """A tiny synthetic set in the Market-1501 layout (8 identities x 4 images), made once."""
    from tfrecords import synthetic

    def build():
        root = tmp_path_factory.mktemp("synthetic")
        synthetic.generate(root, ids=8, images_per_id=4, cameras=3, seed=3)
        return str(root)

    return pathlib.Path(_once_per_run(tmp_path_factory, "synthetic_root", build))


@pytest.fixture(scope="session")
def synthetic_records(synthetic_root, tmp_path_factory):
    """TFRecords of `synthetic_root` (train, test with pairs, and query splits)."""
    from tfrecords.build import build

    def build_records():
        out = tmp_path_factory.mktemp("records")
        build("synthetic", synthetic_root, out)
        return str(out)

    return _once_per_run(tmp_path_factory, "synthetic_records", build_records)


@pytest.fixture(scope="session")
def stage1_run(synthetic_records, tmp_path_factory):
    """A stage-I run directory (micro preset, appearance + pose, 2 steps, batch 4) on `synthetic_records`.

    Micro, not tiny: what its users check (serving, export, apps, metrics' plumbing) does not depend on the
    model's size, and every test that builds, traces or exports its networks pays for that size."""
    import tensorflow as tf

    from keras_disentangle import configs
    from keras_disentangle.training import stage1, steps

    def build():
        logdir = tmp_path_factory.mktemp("stage1_run")
        cfg = configs.override(configs.get_config("synthetic", "micro"), batch_size=4, steps=2, log_every=1,
                               image_every=1000, adversarial_weight=0.0)
        stage1.train_stage1(cfg, data_dir=synthetic_records, logdir=str(logdir), part=steps.Stage1Part.BOTH,
                            strategy=tf.distribute.get_strategy(), verbose=False)
        return str(logdir)

    return _once_per_run(tmp_path_factory, "stage1_run", build)


@pytest.fixture(scope="session")
def stage1_export(stage1_run, tmp_path_factory):
    """`stage1_run` exported the way `export --out=BASE` does: (BASE, name, BASE/<name>/<version>), for
    test_export's serving checks (~17 CPU-seconds); its users only read it."""
    from keras_disentangle.serving import export

    def build():
        base = tmp_path_factory.mktemp("serving")
        name, version = export.default_name(stage1_run), export.default_version([stage1_run])
        path = export.write_versioned(str(base), name, version, lambda tmp: export.export_stage1(stage1_run, tmp))
        return str(base), name, path

    return _once_per_run(tmp_path_factory, "stage1_export", build)


@pytest.fixture(scope="session")
def stage2_runs(stage1_run, synthetic_records, tmp_path_factory):
    """One stage-II run directory per factor (3 steps, batch 4) on `stage1_run`: {"fg": dir, ...}."""
    import tensorflow as tf

    from keras_disentangle import configs
    from keras_disentangle.training import stage2

    # Stage II takes the data and model config from the stage-I run: only these train fields count.
    cfg = configs.override(configs.get_config("synthetic", "micro"), mapper_batch_size=4, steps=3, log_every=1,
                           image_every=2)

    def build():
        runs = {}
        for factor in ("fg", "bg", "pose"):
            logdir = tmp_path_factory.mktemp(f"stage2_{factor}")
            stage2.train_stage2(cfg, factor=factor, data_dir=synthetic_records, stage1_dir=stage1_run,
                                logdir=str(logdir), strategy=tf.distribute.get_strategy(), verbose=False)
            runs[factor] = str(logdir)
        return runs

    return _once_per_run(tmp_path_factory, "stage2_runs", build)


# --- the browser demo over an untrained export, for tests/test_app.py and tests/test_app_api.py --------
# Session-scoped: both files share one export and one running app per pytest process.

MARKET = "market1501_mini"
DF_PHOTO = "deepfashion_mini/test/fashionWOMENDressesid0000386607_1front.jpg"
UPLOAD_LIMIT_MB = 1  # the test server's; a test photo is well under it


def image_array(data: bytes) -> np.ndarray:
    """The RGB pixels of an encoded picture (what the app or a signature sent)."""
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


@pytest.fixture(scope="session")
def untrained():
    """The untrained micro synthetic model (stage I and every mapper) in process, seeded."""
    import keras

    from keras_disentangle import configs
    from keras_disentangle.models.mapper import build_mapper
    from keras_disentangle.models.stage1 import build_stage1
    from keras_disentangle.serving.runtime import Stage2Serving

    cfg = configs.get_config("synthetic", "micro")
    keras.utils.set_random_seed(0)
    return Stage2Serving(cfg, build_stage1(cfg), {f: build_mapper(cfg, f) for f in configs.Factor})


@pytest.fixture(scope="session")
def exported(tmp_path_factory, request):
    """(stage-I, stage-II) TF Serving base folders (`export`'s OUT/<name>, one version each): `untrained`
    exported (every signature of stage I and II) or, with KD_APP_DEMO, the demo's exports."""
    if os.environ.get("KD_APP_DEMO"):
        export_dir = pathlib.Path(os.environ["KD_APP_DEMO"]) / "export"
        return str(export_dir / "stage1"), str(export_dir / "stage2")
    from keras_disentangle.serving import export

    base = tmp_path_factory.mktemp("app_export")
    export.write_serving(request.getfixturevalue("untrained"), str(base / "1"))
    return str(base), str(base)


@pytest.fixture(scope="session")
def reference(exported, request):
    """The in-process model the export was written from (not the demo's: its runs are not at hand)."""
    if os.environ.get("KD_APP_DEMO"):
        pytest.skip("KD_APP_DEMO: the comparisons with the in-process model run on the default untrained export")
    return request.getfixturevalue("untrained")


@pytest.fixture(scope="session")
def server(exported, fixtures_dir):
    """The app on a free localhost port, its gallery the Market test fixtures; yields (url, Demo)."""
    from keras_disentangle.apps import app

    demo_dir = os.environ.get("KD_APP_DEMO")
    root = pathlib.Path(demo_dir) / "synthetic" if demo_dir else fixtures_dir / MARKET
    gallery, points = app.read_gallery(root / "bounding_box_test", root / "market-annotation-test.csv")
    demo = app.Demo(*exported, gallery, points)
    port = app.free_port()
    page = app.launch(demo, "127.0.0.1", port, block=False, max_upload_mb=UPLOAD_LIMIT_MB)
    yield f"http://127.0.0.1:{port}", demo
    page.close()
