"""mixed_bfloat16 training (the demo's `--precision`): a few tiny stage-I steps, finite and falling.

bf16 is ~12x slower than float32 on a CPU without bf16 units (AVX2 only), so the run is budgeted
in steps: 6 steps of batch 2.
"""

import numpy as np


def test_mixed_bfloat16_stage1_steps_are_finite_and_fall(mixed_bfloat16, synthetic_records):
    import keras
    import tensorflow as tf

    from keras_disentangle import configs, data
    from keras_disentangle.models.stage1 import build_stage1
    from keras_disentangle.training import stage1 as stage1_training
    from keras_disentangle.training import steps

    cfg = configs.override(configs.get_config("synthetic", "tiny"), batch_size=2, adversarial_weight=0.0,
                           learning_rate=1e-3)
    keras.utils.set_random_seed(0)
    batch = next(iter(data.eval_dataset(synthetic_records, cfg, split="train", batch_size=2)))
    stage1 = build_stage1(cfg)
    # The run is really in bf16: the generator computes in bfloat16 and emits float32 images.
    assert stage1.generator.compute_dtype == "bfloat16"
    assert any(layer.compute_dtype == "bfloat16" for layer in stage1.generator.layers)
    assert all(v.dtype == "float32" for v in stage1.generator.trainable_variables)
    optimizers = stage1_training.build_optimizers(cfg.train)
    step = tf.function(steps.appearance_step(stage1, optimizers["g1"], optimizers["d1"], cfg.train, 2))
    l1 = [float(step(batch)["loss/g1/l1"]) for _ in range(6)]
    assert np.all(np.isfinite(l1)), l1
    assert l1[-1] < 0.6 * l1[0], l1
