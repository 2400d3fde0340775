"""The one training runner (`training/runner.py`): one `loop.run` call site, and the chief's run files
written in each job's order before anything is built."""

import ast
import json
import pathlib

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def _loop_run_calls(path: pathlib.Path) -> int:
    return sum(isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "run"
               and isinstance(node.func.value, ast.Name) and node.func.value.id == "loop"
               for node in ast.walk(ast.parse(path.read_text())))


def test_every_trainer_trains_through_the_one_loop_run_call_in_the_runner():
    sources = [REPO_ROOT / "train.py", *sorted((REPO_ROOT / "keras_disentangle").rglob("*.py"))]
    calls = {str(path.relative_to(REPO_ROOT)): n for path in sources if (n := _loop_run_calls(path))}
    assert calls == {"keras_disentangle/training/runner.py": 1}


def test_the_chief_writes_the_records_in_order_and_the_command_before_the_job_is_built(tmp_path):
    import tensorflow as tf

    from keras_disentangle import configs
    from keras_disentangle.training import runner

    written = []

    def build(strategy):
        written.append("build")
        raise RuntimeError("stop after the records")

    job = runner.Job(str(tmp_path), configs.get_config("synthetic", "micro").train,
                     records=(lambda logdir: written.append(("first", logdir)), lambda logdir: written.append("second")),
                     build=build)
    with pytest.raises(RuntimeError, match="stop after the records"):
        runner.train(job, runner.Options(tf.distribute.get_strategy(), command=(["train.py", "--x=1"], {"x": 1})))
    assert written == [("first", str(tmp_path)), "second", "build"]
    assert [entry["flags"] for entry in json.loads((tmp_path / "commands.json").read_text())] == [{"x": 1}]


def test_a_baseline_refuses_a_stage1_run_directory_before_touching_its_config(tmp_path):
    """baseline.json is checked before config.json is written: the stage-I run's config stays as it was."""
    import tensorflow as tf

    from keras_disentangle import configs, rundir
    from keras_disentangle.training import baselines

    stage1_cfg = configs.get_config("synthetic", "micro")
    rundir.save_config(tmp_path, stage1_cfg)
    (tmp_path / "checkpoints").mkdir()
    before = (tmp_path / "config.json").read_text()
    with pytest.raises(rundir.RunDirectoryError, match="not a vae baseline"):
        baselines.train_baseline(configs.override(stage1_cfg, steps=1), model="vae", data_dir="unused",
                                 logdir=str(tmp_path), strategy=tf.distribute.get_strategy())
    assert (tmp_path / "config.json").read_text() == before
