"""`NINLayer` (a dense layer across channels at every position) against loops."""

import numpy as np
import pytest
from common import evaluate, rng

from dilnet import layers as L
from dilnet import nonlinearities
from dilnet.errors import ShapeError


def _nin_reference(x, W, b, untie):
    out = np.zeros((x.shape[0], W.shape[1], *x.shape[2:]))
    for index in np.ndindex(*out.shape):
        n, u, position = index[0], index[1], index[2:]
        total = sum(x[(n, c, *position)] * W[c, u] for c in range(x.shape[1]))
        if b is not None:
            total += b[(u, *position)] if untie else b[u]
        out[index] = total
    return out


@pytest.mark.parametrize(
    ("shape", "kwargs"),
    [((2, 3, 4, 5), {}), ((2, 3, 4, 5), {"untie_biases": True}), ((2, 4, 3), {"b": None})],
)
def test_nin_layer_matches_loops(shape, kwargs):
    r = rng(len(shape) + len(kwargs))
    x = r.standard_normal(shape)
    layer = L.NINLayer(L.InputLayer(shape), 6, nonlinearity=nonlinearities.tanh, **kwargs)
    assert layer.output_shape == (shape[0], 6, *shape[2:])
    b = None
    if layer.b is not None:
        layer.b.set_value(r.standard_normal(layer.b.get_value().shape))
        b = layer.b.get_value()
    want = np.tanh(_nin_reference(x, layer.W.get_value(), b, kwargs.get("untie_biases", False)))
    np.testing.assert_allclose(evaluate(layer, x), want, rtol=1e-12)


def test_nin_layer_parameters_and_unknown_lengths():
    layer = L.NINLayer((None, 3, None, None), 4, name="nin")
    assert layer.W.get_value().shape == (3, 4) and layer.b.get_value().shape == (4,)
    assert layer.get_params(regularizable=False) == [layer.b] and layer.W.name == "nin.W"
    assert layer.output_shape == (None, 4, None, None)
    with pytest.raises(ShapeError, match="known spatial lengths for untie_biases=True"):
        L.NINLayer((None, 3, None, 5), 4, untie_biases=True)
    with pytest.raises(ShapeError, match="known number of channels"):
        L.NINLayer((None, None, 5), 4)
