"""The JAX implementations of the correlation Ops against the plain-loop oracle, in float64.

Checked directly (the functions PyTensor's JAX linker calls, jitted on JAX's CPU backend) and
through PyTensor (``pytensor.grad`` of a cost, compiled with ``mode="JAX"``), for every
weight-gradient strategy, on the shared case grid plus padding edge cases.
"""

import functools
import zlib

import jax
import jax.extend
import numpy as np
import pytensor
import pytensor.link.jax.dispatch  # sets jax_enable_x64 from floatX: import it first
import pytensor.tensor as pt
import pytest
from cases import CASES, Case
from oracles import corr_grads_reference, corr_reference

from dilnet.backends import jax_backend
from dilnet.errors import ConfigError
from dilnet.ops import DilatedCorr, DilatedCorrGradInputs, DilatedCorrGradWeights, dilated_conv

FAST = "FAST_COMPILE"
TOL = {"rtol": 1e-10, "atol": 1e-10}

# Beyond the grid: padding wider than the dilated kernel (the input gradient then pads by a
# negative amount, i.e. crops), string pads with a stride that leaves a remainder, 1-tap kernels.
EDGE_CASES = [
    Case((7,), (1,), (2,), (1,), ((3, 2),)),
    Case((8, 6), (3, 2), (1, 2), (1, 1), ((4, 0), (0, 3)), groups=2),
    Case((10,), (3,), (3,), (2,), ("same",)),
    Case((9, 7), (2, 3), (2, 3), (2, 1), ("full", "same"), flip=True),
    Case((5, 4, 6), (1, 3, 2), (1, 1, 1), (1, 3, 2), ("same", "full", (2, 3))),
]
ALL_CASES = [c._replace(dtype="float64") for c in CASES + EDGE_CASES]


@pytest.fixture(autouse=True)
def x64():
    """float64 in JAX for the duration of a test; the previous setting is restored after."""
    before = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", before)


@pytest.fixture
def strategy(request, monkeypatch):
    monkeypatch.setattr(jax_backend, "_weight_grad", request.param)
    return request.param


def _op(case):
    return DilatedCorr(case.stride, case.dilation, case.pads, case.groups, case.flip)


@functools.cache
def _problem(case):
    """x, W, gy and the oracle's y, dx, dW for a case (float64, seeded by the case id)."""
    rng = np.random.default_rng(zlib.crc32(case.id.encode()))
    C, O = case.in_per_group * case.groups, case.out_per_group * case.groups
    x = rng.standard_normal((case.batch, C, *case.spatial))
    W = rng.standard_normal((O, case.in_per_group, *case.kernel))
    pads = _op(case).resolve_pads(case.spatial, case.kernel)
    y = corr_reference(x, W, case.stride, case.dilation, pads, case.groups, case.flip)
    gy = rng.standard_normal(y.shape)
    gx, gW = corr_grads_reference(
        x, W, gy, case.stride, case.dilation, pads, case.groups, case.flip
    )
    return x, W, gy, y, gx, gW


def _symbolic(*arrays):
    return [pt.tensor(dtype=str(a.dtype), shape=a.shape) for a in arrays]


def _funcified(funcify, op_class, case, values):
    """The jitted function the JAX linker would run for ``op_class(...)(*values)``."""
    node = op_class(**_op(case)._props_dict())(*_symbolic(*values)).owner
    return jax.jit(funcify(node.op, node=node))


ids = functools.partial(pytest.mark.parametrize, ids=lambda c: c.id)


@ids("case", ALL_CASES)
def test_forward_matches_oracle(case):
    x, W, _, y, _, _ = _problem(case)
    fn = _funcified(jax_backend.funcify_forward, DilatedCorr, case, (x, W))
    np.testing.assert_allclose(fn(x, W), y, **TOL)


@ids("case", ALL_CASES)
def test_grad_inputs_match_oracle_and_keep_the_input_shape(case):
    x, W, gy, _, gx, _ = _problem(case)
    fn = _funcified(jax_backend.funcify_grad_inputs, DilatedCorrGradInputs, case, (W, gy, x))
    got = fn(W, gy, x)
    assert got.shape == x.shape and got.dtype == np.float64
    np.testing.assert_allclose(got, gx, **TOL)


