"""Lasagne layer names and behaviours added for Lasagne's own suite: `BaseConvLayer`, symbolic
`output_size`, array inputs to `get_output_for`, the pooling layers of ``lasagne.layers.pool``,
duck-typed inputs, `dropout_locations`, symbolic reshapes, and the helpers' ``None`` key.
Each value is checked against a plain-loop numpy reference (tests/oracles.py or below)."""

import itertools
import warnings
from types import SimpleNamespace

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from common import rng
from oracles import corr_reference, pool_reference, transposed_conv_reference

from dilnet import layers as L
from dilnet.errors import ConfigError, ConfigTypeError, ShapeError
from dilnet.layers.conv import BaseConvLayer, conv_input_length
from dilnet.layers.pool import pool_2d
from dilnet.shapes import conv_output_length

# --- convolution ---------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 3])
def test_base_conv_layer_has_everything_but_convolve(n):
    layer = BaseConvLayer((2, 3, *(6,) * n), 4, 3, nonlinearity=None)
    assert layer.n == n and layer.output_shape == (2, 4, *(4,) * n)
    assert layer.W.get_value().shape == (4, 3, *(3,) * n)
    with pytest.raises(NotImplementedError, match="does not define convolve"):
        layer.get_output_for(np.zeros((2, 3, *(6,) * n)))
    assert isinstance(L.Conv2DLayer((1, 1, 4, 4), 1, 3), BaseConvLayer)


def test_base_conv_layer_errors_say_what_lasagne_said():
    with pytest.raises(ShapeError, match="Expected 4 input dimensions"):
        BaseConvLayer((10, 20, 30), 1, 3, n=2)
    with pytest.raises(ShapeError, match="num_groups must evenly divide both"):
        BaseConvLayer((2, 3, 4), 1, 3, num_groups=2)
    with pytest.raises(ConfigError, match="num_groups must be positive"):
        BaseConvLayer((2, 3, 4), 1, 3, num_groups=-3)


def test_a_pad_string_that_is_no_mode_is_a_type_error():
    with pytest.raises(ConfigTypeError, match=r"`pad`. Expected .*an iterable of int"):
        L.Conv1DLayer((1, 2, 3), 4, 3, pad="half")


def _smallest_inputs():
    """(out, k, s, pad, d, n): n the smallest input length giving output length out, found by
    searching the lengths in order; cases where n is 1 are left out (the inverse formula may
    then be below 1: a padding larger than needed)."""
    cases = []
    for out, k, s, pad, d in itertools.product(
        (1, 4), (1, 3, 4), (1, 2, 3), ("valid", "full", "same", 0, 2, (1, 0)), (1, 2)
    ):
        lengths = [n for n in range(1, 60) if conv_output_length(n, k, s, pad, d) == out]
        if lengths and lengths[0] > 1:
            cases.append((out, k, s, pad, d, lengths[0]))
    return cases


@pytest.mark.parametrize(("out", "k", "s", "pad", "d", "smallest"), _smallest_inputs())
def test_conv_input_length_is_the_smallest_input_giving_out(out, k, s, pad, d, smallest):
    assert conv_input_length(out, k, s, pad, d) == smallest


def test_conv_input_length_values_by_hand():
    assert conv_input_length(2, 3, 1, "valid") == 4
    assert conv_input_length(3, 3, 2, "same") == 5
    assert conv_input_length(3, 3, 2, "full") == 3
    assert conv_input_length(None, 3, 2, 0) is None
    with pytest.raises(ConfigError, match="Invalid pad: 'half'"):
        conv_input_length(3, 3, 1, "half")


def test_conv_layers_take_numpy_inputs():
    x = rng(0).normal(size=(2, 3, 7, 6))
    W = rng(1).normal(size=(4, 3, 3, 2))
    conv = L.Conv2DLayer((2, 3, 7, 6), 4, (3, 2), W=W, b=None, nonlinearity=None,
                         flip_filters=False)  # fmt: skip
    np.testing.assert_allclose(
        conv.get_output_for(x).eval(), corr_reference(x, W, (1, 1), (1, 1), [(0, 0)] * 2)
    )


