"""A small 3D dilated network built only from dilnet's Lasagne-style pieces learns a task that
needs its receptive field: mark every voxel within Chebyshev distance 3 of a seed voxel."""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

import dilnet
from dilnet import layers as L
from dilnet import nonlinearities, objectives, updates


def _task(rng, n=2, size=18, seeds=12, radius=3):
    x = np.zeros((n, 1, size, size, size), "float32")
    for i in range(n):
        idx = rng.integers(0, size, (seeds, 3))
        x[i, 0, idx[:, 0], idx[:, 1], idx[:, 2]] = 1
    padded = np.pad(x[:, 0] > 0, ((0, 0),) + ((radius, radius),) * 3)
    labels = np.zeros((n, size, size, size), bool)
    r = range(2 * radius + 1)
    for a in r:
        for b in r:
            for c in r:
                labels |= padded[:, a : a + size, b : b + size, c : c + size]
    noisy = x + rng.normal(0, 0.05, x.shape).astype("float32")
    return noisy, labels.astype("int32")


def _network():
    net = L.InputLayer((None, 1, None, None, None))
    net = L.Conv3DLayer(net, 8, 3, pad="same", name="c1")
    net = L.batch_norm(L.DilatedConv3DLayer(net, 8, 3, dilation=2, pad="same", name="c2"))
    net = L.DilatedConv3DLayer(net, 8, 3, dilation=4, pad="same", name="c3")
    net = L.DropoutLayer(net, p=0.1)
    return L.Conv3DLayer(net, 2, 1, nonlinearity=nonlinearities.softmax, name="classes")


def test_dilated_network_learns_a_volumetric_task():
    with pytensor.config.change_flags(floatX="float32"):
        dilnet.random.set_rng(np.random.default_rng(0))
        rng = np.random.default_rng(1)
        train_x, train_y = _task(rng)
        test_x, test_y = _task(rng)
        net = _network()
        assert L.get_all_layers(net)[0].input_var.dtype == "float32"
        labels = pt.itensor4("labels")
        prob = L.get_output(net)
        loss = objectives.categorical_crossentropy(prob, labels).mean()
        params = L.get_all_params(net, trainable=True)
        steps = updates.adam(loss, params, learning_rate=0.02)
        bn = next(layer for layer in L.get_all_layers(net) if isinstance(layer, L.BatchNormLayer))
        assert bn.mean in steps  # the running averages ride along with the optimizer's updates
        x = L.get_all_layers(net)[0].input_var
        train = pytensor.function([x, labels], loss, updates=steps, mode="CVM")
        test_prob = L.get_output(net, deterministic=True)
        predict = pytensor.function([x], test_prob.argmax(axis=1), mode="CVM")

        losses = [float(train(train_x, train_y)) for _ in range(80)]
        accuracy = (predict(test_x) == test_y).mean()
        majority = max(test_y.mean(), 1 - test_y.mean())
        assert np.mean(losses[-5:]) < 0.35 * np.mean(losses[:5]), losses
        assert accuracy > 0.95 and accuracy > majority + 0.1, (accuracy, majority)
        assert np.abs(bn.mean.get_value()).max() > 0
        for p in params:
            assert p.get_value().dtype == np.float32


@pytest.mark.parametrize("rule", ["sgd", "momentum", "adam", "rmsprop"])
def test_every_rule_carries_state_updates(rule):
    inp = L.InputLayer((None, 2, 4, 4, 4))
    net = L.DropoutLayer(L.batch_norm(L.Conv3DLayer(inp, 3, 3, pad="same")), p=0.2)
    loss = L.get_output(net).sum()
    params = L.get_all_params(net, trainable=True)
    got = getattr(updates, rule)(loss, params, learning_rate=0.1)
    state = L.collect_state_updates(loss)
    assert len(state) == 3  # BN mean, BN inv_std, dropout generator
    for variable, new_value in state.items():
        assert got[variable] is new_value
    grads = pytensor.grad(loss, params)
    assert set(state) <= set(getattr(updates, rule)(grads, params, learning_rate=0.1))
