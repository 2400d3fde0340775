"""Every training step under a LossScaleOptimizer, the optimizer `--precision=mixed_float16` gives each
network (`precision.loss_scaled`): the gradients come from the scaled loss, so the scaling must be an op
the step's tape records. In float32 the scale (a power of two) is exact, so the wrapped optimizer must
make the update its inner optimizer makes; a step that scales outside its tape gets no gradients at all.

mixed_float16 itself needs a GPU (`precision` refuses it on a CPU), so the policy stays float32 here:
what is checked is the steps' use of the optimizer, which is the same under either policy. Plain SGD,
whose update is proportional to the gradient, so that a gradient left scaled would show too."""

import numpy as np
import pytest

BATCH = 2


def _micro(**fields):
    from keras_disentangle import configs

    return configs.override(configs.get_config("synthetic", "micro"), batch_size=BATCH, **fields)


def _sgd(wrapped: bool):
    import keras

    optimizer = keras.optimizers.SGD(0.1)
    return keras.optimizers.LossScaleOptimizer(optimizer) if wrapped else optimizer


def _appearance_and_pose(wrapped, batch):
    from keras_disentangle.models.stage1 import build_stage1
    from keras_disentangle.training import steps

    # D1 on, from the first step, twice per step: every update of the appearance step runs.
    cfg = _micro(adversarial_weight=1.0, adversarial_start_step=0, d1_steps=2)
    stage1 = build_stage1(cfg)
    optimizers = {"g1": _sgd(wrapped), "d1": _sgd(wrapped), "pose": _sgd(wrapped)}
    step = steps.stage1_step(steps.Stage1Part.BOTH, stage1, optimizers, cfg.train, BATCH)
    return [stage1.appearance_encoder, stage1.generator, stage1.d1, stage1.pose_encoder, stage1.pose_decoder], \
        lambda: step({"appearance": batch, "pose": {"pose_vector": batch["pose_vector"]}})


def _baseline(model, wrapped, batch):
    from keras_disentangle import configs
    from keras_disentangle.models.baselines import build_baseline
    from keras_disentangle.training import baselines

    cfg = _micro()
    networks = build_baseline(cfg, model)
    if model == configs.Baseline.VAE:
        step = baselines.vae_step(networks, _sgd(wrapped), cfg.train, BATCH)
    else:
        step = baselines.dcgan_step(networks, _sgd(wrapped), _sgd(wrapped), cfg.model.baseline_latent_dim, BATCH)
    return list(networks.values()), lambda: step({"image": batch["image"]})


def _mapper(wrapped, batch, gradient_penalty_weight):
    import tensorflow as tf

    from keras_disentangle.models.discriminators import build_critic
    from keras_disentangle.models.mapper import build_mapper
    from keras_disentangle.training.stage2 import mapper_step

    cfg = _micro(critic_steps=2, gradient_penalty_weight=gradient_penalty_weight)
    mapper, critic = build_mapper(cfg, "bg"), build_critic(cfg, "bg")
    step = mapper_step(mapper, critic, _sgd(wrapped), _sgd(wrapped), cfg.train, mapper.input_shape[-1], BATCH)
    real = tf.random.stateless_normal([2 * BATCH, critic.input_shape[-1]], seed=[1, 2])
    return [mapper, critic], lambda: step({"real": real})


STEPS = {"stage1_both": _appearance_and_pose,
         "vae": lambda wrapped, batch: _baseline("vae", wrapped, batch),
         "dcgan": lambda wrapped, batch: _baseline("dcgan", wrapped, batch),
         # The two critic losses: weight clipping, and the gradient penalty (a gradient inside the tape).
         "mapper_clipped": lambda wrapped, batch: _mapper(wrapped, batch, 0.0),
         "mapper_penalty": lambda wrapped, batch: _mapper(wrapped, batch, 10.0)}


def _after_one_step(kind, wrapped, batch):
    import keras

    keras.utils.set_random_seed(0)  # the same networks and the same noise draws in both runs
    networks, run = STEPS[kind](wrapped, batch)
    before = [v.numpy().copy() for network in networks for v in network.trainable_variables]
    run()
    after = [v.numpy() for network in networks for v in network.trainable_variables]
    return before, after


@pytest.mark.parametrize("kind", sorted(STEPS))
def test_a_loss_scale_optimizer_makes_its_inner_optimizers_update(kind, synthetic_records):
    from keras_disentangle import data

    batch = next(iter(data.eval_dataset(synthetic_records, _micro(), split="train", batch_size=BATCH)))
    before, plain = _after_one_step(kind, False, batch)
    _, scaled = _after_one_step(kind, True, batch)
    moved = [not np.array_equal(b, p) for b, p in zip(before, plain)]
    assert sum(moved) > len(moved) // 2, "the plain step moved few weights: the check would be empty"
    for b, p, s in zip(before, plain, scaled):
        np.testing.assert_allclose(s - b, p - b, rtol=1e-4, atol=1e-7)
