"""Stage II: mapper and critic shapes, one step of each loss, frozen stage I, run layout, resume, the export's
refusal of a missing factor (its fresh-process round trip: tests/test_app_api.py)."""

import hashlib
import pathlib

import numpy as np
import pytest


def _tiny_cfg(**fields):
    from keras_disentangle import configs

    return configs.override(configs.get_config("synthetic", "tiny"), **fields)


@pytest.mark.parametrize("factor, dim, hidden", [("fg", 56, 128), ("bg", 32, 64), ("pose", 16, 128)])
def test_mapper_and_critic_shapes(factor, dim, hidden):
    """Phi: K -> hidden -> 4 residual blocks -> K; D2: K -> 4 x 128 LeakyReLU -> 1 (tiny preset)."""
    from keras_disentangle.models.discriminators import build_critic
    from keras_disentangle.models.mapper import build_mapper

    cfg = _tiny_cfg()
    mapper, critic = build_mapper(cfg, factor), build_critic(cfg, factor)
    noise = np.zeros((3, dim), np.float32)
    assert mapper(noise).shape == (3, dim)
    assert critic(noise).shape == (3, 1)
    assert mapper.get_layer("dense_in").units == hidden
    assert sum(1 for layer in critic.layers if layer.name.startswith("dense")) == 4


def test_mapper_shapes_full_scale_market():
    """The paper's sizes: K = 224 / 128 / 32, hidden 512 / 256 / 512."""
    from keras_disentangle import configs
    from keras_disentangle.models.mapper import build_mapper

    cfg = configs.get_config("market", "full")
    for factor, dim, hidden in (("fg", 224, 512), ("bg", 128, 256), ("pose", 32, 512)):
        mapper = build_mapper(cfg, factor)
        assert mapper.input.shape[1:] == (dim,) and mapper.output.shape[1:] == (dim,)
        assert mapper.get_layer("dense_in").units == hidden


def test_sample_noise_is_stateless_with_a_seed():
    from keras_disentangle.serving.runtime import sample_noise

    a, b, c = (sample_noise(2000, 8, 0.2, seed=s).numpy() for s in (5, 5, 6))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    assert abs(a.std() - 0.2) < 0.01 and abs(a.mean()) < 0.01


def _one_step(**train_fields):
    import keras
    import tensorflow as tf

    from keras_disentangle.models.discriminators import build_critic
    from keras_disentangle.models.mapper import build_mapper
    from keras_disentangle.training.stage2 import mapper_step

    cfg = _tiny_cfg(critic_steps=2, mapper_learning_rate=1e-2, **train_fields)
    keras.utils.set_random_seed(0)
    mapper, critic = build_mapper(cfg, "bg"), build_critic(cfg, "bg")
    optimizers = [keras.optimizers.RMSprop(1e-2) for _ in range(2)]
    before = [v.numpy().copy() for v in mapper.trainable_variables]
    step = tf.function(mapper_step(mapper, critic, optimizers[0], optimizers[1], cfg.train, 32, 4))
    real = tf.random.stateless_normal([2 * 4, 32], seed=[1, 2])
    logs = step({"real": real})
    assert set(logs) == {"loss/d2/wasserstein_estimate", "loss/phi/wasserstein"}
    assert all(np.isfinite(float(v)) for v in logs.values())
    assert any(not np.array_equal(b, v.numpy()) for b, v in zip(before, mapper.trainable_variables))
    return critic


def test_one_step_with_weight_clipping_keeps_the_critic_within_bounds():
    critic = _one_step(gradient_penalty_weight=0.0, critic_clip=0.01)
    assert max(float(np.abs(v.numpy()).max()) for v in critic.trainable_variables) <= 0.01 + 1e-7


def test_one_step_with_gradient_penalty_does_not_clip():
    critic = _one_step(gradient_penalty_weight=10.0, critic_clip=0.01)
    assert max(float(np.abs(v.numpy()).max()) for v in critic.trainable_variables) > 0.05


def test_unknown_factor_is_refused():
    import tensorflow as tf

    from keras_disentangle.training import stage2

    with pytest.raises(ValueError, match="--factor=hair"):
        stage2.train_stage2(_tiny_cfg(), factor="hair", data_dir="unused", stage1_dir="unused", logdir="unused",
                            strategy=tf.distribute.get_strategy())


