"""The Ops through PyTensor: values, gradients (verify_grad), shapes, and every linker."""

import zlib

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from cases import CASES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from oracles import corr_grads_reference, corr_reference
from pytensor.gradient import verify_grad

from dilnet.backends import select
from dilnet.ops import DilatedCorr, DilatedCorrGradInputs, DilatedCorrGradWeights, dilated_conv

FAST = "FAST_COMPILE"  # Python VM: compiles in ~0.05 s, the Ops run their perform


@pytest.fixture(autouse=True, params=["blas", pytest.param("torch", marks=pytest.mark.torch)])
def cpu_kernels(request, monkeypatch):
    """Run every test here once with each set of CPU kernels."""
    monkeypatch.setattr(select, "_choice", request.param)
    return request.param


def _rng(case):
    return np.random.default_rng(zlib.crc32(case.id.encode()))


def _arrays(case, rng):
    C, O = case.in_per_group * case.groups, case.out_per_group * case.groups
    x = rng.standard_normal((case.batch, C, *case.spatial)).astype(case.dtype)
    W = rng.standard_normal((O, case.in_per_group, *case.kernel)).astype(case.dtype)
    return x, W


def _op(case):
    return DilatedCorr(case.stride, case.dilation, case.pads, case.groups, case.flip)


def _tol(dtype):
    return {"rtol": 2e-4, "atol": 2e-4} if dtype == "float32" else {"rtol": 1e-9, "atol": 1e-9}


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_op_values_gradients_and_shapes(case):
    x_val, W_val = _arrays(case, _rng(case))
    x = pt.tensor("x", dtype=case.dtype, shape=x_val.shape)
    W = pt.tensor("W", dtype=case.dtype, shape=W_val.shape)
    y = _op(case)(x, W)
    y_ref = corr_reference(
        x_val, W_val, case.stride, case.dilation, case.pads, case.groups, case.flip
    )
    assert y.type.shape == y_ref.shape  # static shape from shapes.py
    gy = pt.tensor("gy", dtype=case.dtype, shape=y_ref.shape)
    gx, gW = pytensor.grad(None, [x, W], known_grads={y: gy})
    gy_val = _rng(case).standard_normal(y_ref.shape).astype(case.dtype)
    f = pytensor.function([x, W, gy], [y, gx, gW], mode=FAST)
    y_val, gx_val, gW_val = f(x_val, W_val, gy_val)
    gx_ref, gW_ref = corr_grads_reference(
        x_val, W_val, gy_val, case.stride, case.dilation, case.pads, case.groups, case.flip
    )
    np.testing.assert_allclose(y_val, y_ref, **_tol(case.dtype))
    np.testing.assert_allclose(gx_val, gx_ref, **_tol(case.dtype))
    np.testing.assert_allclose(gW_val, gW_ref, **_tol(case.dtype))
    assert gx_val.dtype == x_val.dtype and gW_val.dtype == W_val.dtype


# verify_grad differentiates numerically one element at a time: the same configurations,
# with fewer channels and batch items.
VERIFY = [
    c._replace(batch=1, in_per_group=1, out_per_group=2) for c in CASES if c.dtype == "float64"
]


@pytest.mark.parametrize("case", VERIFY, ids=lambda c: c.id)
def test_verify_grad_of_all_three_ops(case):
    rng = _rng(case)
    x_val, W_val = _arrays(case, rng)
    op = _op(case)
    gy_val = rng.standard_normal(
        corr_reference(x_val, W_val, case.stride, case.dilation, case.pads, case.groups).shape
    )
    props = op._props_dict()
    vg = {"n_tests": 1, "rng": rng, "mode": FAST}
    verify_grad(op, [x_val, W_val], **vg)
    x_ref, W_ref = pt.constant(x_val), pt.constant(W_val)
    verify_grad(lambda W, gy: DilatedCorrGradInputs(**props)(W, gy, x_ref), [W_val, gy_val], **vg)
    verify_grad(lambda x, gy: DilatedCorrGradWeights(**props)(x, gy, W_ref), [x_val, gy_val], **vg)


