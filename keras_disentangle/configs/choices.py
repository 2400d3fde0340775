"""The choices of config fields and of their flags: `StrEnum` classes (and the initializer and optimizer
names still spelled as strings), and how a config turns a plain string into a member."""

from __future__ import annotations

import dataclasses
import enum
import functools
import typing


class StrEnum(str, enum.Enum):
    """A choice of a config field and of its flag (`cli.define_enum`): Python 3.10 has no `enum.StrEnum`.

    A member equals, hashes, formats, prints and serializes (json) as its value, so code and messages
    written for the plain strings of earlier versions keep working, and a config.json holds the value.
    """

    def __str__(self) -> str:
        return self.value

    def __repr__(self) -> str:
        return repr(self.value)

    __format__ = str.__format__
    __hash__ = str.__hash__


def coerce_choices(config) -> None:
    """Turns the plain strings in `config`'s StrEnum-typed fields into members (a config.json, `override`,
    a preset written with strings); call it from a frozen dataclass's `__post_init__`.

    Raises:
      ValueError: for a string that is no member's value, naming the field and the accepted values.
    """
    for name, kind in _choice_fields(type(config)).items():
        value = getattr(config, name)
        if value is not None and not isinstance(value, kind):
            if value not in {member.value for member in kind}:
                raise ValueError(f"{name}={value!r}; expected one of {', '.join(m.value for m in kind)}.")
            object.__setattr__(config, name, kind(value))


@functools.cache
def _choice_fields(cls: type) -> dict[str, type]:
    hints = typing.get_type_hints(cls)
    return {field.name: hints[field.name] for field in dataclasses.fields(cls)
            if isinstance(hints[field.name], type) and issubclass(hints[field.name], StrEnum)}


class Dataset(StrEnum):
    MARKET = "market"
    DEEPFASHION = "deepfashion"
    SYNTHETIC = "synthetic"


class Scale(StrEnum):
    FULL = "full"
    TINY = "tiny"
    MICRO = "micro"


class Precision(StrEnum):
    """Keras dtype policies (`keras_disentangle.precision`); `auto` is resolved per machine."""

    AUTO = "auto"
    FLOAT32 = "float32"
    MIXED_BFLOAT16 = "mixed_bfloat16"
    MIXED_FLOAT16 = "mixed_float16"


class D1Normalization(StrEnum):
    """D1's normalization (`ModelConfig.d1_normalization`); BATCH is the paper's."""

    BATCH = "batch"
    NONE = "none"
    SPECTRAL = "spectral"


class D1Loss(StrEnum):
    """D1's loss (`TrainConfig.d1_loss`); BCE is the paper's."""

    BCE = "bce"
    HINGE = "hinge"


class FgEncoderKind(StrEnum):
    """How the foreground branch reads the masked feature map (paper Sec. 3.1)."""

    BODY_ROI7 = "roi7"  # 7 body ROIs cropped and resized, one shared encoder, 7 x D concatenated.
    WHOLE_BODY = "whole"  # the whole masked feature map encoded at once (the paper's ablation).


class Factor(StrEnum):
    FOREGROUND = "fg"
    BACKGROUND = "bg"
    POSE = "pose"


class Stage(StrEnum):
    """What `train.py --stage` trains."""

    STAGE1 = "1"  # the reconstruction network (Fig. 3).
    STAGE2 = "2"  # a stage-II mapper on the frozen stage-I encoders (Fig. 9).
    BASELINE = "baseline"  # the VAE or DCGAN of Fig. 7.


class Stage1Part(StrEnum):
    """Which stage-I networks `--model` trains (the paper trains them separately)."""

    APPEARANCE = "appearance"  # first block, FG/BG encoders, U-Net generator and D1.
    POSE = "pose"  # the pose auto-encoder.
    BOTH = "both"


class Baseline(StrEnum):
    """The paper's sampling baselines (Sec. 4.5, Fig. 7): whole images from one Gaussian code."""

    VAE = "vae"  # Kingma & Welling 2014: conv encoder -> (mean, log variance), decoder = the generator below.
    DCGAN = "dcgan"  # Radford et al. 2016: the generator below against D1 (`build_d1`) as discriminator.


# `train.py --model`: stage I's parts, then the baselines (one flag names both, by `--stage`).
TrainedModel = StrEnum("TrainedModel", [(m.name, m.value) for kind in (Stage1Part, Baseline) for m in kind],
                       module=__name__)


class Strategy(StrEnum):
    """`train.py --strategy`: the tf.distribute strategy (`training.loop.make_strategy`)."""

    DEFAULT = "default"  # one device.
    MIRRORED = "mirrored"  # every local device.
    MULTI_WORKER = "multi_worker"  # the cluster of the TF_CONFIG environment variable.


class Stage2Rmsprop(StrEnum):
    """Stage II's RMSProp (`TrainConfig.stage2_rmsprop`): Keras' (accumulators from 0, epsilon 1e-7) or TF1's
    `tf.train.RMSPropOptimizer`, which the authors ran (accumulators from 1, epsilon 1e-10)."""

    KERAS = "keras"
    TF1 = "tf1"

# Kernel initializers of D1 (`ModelConfig.d1_initializer`) and D2 (`critic_initializer`): Keras' default,
# or the authors' (docs/differences.md): `dcgan_uniform` is uniform with stddev 0.02, `he_uniform` Keras'.
D1_INITIALIZERS = ("glorot_uniform", "dcgan_uniform")
CRITIC_INITIALIZERS = ("glorot_uniform", "he_uniform")
