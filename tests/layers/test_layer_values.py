"""Each layer's output against a numpy oracle, and its `output_shape` against the real one."""

import numpy as np
import pytensor.tensor as pt
import pytest
from common import evaluate, rng
from oracles import corr_reference, pool_reference, transposed_conv_reference

from dilnet import init, nonlinearities
from dilnet import layers as L
from dilnet.shapes import resolve_padding


def _relu(a):
    return np.maximum(a, 0)


CONV_CASES = [
    # (input shape, num_filters, filter_size, stride, dilation, pad, groups, flip)
    ((2, 3, 11), 4, 3, 1, 2, "same", 1, True),
    ((1, 4, 9, 8), 6, (3, 2), (2, 1), (1, 3), "same", 2, False),
    ((2, 2, 7, 6, 8), 3, 3, 1, (1, 2, 3), "valid", 1, True),
    ((1, 2, 5, 6, 7), 4, (2, 3, 1), (1, 2, 3), 1, "full", 2, False),
    ((1, 3, 6, 5, 6), 2, 3, 2, 2, ((1, 2), 0, (0, 3)), 1, False),
]


@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: f"{len(c[0]) - 2}d-{c[5]}")
def test_conv_layer_matches_correlation_oracle(case):
    shape, nf, fs, stride, dil, pad, groups, flip = case
    r = rng(len(shape) * 10 + nf)
    x = r.standard_normal(shape)
    layer = L.ConvLayer(
        L.InputLayer((None, shape[1], *(None,) * (len(shape) - 2))),
        nf,
        fs,
        stride=stride,
        dilation=dil,
        pad=pad,
        num_groups=groups,
        flip_filters=flip,
        b=init.Normal(1.0),
    )
    W, b = layer.W.get_value(), layer.b.get_value()
    n = len(shape) - 2
    tup = lambda v: v if isinstance(v, tuple) else (v,) * n  # noqa: E731
    entries = pad if isinstance(pad, tuple) else (pad,) * n
    pads = [
        resolve_padding(length, k, p, s, d)
        for length, k, p, s, d in zip(shape[2:], tup(fs), entries, tup(stride), tup(dil))
    ]
    want = corr_reference(x, W, tup(stride), tup(dil), pads, groups, flip)
    want = _relu(want + b.reshape((1, -1) + (1,) * n))
    got = evaluate(layer, x)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
    static = L.get_output_shape(layer, shape)
    assert static == got.shape


def test_untied_biases_add_one_bias_per_output_position():
    x = rng(1).standard_normal((2, 2, 5, 4))
    layer = L.Conv2DLayer(
        L.InputLayer((None, 2, 5, 4)),
        3,
        3,
        pad=1,
        untie_biases=True,
        b=init.Normal(1.0),
        nonlinearity=None,
    )
    assert layer.b.get_value().shape == (3, 5, 4)
    want = corr_reference(x, layer.W.get_value(), (1, 1), (1, 1), [(1, 1)] * 2, 1, True)
    np.testing.assert_allclose(evaluate(layer, x), want + layer.b.get_value()[None], rtol=1e-10)


def test_dilated_conv_layers_use_lasagne_signature_with_same_padding():
    x = rng(2).standard_normal((1, 2, 9, 10))
    layer = L.DilatedConv2DLayer(
        L.InputLayer((None, 2, 9, 10)), 5, (3, 3), dilation=(2, 3), pad="same", nonlinearity=None
    )
    W = layer.W.get_value()
    assert W.shape == (5, 2, 3, 3)  # (out, in, *kernel), not Lasagne's swapped layout
    want = corr_reference(x, W, (1, 1), (2, 3), [(2, 2), (3, 3)], 1, False)
    got = evaluate(layer, x)
    assert got.shape == (1, 5, 9, 10) == L.get_output_shape(layer, x.shape)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    vol = L.DilatedConv3DLayer(L.InputLayer((None, 2, 6, 6, 6)), 4, 3, dilation=2, pad="same")
    assert vol.output_shape == (None, 4, 6, 6, 6)