def test_second_derivative_through_the_gradient_ops():
    """d/dW of ||d(sum y^2)/dx||^2, checked by finite differences (a Hessian-vector path)."""
    rng = np.random.default_rng(7)
    x_val = rng.standard_normal((1, 2, 5, 6))
    W_val = rng.standard_normal((2, 2, 3, 2))

    def penalty(W):
        x = pt.constant(x_val)
        y = dilated_conv(x, W, dilation=(2, 1), pad="same")
        (gx,) = pytensor.grad((y**2).sum(), [x])
        return (gx**2).sum()

    verify_grad(penalty, [W_val], n_tests=1, rng=rng, mode=FAST)


@pytest.mark.parametrize("case", CASES[::3], ids=lambda c: c.id)
def test_infer_shape_with_unknown_static_shapes(case):
    x_val, W_val = _arrays(case, _rng(case))
    nd = len(case.spatial)
    x = pt.tensor("x", dtype=case.dtype, shape=(None,) * (nd + 2))
    W = pt.tensor("W", dtype=case.dtype, shape=(None,) * (nd + 2))
    y = _op(case)(x, W)
    assert y.type.shape == (None,) * (nd + 2)
    gx, gW = pytensor.grad(y.sum(), [x, W])
    f = pytensor.function([x, W], [y.shape, gx.shape, gW.shape], mode="CVM")
    # the shapes come from infer_shape alone: no correlation is computed
    kinds = {type(n.op) for n in f.maker.fgraph.apply_nodes}
    assert not kinds & {DilatedCorr, DilatedCorrGradInputs, DilatedCorrGradWeights}
    y_shape, gx_shape, gW_shape = f(x_val, W_val)
    expected = corr_reference(
        x_val, W_val, case.stride, case.dilation, case.pads, case.groups
    ).shape
    assert tuple(y_shape) == expected
    assert tuple(gx_shape) == x_val.shape and tuple(gW_shape) == W_val.shape


@pytest.mark.parametrize(
    ("pad", "pads"),
    [
        ("same", ((2, 2), (1, 2))),  # dilation (2, 1), kernel (3, 4): extents 5 and 4
        ("valid", ((0, 0), (0, 0))),
        ("full", ((4, 4), (3, 3))),
        (1, ((1, 1), (1, 1))),
        ((2, (0, 3)), ((2, 2), (0, 3))),
    ],
)
def test_public_function_pad_forms(pad, pads):
    rng = np.random.default_rng(11)
    x_val = rng.standard_normal((2, 3, 7, 9))
    W_val = rng.standard_normal((4, 3, 3, 4))
    y = dilated_conv(pt.constant(x_val), pt.constant(W_val), dilation=(2, 1), pad=pad)
    np.testing.assert_allclose(
        y.eval(mode=FAST), corr_reference(x_val, W_val, (1, 1), (2, 1), pads), rtol=1e-10
    )


def test_same_with_stride_keeps_ceil_n_over_s():
    rng = np.random.default_rng(12)
    x_val = rng.standard_normal((1, 2, 11, 8))
    W_val = rng.standard_normal((3, 2, 3, 4))
    x = pt.tensor("x", shape=(None, 2, None, None))
    y = dilated_conv(x, pt.constant(W_val), stride=(3, 2), dilation=(2, 1), pad="same")
    out = y.eval({x: x_val}, mode=FAST)
    # Keras: out = ceil(n/s) = (4, 4); pads (n=11,s=3,extent 5): total 3*3+5-11=3 -> (1, 2);
    # (n=8,s=2,extent 4): total 3*2+4-8=2 -> (1, 1)
    assert out.shape == (1, 3, 4, 4)
    np.testing.assert_allclose(
        out, corr_reference(x_val, W_val, (3, 2), (2, 1), ((1, 2), (1, 1))), rtol=1e-10
    )