def _digest(directory: pathlib.Path) -> str:
    digest = hashlib.sha256()
    for path in sorted((directory / "checkpoints").iterdir()):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()


def test_stage1_stays_frozen(stage1_run, synthetic_records, tmp_path):
    """Stage-II training leaves the stage-I weights bit-identical and saves none of them."""
    import tensorflow as tf

    from keras_disentangle.serving.runtime import load_frozen_stage1, stage1_trackables
    from keras_disentangle.training import stage2

    _, frozen, _ = load_frozen_stage1(stage1_run)
    assert all(not model.trainable_variables for model in stage1_trackables(frozen).values())
    weights = [w.numpy().copy() for m in stage1_trackables(frozen).values() for w in m.weights]
    files = _digest(pathlib.Path(stage1_run))
    cfg = _tiny_cfg(mapper_batch_size=4, steps=2, log_every=1, image_every=1000)
    stage2.train_stage2(cfg, factor="fg", data_dir=synthetic_records, stage1_dir=stage1_run,
                        logdir=str(tmp_path / "s2"), strategy=tf.distribute.get_strategy(), verbose=False)
    assert _digest(pathlib.Path(stage1_run)) == files
    _, reloaded, _ = load_frozen_stage1(stage1_run)
    after = [w.numpy() for m in stage1_trackables(reloaded).values() for w in m.weights]
    assert all(np.array_equal(a, b) for a, b in zip(weights, after))
    saved = {name.split("/")[0] for name, _ in tf.train.list_variables(str(tmp_path / "s2" / "checkpoints"))}
    assert not saved & set(stage1_trackables(frozen)), saved


def test_run_directory_layout_and_summaries(stage2_runs, stage1_run):
    import json

    import tensorflow as tf

    from keras_disentangle import rundir
    from keras_disentangle.serving import runtime

    for factor, directory in stage2_runs.items():
        record = json.loads((pathlib.Path(directory) / rundir.STAGE2_FILE).read_text())
        assert record == {"factor": factor, "stage1_dir": str(pathlib.Path(stage1_run).resolve())}
        assert (pathlib.Path(directory) / f"embeddings-{factor}.npz").exists()
        assert runtime.load_stage2_run(directory).factor.value == factor
    tags = set()
    for event_file in (pathlib.Path(stage2_runs["fg"]) / "train").glob("events.*"):
        for event in tf.compat.v1.train.summary_iterator(str(event_file)):
            tags.update(value.tag for value in event.summary.value)
    assert {"loss/d2/wasserstein_estimate", "sampled_fg"} <= tags, tags


def test_a_run_of_another_factor_is_refused(stage2_runs, stage1_run, synthetic_records):
    import tensorflow as tf

    from keras_disentangle import rundir
    from keras_disentangle.training import stage2

    with pytest.raises(rundir.RunDirectoryError, match="another factor"):
        stage2.train_stage2(_tiny_cfg(steps=1), factor="bg", data_dir=synthetic_records, stage1_dir=stage1_run,
                            logdir=stage2_runs["fg"], strategy=tf.distribute.get_strategy(), verbose=False)


def test_export_needs_every_factor(stage2_runs, tmp_path):
    from keras_disentangle.serving.export import export_stage2

    with pytest.raises(ValueError, match="missing bg"):
        export_stage2([stage2_runs["fg"], stage2_runs["pose"]], str(tmp_path / "saved"))


def test_embedding_frechet_distance():
    from keras_disentangle.metrics.sampling import embedding_frechet_distance

    rng = np.random.default_rng(0)
    a = rng.normal(size=(500, 4))
    assert embedding_frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    # Same covariance, means 3 apart along one axis: d^2 = 9.
    assert embedding_frechet_distance(a + [3.0, 0, 0, 0], a) == pytest.approx(9.0, rel=1e-6)


