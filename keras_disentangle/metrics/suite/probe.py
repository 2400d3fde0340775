"""probe: linear probes for identity, camera and background from each stage-I embedding (`metrics.probe`).

Re-ID as a disentanglement measurement: a factor's code should carry its own factor and nothing else.
For the FG, BG and pose codes of the stage-I encoders:

* identity: fitted on the `test` split (the gallery), scored on the `query` split: the same people,
  other images (the train split's people are others);
* camera, and background (the synthetic set's scene id, `bg_id`, when the records have one): fitted
  on the `train` split, scored on the `test` split (the same cameras and scenes, other people).
"""

from __future__ import annotations

from keras_disentangle.metrics.metric import Inputs, Metric, Needs

SPLITS = ("train", "test", "query")
# Target: (label field, the split the probe is fitted on, the split it is scored on).
TARGETS = {"identity": ("person_id", "test", "query"), "camera": ("camera", "train", "test"),
           "background": ("bg_id", "train", "test")}


def compute(inputs: Inputs) -> dict:
    import numpy as np  # noqa: PLC0415

    from keras_disentangle import data  # noqa: PLC0415
    from keras_disentangle.metrics import probe  # noqa: PLC0415
    from keras_disentangle.serving.runtime import Stage1Serving, encode_factor  # noqa: PLC0415

    factors = Stage1Serving(inputs.cfg, inputs.stage1).factors
    for split in SPLITS:
        try:
            data.shard_files(inputs.data_dir, split)
        except ValueError:
            raise ValueError(f"--data_dir={inputs.data_dir}: no '{split}' records; the probes need the train, test "
                             "and query splits of a Market layout (docs/data.md, Converters).") from None
    sets = {}
    for split in SPLITS:
        chunks = {}
        for batch in data.eval_dataset(inputs.data_dir, inputs.cfg, split=split,
                                       batch_size=inputs.options.batch_size):
            for factor in factors:
                chunks.setdefault(factor.value, []).append(np.asarray(encode_factor(inputs.stage1, batch, factor)))
            for field, _, _ in TARGETS.values():
                chunks.setdefault(field, []).append(batch[field].numpy())
        sets[split] = {key: np.concatenate(value) for key, value in chunks.items()}
    scores = {}
    for target, (field, fit_split, test_split) in TARGETS.items():
        fit_labels, test_labels = sets[fit_split][field], sets[test_split][field]
        # Unlabelled (-1), junk and distractor (0) images have no class to predict.
        fit_keep, test_keep = fit_labels > 0, test_labels > 0
        if len(np.unique(fit_labels[fit_keep])) < 2 or not test_keep.any():
            continue
        scores[target] = {factor.value: probe.score(sets[fit_split][factor.value][fit_keep], fit_labels[fit_keep],
                                                    sets[test_split][factor.value][test_keep],
                                                    test_labels[test_keep])
                          for factor in factors}
    if "identity" not in scores:
        raise ValueError(f"--data_dir={inputs.data_dir}: no identity labels to probe in the test and query splits.")
    protocol = ("multinomial logistic regression (L-BFGS, L2 1e-3, standardised features) per embedding; "
                + "; ".join(f"{t}: fitted on '{TARGETS[t][1]}', scored on '{TARGETS[t][2]}'" for t in scores)
                + "; chance = the most frequent training label's share of the scored set")
    return {"probes": scores, "value": scores["identity"]["fg"]["accuracy"], "std": None,
            "n": scores["identity"]["fg"]["test"], "protocol": protocol}


def table(result: dict) -> list[str]:
    from keras_disentangle.metrics.report import number  # noqa: PLC0415

    probes = result["probes"]
    factors = list(next(iter(probes.values())))
    lines = ["\nprobe: linear-probe accuracy (chance in brackets)", f"{'target':<12}" + "".join(
        f"{f:>16}" for f in factors)]
    for target, by_factor in probes.items():
        lines.append(f"{target:<12}" + "".join(
            f"{number(s['accuracy']) + ' (' + number(s['chance']) + ')':>16}" for s in by_factor.values()))
    return lines


METRIC = Metric(
    name="probe", help="linear probes for identity / camera / background from the FG, BG and pose embeddings",
    needs=(Needs.STAGE1,), compute=compute, table=table)
