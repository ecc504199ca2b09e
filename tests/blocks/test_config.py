"""Config round trip through JSON, and configs that are rejected with every problem's path."""

import copy
import json

import pytest

from dilnet import Sequential, SpecError, from_config, to_config
from dilnet import blocks as B
from dilnet.blocks.config import FORMAT, FORMAT_VERSION

SPEC = Sequential(
    [
        B.Input(channels=1, spatial=(None, 64, None)),
        B.Conv(filters=8, kernel=(3, 3, 1), padding=((1, 1), 2, 0)),
        B.DilatedStack(filters=8, dilations=(1, 2, 4), residual=True, dropout=0.1),
        B.Residual(body=[B.Conv(filters=16), B.BatchNorm(alpha=0.2)], activation="relu"),
        B.Parallel(
            branches=[B.Pool(size=2), [B.Pool(size=2, mode="average"), B.Dropout(rate=0.5)]]
        ),
        B.Upsample(factor=(2, 2, 2)),
        B.Sequential([B.ContextModule(channels=32, variant="large", dilations=(1, 2))]),
        B.Classifier(num_classes=4),
    ]
)


def test_config_is_plain_json_with_type_tags_and_round_trips():
    config = to_config(SPEC)
    assert config == json.loads(json.dumps(config))  # lists, dicts, str, int, float, bool, None
    assert config["format"] == FORMAT and config["format_version"] == FORMAT_VERSION
    assert config["spec"]["type"] == "Sequential"
    assert config["spec"]["blocks"][1] == {
        "type": "Conv",
        "filters": 8,
        "kernel": [3, 3, 1],
        "stride": 1,
        "dilation": 1,
        "padding": [[1, 1], 2, 0],
        "activation": "relu",
        "batch_norm": False,
        "bias": None,
        "init": "glorot_uniform",
    }
    assert from_config(json.loads(json.dumps(config))) == SPEC
    assert SPEC.to_config() == config


def _broken(edit):
    config = copy.deepcopy(to_config(SPEC))
    edit(config["spec"]["blocks"])
    return config


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            lambda b: b[1].update(type="Convv"),
            r"\$\.spec\.blocks\[1\]\.type: invalid value for "
            r"`type`. Expected a registered block type \(did you mean 'Conv'\?\); received "
            r"type='Convv'",
        ),
        (
            lambda b: b[1].pop("type"),
            r"\$\.spec\.blocks\[1\]: expected a block \(a dict with a "
            r"'type'\)",
        ),
        (
            lambda b: b[1].update(filtres=8),
            r"\$\.spec\.blocks\[1\]\.filtres: unknown field of Conv "
            r"\(did you mean 'filters'\?\); its fields are filters, kernel",
        ),
        (lambda b: b[1].pop("filters"), r"\$\.spec\.blocks\[1\]\.filters: missing"),
        (
            lambda b: b[1].update(filters="8"),
            r"\$\.spec\.blocks\[1\]\.filters: expected an int; "
            r"received '8'",
        ),
        (
            lambda b: b[1].update(filters=8.0),
            r"\$\.spec\.blocks\[1\]\.filters: expected an int; "
            r"received 8\.0",
        ),
        (lambda b: b[1].update(batch_norm=1), r"\.batch_norm: expected true or false"),
        (
            lambda b: b[1].update(kernel="3"),
            r"\$\.spec\.blocks\[1\]\.kernel: expected an int or a "
            r"list of ints; received '3'",
        ),
        (
            lambda b: b[2]["dilations"].__setitem__(1, "two"),
            r"\$\.spec\.blocks\[2\]\.dilations\[1\]"
            r": expected an int; received 'two'",
        ),
        (
            lambda b: b[2].update(dilations=[1, 0]),
            r"\$\.spec\.blocks\[2\]\.dilations: invalid value "
            r"for `dilations`. Expected a non-empty sequence of positive ints",
        ),
        (
            lambda b: b[3]["body"][0].update(activation="rellu"),
            r"\$\.spec\.blocks\[3\]\.body\[0\]"
            r"\.activation: invalid value for `activation`.*did you mean 'relu'",
        ),
        (
            lambda b: b[4]["branches"][1][1].update(rate="half"),
            r"\$\.spec\.blocks\[4\]\.branches"
            r"\[1\]\[1\]\.rate: expected a number",
        ),
        (
            lambda b: b[6]["blocks"].__setitem__(0, 3),
            r"\$\.spec\.blocks\[6\]\.blocks\[0\]: expected "
            r"a block",
        ),
        (
            lambda b: b[0].update(spatial={"x": 1}),
            r"\$\.spec\.blocks\[0\]\.spatial: expected a "
            r"list",
        ),
    ],
)
def test_invalid_configs_raise_spec_error_with_the_path(edit, message):
    with pytest.raises(SpecError, match=message):
        from_config(_broken(edit))


def test_all_problems_are_reported_at_once():
    def edit(b):
        b[1]["filters"] = 0
        b[2]["dilatons"] = [1]
        b[5]["type"] = "Upsampel"

    with pytest.raises(SpecError) as info:
        from_config(_broken(edit))
    text = str(info.value)
    assert text.startswith("invalid config (3 problems):")
    assert "$.spec.blocks[1].filters: invalid value for `filters`" in text
    assert "$.spec.blocks[2].dilatons: unknown field of DilatedStack" in text
    assert "$.spec.blocks[5].type: invalid value for `type`" in text


@pytest.mark.parametrize(
    "config, message",
    [
        ([], r"\$: expected a config dict; received list"),
        ({"spec": {}}, r"\$\.format: expected 'dilnet.spec'"),
        (
            {"format": FORMAT, "format_version": 99, "spec": {}},
            r"\$\.format_version: expected an "
            r"int from 1 to 1",
        ),
        ({"format": FORMAT, "format_version": 1}, r"\$\.spec: missing"),
        ({"format": FORMAT, "format_version": 1, "spec": {}, "x": 1}, r"unknown keys \['x'\]"),
    ],
)
def test_invalid_envelopes(config, message):
    with pytest.raises(SpecError, match=message):
        from_config(config)


def test_to_config_rejects_non_blocks():
    with pytest.raises(SpecError, match=r"to_config: expected a block; received \[\]"):
        to_config([])
