"""Recurrent layers against plain-loop numpy references (tests/oracles.py), compiled in the
suite's mode (`dilnet.modes.NUMPY`): values with masks, backwards, precomputed or not, unrolled
or scanned; gradients against finite differences; initial states; errors."""

from types import SimpleNamespace

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from oracles import gru_step, lstm_step, recurrence_reference, rnn_step

from dilnet import layers as L
from dilnet import nonlinearities
from dilnet.errors import ConfigError, ShapeError
from dilnet.utils import unroll_scan

B, T, F, U = 2, 4, 3, 3


def _data(seed, shape=(B, T, F)):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=shape)
    mask = np.ones(shape[:2])
    mask[0, 1] = 0  # a skipped step inside the first sequence
    mask[1, 2:] = 0  # the second sequence has two steps, then padding
    return x, mask


def _randomize(layer, seed, scale=0.5):
    """Give every parameter of `layer` random values; return them by name."""
    rng = np.random.default_rng(seed)
    values = {}
    for p in layer.get_params():
        value = rng.normal(size=p.get_value().shape) * scale
        p.set_value(value)
        values[p.name] = value
    return values


def _evaluate(layer, feeds):
    """Compile `layer`'s output for the {InputLayer: value} feeds (suite mode) and run it."""
    inputs = list(feeds)
    f = pytensor.function([x.input_var for x in inputs], L.get_output(layer))
    return f(*feeds.values())


def _net(cls, masked, **kwargs):
    l_in = L.InputLayer((B, T, F))
    l_mask = L.InputLayer((B, T)) if masked else None
    layer = cls(l_in, U, mask_input=l_mask, **kwargs)
    return l_in, l_mask, layer


def _feeds(l_in, l_mask, x, mask):
    return {l_in: x} if l_mask is None else {l_in: x, l_mask: mask}


CASES = [  # (masked, backwards, precompute_input, unroll_scan, only_return_final)
    (False, False, True, False, False),
    (True, False, True, False, False),
    (True, True, True, False, False),
    (True, False, False, True, False),
    (True, True, False, True, True),
    (False, True, True, False, True),
]
IDS = ["plain", "mask", "mask-backwards", "mask-unrolled", "all-options", "backwards-final"]


@pytest.mark.parametrize(("masked", "backwards", "precompute", "unroll", "final"), CASES, ids=IDS)
def test_rnn_matches_the_reference(masked, backwards, precompute, unroll, final):
    rng = np.random.default_rng(0)
    W_in, W_hid = rng.normal(size=(F, U)), rng.normal(size=(U, U)) * 0.5
    b, h0 = rng.normal(size=U), rng.normal(size=(1, U))
    l_in, l_mask, layer = _net(
        L.RecurrentLayer,
        masked,
        W_in_to_hid=W_in,
        W_hid_to_hid=W_hid,
        b=b,
        hid_init=h0,
        nonlinearity=nonlinearities.tanh,
        backwards=backwards,
        precompute_input=precompute,
        unroll_scan=unroll,
        only_return_final=final,
    )
    x, mask = _data(1)
    got = _evaluate(layer, _feeds(l_in, l_mask, x, mask))
    outs, finals = recurrence_reference(
        rnn_step(W_in, W_hid, b), x, (np.repeat(h0, B, 0),), mask if masked else None, backwards
    )
    expected = finals if final else outs
    assert layer.output_shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("peepholes", [True, False])
