"""Bad arguments to the Lasagne-named layers get one dilnet error naming the argument (not a
raw numpy/PyTensor error at get_output time)."""

import numpy as np
import pytensor.tensor as pt
import pytest

from dilnet import layers as L
from dilnet.errors import ConfigError, ConfigTypeError, ShapeError


def test_autocrop_cropping_longer_than_rank():
    with pytest.raises(ConfigError, match="cropping"):
        L.autocrop_array_shapes([(1, 2), (1, 3)], [None, None, "lower"])
    with pytest.raises(ConfigError, match="cropping"):
        L.autocrop([pt.matrix(), pt.matrix()], [None, None, "lower"])
    # a cropping as long as the rank still crops: the smallest length per cropped axis
    assert L.autocrop_array_shapes([(1, 2), (1, 3)], [None, "lower"]) == [(1, 2), (1, 2)]


@pytest.mark.parametrize("points", [1, 2, 3])
def test_tps_needs_a_grid_of_at_least_four_points(points):
    loc = L.InputLayer((None, 2 * points))
    with pytest.raises(ConfigError, match="control_points"):
        L.TPSTransformerLayer(L.InputLayer((None, 1, 8, 8)), loc, control_points=points)


def test_non_callable_nonlinearities_and_pool_functions():
    with pytest.raises(ConfigTypeError, match="nonlinearity"):
        L.RecurrentLayer(L.InputLayer((None, 3, 2)), 4, nonlinearity="tanh")
    with pytest.raises(ConfigTypeError, match="nonlinearity"):
        L.Gate(nonlinearity=3)
    with pytest.raises(ConfigTypeError, match="pool_function"):
        L.FeaturePoolLayer(L.InputLayer((None, 4, 5)), 2, pool_function="max")
    with pytest.raises(ConfigTypeError, match="pool_function"):
        L.GlobalPoolLayer(L.InputLayer((None, 4, 5)), pool_function=None)


def test_embedding_refuses_float_indices_and_looks_up_integers():
    layer = L.EmbeddingLayer(L.InputLayer((None, 3)), input_size=5, output_size=2)
    with pytest.raises(ConfigTypeError, match="integer indices"):
        L.get_output(layer, pt.matrix("x", dtype="float32"))
    x = pt.matrix("i", dtype="int32")
    idx = np.array([[0, 4, 2]], "int32")
    out = L.get_output(layer, x).eval({x: idx})
    W = layer.W.get_value()
    np.testing.assert_array_equal(out, np.stack([[W[i] for i in row] for row in idx]))


@pytest.mark.parametrize("ws", ["ab", (2.5, 2), (0, 2), (True, 2)])
def test_pool_2d_refuses_windows_that_are_not_positive_ints(ws):
    with pytest.raises(ConfigTypeError, match="ws"):
        L.pool.pool_2d(pt.tensor4(), ws)


def test_pool_2d_symbolic_window_matches_numpy():
    x, w = pt.tensor4("x"), pt.iscalar("w")
    data = np.arange(2 * 1 * 4 * 6, dtype="float64").reshape(2, 1, 4, 6)
    out = L.pool.pool_2d(x, (w, 2)).eval({x: data.astype(x.dtype), w: 2})
    expected = np.empty((2, 1, 2, 3))
    for i in range(2):
        for j in range(3):
            expected[:, :, i, j] = data[:, :, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2].max(axis=(2, 3))
    np.testing.assert_array_equal(out, expected.astype(out.dtype))


@pytest.mark.parametrize("bad", [(2, 0, 3), (2, -1, 3)])
@pytest.mark.parametrize("layer", [L.ElemwiseSumLayer, L.ConcatLayer])
def test_merge_layers_refuse_shape_tuples_with_lengths_below_one(layer, bad):
    # as a single-input layer refuses them (Lasagne's rule: positive lengths or None)
    with pytest.raises(ShapeError, match=r"input shape.*positive lengths or None"):
        layer([(2, 3, 3), bad])
    # None (unknown) and positive lengths still build, and the shape follows the inputs
    assert layer([(None, 3, 3), (2, 3, 3)]).output_shape[1:] in ((3, 3), (6, 3))