@pytest.mark.parametrize("symbolic", [False, True])
def test_transposed_conv_output_size_may_be_an_expression(symbolic):
    x = rng(2).normal(size=(2, 3, 4, 5))
    W = rng(3).normal(size=(3, 2, 3, 2))  # (in, out, *kernel)
    stride, want = (2, 3), (10, 14)  # one more than the smallest (9, 14) on the first axis
    size = pytensor.shared(np.array(want)) if symbolic else want
    layer = L.TransposedConv2DLayer((None, 3, 4, 5), 2, (3, 2), stride=stride, W=W, b=None,
                                    nonlinearity=None, flip_filters=True, output_size=size)  # fmt: skip
    spatial = (None, None) if symbolic else want
    assert layer.output_shape == (None, 2, *spatial)
    got = layer.get_output_for(x).eval()  # a numpy input
    expected = transposed_conv_reference(x, W, stride, (1, 1), [(0, 0), (0, 0)], want)
    np.testing.assert_allclose(got, expected)


def test_transposed_conv_output_size_expression_must_be_an_int_vector():
    with pytest.raises(ConfigError, match="integer vector expression of length 2"):
        L.TransposedConv2DLayer((None, 3, 4, 5), 2, 3, output_size=pt.vector())


# --- pooling ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("pool", "axis"), [(2, 1), (3, 1), (2, 2), (3, -1)])
def test_feature_pool_layer_against_a_loop(pool, axis):
    x = rng(4).normal(size=(2, 6, 6, 6))
    layer = L.FeaturePoolLayer((None, 6, 6, 6), pool, axis=axis)
    ax = axis % 4
    expected_shape = list(x.shape)
    expected_shape[ax] //= pool
    expected = np.empty(expected_shape)
    for index in np.ndindex(*expected_shape):
        group = [(*index[:ax], index[ax] * pool + j, *index[ax + 1 :]) for j in range(pool)]
        expected[index] = max(x[g] for g in group)
    assert layer.output_shape == (None, *expected_shape[1:])
    np.testing.assert_allclose(layer.get_output_for(x).eval(), expected)
    mean = L.FeaturePoolLayer((None, 6, 6, 6), pool, axis=axis, pool_function=pt.mean)
    assert mean.get_output_for(x).eval().shape == tuple(expected_shape)


def test_feature_pool_layers_need_a_divisor():
    with pytest.raises(ShapeError, match="multiple of pool_size"):
        L.FeaturePoolLayer((2, 3, 4), 2)
    with pytest.raises(ShapeError, match="multiple of pool_size"):
        L.FeatureWTALayer((2, 4, 8), 3)


def test_feature_wta_layer_against_a_loop():
    x = rng(5).normal(size=(2, 6, 5))
    out = L.FeatureWTALayer((2, 6, 5), 3).get_output_for(pytensor.shared(x)).eval()
    expected = np.zeros_like(x)
    for b, g, p in itertools.product(range(2), range(2), range(5)):
        channels = [3 * g + j for j in range(3)]
        winner = max(channels, key=lambda c: x[b, c, p])
        expected[b, winner, p] = x[b, winner, p]
    np.testing.assert_array_equal(out, expected)


def test_global_pool_layer():
    x = rng(6).normal(size=(2, 3, 4, 2, 2))
    layer = L.GlobalPoolLayer((None, 3, 4, 2, 2))
    assert layer.output_shape == (None, 3)
    expected = np.array([[x[b, c].sum() / 16 for c in range(3)] for b in range(2)])
    np.testing.assert_allclose(layer.get_output_for(x).eval(), expected)
    top = L.GlobalPoolLayer((None, 3, 4, 2, 2), pool_function=pt.max)
    np.testing.assert_allclose(top.get_output_for(x).eval(), x.reshape(2, 3, -1).max(-1))