def test_flip_filters_is_true_convolution():
    # a 1-D impulse convolved with [1, 2, 3] gives [1, 2, 3]; correlation gives it reversed
    x = np.zeros((1, 1, 5))
    x[0, 0, 2] = 1.0
    W = np.array([[[1.0, 2.0, 3.0]]])
    conv = dilated_conv(pt.constant(x), pt.constant(W), pad="same", flip_filters=True).eval(
        mode=FAST
    )
    corr = dilated_conv(pt.constant(x), pt.constant(W), pad="same").eval(mode=FAST)
    np.testing.assert_array_equal(conv[0, 0], [0, 1, 2, 3, 0])
    np.testing.assert_array_equal(corr[0, 0], [0, 3, 2, 1, 0])


@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_property_random_configurations(data):
    nd = data.draw(st.integers(1, 3), label="nd")
    kernel = tuple(data.draw(st.lists(st.integers(1, 3), min_size=nd, max_size=nd), label="kernel"))
    dilation = tuple(
        data.draw(st.lists(st.integers(1, 3), min_size=nd, max_size=nd), label="dilation")
    )
    stride = tuple(data.draw(st.lists(st.integers(1, 3), min_size=nd, max_size=nd), label="stride"))
    pads = tuple(
        data.draw(st.tuples(st.integers(0, 3), st.integers(0, 3)), label=f"pad{i}")
        for i in range(nd)
    )
    # inputs at least as large as each dilated kernel minus padding
    spatial = tuple(
        max(1, (k - 1) * d + 1 - b - a) + data.draw(st.integers(0, 4), label=f"extra{i}")
        for i, (k, d, (b, a)) in enumerate(zip(kernel, dilation, pads, strict=True))
    )
    groups = data.draw(st.sampled_from([1, 2]), label="groups")
    flip = data.draw(st.booleans(), label="flip")
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31), label="seed"))
    x_val = rng.standard_normal((1, 2 * groups, *spatial))
    W_val = rng.standard_normal((groups, 2, *kernel))
    x = pt.tensor("x", shape=(None,) * (nd + 2))
    op = DilatedCorr(stride, dilation, pads, groups, flip)
    y = op(x, pt.constant(W_val))
    f = pytensor.function([x], [y, y.shape], mode=FAST)
    y_val, y_shape = f(x_val)
    y_ref = corr_reference(x_val, W_val, stride, dilation, pads, groups, flip)
    assert tuple(y_shape) == y_val.shape == y_ref.shape
    np.testing.assert_allclose(y_val, y_ref, rtol=1e-9, atol=1e-12)


def test_output_dtype_is_the_upcast_and_gradients_keep_input_dtypes():
    rng = np.random.default_rng(13)
    x_val = rng.standard_normal((1, 2, 6, 5)).astype("float32")
    W_val = rng.standard_normal((3, 2, 3, 3))  # float64
    x = pt.tensor("x", dtype="float32", shape=x_val.shape)
    W = pt.tensor("W", dtype="float64", shape=W_val.shape)
    y = dilated_conv(x, W, dilation=(1, 2))
    assert y.dtype == "float64"
    gx, gW = pytensor.grad(y.sum(), [x, W])
    assert (gx.dtype, gW.dtype) == ("float32", "float64")
    y_val, gx_val = pytensor.function([x, W], [y, gx], mode=FAST)(x_val, W_val)
    pads = ((1, 1), (2, 2))
    np.testing.assert_allclose(y_val, corr_reference(x_val, W_val, (1, 1), (1, 2), pads), rtol=1e-6)
    gx_ref, _ = corr_grads_reference(x_val, W_val, np.ones(y_val.shape), (1, 1), (1, 2), pads)
    np.testing.assert_allclose(gx_val, gx_ref, rtol=1e-5)
