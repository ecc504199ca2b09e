"""get_output / get_all_params / set_all_param_values and friends on small graphs."""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from common import FAST, evaluate, rng

from dilnet import ShapeError, init
from dilnet import layers as L


def _net():
    inp = L.InputLayer((None, 2, None, None, None), name="in")
    c1 = L.Conv3DLayer(inp, 4, 3, pad="same", name="c1")
    c2 = L.Conv3DLayer(c1, 4, 3, pad="same", dilation=2, name="c2")
    bn = L.BatchNormLayer(c2, name="bn")
    s = L.ElemwiseSumLayer([c1, bn], name="sum")
    out = L.Conv3DLayer(s, 3, 1, nonlinearity=None, name="out")
    return inp, c1, c2, bn, s, out


def test_get_all_layers_is_topological_and_deduplicated():
    inp, c1, c2, bn, s, out = _net()
    assert L.get_all_layers(out) == [inp, c1, c2, bn, s, out]
    assert L.get_all_layers(out, treat_as_input=[bn]) == [inp, c1, bn, s, out]
    assert L.get_all_layers([c2, c1]) == [inp, c1, c2]


def test_get_all_params_filters_by_tags_and_names_are_prefixed():
    *_, out = _net()
    names = [p.name for p in L.get_all_params(out)]
    assert names == [
        "c1.W", "c1.b", "c2.W", "c2.b", "bn.beta", "bn.gamma", "bn.mean", "bn.inv_std",
        "out.W", "out.b",
    ]  # fmt: skip
    assert [p.name for p in L.get_all_params(out, trainable=True)] == [
        "c1.W", "c1.b", "c2.W", "c2.b", "bn.beta", "bn.gamma", "out.W", "out.b",
    ]  # fmt: skip
    assert [p.name for p in L.get_all_params(out, regularizable=True)] == [
        "c1.W", "c2.W", "bn.gamma", "out.W",
    ]  # fmt: skip
    assert [p.name for p in L.get_all_params(out, trainable=False)] == ["bn.mean", "bn.inv_std"]
    # hand count: 4*2*27+4, 4*4*27+4, 4*4 (BN), 3*4+3
    assert L.count_params(out) == 220 + 436 + 16 + 15
    assert L.count_params(out, trainable=True) == 220 + 436 + 8 + 15


def test_param_values_round_trip_and_mismatches_change_nothing():
    *_, out = _net()
    before = L.get_all_param_values(out)
    new = [rng(i).standard_normal(v.shape) for i, v in enumerate(before)]
    L.set_all_param_values(out, new)
    for got, want in zip(L.get_all_param_values(out), new):
        np.testing.assert_array_equal(got, want)
    bad = list(new)
    bad[2] = np.zeros((4, 4, 3, 3, 2))
    bad[8] = np.zeros((3, 5, 1, 1, 1))
    with pytest.raises(ShapeError) as err:
        L.set_all_param_values(out, [v + 1 for v in bad])
    msg = str(err.value)
    assert "nothing was changed" in msg
    assert (
        "values[2] for c2.W of layer 'c2' (Conv3DLayer): expected shape (4, 4, 3, 3, 3), received (4, 4, 3, 3, 2)"
        in msg
    )
    assert "values[8] for out.W of layer 'out' (Conv3DLayer)" in msg
    for got, want in zip(L.get_all_param_values(out), new):
        np.testing.assert_array_equal(got, want)
    with pytest.raises(
        ShapeError, match=r"Expected 10 arrays, one per parameter .*received len\(values\)=9"
    ):
        L.set_all_param_values(out, new[:9])
    with pytest.raises(ShapeError, match="expected dtype float64"):
        L.set_all_param_values(out, [v.astype(complex) for v in new])


