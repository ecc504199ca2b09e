"""`dilnet.regularization` has Lasagne's semantics: penalties over the parameters tagged
``regularizable`` (weights and batch-norm ``gamma``, never biases, ``beta`` or running
averages), checked against numpy sums of the known parameter values."""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.gradient import DisconnectedInputError

import dilnet as lasagne
from dilnet import layers as L
from dilnet.regularization import (
    apply_penalty,
    l1,
    l2,
    regularize_layer_params,
    regularize_layer_params_weighted,
    regularize_network_params,
)

FAST = "FAST_COMPILE"


def _value(expr):
    return float(pytensor.function([], expr, mode=FAST)())


def _network(seed=0):
    """Conv3D (W, b) -> batch_norm (beta, gamma, mean, inv_std) -> Dense (W, b), with nonzero
    values everywhere so that a wrongly included parameter changes every sum."""
    g = np.random.default_rng(seed)
    inp = L.InputLayer((None, 2, 4, 4, 4))
    conv = L.Conv3DLayer(inp, 3, 2, W=g.normal(size=(3, 2, 2, 2, 2)), b=g.normal(size=3))
    conv_W = conv.W.get_value()
    bn = L.BatchNormLayer(
        conv,
        beta=g.normal(size=3),
        gamma=g.normal(size=3),
        mean=g.normal(size=3),
        inv_std=g.uniform(1, 2, size=3),
    )
    dense = L.DenseLayer(bn, 5, W=g.normal(size=(81, 5)), b=g.normal(size=5))
    return inp, conv, bn, dense, conv_W


def test_l1_and_l2_are_symbolic_scalars_with_the_numpy_values():
    x = np.random.default_rng(1).normal(size=(3, 4, 2))
    for penalty, expected in ((l1, np.abs(x).sum()), (l2, (x**2).sum())):
        for arg in (x, pytensor.shared(x), pt.as_tensor_variable(x)):
            out = penalty(arg)
            assert isinstance(out, pt.TensorVariable) and out.ndim == 0
            np.testing.assert_allclose(_value(out), expected, rtol=1e-12)


def test_l2_is_the_squared_norm_not_the_norm():
    assert _value(l2(np.array([3.0, 4.0]))) == 25.0
    assert _value(l1(np.array([3.0, -4.0]))) == 7.0


def test_gradient_of_l2_is_two_W_and_of_l1_is_sign_W():
    W_val = np.random.default_rng(2).normal(size=(4, 3, 2, 2, 2))
    W = pytensor.shared(W_val, name="W")
    g2 = pytensor.function([], pytensor.grad(l2(W), W), mode=FAST)()
    np.testing.assert_allclose(g2, 2 * W_val, rtol=1e-12)
    g1 = pytensor.function([], pytensor.grad(l1(W), W), mode=FAST)()
    np.testing.assert_array_equal(g1, np.sign(W_val))


def test_network_penalty_is_over_weights_and_gamma_only():
    _, conv, bn, dense, _ = _network()
    Ws = [conv.W.get_value(), bn.gamma.get_value(), dense.W.get_value()]
    assert [p.name for p in L.get_all_params(dense, regularizable=True)] == ["W", "gamma", "W"]
    np.testing.assert_allclose(
        _value(regularize_network_params(dense, l2)), sum((w**2).sum() for w in Ws), rtol=1e-12
    )
    np.testing.assert_allclose(
        _value(regularize_network_params(dense, l1)),
        sum(np.abs(w).sum() for w in Ws),
        rtol=1e-12,
    )


def test_network_penalty_gradient_is_two_W_and_the_biases_are_not_in_it():
    _, conv, _, dense, conv_W = _network()
    penalty = regularize_network_params(dense, l2)
    gW = pytensor.function([], pytensor.grad(penalty, conv.W), mode=FAST)()
    np.testing.assert_allclose(gW, 2 * conv_W, rtol=1e-12)
    for bias in (conv.b, dense.b):
        with pytest.raises(DisconnectedInputError):
            pytensor.grad(penalty, bias)


def test_tags_choose_the_parameters():
    _, conv, bn, dense, _ = _network()
    others = [conv.b, bn.beta, bn.mean, bn.inv_std, dense.b]
    expected = sum((p.get_value() ** 2).sum() for p in others)
    got = regularize_network_params(dense, l2, tags={"regularizable": False})
    np.testing.assert_allclose(_value(got), expected, rtol=1e-12)
    trainable_not_regularizable = [conv.b, bn.beta, dense.b]
    got = regularize_layer_params(
        [conv, bn, dense], l1, tags={"trainable": True, "regularizable": False}
    )
    np.testing.assert_allclose(
        _value(got), sum(np.abs(p.get_value()).sum() for p in trainable_not_regularizable)
    )


def test_layer_params_are_the_given_layers_only():
    _, conv, _bn, dense, conv_W = _network()
    np.testing.assert_allclose(
        _value(regularize_layer_params(dense, l2)), (dense.W.get_value() ** 2).sum(), rtol=1e-12
    )
    np.testing.assert_allclose(
        _value(regularize_layer_params([conv, dense], l2)),
        (conv_W**2).sum() + (dense.W.get_value() ** 2).sum(),
        rtol=1e-12,
    )


