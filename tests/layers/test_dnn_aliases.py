"""`dilnet.layers.dnn` gives Lasagne's ``lasagne.layers.dnn`` names: the same classes for the
pooling and batch-norm layers, `Conv*DLayer` subclasses with the cuDNN default
``flip_filters=False`` for the convolutions, output shapes by Lasagne's formulas, and a clear
`AttributeError` for what has no equivalent. It imports without a GPU."""

import inspect
import os
import subprocess
import sys

import numpy as np
import pytest
from common import evaluate, rng
from numpy.lib.stride_tricks import sliding_window_view

import dilnet as lasagne
from dilnet import init, nonlinearities
from dilnet import layers as L
from dilnet.layers import dnn

# lasagne/layers/dnn.py (Lasagne 0.2.dev1), its __all__
LASAGNE_DNN_ALL = [
    "Pool2DDNNLayer",
    "MaxPool2DDNNLayer",
    "Pool3DDNNLayer",
    "MaxPool3DDNNLayer",
    "Conv2DDNNLayer",
    "Conv3DDNNLayer",
    "SpatialPyramidPoolingDNNLayer",
    "BatchNormDNNLayer",
    "batch_norm_dnn",
]


def lasagne_conv_length(n, k, s, pad):
    """Lasagne's `conv_output_length` (lasagne/layers/conv.py)."""
    if pad == "valid":
        out = n - k + 1
    elif pad == "full":
        out = n + k - 1
    elif pad == "same":
        out = n
    else:
        out = n + 2 * pad - k + 1
    return (out + s - 1) // s


def lasagne_pool_length(n, k, s, pad):
    """Lasagne's `pool_output_length` with ``ignore_border=True`` (the only cuDNN choice)."""
    return (n + 2 * pad - k + 1 + s - 1) // s


def test_module_imports_in_a_process_without_gpu_libraries():
    code = (
        "import sys\n"
        "from dilnet.layers.dnn import Conv3DDNNLayer, MaxPool3DDNNLayer\n"
        "print(sorted(m for m in ('jax', 'torch') if m in sys.modules))\n"
    )
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_reachable_from_import_dilnet_as_lasagne():
    assert lasagne.layers.dnn is dnn
    assert lasagne.layers.dnn.Conv3DDNNLayer is dnn.Conv3DDNNLayer
    assert "dnn" not in L.__all__  # like Lasagne: `from lasagne.layers import *` leaves it out


def test_every_lasagne_name_is_provided_or_explained():
    provided = set(LASAGNE_DNN_ALL) - {"SpatialPyramidPoolingDNNLayer"}
    assert set(dnn.__all__) == provided
    for name in provided:
        obj = getattr(dnn, name)
        # Lasagne's naming: classes end in Layer and are layers, the rest are functions
        if name.endswith("Layer"):
            assert isinstance(obj, type) and issubclass(obj, L.Layer), name
        else:
            assert callable(obj) and not isinstance(obj, type), name
    assert "SpatialPyramidPoolingDNNLayer" in dnn.NOT_PROVIDED


@pytest.mark.parametrize(
    ("alias", "target"),
    [
        ("Pool2DDNNLayer", L.Pool2DLayer),
        ("Pool3DDNNLayer", L.Pool3DLayer),
        ("MaxPool2DDNNLayer", L.MaxPool2DLayer),
        ("MaxPool3DDNNLayer", L.MaxPool3DLayer),
        ("BatchNormDNNLayer", L.BatchNormLayer),
        ("batch_norm_dnn", L.batch_norm),
    ],
)
def test_same_semantics_names_are_the_same_objects(alias, target):
    assert getattr(dnn, alias) is target


@pytest.mark.parametrize(
    ("cls", "base", "stride"),
    [(dnn.Conv2DDNNLayer, L.Conv2DLayer, (1, 1)), (dnn.Conv3DDNNLayer, L.Conv3DLayer, (1, 1, 1))],
)
def test_conv_signature_is_lasagnes(cls, base, stride):
    assert issubclass(cls, base) and issubclass(cls, L.ConvLayer)
    params = inspect.signature(cls.__init__).parameters
    assert list(params) == [
        "self", "incoming", "num_filters", "filter_size", "stride", "pad", "untie_biases", "W",
        "b", "nonlinearity", "flip_filters", "num_groups", "kwargs",
    ]  # fmt: skip
    defaults = {k: p.default for k, p in params.items() if p.default is not p.empty}
    assert defaults["stride"] == stride
    assert defaults["pad"] == 0
    assert defaults["untie_biases"] is False
    assert defaults["flip_filters"] is False  # cuDNN layers; Conv*DLayer defaults to True
    assert defaults["num_groups"] == 1
    assert isinstance(defaults["W"], init.GlorotUniform)
    assert isinstance(defaults["b"], init.Constant) and defaults["b"].val == 0.0
    assert defaults["nonlinearity"] is nonlinearities.rectify


