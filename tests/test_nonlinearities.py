"""dilnet.nonlinearities against numpy formulas, hand-computed values and finite differences."""

import math

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.compile.mode import Mode
from pytensor.gradient import verify_grad

import dilnet.nonlinearities as nl
from dilnet.errors import ConfigError, ShapeError

FAST = "FAST_COMPILE"  # Python VM: no C or Numba compilation for these tiny graphs
NO_REWRITES = Mode(linker="py", optimizer=None)  # the graph exactly as built

SELU_LAMBDA = 1.0507009873554804934193349852946  # Klambauer et al. (2017)
SELU_ALPHA = 1.6732632423543772848170429916717


def _apply(fn, x_val):
    x = pt.tensor("x", dtype=x_val.dtype, shape=(None,) * x_val.ndim)
    return pytensor.function([x], fn(x), mode=FAST)(x_val)


def _sample(shape=(3, 4, 5), dtype="float64", seed=0):
    return (3 * np.random.default_rng(seed).standard_normal(shape)).astype(dtype)


# Numpy formulas, written independently of the PyTensor graphs.
ORACLES = {
    "sigmoid": (nl.sigmoid, lambda x: 1 / (1 + np.exp(-x))),
    "tanh": (nl.tanh, np.tanh),
    "rectify": (nl.rectify, lambda x: np.where(x > 0, x, 0)),
    "leaky_rectify": (nl.leaky_rectify, lambda x: np.where(x > 0, x, 0.01 * x)),
    "very_leaky_rectify": (nl.very_leaky_rectify, lambda x: np.where(x > 0, x, x / 3)),
    "LeakyRectify(0.2)": (nl.LeakyRectify(0.2), lambda x: np.where(x > 0, x, 0.2 * x)),
    "elu": (nl.elu, lambda x: np.where(x > 0, x, np.exp(x) - 1)),
    "selu": (nl.selu, lambda x: SELU_LAMBDA * np.where(x > 0, x, SELU_ALPHA * (np.exp(x) - 1))),
    "SELU(2, 3)": (nl.SELU(2, 3), lambda x: 2 * np.where(x > 0, x, 3 * (np.exp(x) - 1))),
    "softplus": (nl.softplus, lambda x: np.log(1 + np.exp(x))),
    "ScaledTanH(0.5, 2.4)": (nl.ScaledTanH(0.5, 2.4), lambda x: 2.4 * np.tanh(0.5 * x)),
    "ScaledTanh()": (nl.ScaledTanh(), np.tanh),
    "linear": (nl.linear, lambda x: x),
    "identity": (nl.identity, lambda x: x),
}


@pytest.mark.parametrize("name", ORACLES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_elementwise_matches_numpy_and_keeps_dtype(name, dtype):
    fn, oracle = ORACLES[name]
    x_val = _sample(dtype=dtype)
    got = _apply(fn, x_val)
    assert got.dtype == dtype  # Python-number parameters must not upcast float32
    rtol = 1e-5 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(got, oracle(x_val.astype(np.float64)), rtol=rtol, atol=rtol)


@pytest.mark.parametrize(
    ("fn", "x", "expected"),
    [
        (nl.rectify, [-1.0, 0.0, 2.0], [0.0, 0.0, 2.0]),
        (nl.leaky_rectify, [-100.0, 3.0], [-1.0, 3.0]),
        (nl.very_leaky_rectify, [-3.0, 0.0, 3.0], [-1.0, 0.0, 3.0]),
        (nl.LeakyRectify(0.0), [-2.0, 2.0], [0.0, 2.0]),
        (nl.LeakyRectify(1.0), [-2.0, 2.0], [-2.0, 2.0]),
        (nl.elu, [-1.0, 0.0, 1.0], [math.exp(-1) - 1, 0.0, 1.0]),
        (
            nl.selu,
            [1.0, -1.0],
            [1.0507009873554805, 1.0507009873554805 * 1.6732632423543772 * (math.exp(-1) - 1)],
        ),
        (nl.sigmoid, [0.0, -800.0, 800.0], [0.5, 0.0, 1.0]),
        (nl.softplus, [0.0, 800.0, -800.0], [math.log(2), 800.0, 0.0]),  # no overflow
        (
            nl.ScaledTanH(2 / 3, 1.7159),
            [1.0, -1.0],
            [1.7159 * math.tanh(2 / 3), -1.7159 * math.tanh(2 / 3)],
        ),
    ],
)
def test_hand_computed_values(fn, x, expected):
    got = _apply(fn, np.array(x))
    assert not np.isnan(got).any()
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-300)


