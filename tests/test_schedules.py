"""Schedules and weights of the presets: the halving learning rate (value and resume), lambda, the
per-factor stage-II budgets, and stage II taking its settings from the stage-I run (train.py)."""

import importlib.util
import pathlib
import sys

import numpy as np
import pytest
from absl import flags

from keras_disentangle import cli, configs, rundir

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_full_presets_halve_every_50k_steps_and_a_restored_optimizer_keeps_the_rate(tmp_path):
    import tensorflow as tf

    from keras_disentangle.training import schedule, stage1

    train = configs.get_config("market", "full").train
    optimizers = stage1.build_optimizers(train)
    g1 = optimizers["g1"]
    g1.build([tf.Variable([1.0])])
    for step, rate in ((0, 2e-5), (49_999, 2e-5), (50_000, 1e-5), (100_000, 5e-6)):
        g1.iterations.assign(step)
        assert float(g1.learning_rate.numpy()) == pytest.approx(rate), step
    path = tf.train.Checkpoint(g1=g1).save(str(tmp_path / "ckpt"))
    restored = stage1.build_optimizers(train)["g1"]
    restored.build([tf.Variable([1.0])])
    tf.train.Checkpoint(g1=restored).restore(path).assert_existing_objects_matched()
    assert int(restored.iterations.numpy()) == 100_000
    assert float(restored.learning_rate.numpy()) == pytest.approx(5e-6)
    # The critic updates critic_steps times per training step: it halves at the same training step.
    critic = schedule.halving(2e-5, train.lr_halving_steps, train.critic_steps)
    assert float(critic(50_000 * train.critic_steps - 1)) == pytest.approx(2e-5)
    assert float(critic(50_000 * train.critic_steps)) == pytest.approx(1e-5)
    # tiny and micro keep a constant rate.
    assert schedule.halving(3e-4, configs.get_config("market", "tiny").train.lr_halving_steps) == 3e-4


def test_halving_known_values():
    """Halved every halving_steps steps, in steps (staircase), from halving_steps=1; the default one
    update per step; `updates_per_step` multiplies the period; 0 is the constant rate."""
    from keras_disentangle.training import schedule

    rates = schedule.halving(8.0, 1)
    assert [float(rates(step)) for step in (0, 1, 2)] == [8.0, 4.0, 2.0]
    rates = schedule.halving(8.0, 4)
    assert [float(rates(step)) for step in (0, 3, 4, 8)] == [8.0, 8.0, 4.0, 2.0]
    rates = schedule.halving(8.0, 2, updates_per_step=3)
    assert [float(rates(step)) for step in (5, 6, 12)] == [8.0, 4.0, 2.0]
    assert schedule.halving(8.0, 0) == 8.0


@pytest.mark.parametrize("dataset, factor, batch, steps", [
    ("market", "fg", 32, 30_000), ("market", "bg", 32, 30_000), ("market", "pose", 32, 60_000),
    ("deepfashion", "fg", 16, 60_000), ("deepfashion", "pose", 32, 60_000),
])
def test_stage2_budget_per_factor_is_the_papers(dataset, factor, batch, steps):
    cfg = configs.get_config(dataset, "full")
    resolved = configs.stage2_train(cfg.train, factor)
    assert (resolved.mapper_batch_size, resolved.steps, resolved.mapper_learning_rate) == (batch, steps, 2e-5)
    assert configs.stage2_train(resolved, factor) == resolved  # resolving twice changes nothing
    assert cfg.train.l1_weight == 20.0  # the authors' L1Loss_weight
    assert configs.from_json(configs.to_json(cfg)) == cfg  # the per-factor tables survive config.json


def test_tiny_stage2_uses_stage1_steps_and_its_own_rate():
    train = configs.get_config("synthetic", "tiny").train
    resolved = configs.stage2_train(train, "pose")
    assert (resolved.mapper_batch_size, resolved.steps, resolved.mapper_learning_rate) == (32, train.steps, 1e-3)