@pytest.mark.parametrize("strategy", jax_backend.WEIGHT_GRAD_STRATEGIES, indirect=True)
@ids("case", ALL_CASES)
def test_grad_weights_match_oracle(case, strategy):
    x, W, gy, _, _, gW = _problem(case)
    fn = _funcified(jax_backend.funcify_grad_weights, DilatedCorrGradWeights, case, (x, gy, W))
    got = fn(x, gy, W)
    assert got.shape == W.shape and got.dtype == np.float64
    np.testing.assert_allclose(got, gW, **TOL)


@pytest.mark.parametrize("strategy", ["taps", "space_to_batch"], indirect=True)
@ids("case", [c for c in ALL_CASES if c.stride != (1,) * len(c.stride)][:3])
def test_fallback_to_vjp_beyond_max_unrolled_taps(case, strategy, monkeypatch):
    monkeypatch.setattr(jax_backend, "MAX_UNROLLED_TAPS", 1)
    assert jax_backend.weight_grad_strategy_for(_op(case), case.kernel, strategy) == (
        "vjp" if np.prod(case.kernel) > 1 else "taps"
    )
    x, W, gy, _, _, gW = _problem(case)
    fn = _funcified(jax_backend.funcify_grad_weights, DilatedCorrGradWeights, case, (x, gy, W))
    np.testing.assert_allclose(fn(x, gy, W), gW, **TOL)


def test_strategy_fallbacks():
    strided = DilatedCorr((1, 2), (2, 2), ((1, 1), (1, 1)))
    plain = DilatedCorr((1, 1), (2, 2), ((1, 1), (1, 1)))
    pick = jax_backend.weight_grad_strategy_for
    assert pick(plain, (3, 3), "space_to_batch") == "space_to_batch"
    assert pick(strided, (3, 3), "space_to_batch") == "taps"
    assert pick(plain, (3, 3), "taps") == "taps"
    big = (jax_backend.MAX_UNROLLED_TAPS + 1, 1)
    assert pick(plain, big, "taps") == "vjp"
    assert pick(strided, big, "space_to_batch") == "vjp"
    assert pick(plain, big, "space_to_batch") == "space_to_batch"


# every case with the default strategy, every fourth with the others (compiling is the cost)
THROUGH_PYTENSOR = [(c, "taps") for c in ALL_CASES] + [
    (c, s) for c in ALL_CASES[::4] for s in ("space_to_batch", "vjp")
]


@pytest.mark.parametrize(
    ("case", "strategy"),
    THROUGH_PYTENSOR,
    indirect=["strategy"],
    ids=[f"{s}-{c.id}" for c, s in THROUGH_PYTENSOR],
)
def test_pytensor_grad_in_jax_mode_matches_oracle(case, strategy):
    x_val, W_val, gy_val, y_ref, gx_ref, gW_ref = _problem(case)
    x, W = _symbolic(x_val, W_val)
    y = _op(case)(x, W)
    cost = (y * pt.constant(gy_val)).sum()  # so dcost/dy = gy
    gx, gW = pytensor.grad(cost, [x, W])
    f = pytensor.function([x, W], [y, gx, gW], mode="JAX")
    for got, ref in zip(f(x_val, W_val), (y_ref, gx_ref, gW_ref), strict=True):
        assert got.dtype == np.float64
        np.testing.assert_allclose(np.asarray(got), ref, **TOL)


@ids("case", ALL_CASES[::3])
def test_second_order_gradients_in_jax_mode_agree_with_python_vm(case):
    """d/d(x, W) of ||dx||^2 + ||dW||^2 runs all three Ops' pullbacks through the JAX code."""
    x_val, W_val, gy_val, *_ = _problem(case)
    x, W = _symbolic(x_val, W_val)
    cost = (_op(case)(x, W) * pt.constant(gy_val)).sum()
    gx, gW = pytensor.grad(cost, [x, W])
    outer = pytensor.grad((gx**2).sum() + (gW**2).sum(), [x, W])
    expected = pytensor.function([x, W], outer, mode=FAST)(x_val, W_val)
    got = pytensor.function([x, W], outer, mode="JAX")(x_val, W_val)
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_allclose(np.asarray(g), e, **TOL)