def test_lecun_scaled_tanh_maps_one_to_about_one():
    assert _apply(nl.ScaledTanH(scale_in=2 / 3, scale_out=1.7159), np.array([1.0]))[
        0
    ] == pytest.approx(1.0, abs=1e-4)


def test_scaled_tanh_is_the_same_class_and_linear_returns_its_input():
    assert nl.ScaledTanh is nl.ScaledTanH
    x = pt.matrix("x")
    assert nl.linear(x) is x and nl.identity is nl.linear


def test_defaults_are_lasagnes():
    assert nl.LeakyRectify().leakiness == 0.01
    assert nl.leaky_rectify.leakiness == 0.01
    assert nl.very_leaky_rectify.leakiness == pytest.approx(1 / 3)
    assert (nl.ScaledTanH().scale_in, nl.ScaledTanH().scale_out) == (1, 1)
    assert (nl.SELU().scale, nl.SELU().scale_neg) == (1, 1)
    assert (nl.selu.scale, nl.selu.scale_neg) == (SELU_LAMBDA, SELU_ALPHA)
    assert "0.01" in nl.leaky_rectify.__doc__ and "1/3" in nl.very_leaky_rectify.__doc__


@pytest.mark.parametrize("mode", [FAST, NO_REWRITES], ids=["fast_compile", "no_rewrites"])
@pytest.mark.parametrize("fn", [nl.elu, nl.selu, nl.softplus, nl.sigmoid])
def test_gradients_finite_for_large_inputs(fn, mode):
    # elu/selu: the discarded expm1 branch must not overflow into 0 * inf = nan. PyTensor's
    # rewrites happen to hide that; without them only the guard in dilnet protects the gradient.
    x = pt.vector("x")
    g = pytensor.function([x], pytensor.grad(fn(x).sum(), x), mode=mode)
    got = g(np.array([-1000.0, -1.0, 1.0, 1000.0]))
    assert np.isfinite(got).all()
    if fn is nl.elu:
        np.testing.assert_allclose(got, [0.0, math.exp(-1), 1.0, 1.0], atol=1e-300)
    if fn is nl.selu:
        expected = [0.0, SELU_LAMBDA * SELU_ALPHA * math.exp(-1), SELU_LAMBDA, SELU_LAMBDA]
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("fn", [nl.elu, nl.selu, nl.very_leaky_rectify, nl.ScaledTanH(0.5, 2.0)])
def test_gradients_against_finite_differences(fn):
    rng = np.random.default_rng(4)
    z = rng.standard_normal((3, 4))
    x_val = np.sign(z) * (0.1 + np.abs(z))  # away from the kink at 0
    verify_grad(fn, [x_val], rng=rng, mode=FAST)


# --- softmax ----------------------------------------------------------------------------------


def _softmax_oracle(x, axis):
    """Per-location softmax with Python floats (log-sum-exp via math.fsum), one vector at a time."""
    moved = np.moveaxis(x.astype(np.float64), axis, -1)
    out = np.empty_like(moved)
    for index in np.ndindex(moved.shape[:-1]):
        v = moved[index]
        top = max(v)
        log_z = top + math.log(math.fsum(math.exp(t - top) for t in v))
        out[index] = [math.exp(t - log_z) for t in v]
    return np.moveaxis(out, -1, axis)


