"""bench.py: the analytic FLOP counter against hand counts, and every measurement at a very small scale.

The smoke tests check that each measurement runs and prints well-formed JSON lines; they assert no
speed (speed is what the benchmark itself reports).
"""

import json

import keras
import pytest
import tensorflow as tf

from keras_disentangle import configs
from keras_disentangle.tools import bench
from keras_disentangle.models.layers import RoiAlign

# The tiny preset made smaller still, so that every network traces in seconds.
CFG = configs.override(
    configs.get_config("synthetic", "tiny"), first_block_channels=8, encoder_channels=(8, 16), roi_size=8,
    roi_embedding_dim=4, bg_embedding_dim=8, generator_channels=(8, 16), d1_channels=(8, 16),
    pose_hidden_dim=16, pose_num_blocks=1, pose_embedding_dim=8,
    mapper_hidden_dims=(("fg", 16), ("bg", 16), ("pose", 16)), mapper_num_blocks=1, critic_hidden_dim=16,
    critic_num_layers=1, pose_batch_size=4, mapper_batch_size=4, critic_steps=2)
LABELS = {"dataset": "synthetic", "scale": "tiny"}


@pytest.fixture(scope="module")
def record_dir(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("bench-records"))
    bench.write_random_records(directory, CFG.data, num_records=16, num_shards=2)
    return directory


def _settings(record_dir, **fields):
    return bench.Settings(cfg=CFG, data_dir=record_dir, batch_size=2, warmup=0, windows=2, window_batches=1,
                          matmul_size=128, **fields)


def _conv_dense_model():
    inputs = keras.Input((8, 6, 3))
    x = keras.layers.Conv2D(4, 3, padding="same")(inputs)
    x = keras.layers.Flatten()(x)
    return keras.Model(inputs, keras.layers.Dense(5)(x))


CONV_FLOPS = 2 * (8 * 6) * (3 * 3) * 3 * 4  # 2 * H_out * W_out * k_h * k_w * C_in * C_out
DENSE_FLOPS = 2 * (8 * 6 * 4) * 5  # 2 * in * out


def test_graph_flops_forward_matches_hand_count():
    model = _conv_dense_model()
    flops = bench.graph_flops(lambda x: model(x, training=False), tf.zeros([2, 8, 6, 3]))
    assert flops == {"forward": 2 * (CONV_FLOPS + DENSE_FLOPS), "backward": 0}


def test_graph_flops_backward_counts_only_needed_gradients():
    """The first conv needs no input gradient: its backward is the filter gradient alone."""
    model = _conv_dense_model()
    optimizer = keras.optimizers.SGD(0.1)
    optimizer.build(model.trainable_variables)

    def step(x):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(model(x, training=True))
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
        return loss

    flops = bench.graph_flops(step, tf.zeros([1, 8, 6, 3]))
    assert flops == {"forward": CONV_FLOPS + DENSE_FLOPS, "backward": CONV_FLOPS + 2 * DENSE_FLOPS}


def test_graph_flops_counts_roi_align_einsums():
    layer = RoiAlign(5)
    flops = bench.graph_flops(layer, [tf.zeros([1, 16, 8, 4]), tf.zeros([1, 7, 4])])
    # Rows (b n i h, b h w c -> b n i w c), then columns (b n j w, b n i w c -> b n i j c).
    assert flops["forward"] == 2 * 7 * 5 * 16 * 8 * 4 + 2 * 7 * 5 * 8 * 5 * 4


def test_graph_flops_rejects_dynamic_shapes():
    with pytest.raises(ValueError, match="not static"):
        bench.graph_flops(tf.function(lambda x: tf.matmul(x, x, transpose_b=True),
                                      input_signature=[tf.TensorSpec([None, 3])]), tf.zeros([2, 3]))


