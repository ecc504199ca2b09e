"""Values saved from Lasagne load into the equivalent dilnet graph and compute the same function."""

import numpy as np
import pytest
from common import evaluate, rng
from oracles import corr_reference

from dilnet import ConfigError, ShapeError
from dilnet import layers as L
from dilnet.interop.lasagne import load_npz, set_lasagne_param_values


def _lasagne_values(r):
    """What Lasagne's get_all_param_values returned for: Conv2DLayer(1->3, 3x3, flip_filters=True)
    -> DilatedConv2DLayer(3->4, 3x3, dilation 2; W stored (in, out, kh, kw)) -> DenseLayer(->2)."""
    return [
        r.standard_normal((3, 1, 3, 3)),
        r.standard_normal(3),
        r.standard_normal((3, 4, 3, 3)),  # Lasagne's swapped dilated layout
        r.standard_normal(4),
        r.standard_normal((4 * 5 * 5, 2)),
        r.standard_normal(2),
    ]


def _lasagne_oracle(x, v):
    relu = lambda a: np.maximum(a, 0)  # noqa: E731
    h = relu(corr_reference(x, v[0], (1, 1), (1, 1), [(0, 0)] * 2, 1, True) + v[1][:, None, None])
    h = corr_reference(h, np.swapaxes(v[2], 0, 1), (1, 1), (2, 2), [(0, 0)] * 2)
    h = relu(h + v[3][:, None, None])
    return relu(h.reshape(len(x), -1) @ v[4] + v[5])


@pytest.mark.parametrize("flip_in_port", [True, False])
def test_lasagne_values_reproduce_lasagne_outputs(flip_in_port, tmp_path):
    r = rng(0)
    values = _lasagne_values(r)
    np.savez(tmp_path / "model.npz", *values)
    net = L.InputLayer((None, 1, 11, 11))
    # a port may keep Lasagne's flip_filters=True or switch to correlation; both must load
    net = L.Conv2DLayer(net, 3, 3, flip_filters=flip_in_port, name="conv")
    net = L.DilatedConv2DLayer(net, 4, 3, dilation=2, name="dilated")
    net = L.DenseLayer(net, 2, name="dense")
    set_lasagne_param_values(net, load_npz(tmp_path / "model.npz"))
    x = r.standard_normal((2, 1, 11, 11))
    np.testing.assert_allclose(evaluate(net, x), _lasagne_oracle(x, values), rtol=1e-10)


def test_plain_conv_layer_named_as_dilated_source_is_transposed():
    r = rng(1)
    values = _lasagne_values(r)
    net = L.InputLayer((None, 1, 11, 11))
    net = L.Conv2DLayer(net, 3, 3, name="conv")
    net = L.Conv2DLayer(net, 4, 3, dilation=2, flip_filters=False, name="ported")
    net = L.DenseLayer(net, 2)
    set_lasagne_param_values(net, values, dilated_layers={"ported"})
    x = r.standard_normal((1, 1, 11, 11))
    np.testing.assert_allclose(evaluate(net, x), _lasagne_oracle(x, values), rtol=1e-10)


def test_mismatched_values_change_nothing():
    values = _lasagne_values(rng(2))
    net = L.DenseLayer(
        L.DilatedConv2DLayer(
            L.Conv2DLayer(L.InputLayer((None, 1, 11, 11)), 3, 3), 4, 3, dilation=2
        ),
        2,
    )
    before = L.get_all_param_values(net)
    with pytest.raises(ShapeError, match="Expected 6 arrays"):
        set_lasagne_param_values(net, values[:5])
    values[4] = values[4][:-1]
    with pytest.raises(ShapeError, match=r"values\[4\] for W of layer DenseLayer"):
        set_lasagne_param_values(net, values)
    for a, b in zip(before, L.get_all_param_values(net)):
        np.testing.assert_array_equal(a, b)


def test_load_npz_refuses_pickles_and_foreign_archives(tmp_path):
    np.savez(tmp_path / "objects.npz", np.array([{"a": 1}], dtype=object))
    with pytest.raises(ConfigError, match=r"cannot read .*objects\.npz"):
        load_npz(tmp_path / "objects.npz")
    np.savez(tmp_path / "named.npz", weights=np.ones(3))
    with pytest.raises(ConfigError, match=r"arr_0, arr_1"):
        load_npz(tmp_path / "named.npz")
    (tmp_path / "broken.npz").write_bytes(b"not a zip")
    with pytest.raises(ConfigError, match="cannot read"):
        load_npz(tmp_path / "broken.npz")
    np.savez(tmp_path / "many.npz", *[np.full(2, i) for i in range(12)])
    assert [int(a[0]) for a in load_npz(tmp_path / "many.npz")] == list(range(12))


def test_cudnn_layers_load_unflipped():
    """Lasagne's Conv2DDNNLayer correlated (flip_filters=False by default): its saved W loads
    as is into dilnet.layers.dnn.Conv2DDNNLayer and into a correlating Conv2DLayer, flipped into
    a convolving one."""
    r = rng(2)
    W, b = r.standard_normal((3, 1, 3, 3)), r.standard_normal(3)
    x = r.standard_normal((2, 1, 9, 9))
    oracle = corr_reference(x, W, (1, 1), (1, 1), [(1, 1)] * 2) + b[:, None, None]
    for make, flip_source in [
        (lambda n: L.dnn.Conv2DDNNLayer(n, 3, 3, pad="same", nonlinearity=None), True),
        (lambda n: L.Conv2DLayer(n, 3, 3, pad="same", nonlinearity=None), {"c": False}),
    ]:
        net = make(L.InputLayer((None, 1, 9, 9)))
        net.name = "c"
        set_lasagne_param_values(net, [W, b], lasagne_flip_filters=flip_source)
        np.testing.assert_allclose(evaluate(net, x), oracle, rtol=1e-10)
