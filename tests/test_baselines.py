"""The sampling baselines of Fig. 7 (VAE, DCGAN) and the sampling variants `evaluate.py --task=sample` scores."""

import os

import numpy as np
import pytest

from keras_disentangle import configs
from keras_disentangle.metrics import registry


def _micro(**fields):
    return configs.override(configs.get_config("synthetic", "micro"), **fields)


def _train(model, data_dir, logdir, **fields):
    import tensorflow as tf

    from keras_disentangle.training import baselines

    cfg = _micro(**{"batch_size": 4, "log_every": 1, "image_every": 2, "checkpoint_every": 1000, **fields})
    return baselines.train_baseline(cfg, model=model, data_dir=data_dir, logdir=str(logdir),
                                    strategy=tf.distribute.get_strategy(), verbose=False)


# --- Networks --------------------------------------------------------------------------------

@pytest.mark.parametrize("dataset, scale", [("synthetic", "micro"), ("market", "full"), ("deepfashion", "tiny")])
def test_generator_mirrors_d1_and_the_dcgan_discriminator_is_d1(dataset, scale):
    import keras

    from keras_disentangle.models import baselines, discriminators

    cfg = configs.get_config(dataset, scale)
    vae, dcgan = baselines.build_baseline(cfg, "vae"), baselines.build_baseline(cfg, "dcgan")
    code = np.zeros((2, cfg.model.baseline_latent_dim), np.float32)
    assert dcgan["dcgan_generator"](code).shape == (2, cfg.data.height, cfg.data.width, 3)
    posterior = vae["vae_encoder"](np.zeros((2, cfg.data.height, cfg.data.width, 3), np.float32))
    assert posterior["mean"].shape == posterior["log_variance"].shape == (2, cfg.model.baseline_latent_dim)
    # The same factory, not a copy: D1's layers are the DCGAN discriminator's and the VAE encoder's trunk.
    d1 = discriminators.build_d1(cfg)
    shapes = lambda model: {w.path: tuple(w.shape) for w in model.weights  # noqa: E731
                            if not w.path.startswith(("mean/", "log_variance/", "logit/"))}
    assert shapes(dcgan["d1"]) == shapes(d1) == shapes(vae["vae_encoder"])
    assert len(shapes(d1)) == 5 * len(cfg.model.d1_channels) - 3  # conv0 kernel + bias; then kernel + 4 BN each
    keras.backend.clear_session()


def test_an_image_size_the_generator_cannot_reach_is_refused():
    from keras_disentangle.models import baselines

    cfg = configs.override(configs.get_config("synthetic", "micro"), height=36)
    with pytest.raises(ValueError, match="multiple of 8"):
        baselines.build_image_generator(cfg, "vae_decoder")


# --- Training --------------------------------------------------------------------------------

@pytest.mark.parametrize("model", ["vae", "dcgan"])
def test_a_few_steps_train_checkpoint_and_restore(model, synthetic_records, tmp_path):
    import tensorflow as tf

    from keras_disentangle import rundir
    from keras_disentangle.serving import runtime
    from keras_disentangle.models.baselines import SAMPLER
    from keras_disentangle.training import baselines

    networks, logs = _train(model, synthetic_records, tmp_path, steps=3)
    assert logs and all(np.isfinite(v) for v in logs.values()), logs
    assert rundir.read_baseline_record(tmp_path).value == model
    assert os.listdir(rundir.summary_dir(tmp_path))
    # Every weight and optimizer slot comes back into a fresh state ...
    cfg = rundir.load_config(tmp_path)
    fresh, optimizers, keeper = baselines.training_state(cfg, configs.Baseline(model), str(tmp_path),
                                                         tf.distribute.get_strategy())
    assert keeper.restore_latest() == 3
    for name, network in networks.items():
        for trained, restored in zip(network.weights, fresh[name].weights):
            np.testing.assert_array_equal(trained.numpy(), restored.numpy())
    assert all(int(o.iterations.numpy()) == 3 for o in optimizers.values())
    # ... and the runtime samples with the trained generator, reproducibly by seed.
    served = runtime.load_baseline(str(tmp_path))
    code = runtime.sample_noise(2, cfg.model.baseline_latent_dim, 1.0, 7)
    np.testing.assert_allclose(served.sample(2, 7)["image"], networks[SAMPLER[served.model]](code), atol=1e-6)
    # Rerunning continues from the checkpoint.
    _, logs = _train(model, synthetic_records, tmp_path, steps=4)
    assert logs and int(tf.train.load_variable(rundir.checkpoint_dir(tmp_path) + "/ckpt-4",
                                               "step/.ATTRIBUTES/VARIABLE_VALUE")) == 4


def test_a_run_directory_of_another_model_is_refused(synthetic_records, tmp_path):
    from keras_disentangle import rundir

    _train("vae", synthetic_records, tmp_path, steps=1)
    with pytest.raises(rundir.RunDirectoryError, match="another model"):
        _train("dcgan", synthetic_records, tmp_path, steps=1)