@pytest.mark.slow  # a benchmark run (15-20 s here); make test-all runs it
def test_all_measurements_print_json_lines(record_dir, capsys):
    # steps_per_execution has its own test below (it trains two models).
    names = [name for name in bench.MEASUREMENTS if name != "steps_per_execution"]
    results = bench.run(names, _settings(record_dir), LABELS)
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert printed == results
    assert [r["what"] for r in results] == ["matmul", *[n for n in names if n != "input"], "input", "matmul"]
    for result in results:
        if result["what"] == "matmul":
            # float32 only was measured: no bf16 reference (it crashes under a non-bf16 oneDNN cap).
            assert result["float32_gflops_per_s"] > 0 and "bfloat16_gflops_per_s" not in result
            continue
        assert result["loadavg_1m"] >= 0 and result["peak_rss_mb"] > 0
        if result["what"] == "input":
            assert result["records_per_s"] > 0
            assert result["input_headroom"] == pytest.approx(
                result["records_per_s"] / result["train_step_consumes_per_s"], rel=0.01)
            continue
        assert result["examples_per_s"] > 0 and len(result["window_examples_per_s"]) == 2
        assert result["flops_per_example"] == (result["forward_flops_per_example"]
                                               + result["backward_flops_per_example"]) > 0
        assert result["gflops_per_s"] == pytest.approx(
            result["flops_per_example"] * result["examples_per_s"] / 1e9, rel=0.05, abs=0.1)
        assert result["matmul_ratio"] > 0 and "2 FLOPs per multiply-add" in result["flop_rule"]
        assert len(result["matmul_float32_gflops_per_s"]) == 2 and 0 < result["cpu_share"] <= 1.05
    by_name = {r["what"]: r for r in results}
    # The paper's loss adds D1's forward and backward to the L1-only step.
    assert by_name["train_step"]["flops_per_example"] > by_name["train_step_l1"]["flops_per_example"]
    assert by_name["forward"]["backward_flops_per_example"] == 0
    assert by_name["pose_step"]["batch_size"] == 4


@pytest.mark.slow  # a benchmark run (15-20 s here); make test-all runs it
@pytest.mark.bf16
def test_train_step_under_xla_and_bfloat16_with_memory_check(record_dir):
    """The real loop's step compiles with XLA although batches carry string fields."""
    settings = _settings(record_dir, memory_steps=12)
    results = bench.run(["train_step_l1"], settings, LABELS, precisions=("mixed_bfloat16",), xla=(True,))
    (result,) = [r for r in results if r["what"] == "train_step_l1"]
    assert result["xla"] is True and result["precision"] == "mixed_bfloat16"
    assert result["matmul_bfloat16_ratio"] > 0
    assert set(result["rss_mb_at_call"]) == {"10", "12"} and result["calls"] == 12


def test_run_rejects_unknown_names_and_precisions(record_dir):
    with pytest.raises(ValueError, match="unknown measurements"):
        bench.run(["nope"], _settings(record_dir), LABELS)
    with pytest.raises(ValueError, match="precision"):
        bench.run(["forward"], _settings(record_dir), LABELS, precisions=("float16",))


@pytest.mark.slow  # a benchmark run (15-20 s here); make test-all runs it
def test_steps_per_execution_measurement_gives_equal_losses(record_dir):
    """k = 10 steps per call and k = 1 reach the same losses after the same 20 steps."""
    (result,) = [r for r in bench.run(["steps_per_execution"], _settings(record_dir), LABELS)
                 if r["what"] == "steps_per_execution"]
    first, tenth = result["losses_after_20_steps_k1"], result["losses_after_20_steps_k10"]
    assert first.keys() == tenth.keys() == {"loss/g1/l1", "loss/g1/total"}
    assert result["max_loss_rel_diff"] < 1e-5, (first, tenth)
    assert result["examples_per_s_k1"] > 0 and result["examples_per_s_k10"] > 0
    assert result["examples_per_s"] == result["examples_per_s_k10"]


@pytest.mark.bf16  # it measures the bf16 matmul too
def test_matmul_reference_is_the_best_gemm_in_the_process():
    rates = bench.measure_matmul(128)
    assert rates["best_float32_gflops_per_s"] == max(rates["float32_gflops_per_s"], rates["numpy_sgemm_gflops_per_s"])
    assert rates["best_float32_gemm"] in ("numpy", "tensorflow")