@pytest.mark.parametrize(("ws", "stride"), [((2, 3), (2, 3)), ((3, 2), (1, 2)), ((4, 4), (3, 2))])
def test_pool_2d_with_symbolic_windows(ws, stride):
    x = rng(7).normal(size=(2, 3, 9, 8))
    out_spatial = tuple((n - w) // s + 1 for n, w, s in zip((9, 8), ws, stride, strict=True))
    ws_var, stride_var = pt.ivector(), pt.ivector()
    for mode in ("max", "average_exc_pad"):
        fn = pytensor.function([ws_var, stride_var], pool_2d(x, ws_var, True, stride_var,
                                                             mode=mode))  # fmt: skip
        expected = pool_reference(x, ws, stride, (0, 0), mode, out_spatial)
        np.testing.assert_allclose(fn(np.array(ws, "int32"), np.array(stride, "int32")), expected)


def test_pool_2d_refuses_partial_windows_and_padding():
    with pytest.raises(ConfigError, match="ignore_border"):
        pool_2d(pt.tensor4(), (2, 2), ignore_border=False)
    with pytest.raises(ConfigError, match="`pad`"):
        pool_2d(pt.tensor4(), (2, 2), pad=(1, 1))


def _spp_reference(x, dims, implementation, reduce):
    """Pyramid levels by explicit bins: 'fast' windows ceil(n/d) every n//d, 'kaiming' bins
    [floor(i n / d), ceil((i + 1) n / d))."""
    h, w = x.shape[2:]
    out = []
    for d in dims:
        for i in range(d):
            for j in range(d):
                if implementation == "fast":
                    r0, c0 = i * (h // d), j * (w // d)
                    r1, c1 = r0 + -(-h // d), c0 + -(-w // d)
                else:
                    r0, r1 = int(np.floor(i * h / d)), int(np.ceil((i + 1) * h / d))
                    c0, c1 = int(np.floor(j * w / d)), int(np.ceil((j + 1) * w / d))
                out.append(reduce(x[:, :, r0:r1, c0:c1], axis=(2, 3)))
    return np.stack(out, axis=2)


@pytest.mark.parametrize("implementation", ["fast", "kaiming"])
@pytest.mark.parametrize("known", [True, False])
@pytest.mark.parametrize(("mode", "reduce"), [("max", np.max), ("average_inc_pad", np.mean)])
def test_spatial_pyramid_pooling_against_bins(implementation, known, mode, reduce):
    x = rng(8).normal(size=(2, 3, 13, 10))
    shape = x.shape if known else (None, 3, None, None)
    layer = L.SpatialPyramidPoolingLayer(shape, [1, 2, 3], mode=mode,
                                         implementation=implementation)  # fmt: skip
    assert layer.output_shape == (shape[0], 3, 14)
    got = layer.get_output_for(pytensor.shared(x)).eval()
    np.testing.assert_allclose(got, _spp_reference(x, [1, 2, 3], implementation, reduce))


def test_spatial_pyramid_pooling_errors():
    with pytest.raises(ShapeError, match="Expected 4 input dimensions"):
        L.SpatialPyramidPoolingLayer((10, 20, 30))
    with pytest.raises(ConfigError, match="Mode must be either 'max', 'average_inc_pad' or "):
        L.SpatialPyramidPoolingLayer((None, 1, None, None), mode="min")
    with pytest.raises(ConfigError, match="`implementation`"):
        L.SpatialPyramidPoolingLayer((None, 1, None, None), implementation="slow")


def test_pool_and_upscale_take_numpy_inputs():
    x = rng(9).normal(size=(1, 2, 4, 6))
    pooled = L.MaxPool2DLayer((1, 2, 4, 6), 2).get_output_for(x).eval()
    np.testing.assert_allclose(pooled, x.reshape(1, 2, 2, 2, 3, 2).max(axis=(3, 5)))
    up = L.Upscale2DLayer((1, 2, 4, 6), 2).get_output_for(x).eval()
    np.testing.assert_allclose(up, x.repeat(2, axis=2).repeat(2, axis=3))


# --- shapes, merges, noise -----------------------------------------------------------------------


def test_reshape_to_symbolic_lengths():
    x = pt.tensor3()
    b, t, f = x.shape
    layer = L.ReshapeLayer(L.InputLayer((None, None, None)), (b * t, [2]))
    assert layer.output_shape == (None, None)
    assert layer.get_output_shape_for((b, t, f)) == (None, None)
    value = np.arange(24.0).reshape(2, 3, 4)
    np.testing.assert_array_equal(L.get_output(layer, x).eval({x: value}), value.reshape(6, 4))
    with pytest.raises(ConfigError, match="integer scalar expressions"):
        L.ReshapeLayer(L.InputLayer((None, 3)), (pt.vector(), 3))


def test_reshape_size_mismatch_says_the_sizes_do_not_match():
    with pytest.raises(ShapeError, match="the sizes do not match"):
        L.ReshapeLayer((4, 6), (5, -1))


def test_dimshuffle_may_drop_an_unknown_length_axis():
    layer = L.DimshuffleLayer((2, None, 5), (0, 2))
    assert layer.output_shape == (2, 5)
    x = pt.tensor3(shape=(None, 1, None))
    value = np.arange(10.0).reshape(2, 1, 5)
    np.testing.assert_array_equal(layer.get_output_for(x).eval({x: value}), value[:, 0])
    with pytest.raises(ShapeError, match="drops axis 1"):
        L.DimshuffleLayer((2, 3, 5), (0, 2))


def test_duck_typed_inputs_are_checked_when_a_shape_is_asked_for():
    stand_in = SimpleNamespace(output_shape=(None,))  # claims less than it will be asked about
    flat = L.FlattenLayer(stand_in, outdim=3)
    assert flat.get_output_shape_for((2, 3, 4, 5)) == (2, 3, 20)
    with pytest.raises(ShapeError, match=r"`outdim`. Expected 1 to 2"):
        flat.get_output_shape_for((2, 3))
    padded = L.PadLayer(stand_in, width=(1, (0, 2)))
    assert padded.get_output_shape_for((2, 3, 4, 5)) == (2, 3, 6, 7)
    # a real input still checks at build time
    with pytest.raises(ShapeError, match="`outdim`"):
        L.FlattenLayer((2, 3), outdim=3)
    with pytest.raises(ConfigError, match="`width`"):
        L.PadLayer((2, 3, 4, 5), width=(1, 2, 3))


def test_layers_refuse_non_positive_input_lengths_and_symbolic_output_shapes():
    with pytest.raises(ShapeError, match="positive lengths or None"):
        L.DenseLayer((None, 0), 3)

    class Symbolic(L.Layer):
        def get_output_shape_for(self, input_shape):
            return pt.vector().shape

    with pytest.raises(ShapeError, match="symbolic output shape"):
        Symbolic((None, 2)).output_shape  # noqa: B018


def test_merge_layers_check_shapes_when_asked():
    stand_ins = [SimpleNamespace(output_shape=None), SimpleNamespace(output_shape=None)]
    concat = L.ConcatLayer(stand_ins, axis=-1)
    assert concat.get_output_shape_for([(3, 2), (None, 5)]) == (3, 7)
    with pytest.raises(ShapeError, match="disagree on axis 0"):
        concat.get_output_shape_for([(3, 2), (4, 5)])
    total = L.ElemwiseSumLayer(stand_ins, coeffs=[2, -1])
    with pytest.raises(ShapeError, match="disagree on axis 1"):
        total.get_output_shape_for([(3, 2), (3, 4)])


def test_concat_does_not_crop_its_concatenation_axis():
    a, b = rng(10).normal(size=(5, 3)), rng(11).normal(size=(4, 2))
    for axis in (0, 1):
        layer = L.ConcatLayer([(5, 3), (4, 2)], axis=axis, cropping=["lower", "lower"])
        expected = np.concatenate([a[:4] if axis else a[:, :2], b[:4] if axis else b], axis=axis)
        assert layer.output_shape == expected.shape
        out = layer.get_output_for([pytensor.shared(a), pytensor.shared(b)]).eval()
        np.testing.assert_array_equal(out, expected)


def test_autocrop_checks_modes_and_ranks():
    with pytest.raises(ConfigError, match="`cropping`"):
        L.autocrop_array_shapes([(1, 2), (3, 4)], ["lower", "middle"])
    with pytest.raises(ShapeError, match="different ranks"):
        L.autocrop_array_shapes([(1, 2), (3, 4, 5)], ["lower"])
    with pytest.raises(ConfigError, match="`cropping`"):
        L.autocrop([pt.matrix(), pt.matrix()], ["bad"])
    with pytest.raises(ShapeError, match="different ranks"):
        L.autocrop([pt.matrix(), pt.tensor3()], ["lower"])


def test_dropout_locations_shares_the_mask_over_channels():
    layer = L.dropout_locations((2, 5, 40), p=0.5)
    assert layer.shared_axes == (1,)
    out = layer.get_output_for(pytensor.shared(np.ones((2, 5, 40)))).eval()
    # every location is dropped (0) or kept (2 after rescaling) in all 5 channels at once
    assert set(np.unique(out)) == {0.0, 2.0}
    assert (out == out[:, :1]).all()


def test_dropout_takes_numpy_probabilities():
    layer = L.DropoutLayer((3, 4), p=np.float32(0.25))
    assert layer.p == 0.25
    x = pytensor.shared(np.ones((3, 4), dtype="float32"))
    assert layer.get_output_for(x).dtype == "float32"


def test_batch_norm_statistics_are_tagged():
    layer = L.BatchNormLayer((None, 3, 4))
    assert layer.get_params(batch_norm_stat=True) == [layer.mean, layer.inv_std]
    assert layer.get_params(batch_norm_stat=False) == [layer.beta, layer.gamma]


# --- helpers -------------------------------------------------------------------------------------


def test_get_output_with_the_none_key_feeds_layers_built_from_shapes():
    dense = L.DenseLayer((None, 3), 2, W=np.ones((3, 2)), b=None, nonlinearity=None)
    x = pt.matrix()
    value = np.arange(6.0).reshape(2, 3)
    out = L.get_output(dense, {None: x}).eval({x: value})
    np.testing.assert_array_equal(out, value @ np.ones((3, 2)))
    assert L.get_output_shape(dense, {None: (7, 3)}) == (7, 2)
    with pytest.raises(ConfigError, match="built from a shape tuple"):
        L.get_output(dense, {L.InputLayer((None, 3)): x})
    with pytest.raises(ConfigError, match="input shape of"):
        L.get_output_shape(dense, {L.InputLayer((None, 3)): (2, 3)})


def test_get_output_refuses_keys_that_are_no_layers():
    net = L.DenseLayer(L.InputLayer((None, 3)), 2)
    with pytest.raises(ConfigTypeError, match=r"`inputs key`. Expected a Layer, None"):
        L.get_output(net, {"input": pt.matrix()})


def test_get_output_suggests_close_keyword_names():
    net = L.DropoutLayer(L.InputLayer((None, 3)))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        L.get_output(net, determinstic=True)
    assert "perhaps you meant deterministic for determinstic" in str(caught[0].message)


def test_get_all_params_unwraps_expressions_in_creation_order():
    a, b = pytensor.shared(np.ones((3, 2)), name="a"), pytensor.shared(np.ones(()), name="b")
    dense = L.DenseLayer(L.InputLayer((None, 3)), 2, W=b * a)
    assert L.get_all_params(dense) == [b, a, dense.b]
