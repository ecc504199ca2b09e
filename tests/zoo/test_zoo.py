"""The zoo registry: names, specs and their documented fields and sizes, cards, and pretrained
loading that verifies before it changes anything."""

import numpy as np
import pytest

import dilnet_zoo
from dilnet import build
from dilnet.errors import ConfigError, WeightsError

FAST = "FAST_COMPILE"


def test_list_and_unknown_names():
    assert dilnet_zoo.list_models() == [
        "context3d-basic",
        "context3d-large",
        "dilated-resnet3d",
        "highres3dnet",
        "local3d",
        "plain3d",
    ]
    with pytest.raises(
        ConfigError,
        match=r"`name`. Expected one of .* \(did you mean "
        r"'context3d-basic'",
    ):
        dilnet_zoo.info("context3d-basik")


@pytest.mark.parametrize(
    "name, field, params",
    [
        # front end 3 + Yu & Koltun's module 66 (2 * (1+1+2+4+8+16+1))
        ("context3d-basic", 69, 49300),
        ("context3d-large", 69, None),
        # same depth, dilation 1: 3 + 2 * 7
        ("plain3d", 17, 49300),
        # Li et al. 2017: 87 voxels, about 0.8 M weights
        ("highres3dnet", 87, None),
        # 3 + 2 * (1 + 2 + 4 + 8 + 4 + 2 + 1)
        ("dilated-resnet3d", 47, None),
        # one 3^3 convolution; weights 27*16 + 16*16 + 16*4, batch norms 2 * (16 + 16), bias 4
        ("local3d", 3, 27 * 16 + 16 * 16 + 16 * 4 + 2 * 32 + 4),
    ],
)
def test_receptive_fields_and_parameters(name, field, params):
    network = build(dilnet_zoo.get_spec(name))
    assert network.receptive_field[0].size == field
    assert network.output_shape == (None, 4, None, None, None)
    if params is not None:
        assert network.count_params(trainable=True) == params
    if name == "highres3dnet":
        assert 0.75e6 < network.count_params(trainable=True) < 0.85e6
    assert dilnet_zoo.card(name).startswith("# ")


def test_overrides():
    spec = dilnet_zoo.get_spec("context3d-basic", num_classes=2, in_channels=3, channels=8)
    network = build(spec)
    assert network.input_shape[1] == 3 and network.output_shape[1] == 2
    with pytest.raises(
        ConfigError,
        match=r"`chanels`. Expected one of the overrides "
        r"num_classes, channels, in_channels \(did you mean 'channels'",
    ):
        dilnet_zoo.get_spec("context3d-basic", chanels=8)
    with pytest.raises(ConfigError, match=r"`variant`"):
        dilnet_zoo.get_spec("context3d-basic", variant="large")


def test_pretrained_loading_verifies_and_refuses_incompatible_overrides(tmp_path, monkeypatch):
    monkeypatch.delenv("DILNET_ZOO_DIR", raising=False)
    with pytest.raises(
        ConfigError,
        match=r"load\('plain3d', pretrained=True\): invalid value "
        r"for `num_classes`. Expected 4, the value the pretrained weights",
    ):
        dilnet_zoo.load("plain3d", pretrained=True, num_classes=2, mode=FAST)
    if dilnet_zoo.weights_path("plain3d") is None:
        with pytest.raises(WeightsError, match=r"no pretrained weights for 'plain3d'"):
            dilnet_zoo.load("plain3d", pretrained=True, mode=FAST)
    # user-trained weights in a weights directory are found first and verified
    trained = dilnet_zoo.load("plain3d", mode=FAST, channels=16)
    values = [np.full_like(v, i + 1.0) for i, v in enumerate(trained.get_weights())]
    trained.set_weights(values)
    trained.save(tmp_path / "plain3d.npz")
    loaded = dilnet_zoo.load("plain3d", pretrained=True, weights_dir=tmp_path, mode=FAST)
    for a, b in zip(loaded.get_weights(), values, strict=True):
        np.testing.assert_array_equal(a, b)
    monkeypatch.setenv("DILNET_ZOO_DIR", str(tmp_path))
    assert dilnet_zoo.weights_path("plain3d") == tmp_path / "plain3d.npz"
    # a corrupted file is refused naming it
    raw = bytearray((tmp_path / "plain3d.npz").read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    (tmp_path / "plain3d.npz").write_bytes(bytes(raw))
    with pytest.raises(WeightsError, match=r"plain3d\.npz"):
        dilnet_zoo.load("plain3d", pretrained=True, mode=FAST)
