"""Stage-I training behaviour: learning, the L1 warm-up, flags, logs, steps_per_execution, data order."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from conftest import HANG_GUARD_SECONDS

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]

# The micro preset: what these tests assert does not depend on the model's size, and each train.py
# process builds, traces and runs it faster than the tiny one.
MICRO = ["--dataset=synthetic", "--scale=micro", "--batch_size=4", "--log_every=1", "--image_every=1000"]


def _env(**extra):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(REPO_ROOT), **extra)
    env.pop("TF_CONFIG", None)
    env.update(extra)
    return env


def _train(*args, **env):
    return subprocess.run([sys.executable, str(REPO_ROOT / "train.py"), *args], cwd=REPO_ROOT,
                          env=_env(**env), capture_output=True, text=True, timeout=HANG_GUARD_SECONDS)


def _checkpoint_steps(logdir: pathlib.Path) -> list[int]:
    return sorted(int(p.name.split("-")[1].split(".")[0]) for p in (logdir / "checkpoints").glob("ckpt-*.index"))


def test_overfit_l1_falls_by_half(synthetic_records):
    """A micro model memorises 4 images: the L1 reconstruction loss falls to half or less (measured:
    to 0.36x in 60 steps, flags avx2 avx512_bf16; half the CPU time of the tiny model, which reached 0.17x)."""
    import keras
    import tensorflow as tf

    from keras_disentangle import configs, data, losses
    from keras_disentangle.models.stage1 import build_stage1, reconstruct
    from keras_disentangle.training import steps

    cfg = configs.override(configs.get_config("synthetic", "micro"), batch_size=4, adversarial_weight=0.0,
                           learning_rate=1e-3)
    keras.utils.set_random_seed(0)
    batch = next(iter(data.eval_dataset(synthetic_records, cfg, split="train", batch_size=4)))
    stage1 = build_stage1(cfg)
    optimizers = {"g1": keras.optimizers.Adam(1e-3), "d1": keras.optimizers.Adam(1e-3)}
    step = tf.function(steps.appearance_step(stage1, optimizers["g1"], optimizers["d1"], cfg.train, 4))
    first = float(step(batch)["loss/g1/l1"])
    for _ in range(60):
        last = float(step(batch)["loss/g1/l1"])
    recon = reconstruct(stage1, batch)
    assert last <= 0.5 * first, (first, last)
    assert float(tf.reduce_mean(losses.l1_reconstruction_loss(batch["image"], recon))) < first


def test_d1_and_the_adversarial_term_wait_for_adversarial_start_step(synthetic_records):
    """The L1 warm-up: D1 does not move before `adversarial_start_step`, then it does (joint batch)."""
    import keras
    import tensorflow as tf

    from keras_disentangle import configs, data
    from keras_disentangle.models.stage1 import build_stage1
    from keras_disentangle.training import stage1 as stage1_training
    from keras_disentangle.training import steps

    cfg = configs.override(configs.get_config("synthetic", "micro"), batch_size=2, adversarial_weight=1.0,
                           adversarial_start_step=2, d1_joint_batch=True, d1_learning_rate=1e-4, real_label=0.9)
    keras.utils.set_random_seed(0)
    batch = next(iter(data.eval_dataset(synthetic_records, cfg, split="train", batch_size=2)))
    stage1 = build_stage1(cfg)
    optimizers = stage1_training.build_optimizers(cfg.train)
    assert float(optimizers["d1"].learning_rate) == pytest.approx(1e-4)
    step = tf.function(steps.appearance_step(stage1, optimizers["g1"], optimizers["d1"], cfg.train, 2))
    initial = [v.numpy().copy() for v in stage1.d1.trainable_variables]
    for _ in range(2):
        logs = step(batch)
        assert all(np.array_equal(a, v.numpy()) for a, v in zip(initial, stage1.d1.trainable_variables))
    assert 0.0 < float(logs["d1/real_probability"]) < 1.0
    step(batch)
    assert not all(np.array_equal(a, v.numpy()) for a, v in zip(initial, stage1.d1.trainable_variables))


# Unknown flags, stray arguments and a missing --data_dir of every tool: tests/test_cli.py.
@pytest.mark.parametrize("args, code, message", [
    (["--dataset=imagenet", "--data_dir={records}"], 2, "--dataset=imagenet"),
    (["--dataset=synthetic"], 2, "--data_dir"),
    (["--stage=2", "--data_dir={records}"], 2, "--factor is required"),
    (["--data_dir={empty}"], 1, "hold no records"),
    (["--stage=2", "--factor=fg", "--data_dir={records}", "--stage1_dir={empty}"], 1, "not a training run"),
])
def test_bad_command_lines_exit_with_one_line(args, code, message, synthetic_records, tmp_path, capsys):
    from test_cli import run_tool

    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "train-00000-of-00001.tfrecord").write_bytes(b"")
    args = [a.format(empty=empty, records=synthetic_records) for a in args]
    # In this process through the same cli.run as `python train.py` (tests/test_cli.py): no TensorFlow
    # import per case; test_resume's damaged-shard case runs train.py as a process.
    exit_code, _, lines = run_tool("train.py", [*args, f"--logdir={tmp_path / 'run'}"], capsys)
    assert exit_code == code, lines
    assert len(lines) == 1 and message in lines[0], lines
    assert "Traceback" not in "\n".join(lines)


@pytest.fixture(scope="module")
def logged_run(synthetic_records, tmp_path_factory):
    """(run directory, finished process) of 6 appearance steps with stdout piped; it ends with ckpt-6."""
    logdir = tmp_path_factory.mktemp("logged") / "run"
    result = _train(*MICRO, f"--data_dir={synthetic_records}", f"--logdir={logdir}", "--steps=6", "--log_every=3",
                    "--model=appearance", "--adversarial_weight=0", "--steps_per_execution=2", "--progress_seconds=0")
    assert result.returncode == 0, result.stderr[-2000:]
    return logdir, result


def test_log_file_gets_plain_progress_lines(logged_run):
    """With stdout piped (not a terminal), training prints plain progress lines, not a silent bar."""
    logdir, result = logged_run
    lines = [line for line in result.stdout.splitlines() if line.startswith("step ")]
    # A line per chunk (the first step, then every 2 steps or at a log step), each with the losses.
    assert [line.split()[1] for line in lines] == ["1/6", "3/6", "5/6", "6/6"], result.stdout
    assert all("g1/l1" in line and "img/s" in line for line in lines)
    assert "ETA" in lines[1] and "step/s" in lines[1]
    assert "\r" not in result.stdout and "Precision: " in result.stdout
    # Flags that are not config fields (and the config ones as given) are recorded in the run.
    [command] = json.loads((logdir / "commands.json").read_text())
    assert command["command"].endswith("--progress_seconds=0")
    assert command["flags"]["model"] == "appearance" and command["flags"]["strategy"] == "default"
    assert command["flags"]["steps_per_execution"] == 2 and command["flags"]["max_minutes"] is None


def test_commands_json_keeps_every_invocation_of_a_run(tmp_path):
    """A resumed run may be started with other flags: each invocation is recorded, oldest first."""
    from keras_disentangle import rundir

    rundir.record_command(tmp_path, ["train.py", "--max_minutes=1"], {"max_minutes": 1.0, "strategy": "default"})
    rundir.record_command(tmp_path, ["train.py"], {"max_minutes": None, "strategy": "mirrored"})
    entries = json.loads((tmp_path / rundir.COMMANDS_FILE).read_text())
    assert [e["command"] for e in entries] == ["train.py --max_minutes=1", "train.py"]
    assert [e["flags"] for e in entries] == [{"max_minutes": 1.0, "strategy": "default"},
                                            {"max_minutes": None, "strategy": "mirrored"}]


def test_a_run_file_is_never_seen_half_written(tmp_path, monkeypatch):
    """Run files are read by the other workers of a multi-worker run and by the rerun of a killed one:
    a write that dies halfway (the process killed, the disk full) leaves the previous file whole."""
    import pathlib

    from keras_disentangle import configs, rundir

    rundir.save_config(tmp_path, configs.get_config("synthetic", "micro"))
    rundir.record_command(tmp_path, ["train.py"], {})
    rundir.write_stage2_record(tmp_path / "fg", configs.Factor.FOREGROUND, str(tmp_path))
    rundir.write_baseline_record(tmp_path / "vae", configs.Baseline.VAE)
    before = {path: path.read_text() for path in tmp_path.rglob("*.json")}
    real_write_text = pathlib.Path.write_text

    def dies_halfway(path, text, *args, **kwargs):
        real_write_text(path, text[:len(text) // 2], *args, **kwargs)
        raise OSError("killed mid-write")

    monkeypatch.setattr(pathlib.Path, "write_text", dies_halfway)
    for write in (lambda: rundir.save_config(tmp_path, configs.get_config("synthetic", "micro")),
                  lambda: rundir.record_command(tmp_path, ["train.py", "--resume"], {}),
                  lambda: rundir.write_stage2_record(tmp_path / "fg", configs.Factor.FOREGROUND, str(tmp_path)),
                  lambda: rundir.write_baseline_record(tmp_path / "vae", configs.Baseline.VAE)):
        with pytest.raises(OSError, match="mid-write"):
            write()
    monkeypatch.undo()
    assert {path: path.read_text() for path in before} == before
    assert rundir.load_config(tmp_path) == configs.get_config("synthetic", "micro")
    assert rundir.read_stage2_record(tmp_path / "fg").factor == configs.Factor.FOREGROUND


def _train_in_memory(records, logdir, steps_per_execution, total_steps=20):
    """The stage-I loop (L1 + adversarial, D1 trained; the pose auto-encoder's step is no different in
    kind and would only add tracing) on a fixed, unshuffled batch stream."""
    import keras
    import tensorflow as tf

    from keras_disentangle import configs, data
    from keras_disentangle.models.stage1 import build_stage1
    from keras_disentangle.training import checkpoint, loop, stage1, steps

    cfg = configs.override(configs.get_config("synthetic", "micro"), batch_size=4, adversarial_weight=1.0,
                           first_block_channels=8, encoder_channels=(8, 16), generator_channels=(8, 16),
                           d1_channels=(8, 16))
    dataset = data.eval_dataset(records, cfg, split="train", batch_size=4).repeat()
    keras.utils.set_random_seed(0)
    trained = build_stage1(cfg)
    optimizers = stage1.build_optimizers(cfg.train)
    keeper = checkpoint.CheckpointKeeper(logdir, tf.Variable(0, dtype=tf.int64), **stage1.stage1_trackables(trained))
    fetched = []
    logs = loop.run(strategy=tf.distribute.get_strategy(),
                    replica_step=steps.stage1_step(steps.Stage1Part.APPEARANCE, trained, optimizers, cfg.train, 4),
                    make_dataset=lambda seed: dataset, seed=0, keeper=keeper, total_steps=total_steps,
                    global_batch_size=4, checkpoint_every=1000, log_every=10, image_every=1000, summary_dir=None,
                    write_images=fetched.append, steps_per_execution=steps_per_execution, verbose=False)
    weights = [w.numpy() for model in stage1.stage1_trackables(trained).values() for w in model.weights]
    return logs, weights, fetched


def test_steps_per_execution_gives_the_same_losses_and_weights(synthetic_records, tmp_path):
    """20 micro steps run 10 per call and 1 per call end with equal losses and weights."""
    one = _train_in_memory(synthetic_records, str(tmp_path / "k1"), 1)
    ten = _train_in_memory(synthetic_records, str(tmp_path / "k10"), 10)
    assert one[0].keys() == ten[0].keys() and "loss/d1" in one[0]
    for name, value in one[0].items():
        assert ten[0][name] == pytest.approx(value, rel=1e-5), name
    for a, b in zip(one[1], ten[1]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert one[2] == ten[2] == [1]  # the first image grid still falls on step 1


def test_chunks_end_on_log_image_and_checkpoint_steps():
    from keras_disentangle.training.loop import chunk_end

    assert chunk_end(0, 10, (5, 7)) == 5
    assert chunk_end(5, 15, (5, 7)) == 7
    assert chunk_end(7, 17, (100, 100)) == 17
    assert chunk_end(95, 98, (100,)) == 98


def _first_batch(dataset):
    import tensorflow as tf

    return tf.nest.map_structure(np.asarray, next(iter(dataset)))


def _same(a, b) -> bool:
    import tensorflow as tf

    return all(np.array_equal(x, y) for x, y in zip(tf.nest.flatten(a), tf.nest.flatten(b)))


@pytest.mark.parametrize("trainer", ["appearance", "pose", "both", "stage2", "vae"])
def test_every_trainer_draws_its_data_order_from_the_seed_the_loop_gives_it(trainer, stage1_run, synthetic_records,
                                                                             tmp_path, monkeypatch):
    """A resumed run draws a fresh order (loop.run calls make_dataset(resume_seed(seed, start)),
    test_resume): that reaches the data only if each trainer's own make_dataset honours the seed.
    The loop is replaced by one that keeps what the trainer gives it."""
    import tensorflow as tf

    from keras_disentangle import configs
    from keras_disentangle.training import baselines, loop, stage1, stage2, steps

    given = {}
    monkeypatch.setattr(loop, "run", lambda **kwargs: given.update(kwargs) or {})
    cfg = configs.override(configs.get_config("synthetic", "micro"), batch_size=4, pose_batch_size=4,
                           mapper_batch_size=4, seed=5)
    common = dict(data_dir=synthetic_records, logdir=str(tmp_path / "run"), strategy=tf.distribute.get_strategy(),
                  verbose=False)
    if trainer == "stage2":
        stage2.train_stage2(cfg, factor="fg", stage1_dir=stage1_run, **common)
    elif trainer == "vae":
        baselines.train_baseline(cfg, model="vae", **common)
    else:
        stage1.train_stage1(cfg, part=steps.Stage1Part(trainer), **common)
    assert given["seed"] == 5
    first = _first_batch(given["make_dataset"](5))
    assert _same(first, _first_batch(given["make_dataset"](5)))
    fresh = _first_batch(given["make_dataset"](loop.resume_seed(5, 3)))
    # With --model=both the image batch and the pose batch each come in another order.
    for name, part in (first.items() if trainer == "both" else [("batch", first)]):
        assert not _same(part, fresh[name] if trainer == "both" else fresh), (trainer, name)
