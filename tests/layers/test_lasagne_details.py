"""Details of Lasagne's contract that ported code relies on."""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from common import FAST, evaluate, rng
from oracles import transposed_conv_reference

from dilnet import ConfigError, ShapeError, init, nonlinearities
from dilnet import layers as L
from dilnet.interop.lasagne import set_lasagne_param_values


def test_positional_arguments_follow_lasagne_order():
    inp = L.InputLayer((None, 2, 8, 8))
    conv = L.Conv2DLayer(inp, 4, 3, 1, 0, False, init.Constant(1.0), None, None, False)
    assert (
        conv.b is None
        and conv.flip_filters is False
        and conv.nonlinearity is nonlinearities.identity
    )
    pool = L.Pool2DLayer(conv, 2, None, (0, 0), False, "average_inc_pad")
    assert pool.ignore_border is False and pool.mode == "average_inc_pad"
    up = L.TransposedConv2DLayer(conv, 3, 3, 2, 0, False, init.Constant(0.5), None, None, True, 13)
    assert up.flip_filters is True and up.output_shape == (None, 3, 13, 13)


def test_tags_scale_bias_and_batch_norm_chain_match_lasagne():
    inp = L.InputLayer((None, 3, 4))
    assert L.get_all_params(L.ScaleLayer(inp), regularizable=True) == []
    assert L.get_all_params(L.BiasLayer(inp), regularizable=True) == []
    top = L.batch_norm(L.DenseLayer(inp, 5, nonlinearity=None))
    assert isinstance(top, L.NonlinearityLayer) and top.nonlinearity is nonlinearities.identity
    assert [type(x).__name__ for x in L.get_all_layers(top)] == [
        "InputLayer", "DenseLayer", "BatchNormLayer", "NonlinearityLayer",
    ]  # fmt: skip


def test_fixed_batch_size_input_accepts_a_smaller_last_batch():
    inp = L.InputLayer((64, 1, 6, 6))
    net = L.DenseLayer(L.Conv2DLayer(inp, 2, 3), 3)
    f = pytensor.function([inp.input_var], L.get_output(net), mode=FAST)
    assert f(np.ones((32, 1, 6, 6))).shape == (32, 3)


def test_dense_negative_leading_axes_flattens_from_the_end():
    x = rng(1).standard_normal((2, 3, 4))
    layer = L.DenseLayer(L.InputLayer((None, 3, 4)), 5, num_leading_axes=-1, nonlinearity=None)
    assert layer.W.get_value().shape == (4, 5) and layer.output_shape == (None, 3, 5)
    np.testing.assert_allclose(evaluate(layer, x), x @ layer.W.get_value())


def test_cropping_with_an_unknown_length_reports_unknown():
    a, b = L.InputLayer((None, 1, None)), L.InputLayer((None, 1, 10))
    cat = L.ConcatLayer([a, b], cropping=(None, None, "lower"))
    assert cat.output_shape == (None, 2, None)
    short = L.ConcatLayer([b, b], axis=1, cropping=[None])  # padded with None like Lasagne
    assert short.cropping == (None, None, None)


def test_expression_auto_shape_probes_unknown_lengths_with_zero():
    inp = L.InputLayer((None, 3, None))
    assert L.ExpressionLayer(inp, lambda x: x.sum(axis=2), "auto").output_shape == (None, 3)
    assert L.ExpressionLayer(inp, lambda x: x[:, :2], "auto").output_shape == (None, 2, None)


def test_gaussian_noise_and_symbolic_dropout_probability():
    inp = L.InputLayer((None, 4, 50))
    noisy = L.GaussianNoiseLayer(inp, sigma=0.5)
    out = L.get_output(noisy)
    f = pytensor.function([inp.input_var], out, updates=L.collect_state_updates(out), mode=FAST)
    x = np.zeros((20, 4, 50))
    a, b = f(x), f(x)
    assert abs(a.std() - 0.5) < 0.02 and (a != b).any()
    np.testing.assert_array_equal(evaluate(noisy, x, deterministic=True), x)
    p = pytensor.shared(np.float64(0.0))
    drop = L.DropoutLayer(inp, p=p)
    out = L.get_output(drop)
    g = pytensor.function([inp.input_var], out, updates=L.collect_state_updates(out), mode=FAST)
    ones = np.ones((10, 4, 50))
    np.testing.assert_array_equal(g(ones), ones)
    p.set_value(0.5)
    assert 0.4 < (g(ones) == 0).mean() < 0.6


def test_transposed_lasagne_weights_load_with_lasagne_flip_default():
    r = rng(2)
    W = r.standard_normal((2, 3, 3, 3))  # Lasagne's TransposedConv2DLayer W, flip_filters=False
    x = r.standard_normal((1, 2, 4, 4))
    # Lasagne: the input gradient of a true convolution with W = scatter through flipped W
    want = transposed_conv_reference(x, W[:, :, ::-1, ::-1], (2, 2), (1, 1), [(0, 0)] * 2, (9, 9))
    for flip_in_port in (False, True):
        up = L.TransposedConv2DLayer(
            L.InputLayer((None, 2, 4, 4)),
            3,
            3,
            stride=2,
            b=None,
            nonlinearity=None,
            flip_filters=flip_in_port,
            name="up",
        )
        set_lasagne_param_values(up, [W])
        np.testing.assert_allclose(evaluate(up, x), want, rtol=1e-10)
        set_lasagne_param_values(up, [W], lasagne_flip_filters={"up": False})
        np.testing.assert_allclose(evaluate(up, x), want, rtol=1e-10)


@pytest.mark.parametrize(
    "build, error, message",
    [
        (lambda i: L.ConcatLayer([]), ConfigError, r"`incomings`. Expected a non-empty list"),
        (
            lambda i: L.ConcatLayer([i, i], cropping=[None] * 5),
            ConfigError,
            r"`cropping`. Expected None or up to 3 entries",
        ),
        (lambda i: L.DimshuffleLayer(i, 1), ConfigError, r"`pattern`. Expected a tuple"),
        (
            lambda i: L.DilatedConv2DLayer(L.InputLayer((None, 1, 9, 9)), 2, 3, stride=2),
            ConfigError,
            r"`stride`. Expected no stride",
        ),
        (
            lambda i: L.ReshapeLayer(L.InputLayer((2, 3)), ([0], [0], -1)),
            ShapeError,
            r"do not divide",
        ),
        (
            lambda i: L.GaussianNoiseLayer(i, sigma=-1),
            ConfigError,
            r"`sigma`. Expected a non-negative number",
        ),
        (
            lambda i: L.DropoutLayer(i, p=pt.vector()),
            ConfigError,
            r"a probability in \[0, 1\) or a scalar tensor",
        ),
    ],
)
def test_more_bad_arguments(build, error, message):
    with pytest.raises(error, match=message):
        build(L.InputLayer((None, 2, 5)))
