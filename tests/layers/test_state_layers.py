"""Batch normalization and dropout: training vs deterministic outputs and their state updates."""

import numpy as np
import pytensor
import pytest
from common import FAST, evaluate, rng

from dilnet import init, nonlinearities
from dilnet import layers as L


def _bn(shape=(None, 3, None, None, None)):
    inp = L.InputLayer(shape)
    return inp, L.BatchNormLayer(
        inp, alpha=0.25, epsilon=1e-3, beta=init.Normal(1), gamma=init.Normal(1)
    )


def test_batch_norm_training_output_and_running_averages():
    inp, bn = _bn()
    x = rng(1).standard_normal((2, 3, 4, 3, 5)) * 3 + 1
    out = L.get_output(bn)
    updates = L.collect_state_updates(out)
    assert list(updates) == [bn.mean, bn.inv_std]
    f = pytensor.function([inp.input_var], out, updates=updates, mode=FAST)
    beta, gamma = bn.beta.get_value(), bn.gamma.get_value()
    axes = (0, 2, 3, 4)
    mean, var = x.mean(axis=axes), x.var(axis=axes)
    inv_std = 1 / np.sqrt(var + 1e-3)
    c = lambda v: v.reshape(1, 3, 1, 1, 1)  # noqa: E731
    np.testing.assert_allclose(f(x), (x - c(mean)) * c(gamma * inv_std) + c(beta), rtol=1e-10)
    np.testing.assert_allclose(bn.mean.get_value(), 0.75 * 0 + 0.25 * mean, rtol=1e-12)
    np.testing.assert_allclose(bn.inv_std.get_value(), 0.75 * 1 + 0.25 * inv_std, rtol=1e-12)
    f(x)
    np.testing.assert_allclose(bn.mean.get_value(), 0.75 * 0.25 * mean + 0.25 * mean, rtol=1e-12)


def test_batch_norm_deterministic_uses_averages_and_leaves_them():
    _, bn = _bn()
    bn.mean.set_value(np.array([1.0, -1.0, 0.5]))
    bn.inv_std.set_value(np.array([2.0, 0.5, 1.0]))
    x = rng(2).standard_normal((1, 3, 2, 2, 2))
    out = L.get_output(bn, deterministic=True)
    assert not L.collect_state_updates(out)
    c = lambda v: np.asarray(v).reshape(1, 3, 1, 1, 1)  # noqa: E731
    want = (x - c([1.0, -1.0, 0.5])) * c(bn.gamma.get_value() * [2.0, 0.5, 1.0]) + c(
        bn.beta.get_value()
    )
    np.testing.assert_allclose(evaluate(bn, x, deterministic=True), want, rtol=1e-12)
    # override: batch statistics without touching the averages
    out = L.get_output(bn, batch_norm_update_averages=False)
    assert not L.collect_state_updates(out)


def test_batch_norm_helper_moves_nonlinearity_and_drops_bias():
    inp = L.InputLayer((None, 2, 5, 5, 5))
    conv = L.Conv3DLayer(inp, 4, 3, pad="same", nonlinearity=nonlinearities.rectify, name="c")
    top = L.batch_norm(conv)
    assert isinstance(top, L.NonlinearityLayer) and top.name == "c_bn_nonlin"
    bn = top.input_layer
    assert isinstance(bn, L.BatchNormLayer) and bn.name == "c_bn" and bn.input_layer is conv
    assert conv.b is None and conv.nonlinearity is nonlinearities.identity
    assert [p.name for p in L.get_all_params(top)] == [
        "c.W", "c_bn.beta", "c_bn.gamma", "c_bn.mean", "c_bn.inv_std",
    ]  # fmt: skip
    x = rng(3).standard_normal((2, 2, 5, 5, 5))
    y = evaluate(top, x)
    assert (y >= 0).all() and (y > 0).mean() > 0.3
    z = evaluate(bn, x)
    np.testing.assert_allclose(z.mean(axis=(0, 2, 3, 4)), 0, atol=1e-10)


def test_dropout_masks_rescale_and_change_between_steps():
    inp = L.InputLayer((None, 4, None, None, None))
    drop = L.DropoutLayer(inp, p=0.25)
    out = L.get_output(drop)
    updates = L.collect_state_updates(out)
    f = pytensor.function([inp.input_var], out, updates=updates, mode=FAST)
    x = np.ones((2, 4, 10, 10, 10))
    a, b = f(x), f(x)
    assert set(np.unique(a)) == {0.0, 1 / 0.75}
    assert abs((a == 0).mean() - 0.25) < 0.02
    assert (a != b).any()  # the generator advanced
    np.testing.assert_array_equal(evaluate(drop, x, deterministic=True), x)
    # without its update the layer repeats its mask: the update is what advances it
    g = pytensor.function([inp.input_var], out, mode=FAST)
    np.testing.assert_array_equal(g(x), g(x))


def test_channel_dropout_shares_the_mask_over_space():
    inp = L.InputLayer((None, 6, None, None, None))
    drop = L.dropout_channels(inp, p=0.5, rescale=False)
    assert drop.shared_axes == (2, 3, 4)
    y = evaluate(drop, rng(4).standard_normal((3, 6, 4, 4, 4)) + 10)
    per_channel = (y == 0).reshape(3, 6, -1)
    assert (per_channel.all(-1) | (~per_channel).all(-1)).all()
    assert 0 < per_channel.all(-1).mean() < 1


@pytest.mark.parametrize("p", [-0.1, 1.0, "0.5"])
def test_dropout_rejects_bad_probability(p):
    with pytest.raises(ValueError, match=r"DropoutLayer: invalid value for `p`"):
        L.DropoutLayer(L.InputLayer((None, 3)), p=p)