@pytest.mark.parametrize(
    "shape, nf, fs, stride, dil, crop, out",
    [
        ((2, 3, 5), 2, 3, 2, 1, "same", (10,)),
        ((1, 2, 4, 3), 3, (3, 2), (2, 3), (2, 1), "valid", (11, 8)),
        ((1, 2, 3, 4, 3), 2, 3, 2, 1, 1, (5, 7, 5)),
        ((1, 1, 6, 6, 6), 2, 3, 1, 2, "full", (2, 2, 2)),
    ],
)
@pytest.mark.parametrize("flip", [False, True])
def test_transposed_conv_layer_matches_scatter_oracle(shape, nf, fs, stride, dil, crop, out, flip):
    """Lasagne's transposed layer is the input gradient of a true convolution with W
    (flip_filters=False, its default) or of a cross-correlation (flip_filters=True); the
    scatter oracle scatters through a cross-correlation, so flip W for the default."""
    n = len(shape) - 2
    x = rng(3).standard_normal(shape)
    layer = L.TransposedConvLayer(
        L.InputLayer((None, shape[1], *(None,) * n)),
        nf,
        fs,
        stride=stride,
        crop=crop,
        dilation=dil,
        nonlinearity=None,
        b=None,
        flip_filters=flip,
    )
    W = layer.W.get_value()
    W_scatter = W if flip else W[(slice(None), slice(None)) + (slice(None, None, -1),) * n]
    assert W.shape[:2] == (shape[1], nf)
    tup = lambda v: v if isinstance(v, tuple) else (v,) * n  # noqa: E731
    pads = [
        resolve_padding(o, k, crop, s, d) for o, k, s, d in zip(out, tup(fs), tup(stride), tup(dil))
    ]
    want = transposed_conv_reference(x, W_scatter, tup(stride), tup(dil), pads, out)
    got = evaluate(layer, x)
    assert got.shape == (shape[0], nf, *out) == L.get_output_shape(layer, shape)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_transposed_conv_output_size_picks_among_lengths_and_is_checked():
    x = rng(4).standard_normal((1, 2, 4, 4, 4))
    incoming = L.InputLayer((None, 2, 4, 4, 4))
    layer = L.TransposedConv3DLayer(
        incoming,
        3,
        3,
        stride=2,
        crop=1,
        output_size=8,
        b=None,
        nonlinearity=None,
        flip_filters=True,
    )
    got = evaluate(layer, x)
    want = transposed_conv_reference(
        x, layer.W.get_value(), (2,) * 3, (1,) * 3, [(1, 1)] * 3, (8,) * 3
    )
    assert got.shape == (1, 3, 8, 8, 8)
    assert layer.output_shape == (None, 3, 8, 8, 8)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="output_size"):
        L.TransposedConv3DLayer(incoming, 3, 3, stride=2, crop=1, output_size=10)


@pytest.mark.parametrize(
    "shape, pool, stride, pad, ignore_border, mode",
    [
        ((2, 3, 9), 2, None, 0, True, "max"),
        ((1, 2, 7, 6), (3, 2), (2, 2), (1, 0), True, "average_inc_pad"),
        ((1, 2, 7, 6), (3, 2), (2, 2), (1, 1), True, "average_exc_pad"),
        ((1, 2, 5, 6, 7), 2, None, 0, False, "max"),
        ((1, 1, 5, 5, 6), 3, 2, 1, True, "max"),
        ((1, 2, 7, 5), 3, 1, 0, False, "average_exc_pad"),
        ((1, 2, 5, 6), 2, None, 0, False, "average_inc_pad"),
        ((1, 1, 8, 7), 3, 2, 0, False, "average_inc_pad"),
    ],
)
def test_pool_layer_matches_window_oracle(shape, pool, stride, pad, ignore_border, mode):
    n = len(shape) - 2
    x = rng(5).standard_normal(shape)
    layer = L.PoolLayer(
        L.InputLayer((None, shape[1], *(None,) * n)),
        pool,
        stride=stride,
        pad=pad,
        ignore_border=ignore_border,
        mode=mode,
    )
    out_shape = L.get_output_shape(layer, shape)
    got = evaluate(layer, x)
    assert got.shape == out_shape
    want = pool_reference(x, layer.pool_size, layer.stride, layer.pad, mode, out_shape[2:])
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_max_pool_3d_layer_gradient_reaches_the_maxima():
    x = rng(6).standard_normal((1, 1, 4, 4, 4))
    inp = L.InputLayer((None, 1, 4, 4, 4))
    layer = L.MaxPool3DLayer(inp, 2)
    out = L.get_output(layer)
    g = pt.grad(out.sum(), inp.input_var)
    import pytensor

    gx = pytensor.function([inp.input_var], g, mode="FAST_COMPILE")(x)
    want = np.zeros_like(x)
    for i, j, k in np.ndindex(2, 2, 2):
        block = x[0, 0, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2, 2 * k : 2 * k + 2]
        a, b, c = np.unravel_index(block.argmax(), block.shape)
        want[0, 0, 2 * i + a, 2 * j + b, 2 * k + c] = 1
    np.testing.assert_array_equal(gx, want)


@pytest.mark.parametrize("mode", ["repeat", "dilate"])
def test_upscale_layer(mode):
    x = rng(7).standard_normal((1, 2, 2, 3, 2))
    layer = L.Upscale3DLayer(L.InputLayer((None, 2, None, None, None)), (2, 1, 3), mode=mode)
    got = evaluate(layer, x)
    if mode == "repeat":
        want = x.repeat(2, axis=2).repeat(3, axis=4)
    else:
        want = np.zeros((1, 2, 4, 3, 6))
        want[:, :, ::2, :, ::3] = x
    np.testing.assert_array_equal(got, want)
    assert L.get_output_shape(layer, x.shape) == got.shape