def test_vae_reconstruction_error_falls_at_least_twofold_in_300_steps(synthetic_records, tmp_path):
    """Learning, not just running: the decoded posterior mean of training images gets twice as close."""
    from keras_disentangle import data, losses

    images = data.load_examples(synthetic_records, _micro(), split="train", limit=16)["image"]

    def error(networks):
        # Batch statistics, as the loss is computed in training (300 steps leave BN's moving averages behind).
        decoded = networks["vae_decoder"](networks["vae_encoder"](images, training=True)["mean"], training=True)
        return float(np.mean(losses.squared_error_sum(images, decoded)))

    from keras_disentangle.training import baselines

    initial = error(baselines.build_baseline(_micro(), "vae"))
    networks, _ = _train("vae", synthetic_records, tmp_path, steps=300, batch_size=8, log_every=100,
                         image_every=1000)
    trained = error(networks)
    assert trained * 2 <= initial, (initial, trained)


# --- The sampling variants of evaluate.py ------------------------------------------------------

def _options(**fields):
    return registry.EvalOptions(metrics=("sample_check",), task="sample", n=12, batch_size=5, **fields)


def test_sampling_variants_return_their_images_poses_and_checks(stage2_runs, synthetic_records, tmp_path):
    """On untrained models: the real-pose variant draws valid (training) poses, the sampled one does not."""
    from keras_disentangle.serving import runtime
    from keras_disentangle.metrics import report
    from keras_disentangle.metrics.suite import sample_check

    models = runtime.load_stage2(list(stage2_runs.values()))
    _train("dcgan", synthetic_records, tmp_path, steps=1)
    baseline = runtime.load_baseline(str(tmp_path))
    results = {}
    for variant, serving, fields in (("all", models, {}), ("real_pose", models, {"sample_pose": "real"}),
                                     ("dcgan", baseline, {})):
        options = _options(**fields)
        images = report.sample_images(serving, options, synthetic_records)
        assert images.generated.shape == (12, serving.cfg.data.height, serving.cfg.data.width, 3)
        assert images.generated.dtype == np.uint8
        results[variant] = sample_check.compute(registry.Inputs(options, images=images, cfg=serving.cfg,
                                                                data_dir=synthetic_records))
        assert {"pose_validity", "identity", "protocol"} <= set(results[variant])
        assert set(results[variant]["identity"]) == {"share", "new_people_share", "shuffled_share",
                                                     "training_photos"}
    # Real training poses lie in the training range by construction; an untrained pose mapper's do not.
    assert results["real_pose"]["pose_validity"] == 1.0
    assert results["all"]["pose_validity"] < results["real_pose"]["pose_validity"]
    assert results["dcgan"]["pose_validity"] is None
    identity = results["real_pose"]["identity"]
    # The check tells real people from the same pixels shuffled.
    assert identity["new_people_share"] > identity["shuffled_share"]


def test_identity_check_passes_real_people_and_fails_noise(synthetic_records, rng):
    """Training photos are their own nearest neighbours; uniform noise is nearer to shuffled bodies."""
    from keras_disentangle import data
    from keras_disentangle.metrics import sampling
    from keras_disentangle.data.visualize import to_uint8

    cfg = _micro()
    train = data.load_examples(synthetic_records, cfg, split="train")
    test = data.load_examples(synthetic_records, cfg, split="test")
    people = sampling.identity_check(to_uint8(train["image"]), train, test, cfg.data)
    noise = sampling.identity_check(rng.integers(0, 256, (20, 32, 16, 3), dtype=np.uint8), train, test, cfg.data)
    assert people["share"] >= 0.9 and noise["share"] <= 0.1, (people, noise)


@pytest.mark.parametrize("fields, message", [
    ({"sample_pose": "real"}, "--sample_pose=real"),
    ({"task": "transfer", "metrics": ("ssim",)}, "--baseline_dir"),
    ({"metrics": ("sampling",)}, "need the disentangled model"),
])
def test_baseline_options_are_checked(fields, message):
    options = registry.EvalOptions(**{"metrics": ("fid",), "task": "sample", **fields})
    with pytest.raises(ValueError, match=message):
        options.validate(folders=False, stage2=False, baseline=True)


@pytest.mark.parametrize("args, message", [
    (["train.py", "--stage=baseline", "--data_dir=x", "--logdir=y"], "--model is required with --stage=baseline"),
    (["train.py", "--stage=1", "--model=vae", "--data_dir=x", "--logdir=y"], "--model=vae does not go with"),
    (["evaluate.py", "--baseline_dir=x", "--stage1_dir=y", "--data_dir=z", "--task=sample"], "not both"),
])
def test_bad_baseline_command_lines_exit_2_with_one_line(args, message, capsys):
    from test_cli import run_tool

    # In this process through the tool's own cli.run (tests/test_cli.py): no interpreter start-up per case.
    code, _, lines = run_tool(args[0], args[1:], capsys)
    errors = [line for line in lines if ": error: " in line]
    assert code == 2 and len(errors) == 1 and message in errors[0], lines
