"""sample_check: do sampled images look like people? The checks the paper's sampling variants (Fig. 7)
are compared by besides FID and IS.

* `pose_validity` of the poses the images were drawn in (`metrics.sampling.pose_validity`: limb lengths
  and joint angles inside the training poses' ranges): sampled poses, or real training poses (1.0 by
  construction); a VAE / DCGAN draws no pose, so it has none.
* on the synthetic people, `identity`: the share of samples whose foreground is closer to a real training
  person than to chance (the same photos with the body's pixels shuffled), beside real new people
  and shuffled ones for scale (`metrics.sampling.identity_check`).
"""

from __future__ import annotations

from keras_disentangle import configs
from keras_disentangle.metrics.metric import Inputs, Metric, Needs, Options, json_table


def check(options: Options) -> None:
    if options.task != configs.Task.SAMPLE:
        raise ValueError("--metrics=sample_check scores sampled images: use it with --task=sample.")
    if options.n < 2:
        raise ValueError(f"--n={options.n}: sample_check needs at least 2 images.")


def compute(inputs: Inputs) -> dict:
    from keras_disentangle import data  # noqa: PLC0415
    from keras_disentangle.metrics import sampling  # noqa: PLC0415

    options, cfg, images = inputs.options, inputs.cfg, inputs.images
    train = data.load_examples(inputs.data_dir, cfg, split="train")
    reference = sampling.pose_range(train["keypoints"])
    result = {"value": None, "n": int(len(images.generated)), "sampled": images.description,
              "pose_validity": (None if images.keypoints is None
                                else sampling.pose_validity(images.keypoints, reference))}
    protocol = ("pose_validity: share of the drawn poses with joint count, limb lengths and joint angles inside "
                "the train split's ranges (None: the images were drawn without a pose)")
    if cfg.data.name == configs.Dataset.SYNTHETIC:
        test = data.load_examples(inputs.data_dir, cfg, split=options.split, limit=options.n)
        result["identity"] = sampling.identity_check(images.generated, train, test, cfg.data,
                                                     seed=options.seed)
        protocol += ("; identity: share of samples whose body region (fixed: where half the training poses have "
                     "the body; 2x2-pixel cells at 32x16) is nearer to a training photo than to any of those photos "
                     "with the region's pixels shuffled (1-NN, person vs chance); new_people_share (real test people, "
                     "unseen identities) and shuffled_share (their region shuffled) for scale")
    return {**result, "protocol": protocol}


METRIC = Metric(
    name="sample_check", help="--task=sample: pose validity of the drawn poses; on synthetic data the share of "
    "samples whose FG is closer to a training identity than chance", needs=(Needs.IMAGES,), compute=compute,
    check=check, table=json_table("sample_check ({n} samples)"))