@pytest.mark.parametrize(
    ("masked", "backwards", "precompute", "unroll", "final"), CASES[1:5], ids=IDS[1:5]
)
def test_lstm_matches_the_reference(peepholes, masked, backwards, precompute, unroll, final):
    l_in, l_mask, layer = _net(
        L.LSTMLayer,
        masked,
        peepholes=peepholes,
        backwards=backwards,
        precompute_input=precompute,
        unroll_scan=unroll,
        only_return_final=final,
    )
    p = _randomize(layer, 2)
    assert ("W_cell_to_ingate" in p) == peepholes
    x, mask = _data(3)
    got = _evaluate(layer, _feeds(l_in, l_mask, x, mask))
    h0 = (np.repeat(p["cell_init"], B, 0), np.repeat(p["hid_init"], B, 0))
    outs, finals = recurrence_reference(
        lstm_step(p, peepholes), x, h0, mask if masked else None, backwards
    )
    np.testing.assert_allclose(got, finals if final else outs, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(("masked", "backwards", "precompute", "unroll", "final"), CASES, ids=IDS)
def test_gru_matches_the_reference(masked, backwards, precompute, unroll, final):
    l_in, l_mask, layer = _net(
        L.GRULayer,
        masked,
        backwards=backwards,
        precompute_input=precompute,
        unroll_scan=unroll,
        only_return_final=final,
    )
    p = _randomize(layer, 4)
    x, mask = _data(5)
    got = _evaluate(layer, _feeds(l_in, l_mask, x, mask))
    outs, finals = recurrence_reference(
        gru_step(p), x, (np.repeat(p["hid_init"], B, 0),), mask if masked else None, backwards
    )
    np.testing.assert_allclose(got, finals if final else outs, rtol=1e-10, atol=1e-12)


def _conv_same(x, W, b):
    """'same' cross-correlation of (channels, length) with W (out, channels, 3), plus b."""
    c, n = x.shape
    padded = np.zeros((c, n + 2))
    padded[:, 1:-1] = x
    out = np.zeros((W.shape[0], n))
    for o in range(W.shape[0]):
        for w in range(n):
            out[o, w] = b[o] + sum(
                padded[i, w + k] * W[o, i, k] for i in range(c) for k in range(3)
            )
    return out


@pytest.mark.parametrize("precompute", [True, False])
def test_custom_recurrent_layer_with_convolutional_state(precompute):
    # a state of shape (channels, length): the mask must broadcast over both axes
    C, N, H = 2, 5, 3
    conv = dict(filter_size=3, pad="same", flip_filters=False, nonlinearity=None)
    i2h = L.Conv1DLayer(L.InputLayer((None, C, N)), H, **conv)
    h2h = L.Conv1DLayer(L.InputLayer((None, H, N)), H, **conv)
    l_in, l_mask = L.InputLayer((B, T, C, N)), L.InputLayer((B, T))
    layer = L.CustomRecurrentLayer(l_in, i2h, h2h, mask_input=l_mask, precompute_input=precompute)
    assert layer.output_shape == (B, T, H, N)
    rng = np.random.default_rng(6)
    for p in layer.get_params():
        p.set_value(rng.normal(size=p.get_value().shape) * 0.5)
    x, mask = _data(7, (B, T, C, N))
    got = _evaluate(layer, {l_in: x, l_mask: mask})
    Wi, bi, Wh, bh = (p.get_value() for p in (i2h.W, i2h.b, h2h.W, h2h.b))

    def step(x_t, state):
        pre = _conv_same(x_t, Wi, bi) + _conv_same(state[0], Wh, bh)
        return (np.maximum(pre, 0),)

    h0 = np.repeat(layer.hid_init.get_value(), B, 0)
    outs, _ = recurrence_reference(step, x, (h0,), mask)
    np.testing.assert_allclose(got, outs, rtol=1e-10, atol=1e-12)


def test_initial_states_given_as_layers_are_used_per_sample():
    l_in, l_h, l_c = L.InputLayer((B, T, F)), L.InputLayer((B, U)), L.InputLayer((None, U))
    layer = L.LSTMLayer(l_in, U, hid_init=l_h, cell_init=l_c)
    assert L.get_all_layers(layer) == [l_in, l_h, l_c, layer]
    p = _randomize(layer, 8)
    assert "hid_init" not in p and "cell_init" not in p
    rng = np.random.default_rng(9)
    x, h0, c0 = rng.normal(size=(B, T, F)), rng.normal(size=(B, U)), rng.normal(size=(B, U))
    got = _evaluate(layer, {l_in: x, l_h: h0, l_c: c0})
    outs, _ = recurrence_reference(lstm_step(p), x, (c0, h0))
    np.testing.assert_allclose(got, outs, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    ("cls", "learn_init", "trainable"),
    [
        (L.RecurrentLayer, False, 3),
        (L.RecurrentLayer, True, 4),
        (L.LSTMLayer, False, 15),
        (L.LSTMLayer, True, 17),
        (L.GRULayer, True, 10),
    ],
)
def test_learn_init_makes_the_initial_states_trainable(cls, learn_init, trainable):
    layer = cls(L.InputLayer((B, T, F)), U, learn_init=learn_init)
    inits = [p for p in layer.get_params() if p.name in ("hid_init", "cell_init")]
    assert inits and all(p.get_value().shape == (1, U) for p in inits)
    params = L.get_all_params(layer, trainable=True)
    assert len(params) == trainable
    assert all((p in params) == learn_init for p in inits)
    assert not any(p in L.get_all_params(layer, regularizable=True) for p in inits)


def test_rnn_parameters_are_named_after_the_layer():
    layer = L.RecurrentLayer(L.InputLayer((B, T, F)), U, name="rnn")
    assert [p.name for p in L.get_all_params(layer)] == [
        "rnn.hid_init",
        "rnn.input_to_hidden.W",
        "rnn.input_to_hidden.b",
        "rnn.hidden_to_hidden.W",
    ]
    assert layer.b is layer.input_to_hidden.b and layer.W_hid_to_hid is layer.hidden_to_hidden.W


def test_unknown_batch_and_sequence_lengths():
    layer = L.GRULayer(L.InputLayer((None, None, F)), U)
    assert layer.output_shape == (None, None, U)
    f = pytensor.function([layer.input_layers[0].input_var], L.get_output(layer))
    assert f(np.zeros((3, 5, F))).shape == (3, 5, U)
    assert f(np.zeros((1, 2, F))).shape == (1, 2, U)


def test_keyword_arguments_reach_the_layers_inside():
    # deterministic=True switches off dropout inside input_to_hidden, with no unused-kwargs
    # warning (the suite turns warnings into errors)
    i2h = L.DenseLayer(L.DropoutLayer(L.InputLayer((None, F)), p=0.9), U, nonlinearity=None)
    h2h = L.DenseLayer(L.InputLayer((None, U)), U, b=None, nonlinearity=None)
    l_in = L.InputLayer((B, T, F))
    layer = L.CustomRecurrentLayer(l_in, i2h, h2h, nonlinearity=nonlinearities.tanh)
    assert "deterministic" in layer.get_output_kwargs
    x, _ = _data(10)
    f = pytensor.function([l_in.input_var], L.get_output(layer, deterministic=True))
    W_in, b, W_hid = i2h.W.get_value(), i2h.b.get_value(), h2h.W.get_value()
    outs, _ = recurrence_reference(rnn_step(W_in, W_hid, b), x, (np.zeros((B, U)),))
    np.testing.assert_allclose(f(x), outs, rtol=1e-10, atol=1e-12)


def _fd_check(layer, l_in, x, seed):
    """The gradient of a weighted sum of the output w.r.t. every parameter equals central
    finite differences."""
    weights = np.random.default_rng(seed).normal(size=layer.output_shape)
    cost = pt.sum(L.get_output(layer) * weights)
    params = layer.get_params()
    grads = pytensor.function([l_in.input_var], pytensor.grad(cost, params))(x)
    f = pytensor.function([l_in.input_var], cost)
    eps = 1e-6
    for p, g in zip(params, grads, strict=True):
        assert np.all(np.isfinite(g))
        value = p.get_value()
        numeric = np.zeros_like(value)
        for idx in np.ndindex(value.shape):
            for sign in (1, -1):
                shifted = value.copy()
                shifted[idx] += sign * eps
                p.set_value(shifted)
                numeric[idx] += sign * f(x) / (2 * eps)
        p.set_value(value)
        np.testing.assert_allclose(g, numeric, rtol=1e-5, atol=1e-7, err_msg=p.name)


@pytest.mark.parametrize("cls", [L.RecurrentLayer, L.LSTMLayer, L.GRULayer])
def test_gradients_match_finite_differences(cls):
    l_in = L.InputLayer((1, 3, 2))
    kwargs = {"nonlinearity": nonlinearities.tanh} if cls is L.RecurrentLayer else {}
    layer = cls(l_in, 2, learn_init=True, backwards=True, **kwargs)
    _randomize(layer, 11)
    x = np.random.default_rng(12).normal(size=(1, 3, 2))
    _fd_check(layer, l_in, x, 13)


def test_gradient_steps_truncates_backpropagation():
    # with gradient_steps=1 only the last step's input gets a gradient
    l_in = L.InputLayer((B, T, F))
    x, _ = _data(14)
    grads = {}
    for steps in (-1, 1):
        layer = L.RecurrentLayer(l_in, U, nonlinearity=nonlinearities.tanh, gradient_steps=steps)
        _randomize(layer, 15)
        cost = pt.sum(L.get_output(layer))
        grads[steps] = pytensor.function([l_in.input_var], pytensor.grad(cost, l_in.input_var))(x)
    assert np.all(grads[-1][:, :-1] != 0)
    np.testing.assert_array_equal(grads[1][:, :-1], 0)
    np.testing.assert_allclose(grads[1][:, -1], grads[-1][:, -1], rtol=1e-12)


def test_grad_clipping_clips_the_pre_activation_gradient():
    # one step, identity nonlinearity: d(100 * sum h)/d b = 100 per sample, clipped to 1
    l_in = L.InputLayer((B, 1, F))
    x = np.random.default_rng(16).normal(size=(B, 1, F))
    for clip, expected in ((0, 100.0 * B), (1.0, 1.0 * B)):
        layer = L.RecurrentLayer(l_in, U, nonlinearity=None, grad_clipping=clip)
        out = L.get_output(layer)
        g = pytensor.function([l_in.input_var], pytensor.grad(100 * pt.sum(out), layer.b))(x)
        np.testing.assert_allclose(g, np.full(U, expected))


def test_unroll_scan_equals_scan():
    xs = pt.matrix("xs")
    a = pt.scalar("a")

    def step(x_t, total, product, a):
        return total + x_t * a, product * x_t

    init = [pt.zeros(3), pt.ones(3)]
    values = np.random.default_rng(17).normal(size=(4, 3))
    for backwards in (False, True):
        unrolled = unroll_scan(step, xs, init, [a], n_steps=4, go_backwards=backwards)
        scanned = pytensor.scan(
            step,
            sequences=xs,
            outputs_info=init,
            non_sequences=[a],
            go_backwards=backwards,
            return_updates=False,
        )
        f = pytensor.function([xs, a], [*unrolled, *scanned])
        u_total, u_prod, s_total, s_prod = f(values, 2.0)
        order = values[::-1] if backwards else values
        np.testing.assert_allclose(u_total, np.cumsum(order * 2.0, axis=0))
        np.testing.assert_allclose(u_prod, np.cumprod(order, axis=0))
        np.testing.assert_allclose(s_total, u_total)
        np.testing.assert_allclose(s_prod, u_prod)
    with pytest.raises(ConfigError, match=r"n_steps"):
        unroll_scan(step, xs, init, [a], n_steps=None)


def test_gate_defaults():
    gate = L.Gate(W_cell=None, nonlinearity=None)
    assert gate.W_cell is None and gate.nonlinearity is nonlinearities.identity
    assert L.Gate().nonlinearity is nonlinearities.sigmoid


@pytest.mark.parametrize("cls", [L.RecurrentLayer, L.LSTMLayer, L.GRULayer])
def test_unroll_scan_errors(cls):
    with pytest.raises(ConfigError, match=r"gradient_steps.*-1 when unroll_scan=True"):
        cls(L.InputLayer((B, T, F)), U, gradient_steps=3, unroll_scan=True)
    with pytest.raises(ShapeError, match=r"known sequence length"):
        cls(L.InputLayer((B, None, F)), U, unroll_scan=True)


def test_custom_recurrent_layer_errors():
    l_in = L.InputLayer((B, T, F))
    h2h = L.DenseLayer(L.InputLayer((None, U)), U)
    two_inputs = L.DenseLayer(L.ConcatLayer([L.InputLayer((None, F)), L.InputLayer((None, F))]), U)
    with pytest.raises(
        ConfigError, match=r"input_to_hidden.*exactly one InputLayer.*2 InputLayers"
    ):
        L.CustomRecurrentLayer(l_in, two_inputs, h2h)
    wrong_units = L.DenseLayer(L.InputLayer((None, F)), U + 1)
    with pytest.raises(ShapeError, match=r"input_to_hidden.output_shape"):
        L.CustomRecurrentLayer(l_in, wrong_units, h2h)
    fixed_batch = L.DenseLayer(L.InputLayer((B, F)), U)
    with pytest.raises(ShapeError, match=r"batch \* time = 8"):
        L.CustomRecurrentLayer(l_in, fixed_batch, h2h)


def test_argument_errors():
    l_in = L.InputLayer((B, T, F))
    with pytest.raises(ConfigError, match=r"ingate.W_cell"):
        L.LSTMLayer(l_in, U, ingate=L.Gate(W_cell=None))
    with pytest.raises(ShapeError, match=r"mask_input.output_shape"):
        L.GRULayer(l_in, U, mask_input=L.InputLayer((B, T + 1)))
    with pytest.raises(ShapeError, match=r"hid_init.output_shape"):
        L.GRULayer(l_in, U, hid_init=L.InputLayer((B, U + 1)))
    with pytest.raises(ConfigError, match=r"grad_clipping"):
        L.RecurrentLayer(l_in, U, grad_clipping=-1)
    with pytest.raises(ConfigError, match=r"num_units"):
        L.LSTMLayer(l_in, 0)
    with pytest.raises(ConfigError, match=r"resetgate"):
        L.GRULayer(l_in, U, resetgate=None)
    with pytest.raises(ShapeError, match=r"input shape"):
        L.GRULayer(L.InputLayer((B, T)), U)


@pytest.mark.parametrize("unroll", [False, True])
def test_noise_inside_the_step_draws_anew_at_every_step(unroll):
    # h_t = x_t + noise_t (zero recurrent weights, no nonlinearity): the output is the noise
    i2h = L.GaussianNoiseLayer(L.InputLayer((None, F)), sigma=1.0)
    h2h = L.DenseLayer(L.InputLayer((None, F)), F, W=np.zeros((F, F)), b=None, nonlinearity=None)
    l_in = L.InputLayer((B, T, F))
    layer = L.CustomRecurrentLayer(l_in, i2h, h2h, nonlinearity=None, precompute_input=False,
                                   unroll_scan=unroll, backwards=True)  # fmt: skip
    out = L.get_output(layer)
    updates = L.collect_state_updates(out)
    (generator,) = updates
    expected = []
    draws = generator.get_value(borrow=False)  # the stream the layer will draw from
    for _ in range(2):
        noise = np.stack([draws.normal(0.0, 1.0, size=(B, F)) for _ in range(T)], axis=1)
        expected.append(noise[:, ::-1])  # drawn from the last step to the first
    f = pytensor.function([l_in.input_var], out, updates=updates)
    x = np.zeros((B, T, F))
    for want in expected:  # the generator's update carries over to the next call
        np.testing.assert_allclose(f(x), want, rtol=1e-12)
    quiet = pytensor.function([l_in.input_var], L.get_output(layer, deterministic=True))
    np.testing.assert_array_equal(quiet(x), 0)


def test_any_object_with_a_gates_attributes_is_a_gate():
    # update gate exactly 1 (identity nonlinearity, b=1), hidden update = x: h_t = x_t
    def gate(W_in, b):
        return SimpleNamespace(W_in=W_in, W_hid=np.zeros((F, F)), b=b, nonlinearity=None)

    zeros, ones = np.zeros((F, F)), np.ones(F)
    l_in = L.InputLayer((B, T, F))
    layer = L.GRULayer(l_in, F, resetgate=gate(zeros, 0 * ones), updategate=gate(zeros, ones),
                       hidden_update=gate(np.eye(F), 0 * ones))  # fmt: skip
    x, _ = _data(18)
    np.testing.assert_allclose(_evaluate(layer, {l_in: x}), x, rtol=1e-12)
