"""A config's choices are `configs.StrEnum` members, while config.json keeps the plain strings it always had."""

import json

import pytest

from keras_disentangle import configs


def test_config_json_strings_load_as_members_and_write_back_the_same_bytes():
    cfg = configs.override(configs.get_config("market", "micro"), d1_loss="hinge", d1_normalization="spectral",
                           precision="mixed_bfloat16", fg_encoder="whole")
    text = configs.to_json(cfg)
    raw = json.loads(text)
    assert (raw["scale"], raw["data"]["name"], raw["train"]["d1_loss"], raw["model"]["d1_normalization"],
            raw["train"]["precision"], raw["model"]["fg_encoder"]) == (
        "micro", "market", "hinge", "spectral", "mixed_bfloat16", "whole")
    loaded = configs.from_json(text)  # what every earlier run directory holds: plain strings
    assert loaded == cfg
    for value, kind in ((loaded.scale, configs.Scale), (loaded.data.name, configs.Dataset),
                        (loaded.train.d1_loss, configs.D1Loss), (loaded.model.d1_normalization, configs.D1Normalization),
                        (loaded.train.precision, configs.Precision), (loaded.model.fg_encoder, configs.FgEncoderKind)):
        assert isinstance(value, kind), (value, kind)
    assert configs.to_json(loaded) == text
    assert f"{loaded.train.d1_loss}" == str(loaded.train.d1_loss) == "hinge" and repr(loaded.data.name) == "'market'"


def test_an_unknown_choice_is_refused_naming_the_field():
    with pytest.raises(ValueError, match=r"^d1_loss='wgan'; expected one of bce, hinge\.$"):
        configs.override(configs.get_config("synthetic", "micro"), d1_loss="wgan")
    text = configs.to_json(configs.get_config("synthetic", "micro")).replace('"name": "synthetic"', '"name": "mnist"')
    with pytest.raises(ValueError, match="name='mnist'; expected one of market, deepfashion, synthetic"):
        configs.from_json(text)
