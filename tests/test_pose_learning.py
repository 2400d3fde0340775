"""The pose auto-encoder learns: held-out pose L2 falls, and decoded poses look like bodies.

Poses come straight from the synthetic generator (`synthetic.sample_pose` + `annotate`), so the
test needs no image: 1,024 training poses and 256 held-out ones, in the tiny preset's image size.
"""

import types

import numpy as np
import pytest


@pytest.fixture(scope="module")
def poses():
    from keras_disentangle import configs, synthetic

    cfg = configs.get_config("synthetic", "tiny")
    rng = np.random.default_rng(0)
    keypoints = np.stack([synthetic.annotate(synthetic.sample_pose(rng), cfg.data.height, cfg.data.width)
                          for _ in range(1280)])
    return cfg, keypoints[:1024], keypoints[1024:]


def test_pose_autoencoder_learns_and_decodes_valid_poses(poses):
    import keras
    import tensorflow as tf

    from keras_disentangle import losses
    from keras_disentangle.data import geometry
    from keras_disentangle.metrics import sampling
    from keras_disentangle.models.pose_autoencoder import build_pose_decoder, build_pose_encoder
    from keras_disentangle.training import steps

    cfg, train, held_out = poses
    height, width = cfg.data.height, cfg.data.width
    keras.utils.set_random_seed(0)
    # `pose_step` reads only these two networks of the stage-I bundle.
    stage1 = types.SimpleNamespace(pose_encoder=build_pose_encoder(cfg), pose_decoder=build_pose_decoder(cfg))
    batch = cfg.train.pose_batch_size
    step = steps.pose_step(stage1, keras.optimizers.Adam(cfg.train.pose_learning_rate), batch)
    missing = cfg.data.pose_missing_coordinate
    train_vectors = geometry.pose_vector(train, height, width, missing)
    held_out_vectors = geometry.pose_vector(held_out, height, width, missing)

    @tf.function
    def run(count):
        for index in tf.range(count):
            start = (index * batch) % (len(train) - batch)
            step({"pose_vector": train_vectors[start:start + batch]})

    def decode(embedding):
        vector = stage1.pose_decoder(embedding, training=False)
        return geometry.keypoints_from_pose_vector(vector, height, width).numpy()

    def held_out_l2():
        decoded = stage1.pose_decoder(stage1.pose_encoder(held_out_vectors, training=False), training=False)
        return float(np.mean(losses.pose_reconstruction_loss(held_out_vectors, decoded)))

    before = held_out_l2()
    run(tf.constant(200))
    after = held_out_l2()
    assert after * 2 <= before, (before, after)

    reference = sampling.pose_range(train)
    autoencoded = sampling.pose_validity(decode(stage1.pose_encoder(held_out_vectors, training=False)), reference)
    unit = tf.random.stateless_normal([len(held_out), cfg.model.pose_embedding_dim], seed=[0, 1])
    from_noise = sampling.pose_validity(decode(unit), reference)
    assert autoencoded >= from_noise + 0.2, (autoencoded, from_noise)
    print(f"held-out L2 {before:.3f} -> {after:.3f}; validity autoencoded {autoencoded:.2f}, N(0, I) {from_noise:.2f}")