def test_get_output_with_replacements_and_kwargs():
    _, c1, c2, _, _, out = _net()
    x = rng(1).standard_normal((1, 2, 5, 5, 5))
    full = evaluate(out, x, deterministic=True)
    # replacing an intermediate layer's output with an expression
    c1_val = evaluate(c1, x)
    sym = pt.tensor("c1_out", shape=(None, 4, None, None, None), dtype="float64")
    y = L.get_output(out, {c1: sym}, deterministic=True)
    np.testing.assert_allclose(pytensor.function([sym], y, mode=FAST)(c1_val), full)
    # a single expression replaces the only input layer
    xs = pt.tensor("x2", shape=(None, 2, None, None, None), dtype="float64")
    y2 = L.get_output(out, xs, deterministic=True)
    np.testing.assert_allclose(pytensor.function([xs], y2, mode=FAST)(x), full)
    with pytest.warns(UserWarning, match=r"\['determinstic'\]"):
        L.get_output(out, determinstic=True)
    shapes = L.get_output_shape([c2, out], (3, 2, 6, 7, 8))
    assert shapes == [(3, 4, 6, 7, 8), (3, 3, 6, 7, 8)]


def test_get_output_on_multi_input_network_needs_a_dict():
    a, b = L.InputLayer((None, 3)), L.InputLayer((None, 3))
    merged = L.ElemwiseSumLayer([a, b])
    with pytest.raises(ValueError, match="2 input layers"):
        L.get_output(merged, pt.matrix())


def test_shared_and_expression_params_are_used_as_given():
    W = pytensor.shared(np.ones((2, 3)), name="shared_W")
    scale = pytensor.shared(np.float64(2.0), name="scale")
    inp = L.InputLayer((None, 2))
    d1 = L.DenseLayer(inp, 3, W=W, b=None, nonlinearity=None)
    d2 = L.DenseLayer(d1, 3, W=scale * np.eye(3), b=None, nonlinearity=None)
    assert d1.W is W
    assert L.get_all_params(d2) == [W, scale]
    assert L.get_all_params(d2, unwrap_shared=False)[0] is W
    x = np.array([[1.0, 2.0]])
    np.testing.assert_allclose(evaluate(d2, x), [[6.0, 6.0, 6.0]])
    with pytest.raises(ShapeError, match=r"W.shape`. Expected \(2, 4\); received W.shape=\(2, 3\)"):
        L.DenseLayer(inp, 4, W=W)


def test_initializers_fill_parameters():
    layer = L.Conv3DLayer(
        L.InputLayer((None, 3, 8, 8, 8)), 5, 3, W=init.Constant(0.5), b=init.Constant(-1.0)
    )
    np.testing.assert_array_equal(layer.W.get_value(), np.full((5, 3, 3, 3, 3), 0.5))
    np.testing.assert_array_equal(layer.b.get_value(), np.full(5, -1.0))
    assert layer.W.get_value().dtype == pytensor.config.floatX


# ---------------------------------------------------------------------------------------------
# Duck-typed incoming layers (Lasagne accepts any object with an `output_shape`)


class _Shaped:
    """Not a dilnet Layer: only an `output_shape`, as Lasagne's tests pass `Mock`s."""

    def __init__(self, shape):
        self.output_shape = shape


def test_an_object_with_an_output_shape_feeds_a_layer():
    from unittest import mock

    import pytensor
    import pytensor.tensor as pt

    import dilnet.layers as L
    from dilnet import ConfigError

    for leaf in (_Shaped((None, 5)), mock.Mock(output_shape=(None, 5))):
        dense = L.DenseLayer(leaf, num_units=3, nonlinearity=None)
        assert dense.input_shape == (None, 5) and dense.output_shape == (None, 3)
        # the leaf is not followed (a Mock's `input_layer` is a new Mock, for ever)
        assert L.get_all_layers(dense) == [leaf, dense]
        with pytest.raises(ConfigError, match=r"is not a dilnet Layer .* give its output"):
            L.get_output(dense)
        x = pt.matrix("x")
        f = pytensor.function([x], L.get_output(dense, {leaf: x}))
        data = np.random.default_rng(0).random((2, 5)).astype(pytensor.config.floatX)
        W, b = dense.W.get_value(), dense.b.get_value()
        np.testing.assert_allclose(f(data), data @ W + b, rtol=1e-6)
    merged = L.ElemwiseSumLayer([_Shaped((None, 4)), L.InputLayer((None, 4))])
    assert merged.output_shape == (None, 4)
    with pytest.raises(ConfigError, match=r"Expected a Layer, an object with an output_shape"):
        L.DenseLayer(object(), num_units=2)
