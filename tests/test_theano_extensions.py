"""`dilnet.theano_extensions` (Lasagne's ``lasagne.theano_extensions``): the six 1-D
convolutions against a loop, their refusals, and `padding.pad` against a loop."""

import itertools

import numpy as np
import pytensor.tensor as pt
import pytest

import dilnet
from dilnet.errors import ConfigError, ShapeError, UnsupportedInputError
from dilnet.theano_extensions import conv, padding

ALL = ["conv1d_sc", "conv1d_mc0", "conv1d_mc1", "conv1d_unstrided", "conv1d_sd", "conv1d_md"]


def _conv1d_loop(x, w, stride, pad, flip):
    """out[b, f, i] = sum_c sum_t x_padded[b, c, i * stride + t] * w'[f, c, t], w' = w flipped
    along t for a true convolution."""
    if flip:
        w = w[:, :, ::-1]
    xp = np.pad(x, [(0, 0), (0, 0), (pad, pad)])
    k = w.shape[2]
    out_len = (xp.shape[2] - k) // stride + 1
    out = np.zeros((x.shape[0], w.shape[0], out_len))
    for b, f, i in itertools.product(range(x.shape[0]), range(w.shape[0]), range(out_len)):
        for c, t in itertools.product(range(x.shape[1]), range(k)):
            out[b, f, i] += xp[b, c, i * stride + t] * w[f, c, t]
    return out


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("flip", [True, False])
def test_every_variant_computes_the_same_convolution(name, stride, flip):
    gen = np.random.default_rng(stride + 2 * flip)
    x, w = gen.normal(size=(2, 3, 11)), gen.normal(size=(4, 3, 4))
    X, W = pt.tensor3(), pt.tensor3()
    out = getattr(conv, name)(X, W, x.shape, w.shape, subsample=(stride,), filter_flip=flip)
    np.testing.assert_allclose(out.eval({X: x, W: w}), _conv1d_loop(x, w, stride, 0, flip))


@pytest.mark.parametrize("name", ["conv1d_sc", "conv1d_mc0", "conv1d_mc1"])
@pytest.mark.parametrize("border_mode", [2, (1,), "full"])
def test_padded_variants(name, border_mode):
    gen = np.random.default_rng(5)
    x, w = gen.normal(size=(1, 2, 7)), gen.normal(size=(3, 2, 3))
    pad = 2 if border_mode == "full" else border_mode if isinstance(border_mode, int) else 1
    out = getattr(conv, name)(pt.as_tensor(x), pt.as_tensor(w), border_mode=border_mode)
    np.testing.assert_allclose(out.eval(), _conv1d_loop(x, w, 1, pad, True))


@pytest.mark.parametrize("name", ALL)
def test_unknown_border_modes_are_refused(name):
    with pytest.raises(ConfigError, match="`border_mode`"):
        getattr(conv, name)(pt.tensor3(), pt.tensor3(), (1, 1, 10), (2, 1, 3), border_mode=None)


@pytest.mark.parametrize("name", ["conv1d_unstrided", "conv1d_sd", "conv1d_md"])
def test_limited_variants_keep_lasagnes_limits(name):
    fn = getattr(conv, name)
    with pytest.raises(UnsupportedInputError, match="a stride that divides the filter length \\(3"):
        fn(pt.tensor3(), pt.tensor3(), (1, 1, 10), (2, 1, 3), subsample=(2,))
    with pytest.raises(UnsupportedInputError, match="'valid' only"):
        fn(pt.tensor3(), pt.tensor3(), (1, 1, 10), (2, 1, 3), border_mode="full")
    assert issubclass(UnsupportedInputError, RuntimeError)


def test_lasagne_names_reach_the_modules():
    assert dilnet.theano_extensions.conv is conv and dilnet.theano_extensions.padding is padding


@pytest.mark.parametrize("batch_ndim", [0, 1, 2])
@pytest.mark.parametrize("width", [2, "per_axis", "per_border"])
def test_pad_against_a_loop(batch_ndim, width):
    x = np.arange(2 * 3 * 4, dtype="float32").reshape(2, 3, 4) + 1
    n = 3 - batch_ndim
    if width == "per_axis":
        width = tuple(range(1, n + 1))
    elif width == "per_border":
        width = [(i, n - i) for i in range(n)]
    pairs = [(0, 0)] * batch_ndim + [
        (w, w) if isinstance(w, int) else w
        for w in ((width,) * n if isinstance(width, int) else width)
    ]
    expected = np.full([s + a + b for s, (a, b) in zip(x.shape, pairs, strict=True)], -7.0)
    for index in np.ndindex(*x.shape):
        expected[tuple(i + a for i, (a, _) in zip(index, pairs, strict=True))] = x[index]
    got = padding.pad(pt.as_tensor(x), width, -7, batch_ndim).eval()
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, expected)


def test_pad_errors():
    with pytest.raises(ConfigError, match=r"`width`. Expected an int, or 2 ints"):
        padding.pad(pt.tensor3(), (1, 2, 3))
    with pytest.raises(ConfigError, match="non-negative ints"):
        padding.pad(pt.tensor3(), (1, -2))
    with pytest.raises(ShapeError, match=r"`batch_ndim`. Expected an int in \[0, 3\)"):
        padding.pad(pt.tensor3(), 1, batch_ndim=3)