def test_pose_validity():
    from keras_disentangle import synthetic
    from keras_disentangle.metrics import sampling

    rng = np.random.default_rng(0)
    poses = np.stack([synthetic.annotate(synthetic.sample_pose(rng)) for _ in range(200)]).astype(np.float64)
    reference = sampling.pose_range(poses)
    assert sampling.pose_validity(poses, reference) == 1.0
    # Giants: every limb 4 times longer (missing joints stay negative).
    assert sampling.pose_validity(4.0 * poses[:10], reference) == 0.0
    # A right elbow bent past what any reference had: wrist folded back onto the shoulder.
    bent = poses[:10].copy()
    bent[:, 4] = bent[:, 2] + 0.01 * (bent[:, 3] - bent[:, 2])
    has_arm = (poses[:10, 2:5] >= 0).all(axis=(1, 2))
    assert has_arm.any() and sampling.pose_validity(bent[has_arm], reference) == 0.0
    too_few = np.full_like(poses[:3], -1.0)
    assert sampling.pose_validity(too_few, reference) == 0.0


def test_a_resumed_run_restores_both_optimizers_and_continues_their_steps(stage2_runs, stage1_run, synthetic_records,
                                                                           tmp_path, monkeypatch):
    """Stage II resumes as stage I does (test_resume's SIGKILL test), in process: the rerun restores
    every variable of the last checkpoint, Phi's and D2's RMSprop slots and step counters included,
    and its updates continue from them."""
    import shutil

    import tensorflow as tf

    from keras_disentangle import configs, rundir
    from keras_disentangle.training import checkpoint, stage2

    logdir = tmp_path / "fg"
    shutil.copytree(stage2_runs["fg"], logdir)
    prefix = tf.train.latest_checkpoint(str(logdir / "checkpoints"))
    last = int(prefix.rsplit("-", 1)[1])
    restore = checkpoint.CheckpointKeeper.restore_latest
    copies = []

    def restore_and_write_what_was_restored(keeper):
        start = restore(keeper)
        copies.append(keeper._checkpoint.write(str(tmp_path / "restored" / "ckpt")))
        return start

    monkeypatch.setattr(checkpoint.CheckpointKeeper, "restore_latest", restore_and_write_what_was_restored)
    cfg = configs.override(rundir.load_config(logdir), steps=last + 2)
    stage2.train_stage2(cfg, factor="fg", data_dir=synthetic_records, stage1_dir=stage1_run,
                        logdir=str(logdir), strategy=tf.distribute.get_strategy(), verbose=False)

    # What the rerun restored: every variable of the checkpoint, the optimizers' slots included.
    bookkeeping = ("_CHECKPOINTABLE_OBJECT_GRAPH", "save_counter/")
    keys = [k for k, _ in tf.train.list_variables(prefix) if not k.startswith(bookkeeping)]
    assert sorted(keys) == sorted(k for k, _ in tf.train.list_variables(copies[0]) if not k.startswith(bookkeeping))
    for name in ("phi_optimizer", "d2_optimizer"):
        slots = [k for k in keys if k.startswith(f"{name}/") and "iteration" not in k]
        assert slots and any(np.abs(tf.train.load_variable(prefix, k)).max() > 0 for k in slots), (name, keys)
    for key in keys:
        np.testing.assert_array_equal(tf.train.load_variable(copies[0], key), tf.train.load_variable(prefix, key),
                                      err_msg=key)
    # It continued: two more updates of Phi, critic_steps more of D2 each, counted from the restored ones.
    resumed = tf.train.latest_checkpoint(str(logdir / "checkpoints"))
    assert resumed.endswith(f"ckpt-{last + 2}")
    critic_steps = rundir.load_config(logdir).train.critic_steps

    def iterations(path, name):
        return int(tf.train.load_variable(path, next(k for k in keys if k.startswith(f"{name}/") and "iteration" in k)))

    assert (iterations(prefix, "phi_optimizer"), iterations(prefix, "d2_optimizer")) == (last, last * critic_steps)
    assert (iterations(resumed, "phi_optimizer"), iterations(resumed, "d2_optimizer")) == (
        last + 2, (last + 2) * critic_steps)
    # (Phi's weights are saved once, under the first path to them: its optimizer's.)
    mapper = [k for k in keys if k.startswith("phi_optimizer/_trainable_variables/")]
    assert mapper and all(not np.array_equal(tf.train.load_variable(prefix, k), tf.train.load_variable(resumed, k))
                          for k in mapper)