def test_conv_positional_arguments_land_where_lasagne_puts_them():
    W = np.ones((4, 1, 3, 3, 3))
    layer = dnn.Conv3DDNNLayer(
        (None, 2, 8, 8, 8), 4, 3, 2, "same", False, W, None, None, True, 2, name="c"
    )
    assert layer.stride == (2, 2, 2) and layer.pad == "same" and layer.b is None
    assert layer.nonlinearity is nonlinearities.identity and layer.flip_filters is True
    assert layer.num_groups == 2 and layer.W.get_value().shape == (4, 1, 3, 3, 3)
    assert layer.name == "c"


CONV_CASES = [
    (3, 1, 0),
    (3, 1, "valid"),
    (3, 1, "same"),
    (3, 1, "full"),
    (3, 2, 1),
    (2, 2, 0),
    (3, 2, "same"),
    ((3, 1, 2), (1, 2, 1), (1, 0, 1)),
]


@pytest.mark.parametrize(("k", "s", "pad"), CONV_CASES, ids=str)
def test_conv3d_dnn_output_shape_is_lasagnes(k, s, pad):
    spatial = (9, 8, 7)
    ks, ss = (k if isinstance(k, tuple) else (k,) * 3), (s if isinstance(s, tuple) else (s,) * 3)
    ps = pad if isinstance(pad, tuple) else (pad,) * 3
    expected = (
        2,
        5,
        *(lasagne_conv_length(n, ki, si, pi) for n, ki, si, pi in zip(spatial, ks, ss, ps)),
    )
    layer = dnn.Conv3DDNNLayer(L.InputLayer((2, 3, *spatial)), 5, k, stride=s, pad=pad)
    assert layer.output_shape == expected
    x = rng(0).normal(size=(2, 3, *spatial))
    assert evaluate(layer, x).shape == expected


@pytest.mark.parametrize(("k", "s", "pad"), CONV_CASES[:5], ids=str)
def test_conv2d_dnn_output_shape_is_lasagnes(k, s, pad):
    layer = dnn.Conv2DDNNLayer(L.InputLayer((None, 3, 10, 7)), 4, k, stride=s, pad=pad)
    expected = (None, 4, lasagne_conv_length(10, k, s, pad), lasagne_conv_length(7, k, s, pad))
    assert layer.output_shape == expected
    assert evaluate(layer, rng(1).normal(size=(1, 3, 10, 7))).shape == (1, *expected[1:])


def _cross_correlation_3d(x, W):
    """'valid' cross-correlation, what cuDNN's conv_mode='cross' computes."""
    windows = sliding_window_view(x, W.shape[2:], axis=(2, 3, 4))  # (b, c, z, y, x, kz, ky, kx)
    return np.einsum("bczyxijk,ocijk->bozyx", windows, W)


def test_conv3d_dnn_cross_correlates_by_default_and_convolves_with_flip_filters():
    g = rng(2)
    x = g.normal(size=(2, 3, 6, 5, 7))
    W = g.normal(size=(4, 3, 3, 2, 3))
    b = g.normal(size=4)
    inp = L.InputLayer((None, 3, 6, 5, 7))
    cross = dnn.Conv3DDNNLayer(inp, 4, (3, 2, 3), W=W, b=b, nonlinearity=None)
    expected = _cross_correlation_3d(x, W) + b[None, :, None, None, None]
    np.testing.assert_allclose(evaluate(cross, x), expected, rtol=1e-10, atol=1e-12)

    flipped = dnn.Conv3DDNNLayer(inp, 4, (3, 2, 3), W=W, b=b, nonlinearity=None, flip_filters=True)
    expected = _cross_correlation_3d(x, W[:, :, ::-1, ::-1, ::-1]) + b[None, :, None, None, None]
    np.testing.assert_allclose(evaluate(flipped, x), expected, rtol=1e-10, atol=1e-12)

    # dilnet's Conv3DLayer keeps Lasagne's Conv3DLayer default (flip), hence the subclass
    assert L.Conv3DLayer(inp, 4, 3).flip_filters is True


def test_conv_dnn_params_carry_lasagnes_tags():
    layer = dnn.Conv3DDNNLayer(L.InputLayer((None, 2, 5, 5, 5)), 3, 3)
    assert layer.get_params(regularizable=True) == [layer.W]
    assert layer.get_params(trainable=True) == [layer.W, layer.b]


POOL_CASES = [(2, None, 0), (3, 2, 1), (3, 1, 0), ((2, 3, 1), (2, 1, 1), (1, 1, 0))]