@pytest.mark.parametrize(
    ("shape", "axis"),
    [
        ((4, 6), 1),
        ((2, 5, 7), 1),
        ((2, 3, 4, 5), 1),
        ((2, 4, 3, 2, 3), 1),
        ((2, 4, 3, 2, 3), -1),
        ((3, 4, 5), 0),
    ],
)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_softmax_matches_oracle_and_sums_to_one(shape, axis, dtype):
    x_val = _sample(shape, dtype)
    x = pt.tensor("x", dtype=dtype, shape=(None,) * len(shape))
    got = pytensor.function([x], nl.softmax(x, axis=axis), mode=FAST)(x_val)
    assert got.dtype == dtype and got.shape == shape
    tol = 1e-6 if dtype == "float32" else 1e-13
    np.testing.assert_allclose(got, _softmax_oracle(x_val, axis), rtol=tol * 10, atol=tol)
    np.testing.assert_allclose(got.sum(axis=axis), 1.0, rtol=tol * 10)
    assert (got >= 0).all()


def test_softmax_default_axis_is_channels():
    x_val = _sample((2, 4, 3, 2, 3))
    np.testing.assert_allclose(_apply(nl.softmax, x_val), _softmax_oracle(x_val, 1), rtol=1e-12)


def test_softmax_2d_is_lasagnes_row_wise():
    x_val = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    e = math.e
    expected = [[1 / (1 + e + e**2), e / (1 + e + e**2), e**2 / (1 + e + e**2)], [1 / 3] * 3]
    np.testing.assert_allclose(_apply(nl.softmax, x_val), expected, rtol=1e-14)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_softmax_is_numerically_stable(dtype):
    # exp(1000) overflows; the max-shift must make these equal to softmax([0, 0, -1])
    x_val = np.array(
        [[[1000.0], [1000.0], [999.0]], [[-1000.0], [-1000.0], [-1001.0]]], dtype=dtype
    )
    got = _apply(nl.softmax, x_val)
    assert np.isfinite(got).all()
    e = math.e
    expected = np.array([e, e, 1.0]) / (2 * e + 1)
    for n in range(2):
        np.testing.assert_allclose(got[n, :, 0], expected, rtol=1e-6)


def test_softmax_gradient_against_finite_differences():
    rng = np.random.default_rng(5)
    verify_grad(
        lambda x: nl.softmax(x) * pt.arange(1, 4)[None, :, None],
        [rng.standard_normal((2, 3, 4))],
        rng=rng,
        mode=FAST,
    )


@pytest.mark.parametrize(
    ("x", "axis", "error", "match"),
    [
        (
            pt.vector("x"),
            1,
            ShapeError,
            r"softmax: invalid value for `x`\. Expected a tensor of at least 2 dimensions",
        ),
        (
            pt.tensor5("x"),
            5,
            ConfigError,
            r"softmax: invalid value for `axis`\. Expected an int in \[-5, 5\); received axis=5",
        ),
        (pt.tensor5("x"), -6, ConfigError, r"received axis=-6"),
        (
            pt.matrix("x"),
            1.0,
            ConfigError,
            r"softmax: invalid value for `axis`\. Expected an int in \[-2, 2\); received axis=1\.0",
        ),
        (pt.matrix("x"), None, ConfigError, r"received axis=None"),
    ],
)
def test_softmax_errors(x, axis, error, match):
    with pytest.raises(error, match=match):
        nl.softmax(x, axis=axis)


def test_all_is_complete():
    expected = {
        "sigmoid", "softmax", "tanh", "ScaledTanH", "ScaledTanh", "rectify", "LeakyRectify",
        "leaky_rectify", "very_leaky_rectify", "elu", "SELU", "selu", "softplus", "linear",
        "identity",
    }  # fmt: skip
    assert set(nl.__all__) == expected
    assert all(callable(getattr(nl, name)) for name in expected)
