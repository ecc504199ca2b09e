"""`LocallyConnected2DLayer` against a plain-loop unshared convolution."""

import numpy as np
import pytest
from common import evaluate, rng

from dilnet import layers as L
from dilnet import nonlinearities
from dilnet.errors import ShapeError, UnsupportedError


def _local_reference(x, W, b, flip, channelwise, untie):
    n, channels, rows, cols = x.shape
    num_filters, fh, fw = W.shape[0], W.shape[-4], W.shape[-3]
    out = np.zeros((n, num_filters, rows, cols))
    for bi, f, y, q in np.ndindex(*out.shape):
        total = 0.0
        for c in [f] if channelwise else range(channels):
            for i in range(fh):
                for j in range(fw):
                    yy, qq = y + i - fh // 2, q + j - fw // 2
                    if not (0 <= yy < rows and 0 <= qq < cols):
                        continue
                    ti, tj = (fh - 1 - i, fw - 1 - j) if flip else (i, j)
                    w = W[f, ti, tj, y, q] if channelwise else W[f, c, ti, tj, y, q]
                    total += x[bi, c, yy, qq] * w
        if b is not None:
            total += b[f, y, q] if untie else b[f]
        out[bi, f, y, q] = total
    return out


@pytest.mark.parametrize(
    ("channels", "num_filters", "filter_size", "flip", "channelwise", "untie"),
    [
        (2, 3, 3, True, False, False),
        (2, 3, (3, 5), False, False, True),
        (3, 3, (1, 3), True, True, False),
        (3, 3, (5, 3), False, True, True),
    ],
)
def test_locally_connected_matches_loops(
    channels, num_filters, filter_size, flip, channelwise, untie
):
    r = rng(channels * 10 + num_filters)
    x = r.standard_normal((2, channels, 4, 5))
    layer = L.LocallyConnected2DLayer(
        L.InputLayer((None, channels, 4, 5)),
        num_filters,
        filter_size,
        untie_biases=untie,
        flip_filters=flip,
        channelwise=channelwise,
        nonlinearity=nonlinearities.tanh,
    )
    fs = (filter_size,) * 2 if isinstance(filter_size, int) else filter_size
    w_shape = (num_filters,) + (() if channelwise else (channels,)) + fs + (4, 5)
    assert layer.W.get_value().shape == w_shape
    assert layer.output_shape == (None, num_filters, 4, 5)
    layer.b.set_value(r.standard_normal(layer.b.get_value().shape))
    want = _local_reference(x, layer.W.get_value(), layer.b.get_value(), flip, channelwise, untie)
    np.testing.assert_allclose(evaluate(layer, x), np.tanh(want), rtol=1e-11)


def test_locally_connected_refusals():
    inp = L.InputLayer((None, 2, 4, 4))
    for pad in ("valid", "full", 1):
        with pytest.raises(UnsupportedError, match="requires pad='same'") as err:
            L.LocallyConnected2DLayer(inp, 2, 3, pad=pad)
        assert isinstance(err.value, NotImplementedError)
    with pytest.raises(UnsupportedError, match=r"requires stride=1 / \(1, 1\)"):
        L.LocallyConnected2DLayer(inp, 2, 3, stride=2)
    with pytest.raises(UnsupportedError, match="odd lengths"):
        L.LocallyConnected2DLayer(inp, 2, (3, 2))
    with pytest.raises(ShapeError, match="requires a fixed input shape"):
        L.LocallyConnected2DLayer(L.InputLayer((None, 2, None, 4)), 2, 3)
    with pytest.raises(ShapeError, match="num_filters and the number of input channels"):
        L.LocallyConnected2DLayer(inp, 3, 3, channelwise=True)