@pytest.mark.parametrize("mode", ["max", "average_exc_pad"])
@pytest.mark.parametrize(("k", "s", "pad"), POOL_CASES, ids=str)
def test_pool3d_dnn_output_shape_is_lasagnes(k, s, pad, mode):
    spatial = (7, 6, 5)
    ks = k if isinstance(k, tuple) else (k,) * 3
    ss = ks if s is None else (s if isinstance(s, tuple) else (s,) * 3)
    ps = pad if isinstance(pad, tuple) else (pad,) * 3
    expected = (
        1,
        2,
        *(lasagne_pool_length(n, ki, si, pi) for n, ki, si, pi in zip(spatial, ks, ss, ps)),
    )
    # Lasagne's positional order: incoming, pool_size, stride, pad, ignore_border, mode
    layer = dnn.Pool3DDNNLayer(L.InputLayer((1, 2, *spatial)), k, s, pad, True, mode)
    assert layer.output_shape == expected
    assert evaluate(layer, rng(3).normal(size=(1, 2, *spatial))).shape == expected


def test_max_pool_dnn_values_and_lasagne_arguments():
    x = rng(4).normal(size=(2, 3, 4, 6, 2))
    layer = dnn.MaxPool3DDNNLayer(L.InputLayer((None, 3, 4, 6, 2)), 2, None, (0, 0, 0), True)
    expected = x.reshape(2, 3, 2, 2, 3, 2, 1, 2).max(axis=(3, 5, 7))
    np.testing.assert_array_equal(evaluate(layer, x), expected)
    layer2d = dnn.MaxPool2DDNNLayer(L.InputLayer((None, 3, 4, 6)), pool_size=2, pad=(0, 0))
    assert layer2d.output_shape == (None, 3, 2, 3)


def test_batch_norm_dnn_wraps_a_conv_dnn_layer_as_lasagne_does():
    conv = dnn.Conv3DDNNLayer(L.InputLayer((None, 2, 5, 5, 5)), 4, 3, name="conv")
    out = dnn.batch_norm_dnn(conv)
    assert isinstance(out, L.NonlinearityLayer) and out.nonlinearity is nonlinearities.rectify
    bn = out.input_layer
    assert isinstance(bn, dnn.BatchNormDNNLayer) and bn.name == "conv_bn"
    assert conv.b is None and conv.nonlinearity is nonlinearities.identity
    assert out.output_shape == (None, 4, 3, 3, 3)
    # the two modes Lasagne's cuDNN layer allowed: 'spatial' and 'per-activation'
    assert dnn.BatchNormDNNLayer(conv).axes == (0, 2, 3, 4)
    assert dnn.BatchNormDNNLayer(L.InputLayer((None, 6)), axes=(0,)).axes == (0,)


def test_spatial_pyramid_pooling_raises_attribute_error_naming_the_alternative():
    with pytest.raises(
        AttributeError, match=r"SpatialPyramidPoolingDNNLayer` is not provided"
    ) as e:
        dnn.SpatialPyramidPoolingDNNLayer  # noqa: B018
    assert "Pool2DLayer" in str(e.value) and "ConcatLayer(axis=2)" in str(e.value)
    assert e.value.name == "SpatialPyramidPoolingDNNLayer"
    assert not hasattr(dnn, "SpatialPyramidPoolingDNNLayer")
    with pytest.raises(ImportError, match="SpatialPyramidPoolingDNNLayer"):
        from dilnet.layers.dnn import SpatialPyramidPoolingDNNLayer  # noqa: F401


@pytest.mark.parametrize("name", ["dnn", "dnn_available", "dnn_enabled", "gpu_enabled"])
def test_cudnn_handles_are_explained(name):
    with pytest.raises(AttributeError, match=r"every PyTensor backend"):
        getattr(dnn, name)


def test_unknown_names_get_the_usual_attribute_error():
    with pytest.raises(AttributeError, match=r"has no attribute 'Conv4DDNNLayer'"):
        dnn.Conv4DDNNLayer  # noqa: B018


def test_the_spatial_pyramid_recipe_in_the_message_gives_lasagnes_shape_and_values():
    # Lasagne's layer: per level, window ceil(n / level), stride n // level, flattened, joined
    n, levels = 9, [4, 2, 1]
    inp = L.InputLayer((None, 3, n, n))
    pooled = [
        L.FlattenLayer(L.Pool2DLayer(inp, -(-n // level), stride=n // level), outdim=3)
        for level in levels
    ]
    spp = L.ConcatLayer(pooled, axis=2)
    assert spp.output_shape == (None, 3, sum(level * level for level in levels))
    x = rng(5).normal(size=(2, 3, n, n))
    out = evaluate(spp, x)
    np.testing.assert_array_equal(out[:, :, -1], x.max(axis=(2, 3)))  # the 1x1 level
    # the 2x2 level: windows of 5 with stride 4
    expected = np.array(
        [[x[:, :, 4 * i : 4 * i + 5, 4 * j : 4 * j + 5].max(axis=(2, 3)) for j in range(2)]
         for i in range(2)]
    )  # fmt: skip
    np.testing.assert_array_equal(out[:, :, 16:20], expected.reshape(4, 2, 3).transpose(1, 2, 0))