def test_shape_layers_match_numpy():
    x = rng(8).standard_normal((2, 3, 4, 5))
    inp = L.InputLayer((None, 3, 4, 5))
    cases = [
        (
            L.PadLayer(inp, [(1, 2), 3], val=7),
            np.pad(x, ((0, 0), (0, 0), (1, 2), (3, 3)), constant_values=7),
        ),
        (L.SliceLayer(inp, slice(1, None, 2), axis=2), x[:, :, 1::2]),
        (L.SliceLayer(inp, -1, axis=1), x[:, -1]),
        (L.ReshapeLayer(inp, ([0], [1], -1)), x.reshape(2, 3, 20)),
        (L.ReshapeLayer(inp, ([0], 60)), x.reshape(2, 60)),
        (L.DimshuffleLayer(inp, (0, 3, "x", 1, 2)), x.transpose(0, 3, 1, 2)[:, :, None]),
        (L.FlattenLayer(inp), x.reshape(2, 60)),
        (L.FlattenLayer(inp, outdim=3), x.reshape(2, 3, 20)),
    ]
    for layer, want in cases:
        got = evaluate(layer, x)
        np.testing.assert_array_equal(got, want)
        assert L.get_output_shape(layer, x.shape) == want.shape, type(layer).__name__
        known = layer.output_shape
        assert all(k is None or k == w for k, w in zip(known, want.shape)), known


def test_elementwise_layers_match_numpy():
    x = rng(9).standard_normal((2, 3, 4, 2, 3))
    inp = L.InputLayer((None, 3, None, None, None))
    bias = L.BiasLayer(inp, b=init.Normal(1.0))
    scale = L.ScaleLayer(inp, scales=init.Normal(1.0))
    prelu = L.ParametricRectifierLayer(inp, alpha=init.Uniform((0.1, 0.5)))
    expr = L.ExpressionLayer(inp, lambda t: t[:, :2] ** 2, output_shape="auto")
    nonlin = L.NonlinearityLayer(inp, nonlinearities.tanh)
    per_channel = lambda p: p.get_value().reshape(1, 3, 1, 1, 1)  # noqa: E731
    np.testing.assert_allclose(evaluate(bias, x), x + per_channel(bias.b))
    np.testing.assert_allclose(evaluate(scale, x), x * per_channel(scale.scales))
    alpha = per_channel(prelu.alpha)
    np.testing.assert_allclose(evaluate(prelu, x), np.where(x > 0, x, alpha * x))
    assert prelu.alpha.get_value().shape == (3,)
    np.testing.assert_allclose(evaluate(expr, x), x[:, :2] ** 2)
    assert expr.output_shape == (None, 2, None, None, None)
    np.testing.assert_allclose(evaluate(nonlin, x), np.tanh(x))


def test_merge_layers_with_and_without_cropping():
    r = rng(10)
    a, b = r.standard_normal((2, 3, 6, 5)), r.standard_normal((2, 3, 4, 5))
    la, lb = L.InputLayer((None, 3, 6, 5)), L.InputLayer((None, 3, 4, 5))
    summed = L.ElemwiseSumLayer([la, lb], coeffs=[2, -1], cropping=[None, None, "center", None])
    np.testing.assert_allclose(evaluate(summed, a, b), 2 * a[:, :, 1:5] - b)
    assert summed.output_shape == (None, 3, 4, 5)
    cat = L.ConcatLayer([la, lb], axis=1, cropping=[None, None, "upper", None])
    np.testing.assert_array_equal(evaluate(cat, a, b), np.concatenate([a[:, :, 2:], b], axis=1))
    assert cat.output_shape == (None, 6, 4, 5)
    lower = L.ConcatLayer([la, lb], axis=2)
    np.testing.assert_array_equal(evaluate(lower, a, b), np.concatenate([a, b], axis=2))
    assert lower.output_shape == (None, 3, 10, 5)
    product = L.ElemwiseMergeLayer([la, lb], pt.mul, cropping=[None, None, "lower", None])
    np.testing.assert_allclose(evaluate(product, a, b), a[:, :, :4] * b)


def test_dense_layer_flattens_trailing_axes():
    x = rng(11).standard_normal((3, 2, 4))
    layer = L.DenseLayer(L.InputLayer((None, 2, 4)), 5, b=init.Normal(1.0), nonlinearity=None)
    want = x.reshape(3, 8) @ layer.W.get_value() + layer.b.get_value()
    np.testing.assert_allclose(evaluate(layer, x), want)
    assert layer.output_shape == (None, 5)