def test_float32_under_default_precision_is_full_float32_on_cpu():
    """XLA on the CPU ignores the precision hint: float32 results are float32-accurate."""
    assert jax.default_backend() == "cpu"
    case = ALL_CASES[8]  # 3D, dilations (1, 2, 4)
    x, W, gy, y, gx, gW = _problem(case)
    x32, W32, gy32 = (a.astype(np.float32) for a in (x, W, gy))
    xs, Ws = _symbolic(x32, W32)
    ys = _op(case)(xs, Ws)
    grads = pytensor.grad((ys * pt.constant(gy32)).sum(), [xs, Ws])
    assert jax_backend.get_jax_precision() == "default"
    got = pytensor.function([xs, Ws], [ys, *grads], mode="JAX")(x32, W32)
    for g, ref in zip(got, (y, gx, gW), strict=True):
        assert g.dtype == np.float32
        np.testing.assert_allclose(np.asarray(g), ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())


def _lax_precisions(jaxpr):
    """The precision parameter of every convolution and matrix product in a (closed) jaxpr."""
    found = []
    for eqn in jaxpr.eqns:
        if eqn.primitive.name in ("conv_general_dilated", "dot_general"):
            found.append(eqn.params["precision"])
        for sub in jax.extend.core.jaxprs_in_params(eqn.params):
            found += _lax_precisions(sub)
    return found


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("default", {None}),
        ("highest", {(jax.lax.Precision.HIGHEST,) * 2}),
    ],
)
def test_precision_setting_reaches_every_lax_call(name, expected, monkeypatch):
    monkeypatch.setattr(jax_backend, "_precision", "default")
    jax_backend.set_jax_precision(name)
    case = ALL_CASES[4]
    x, W, gy, *_ = _problem(case)
    for funcify, op_class, args in [
        (jax_backend.funcify_forward, DilatedCorr, (x, W)),
        (jax_backend.funcify_grad_inputs, DilatedCorrGradInputs, (W, gy, x)),
        (jax_backend.funcify_grad_weights, DilatedCorrGradWeights, (x, gy, W)),
    ]:
        node = op_class(**_op(case)._props_dict())(*_symbolic(*args)).owner
        found = _lax_precisions(jax.make_jaxpr(funcify(node.op, node=node))(*args).jaxpr)
        assert found and set(found) == expected


def test_invalid_settings_say_what_is_allowed(monkeypatch):
    monkeypatch.setattr(jax_backend, "_precision", "default")
    monkeypatch.setattr(jax_backend, "_weight_grad", "taps")
    with pytest.raises(ConfigError, match=r"set_jax_precision: .*Expected one of .*'highest'"):
        jax_backend.set_jax_precision("tf32")
    with pytest.raises(ConfigError, match=r"set_jax_weight_grad: .*'space_to_batch'"):
        jax_backend.set_jax_weight_grad("im2col")
    monkeypatch.setattr(jax_backend, "_precision", "fast")  # as if from DILNET_JAX_PRECISION
    with pytest.raises(ConfigError, match=r"DILNET_JAX_PRECISION=.fast."):
        jax_backend.get_jax_precision()
    monkeypatch.setattr(jax_backend, "_weight_grad", "cudnn")
    with pytest.raises(ConfigError, match=r"DILNET_JAX_WEIGHT_GRAD=.cudnn."):
        jax_backend.get_jax_weight_grad()


def test_environment_variables_set_the_defaults(monkeypatch):
    import importlib.util

    monkeypatch.setenv("DILNET_JAX_PRECISION", "highest")
    monkeypatch.setenv("DILNET_JAX_WEIGHT_GRAD", "vjp")
    fresh = importlib.util.module_from_spec(importlib.util.find_spec(jax_backend.__name__))
    fresh.__spec__.loader.exec_module(fresh)  # a separate copy: the imported module is untouched
    assert (fresh.get_jax_precision(), fresh.get_jax_weight_grad()) == ("highest", "vjp")


def test_public_function_in_jax_mode_with_string_padding():
    rng = np.random.default_rng(21)
    x_val = rng.standard_normal((2, 2, 11, 8))
    W_val = rng.standard_normal((4, 1, 3, 4))
    x, W = _symbolic(x_val, W_val)
    y = dilated_conv(x, W, stride=(3, 2), dilation=(2, 1), pad="same", groups=2)
    gx, gW = pytensor.grad((y**2).sum(), [x, W])
    expected = pytensor.function([x, W], [y, gx, gW], mode=FAST)(x_val, W_val)
    got = pytensor.function([x, W], [y, gx, gW], mode="JAX")(x_val, W_val)
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_allclose(np.asarray(g), e, **TOL)
