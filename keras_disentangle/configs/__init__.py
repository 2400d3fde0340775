"""Frozen configuration dataclasses and the named presets (dataset x scale).

This package is the only home of defaults: `fields` holds the dataclasses of a run, `choices` the
choices of their fields (`StrEnum` classes), `presets` the
named presets and their (de)serialisation, `tools` the defaults of the tools beside training
(evaluation, generation, the Virtual Market, the re-ID trainer). A preset is looked up with `get_config(dataset, scale)`
and fields are overridden with `override(cfg, **fields)` (train.py maps absl flags onto it).

Datasets:
  * `market`      Market-1501, 128x64, three factors (foreground, background, pose).
  * `deepfashion` DeepFashion In-shop, 256x256, two factors (appearance, pose): no background branch.
  * `synthetic`   the embedded procedural people (`tfrecords.synthetic`), laid out like Market-1501.

Scales:
  * `full` the paper's sizes (a GPU job).
  * `tiny` small images (64x32) and narrow channels so that a CPU trains it in minutes.
  * `micro` 32x16 images (DeepFashion 32x32) and narrower channels: several times cheaper per step
    than `tiny`, so that `make demo` and the learning test show disentanglement within
    minutes even on a CPU without bf16 units (docs/experiments/demo-cpu-kinds.md).
"""

from keras_disentangle.configs.choices import (
    Baseline,
    D1Loss,
    D1Normalization,
    Dataset,
    Factor,
    FgEncoderKind,
    Precision,
    Scale,
    Stage,
    Stage1Part,
    Stage2Rmsprop,
    Strategy,
    StrEnum,
    TrainedModel,
)
from keras_disentangle.configs.fields import (
    NUM_KEYPOINTS,
    NUM_ROIS,
    POSE_VECTOR_DIM,
    Config,
    DataConfig,
    ModelConfig,
    TrainConfig,
)
from keras_disentangle.configs.presets import (
    DATASETS,
    DEFAULT_DATASET,
    DEFAULT_SCALE,
    SCALES,
    from_json,
    get_config,
    override,
    stage2_train,
    to_json,
)
from keras_disentangle.configs.tools import (
    REID_PRESETS,
    EvalConfig,
    GenerateConfig,
    MaskFrom,
    Pairs,
    Protocol,
    ReidBackbone,
    ReidConfig,
    SamplePose,
    SsimProtocol,
    Task,
    VirtualMarketConfig,
    reid_config,
    reid_config_from_json,
    reid_config_to_json,
)