def _train_config(argv: list[str]) -> configs.Config:
    """train.py's config for a command line, resolved in process (no TensorFlow, no training)."""
    spec = importlib.util.spec_from_file_location("schedules_train", REPO_ROOT / "train.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # absl attributes flags to their module by name
    spec.loader.exec_module(module)
    defined = set(flags.FLAGS)
    try:
        module.define_flags()
        flags.FLAGS(["train.py", *argv])
        return module._config()
    finally:
        for name in set(flags.FLAGS) - defined:
            delattr(flags.FLAGS, name)
        flags.FLAGS.unparse_flags()


def test_stage2_takes_scale_and_settings_from_the_stage1_run_and_refuses_another_scale(tmp_path):
    stage1_dir = tmp_path / "s1"
    rundir.save_config(stage1_dir, configs.override(configs.get_config("synthetic", "tiny"), learning_rate=5e-4))
    common = ["--stage=2", "--factor=bg", f"--stage1_dir={stage1_dir}", "--data_dir=x", "--logdir=y"]
    # No --scale: not the full preset's 2e-5 on a tiny run, but the run's own settings.
    cfg = _train_config(common)
    assert cfg.scale == "tiny" and cfg.data.height == 64
    assert (cfg.train.mapper_learning_rate, cfg.train.learning_rate, cfg.train.precision) == (1e-3, 5e-4, "auto")
    cfg = _train_config([*common, "--scale=tiny", "--mapper_learning_rate=3e-3", "--critic_clip=0.02",
                         "--gradient_penalty_weight=10", "--steps=7"])
    assert (cfg.train.mapper_learning_rate, cfg.train.critic_clip, cfg.train.gradient_penalty_weight,
            cfg.train.steps) == (3e-3, 0.02, 10.0, 7)
    with pytest.raises(cli.UsageError, match="--scale=full: the stage-I run .* is scale 'tiny'"):
        _train_config([*common, "--scale=full"])
    with pytest.raises(cli.UsageError, match="--dataset=market"):
        _train_config([*common, "--dataset=market"])


def test_full_preset_on_a_cpu_warns_in_one_line(capsys):
    spec = importlib.util.spec_from_file_location("schedules_train_warn", REPO_ROOT / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.warn_full_on_cpu(configs.get_config("market", "full"), ["CPU"])
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and "full preset" in lines[0] and "--scale=tiny" in lines[0]
    module.warn_full_on_cpu(configs.get_config("market", "full"), ["CPU", "GPU"])
    module.warn_full_on_cpu(configs.get_config("market", "tiny"), ["CPU"])
    assert capsys.readouterr().err == ""


def test_each_stage1_optimizer_runs_its_own_rate_on_the_halving_schedule():
    import tensorflow as tf

    from keras_disentangle.training import stage1

    rates = {"g1": 1e-3, "d1": 3e-4, "pose": 5e-3}
    train = configs.override(configs.get_config("synthetic", "micro"), learning_rate=rates["g1"],
                             d1_learning_rate=rates["d1"], pose_learning_rate=rates["pose"], lr_halving_steps=10).train
    optimizers = stage1.build_optimizers(train)
    assert set(optimizers) == set(rates)
    for name, optimizer in optimizers.items():
        optimizer.build([tf.Variable([1.0])])
        for iterations, factor in ((0, 1.0), (9, 1.0), (10, 0.5), (25, 0.25)):
            optimizer.iterations.assign(iterations)
            assert float(optimizer.learning_rate.numpy()) == pytest.approx(rates[name] * factor), (name, iterations)


def test_each_stage1_rate_moves_the_weights_of_the_networks_it_is_meant_for(synthetic_records, tmp_path):
    """Through the trainer's own state and step (--model=both): Adam's first update moves every weight
    that has a gradient by its optimizer's rate (m / sqrt(v) = +-1), so G1's weights move by at most
    g1's rate, D1's by d1's and the pose auto-encoder's by pose's: each rate reaches its networks."""
    import tensorflow as tf

    from keras_disentangle import data
    from keras_disentangle.training import stage1, steps

    rates = {"g1": 1e-3, "d1": 3e-4, "pose": 5e-3}
    cfg = configs.override(configs.get_config("synthetic", "micro"), learning_rate=rates["g1"],
                           d1_learning_rate=rates["d1"], pose_learning_rate=rates["pose"], adversarial_weight=1.0,
                           adversarial_start_step=0, batch_size=2, pose_batch_size=2)
    networks, optimizers, _ = stage1.training_state(cfg, str(tmp_path), tf.distribute.get_strategy())
    groups = {"g1": networks.appearance_encoder.trainable_variables + networks.generator.trainable_variables,
              "d1": networks.d1.trainable_variables,
              "pose": networks.pose_encoder.trainable_variables + networks.pose_decoder.trainable_variables}
    before = {name: [v.numpy() for v in variables] for name, variables in groups.items()}
    batch = {"appearance": next(iter(data.train_dataset(synthetic_records, cfg, batch_size=2))),
             "pose": next(iter(data.pose_dataset(synthetic_records, cfg, batch_size=2)))}
    steps.stage1_step(steps.Stage1Part.BOTH, networks, optimizers, cfg.train, 2)(batch)
    for name, variables in groups.items():
        moved = max(np.abs(v.numpy() - b).max() for v, b in zip(variables, before[name]))
        assert moved == pytest.approx(rates[name], rel=1e-2), f"{name}'s weights moved by {moved}, not its rate"


def _scalars(logdir: pathlib.Path, prefix: str) -> dict[str, dict[int, float]]:
    """Every scalar summary of a run whose tag starts with `prefix`: tag -> step -> value."""
    import tensorflow as tf

    found: dict[str, dict[int, float]] = {}
    for path in (logdir / "train").glob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                if value.tag.startswith(prefix):
                    found.setdefault(value.tag, {})[event.step] = float(tf.make_ndarray(value.tensor))
    return found


def test_stage2_phi_and_the_critic_halve_at_the_same_training_steps(stage2_runs, stage1_run, synthetic_records,
                                                                    tmp_path):
    """Phi updates once per step, D2 critic_steps times: the rate of each halves every
    lr_halving_steps training steps (TensorBoard's learning_rate/<name> is read from the optimizer)."""
    import shutil

    import tensorflow as tf

    from keras_disentangle import rundir
    from keras_disentangle.training import stage2

    logdir = tmp_path / "bg"
    shutil.copytree(stage2_runs["bg"], logdir)
    for old in ("checkpoints", "train"):  # a fresh run; the cached embeddings stay
        shutil.rmtree(logdir / old)
    cfg = configs.override(rundir.load_config(logdir), steps=2, lr_halving_steps=1, log_every=1)
    assert cfg.train.critic_steps > 1  # else the critic's schedule could not differ from Phi's
    stage2.train_stage2(cfg, factor="bg", data_dir=synthetic_records, stage1_dir=stage1_run, logdir=str(logdir),
                        strategy=tf.distribute.get_strategy(), verbose=False)
    rate = cfg.train.mapper_learning_rate
    logged = _scalars(logdir, "learning_rate/")
    for name in ("phi", "d2"):
        assert logged[f"learning_rate/{name}"] == pytest.approx({1: rate / 2, 2: rate / 4}), name


def test_a_resumed_run_switching_between_constant_and_halving_rates_is_refused_in_one_line(
        stage2_runs, stage1_run, synthetic_records, tmp_path):
    """A constant rate is saved as an optimizer variable, a schedule is not: such a checkpoint cannot be
    restored, and the run would stop with 'no checkpoint can be read'. It is refused before, naming the
    flag; another halving period restores (the schedule holds no state)."""
    import shutil

    import tensorflow as tf

    from keras_disentangle import rundir
    from keras_disentangle.training import stage2

    logdir = tmp_path / "bg"
    shutil.copytree(stage2_runs["bg"], logdir)
    cfg = rundir.load_config(logdir)
    assert cfg.train.lr_halving_steps == 0
    with pytest.raises(rundir.RunDirectoryError, match=r"--lr_halving_steps=1: the checkpoints in .* were trained "
                                                       r"with 0"):
        stage2.train_stage2(configs.override(cfg, lr_halving_steps=1), factor="bg", data_dir=synthetic_records,
                            stage1_dir=stage1_run, logdir=str(logdir), strategy=tf.distribute.get_strategy(),
                            verbose=False)
    rundir.save_config(tmp_path / "halving", configs.override(cfg, lr_halving_steps=10))
    (tmp_path / "halving" / "checkpoints").mkdir()
    (tmp_path / "halving" / "checkpoints" / "ckpt-3.index").write_bytes(b"")
    rundir.save_config(tmp_path / "halving", configs.override(cfg, lr_halving_steps=20))
