"""Local response normalization, standardization and the instance/layer-norm macros against
plain-loop numpy oracles; batch norm's statistics tag."""

import numpy as np
import pytest
from common import evaluate, rng

from dilnet import layers as L
from dilnet import nonlinearities
from dilnet.errors import ConfigError, UnsupportedError


def _lrn_reference(x, alpha, k, beta, n):
    out = np.empty_like(x)
    channels = x.shape[1]
    for index in np.ndindex(*x.shape):
        c = index[1]
        total = k
        for j in range(channels):
            if abs(j - c) <= n // 2:
                total += alpha * x[(index[0], j, *index[2:])] ** 2
        out[index] = x[index] / total**beta
    return out


@pytest.mark.parametrize(
    ("shape", "alpha", "k", "beta", "n"),
    [
        ((2, 7, 3, 4), 1.5, 2, 0.75, 5),
        ((1, 4, 3), 0.3, 1, 0.5, 3),
        ((2, 3, 2, 2, 2), 1e-1, 2, 1, 7),
    ],
)
def test_local_response_normalization_matches_loops(shape, alpha, k, beta, n):
    x = rng(len(shape) + n).standard_normal(shape)
    layer = L.LocalResponseNormalization2DLayer(
        L.InputLayer((None, *shape[1:])), alpha=alpha, k=k, beta=beta, n=n
    )
    assert layer.output_shape == (None, *shape[1:]) and layer.get_params() == []
    np.testing.assert_allclose(evaluate(layer, x), _lrn_reference(x, alpha, k, beta, n), rtol=1e-12)


def test_local_response_normalization_refuses_even_windows():
    with pytest.raises(UnsupportedError, match=r"`n`\. Expected an odd window") as err:
        L.LocalResponseNormalization2DLayer((None, 3, 4, 4), n=4)
    assert isinstance(err.value, NotImplementedError)
    with pytest.raises(ConfigError, match=r"`n`\. Expected a positive odd int"):
        L.LocalResponseNormalization2DLayer((None, 3, 4, 4), n=0)


def _standardize_reference(x, axes, epsilon):
    out = np.empty_like(x)
    kept = [a for a in range(x.ndim) if a not in axes]
    for key in np.ndindex(*(x.shape[a] for a in kept)):
        index = [slice(None)] * x.ndim
        for a, i in zip(kept, key, strict=True):
            index[a] = i
        group = x[tuple(index)]
        values = group.ravel().tolist()
        mean = sum(values) / len(values)
        var = sum((v - mean) ** 2 for v in values) / len(values)
        out[tuple(index)] = (group - mean) / (var + epsilon) ** 0.5
    return out


@pytest.mark.parametrize(
    ("shape", "axes", "resolved"),
    [
        ((4, 5), "auto", (1,)),
        ((3, 2, 4, 5), "auto", (2, 3)),
        ((3, 2, 4, 5), "spatial", (2, 3)),
        ((2, 3, 2, 3, 2), "features", (1, 2, 3, 4)),
        ((3, 4, 5), 0, (0,)),
        ((3, 4, 5), (0, -1), (0, 2)),
        ((4, 5), "spatial", ()),
    ],
)
def test_standardization_matches_loops(shape, axes, resolved):
    x = rng(sum(shape)).standard_normal(shape) * 3 + 1
    layer = L.StandardizationLayer(L.InputLayer(shape), axes=axes, epsilon=1e-3)
    assert layer.axes == resolved and layer.get_params() == []
    want = _standardize_reference(x, resolved, 1e-3)
    for deterministic in (False, True):
        got = evaluate(layer, x, deterministic=deterministic)
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_standardization_rejects_bad_axes():
    with pytest.raises(ConfigError, match=r"`axes`\. Expected 'auto', 'spatial', 'features'"):
        L.StandardizationLayer((2, 3, 4), axes=3)


@pytest.mark.parametrize(
    ("learn_scale", "learn_bias"), [(True, True), (False, True), (False, False)]
)
def test_instance_norm_stack_and_output(learn_scale, learn_bias):
    inp = L.InputLayer((None, 2, 3, 4))
    conv = L.Conv2DLayer(inp, 3, 3, pad="same", nonlinearity=nonlinearities.tanh, name="c")
    top = L.instance_norm(conv, learn_scale=learn_scale, learn_bias=learn_bias)
    assert conv.b is None and conv.nonlinearity is nonlinearities.identity
    assert isinstance(top, L.NonlinearityLayer) and top.name == "c_in_nonlin"
    kinds = []
    layer = top.input_layer
    while layer is not conv:
        kinds.append((type(layer), layer.name))
        layer = layer.input_layer
    want_kinds = [(L.BiasLayer, "c_in_bias")] * learn_bias + [(L.ScaleLayer, "c_in_scale")] * (
        learn_scale
    )
    assert kinds == [*want_kinds, (L.StandardizationLayer, "c_in")]
    std = layer = top
    while not isinstance(std, L.StandardizationLayer):
        std = std.input_layer
    assert std.axes == (2, 3)
    # the scale and bias start at 1 and 0: tanh of the per-channel standardized convolution
    x = rng(12).standard_normal((2, 2, 3, 4))
    conved = evaluate(conv, x)
    np.testing.assert_allclose(
        evaluate(top, x), np.tanh(_standardize_reference(conved, (2, 3), 1e-4)), rtol=1e-9
    )


def test_layer_norm_stack_names_and_output():
    dense = L.DenseLayer(L.InputLayer((None, 4)), 5, nonlinearity=nonlinearities.rectify)
    top = L.layer_norm(dense, name="ln", epsilon=1e-2)
    assert [type(x) for x in L.get_all_layers(top)[2:]] == [
        L.StandardizationLayer,
        L.ScaleLayer,
        L.BiasLayer,
        L.NonlinearityLayer,
    ]
    assert [x.name for x in L.get_all_layers(top)[2:]] == ["ln", "ln_scale", "ln_bias", "ln_nonlin"]
    scale, bias = top.input_layer.input_layer, top.input_layer
    scale.scales.set_value(np.array([1.0, 2.0, 0.5, 1.0, 3.0]))
    bias.b.set_value(np.array([0.0, -1.0, 1.0, 0.5, 0.0]))
    x = rng(13).standard_normal((3, 4))
    h = x @ dense.W.get_value()
    want = _standardize_reference(h, (1,), 1e-2) * [1.0, 2.0, 0.5, 1.0, 3.0]
    want = np.maximum(want + np.array([0.0, -1.0, 1.0, 0.5, 0.0]), 0)
    np.testing.assert_allclose(evaluate(top, x), want, rtol=1e-10)


def test_batch_norm_statistics_carry_the_batch_norm_stat_tag():
    bn = L.BatchNormLayer((None, 3, 4))
    assert bn.get_params(batch_norm_stat=True) == [bn.mean, bn.inv_std]
    assert bn.get_params(batch_norm_stat=False) == [bn.beta, bn.gamma]
