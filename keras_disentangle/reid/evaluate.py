"""`python -m keras_disentangle.reid.evaluate`: a re-ID run under Market's protocol, with and without KISSME.

    python -m keras_disentangle.reid.evaluate --logdir=RUN --data_dir=RECORDS [--fit_dir=RECORDS] \
        [--pca_dims=N] [--out=DIR]

The `query` records of `--data_dir` rank its `test` records (the gallery) by the network's feature
(`metrics.reid.evaluate`, the same protocol and code as `evaluate.py --metrics=reid`), then by the
KISSME distance (`metrics.kissme.learned_distances`: L2-normalised, PCA to `--pca_dims`, KISSME)
fitted on the features of the `train` split of `--fit_dir`. The default `--fit_dir` is the run's own
training records (`commands.json`), so a model trained on a Virtual Market learns its metric on
generated people too, never on a real label. `--out` also writes the scores to `DIR/reid_report.json`.
"""

from __future__ import annotations

import json
import pathlib
from typing import Sequence

import numpy as np
from absl import flags

from keras_disentangle import cli, rundir
from keras_disentangle.metrics import kissme, reid
from keras_disentangle.reid import images
from keras_disentangle.reid.model import build_reid_model
from keras_disentangle.reid.train import read_run

REPORT_FILE = "reid_report.json"


def load(logdir: str):
    """The run's config, its network with its newest weights, and the checkpoint read.

    Raises:
      rundir.RunDirectoryError: if `logdir` is not a re-ID run with a checkpoint.
    """
    cfg, num_classes = read_run(logdir)
    model = build_reid_model(cfg, num_classes)
    return cfg, model, rundir.restore_weights(logdir, model=model)


def features(model, split: dict, batch_size: int = 256) -> np.ndarray:
    return np.concatenate([np.asarray(model(split["image"][i:i + batch_size], training=False)["features"])
                           for i in range(0, len(split["image"]), batch_size)])


def training_data_dir(logdir: str) -> str:
    """The `--data_dir` of the run's newest training command.

    Raises:
      rundir.RunDirectoryError: if the run has no commands.json naming one.
    """
    path = pathlib.Path(logdir) / rundir.COMMANDS_FILE
    entries = json.loads(path.read_text()) if path.exists() else []
    if not entries or not entries[-1]["flags"].get("data_dir"):
        raise rundir.RunDirectoryError(f"{path}: no training command naming its --data_dir; pass --fit_dir.")
    return entries[-1]["flags"]["data_dir"]


def evaluate(logdir: str, data_dir: str, fit_dir: str | None = None, pca_dims: int | None = None) -> dict:
    """{"euclidean": reid scores, "kissme": reid scores, ...} of a re-ID run (module docstring); `pca_dims`
    None takes the run's `kissme_pca_dims`."""
    cfg, model, checkpoint = load(logdir)
    pca_dims = pca_dims or cfg.kissme_pca_dims
    fit_dir = fit_dir or training_data_dir(logdir)
    sets = {name: images.load_split(directory, split, cfg.height, cfg.width)
            for name, directory, split in (("query", data_dir, "query"), ("gallery", data_dir, "test"),
                                           ("fit", fit_dir, "train"))}
    feats = {name: features(model, split) for name, split in sets.items()}
    labels = [(sets[s]["person_id"], sets[s]["camera"]) for s in ("query", "gallery")]
    euclidean = reid.evaluate(feats["query"], *labels[0], feats["gallery"], *labels[1])
    distances, dims = kissme.learned_distances(feats["fit"], sets["fit"]["person_id"], feats["query"],
                                               feats["gallery"], pca_dims)
    learned = reid.evaluate(feats["query"], *labels[0], feats["gallery"], *labels[1], distances=distances)
    return {"euclidean": euclidean, "kissme": {**learned, "pca_dims": dims}, "feature_dim": cfg.feature_dim,
            "backbone": cfg.backbone.value, "checkpoint": checkpoint, "fit_dir": str(fit_dir),
            "data_dir": str(data_dir)}


FLAGS = flags.FLAGS


def define_flags() -> None:
    cli.define_shared("logdir", note="A re-ID run's (`keras_disentangle.reid.train`).", required=True)
    cli.define_shared("data_dir", note="With the query and test (gallery) splits.", required=True)
    flags.DEFINE_string("fit_dir", None, "TFRecords whose train split fits PCA + KISSME (default: the run's own).")
    flags.DEFINE_integer("pca_dims", None, "PCA dimensions before KISSME (default: the run's kissme_pca_dims).",
                         lower_bound=1)
    cli.define_shared("out", note=f"Also write the scores to OUT/{REPORT_FILE}.")


def main(argv: Sequence[str]) -> None:
    cli.no_positional(argv)
    result = evaluate(FLAGS.logdir, FLAGS.data_dir, FLAGS.fit_dir, FLAGS.pca_dims)
    print(f"{result['checkpoint']}; KISSME fitted on the train split of {result['fit_dir']}")
    print(f"{'distance':<22}{'rank-1':>8}{'rank-5':>8}{'rank-10':>8}{'mAP':>8}  ({result['euclidean']['queries']} "
          f"queries, gallery {result['euclidean']['gallery']})")
    for name, label in (("euclidean", f"feature ({result['feature_dim']})"),
                        ("kissme", f"KISSME (PCA {result['kissme']['pca_dims']})")):
        scores = result[name]
        print(f"{label:<22}" + "".join(f"{scores[k]:>8.3f}" for k in ("rank1", "rank5", "rank10", "mAP")))
    if FLAGS.out:
        pathlib.Path(FLAGS.out).mkdir(parents=True, exist_ok=True)
        (pathlib.Path(FLAGS.out) / REPORT_FILE).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    cli.run(main, define_flags)