def test_weighted_layer_params():
    _, conv, bn, dense, conv_W = _network()
    dense_W, gamma = dense.W.get_value(), bn.gamma.get_value()
    expected = 0.1 * (conv_W**2).sum() + 0.5 * (dense_W**2).sum() + 2.0 * (gamma**2).sum()
    got = regularize_layer_params_weighted({conv: 0.1, dense: 0.5, bn: 2.0}, l2)
    assert got.ndim == 0
    np.testing.assert_allclose(_value(got), expected, rtol=1e-12)
    # a symbolic coefficient (a schedule) works too
    coeff = pytensor.shared(np.float64(3.0))
    got = regularize_layer_params_weighted({conv: coeff}, l1)
    np.testing.assert_allclose(_value(got), 3.0 * np.abs(conv_W).sum(), rtol=1e-12)


def test_shared_parameters_once_in_a_network_twice_in_a_layer_list():
    # Lasagne: get_all_params lists each parameter once; regularize_layer_params sums per layer
    inp = L.InputLayer((None, 3))
    W = np.random.default_rng(3).normal(size=(3, 3))
    first = L.DenseLayer(inp, 3, W=W)
    second = L.DenseLayer(first, 3, W=first.W)
    np.testing.assert_allclose(_value(regularize_network_params(second, l2)), (W**2).sum())
    np.testing.assert_allclose(
        _value(regularize_layer_params([first, second], l2)), 2 * (W**2).sum()
    )


def test_apply_penalty_on_one_tensor_a_list_and_with_kwargs():
    g = np.random.default_rng(4)
    a, b = g.normal(size=(2, 3)), g.normal(size=4)
    np.testing.assert_allclose(_value(apply_penalty([a, b], l2)), (a**2).sum() + (b**2).sum())
    np.testing.assert_allclose(_value(apply_penalty(a, l1)), np.abs(a).sum())

    def scaled(x, scale):
        return scale * pt.sum(x)

    np.testing.assert_allclose(
        _value(apply_penalty([a, b], scaled, scale=2.0)), 2 * (a.sum() + b.sum())
    )


def test_a_tensor_with_a_static_first_axis_is_penalised_whole_not_row_by_row():
    # PyTensor can iterate such a tensor; a row-wise sum of max() would differ from max()
    x_val = np.array([[1.0, 5.0], [2.0, 3.0]])
    x = pt.as_tensor_variable(x_val)
    assert x.type.shape == (2, 2)
    shared = pytensor.shared(x_val, shape=(2, 2))
    for arg in (x, shared, x_val):
        assert _value(apply_penalty(arg, pt.max)) == 5.0


def test_nothing_to_penalise_gives_a_symbolic_zero():
    inp = L.InputLayer((None, 3))
    for got in (
        regularize_network_params(inp, l2),
        regularize_layer_params(inp, l2),
        regularize_layer_params_weighted({}, l2),
        apply_penalty([], l1),
    ):
        assert isinstance(got, pt.TensorVariable) and got.ndim == 0
        assert _value(got) == 0.0


def test_float32_parameters_give_a_float32_penalty():
    with pytensor.config.change_flags(floatX="float32"):
        net = L.Conv3DLayer(L.InputLayer((None, 1, 3, 3, 3)), 2, 3)
        penalty = regularize_network_params(net, l2)
    assert penalty.dtype == "float32"


def test_lasagne_docstring_example_after_changing_imports():
    # lasagne/regularization.py's module example, `theano` -> `pytensor`
    import pytensor.tensor as T

    from dilnet.layers import DenseLayer, InputLayer, get_output
    from dilnet.nonlinearities import softmax

    layer_in = InputLayer((100, 20))
    layer1 = DenseLayer(layer_in, num_units=3)
    layer2 = DenseLayer(layer1, num_units=5, nonlinearity=softmax)
    x = T.matrix("x")
    y = T.ivector("y")
    l_out = get_output(layer2, x)
    loss = T.mean(lasagne.objectives.categorical_crossentropy(l_out, y))
    layers = {layer1: 0.1, layer2: 0.5}
    l2_penalty = regularize_layer_params_weighted(layers, l2)
    l1_penalty = regularize_layer_params(layer2, l1) * 1e-4
    loss = loss + l2_penalty + l1_penalty

    W1, W2 = layer1.W.get_value(), layer2.W.get_value()
    g = np.random.default_rng(5)
    xv = g.normal(size=(100, 20)).astype(x.dtype)
    yv = g.integers(0, 5, size=100).astype("int32")
    f = pytensor.function([x, y], [loss, l2_penalty, l1_penalty], mode=FAST)
    total, pen2, pen1 = f(xv, yv)
    np.testing.assert_allclose(pen2, 0.1 * (W1**2).sum() + 0.5 * (W2**2).sum(), rtol=1e-6)
    np.testing.assert_allclose(pen1, 1e-4 * np.abs(W2).sum(), rtol=1e-6)
    assert total > pen1 + pen2


def test_reachable_as_lasagne_regularization():
    assert lasagne.regularization.l2 is l2
    assert sorted(lasagne.regularization.__all__) == [
        "apply_penalty",
        "l1",
        "l2",
        "regularize_layer_params",
        "regularize_layer_params_weighted",
        "regularize_network_params",
    ]


@pytest.mark.parametrize("penalty", [l1, l2])
def test_penalties_add_to_a_loss_and_train(penalty):
    # weight decay alone drives the weights towards zero under sgd
    net = L.DenseLayer(L.InputLayer((None, 4)), 3, W=np.ones((4, 3)), b=np.ones(3))
    loss = regularize_network_params(net, penalty)
    params = L.get_all_params(net, regularizable=True)
    assert params == [net.W]
    step = pytensor.function(
        [], loss, updates=lasagne.updates.sgd(loss, params, learning_rate=0.1), mode=FAST
    )
    first = float(step())
    assert float(step()) < first
