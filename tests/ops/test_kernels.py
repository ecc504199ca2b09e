"""The CPU kernels (dilnet's BLAS kernels and the torch ones) against the plain-loop oracle."""

import tracemalloc
import zlib

import numpy as np
import pytest
from cases import CASES
from oracles import corr_grads_reference, corr_reference

from dilnet.backends import blas, select

# "blas" stacks the taps of these few channels into one GEMM; "blas-per-tap" turns that off
KERNELS = ["blas", "blas-per-tap", pytest.param("torch", marks=pytest.mark.torch)]


def _kernels(name, monkeypatch=None):
    if name.startswith("blas"):
        monkeypatch.setattr(blas, "STACK_CHANNELS", 0 if name == "blas-per-tap" else 8)
    if name == "torch":
        from dilnet.backends import torch_backend

        return torch_backend
    return blas


def _arrays(case, rng):
    C = case.in_per_group * case.groups
    O = case.out_per_group * case.groups
    x = rng.standard_normal((case.batch, C, *case.spatial)).astype(case.dtype)
    W = rng.standard_normal((O, case.in_per_group, *case.kernel)).astype(case.dtype)
    return x, W


def _flip(a):
    return a[(slice(None), slice(None)) + (slice(None, None, -1),) * (a.ndim - 2)]


def _tol(dtype):
    return {"rtol": 1e-4, "atol": 1e-4} if dtype == "float32" else {"rtol": 1e-10, "atol": 1e-10}


@pytest.mark.parametrize("kernels", KERNELS)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_forward_and_gradients_match_oracle(kernels, case, monkeypatch):
    rng = np.random.default_rng(zlib.crc32(case.id.encode()))
    k = _kernels(kernels, monkeypatch)
    x, W = _arrays(case, rng)
    # the kernels correlate; flip_filters is the Op's job, so flip here as the Op does
    Wk = _flip(W) if case.flip else W
    y = k.corr_forward(x, Wk, case.stride, case.dilation, case.pads, case.groups)
    y_ref = corr_reference(x, W, case.stride, case.dilation, case.pads, case.groups, case.flip)
    assert y.shape == y_ref.shape
    assert y.dtype == np.dtype(case.dtype)
    np.testing.assert_allclose(y, y_ref, **_tol(case.dtype))

    gy = rng.standard_normal(y_ref.shape).astype(case.dtype)
    gx = k.corr_grad_input(Wk, gy, case.spatial, case.stride, case.dilation, case.pads, case.groups)
    gW = k.corr_grad_weights(x, gy, case.kernel, case.stride, case.dilation, case.pads, case.groups)
    if case.flip:
        gW = _flip(gW)
    gx_ref, gW_ref = corr_grads_reference(
        x, W, gy, case.stride, case.dilation, case.pads, case.groups, case.flip
    )
    np.testing.assert_allclose(gx, gx_ref, **_tol(case.dtype))
    np.testing.assert_allclose(gW, gW_ref, **_tol(case.dtype))


def test_blas_kernels_upcast_mixed_dtypes():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 2, 6, 6)).astype("float32")
    W = rng.standard_normal((2, 2, 3, 3))
    y = blas.corr_forward(x, W, (1, 1), (1, 1), ((1, 1), (1, 1)))
    assert y.dtype == np.float64
    np.testing.assert_allclose(
        y, corr_reference(x, W, (1, 1), (1, 1), ((1, 1), (1, 1))), rtol=1e-12
    )


@pytest.mark.parametrize("stack", [True, False])
def test_blas_chunking_covers_many_chunks(monkeypatch, stack):
    # tiny chunks force many windows, plane crossings and partial final chunks
    monkeypatch.setattr(blas, "CHUNK_BYTES", 256)
    monkeypatch.setattr(blas, "STACK_CHANNELS", 8 if stack else 0)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((1, 3, 7, 6, 9))
    W = rng.standard_normal((2, 3, 3, 2, 3))
    pads = ((2, 1), (1, 0), (4, 4))
    args = ((1, 1, 2), (2, 3, 4), pads)
    y = blas.corr_forward(x, W, *args)
    np.testing.assert_allclose(y, corr_reference(x, W, *args), rtol=1e-12)
    gy = rng.standard_normal(y.shape)
    gx_ref, gW_ref = corr_grads_reference(x, W, gy, *args)
    np.testing.assert_allclose(blas.corr_grad_input(W, gy, x.shape[2:], *args), gx_ref, rtol=1e-11)
    np.testing.assert_allclose(
        blas.corr_grad_weights(x, gy, W.shape[2:], *args), gW_ref, rtol=1e-11
    )


def test_blas_workspace_is_bounded_on_a_large_volume():
    """A 32-channel 64^3 volume: a full im2col would be 32*27*64^3*4 B = 906 MB.

    tracemalloc sees numpy's allocations; beyond the input, output and the gradient
    (the arrays the caller gets), the kernels may allocate at most 64 MB.
    """
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 32, 64, 64, 64), dtype=np.float32)
    W = rng.standard_normal((32, 32, 3, 3, 3), dtype=np.float32)
    pads = ((4, 4),) * 3
    volume_bytes = x.nbytes
    tracemalloc.start()
    try:
        y = blas.corr_forward(x, W, (1, 1, 1), (4, 4, 4), pads)
        _, peak_fwd = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        base, _ = tracemalloc.get_traced_memory()
        gx = blas.corr_grad_input(W, y, x.shape[2:], (1, 1, 1), (4, 4, 4), pads)
        _, peak_gi = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        base2, _ = tracemalloc.get_traced_memory()
        blas.corr_grad_weights(x, gx, (3, 3, 3), (1, 1, 1), (4, 4, 4), pads)
        _, peak_gw = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    limit = 64 << 20
    assert peak_fwd - volume_bytes < limit  # y itself is one volume
    assert peak_gi - base - volume_bytes < limit  # gx is one volume
    assert peak_gw - base2 < limit
    assert blas.workspace_bytes(32, 32, (64, 64, 64), (3, 3, 3), (4, 4, 4), pads) < limit


def test_blas_stacked_taps_keep_the_workspace_bounded():
    """Four channels of 64^3 into 16: the taps are stacked (an im2col of each chunk), but a
    whole-volume im2col would be 4*27*64^3*4 B = 113 MB; beyond the output (16 MB) the forward
    pass may allocate at most 16 MB."""
    rng = np.random.default_rng(4)
    x = rng.standard_normal((1, 4, 64, 64, 64), dtype=np.float32)
    W = rng.standard_normal((16, 4, 3, 3, 3), dtype=np.float32)
    pads = ((2, 2),) * 3
    tracemalloc.start()
    try:
        base, _ = tracemalloc.get_traced_memory()
        y = blas.corr_forward(x, W, (1, 1, 1), (2, 2, 2), pads)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak - base - y.nbytes < 16 << 20
    assert blas.workspace_bytes(4, 16, (64, 64, 64), (3, 3, 3), (2, 2, 2), pads) < 16 << 20
    np.testing.assert_allclose(
        y[0, :, 28:36, 28:36, 28:36],  # a valid correlation of the crop around it
        corr_reference(x[:, :, 26:38, 26:38, 26:38], W, (1, 1, 1), (2, 2, 2), ((0, 0),) * 3)[0],
        rtol=1e-4, atol=1e-4,
    )  # fmt: skip


def test_blas_stacks_taps_only_where_it_pays():
    # (spatial, kernel, dilation, channels): the one-channel first layer on the MNI152 template
    # stacks; a 5^3 kernel at dilation 4 would leave one row per chunk (11x slower), so not
    one = ((99, 117, 95), (3, 3, 3), (1, 1, 1), 1)
    big = ((48, 48, 160), (5, 5, 5), (4, 4, 4), 8)
    many = ((64, 64, 64), (3, 3, 3), (1, 1, 1), 16)
    for (spatial, k, d, c), expected in ((one, True), (big, False), (many, False)):
        pads = tuple(((kk - 1) * dd // 2,) * 2 for kk, dd in zip(k, d, strict=True))
        grid = blas._Grid(spatial, k, (1, 1, 1), d, pads, c, 16, 4)
        assert grid.stack is expected, (spatial, k, d, c)
        assert grid.rows_per_chunk >= (2 * grid.extra if expected else 1)


@pytest.mark.torch
def test_torch_kernels_route_each_problem(monkeypatch):
    """Which call each problem takes (their results: the oracle test above): oneDNN directly
    where PyTorch's dispatch would run natively (batch 1, small), the input gradient as a
    forward correlation and the weight gradient as the trick in float32, PyTorch's own
    gradients otherwise."""
    import torch

    from dilnet.backends import torch_backend as tb

    calls = []

    def spy(name, fn):
        # the first argument: the input (its shape, for conv3d_input)
        return lambda *a, **k: (
            calls.append((name, tuple(getattr(a[0], "shape", a[0])))) or fn(*a, **k)
        )

    monkeypatch.setattr(torch, "mkldnn_convolution", spy("onednn", torch.mkldnn_convolution))
    monkeypatch.setitem(tb._CONV, 3, spy("conv", tb._CONV[3]))
    monkeypatch.setitem(tb._GRAD_INPUT, 3, spy("grad_input", tb._GRAD_INPUT[3]))
    monkeypatch.setitem(tb._GRAD_WEIGHT, 3, spy("grad_weight", tb._GRAD_WEIGHT[3]))
    rng = np.random.default_rng(5)

    def run(N, dtype, dilation):
        x = rng.standard_normal((N, 4, 6, 7, 5)).astype(dtype)
        W = rng.standard_normal((3, 4, 3, 3, 3)).astype(dtype)
        args = ((1, 1, 1), (dilation,) * 3, ((dilation, dilation),) * 3)
        calls.clear()
        y = tb.corr_forward(x, W, *args)
        tb.corr_grad_input(W, y, x.shape[2:], *args)
        tb.corr_grad_weights(x, y, (3, 3, 3), *args)
        return [name for name, _ in calls], calls[-1][1]

    # batch 1: PyTorch would run natively, so oneDNN directly; the trick's batch is the 4
    # channels, which PyTorch sends to oneDNN itself
    assert run(1, "float32", 1) == (["onednn", "onednn", "conv"], (4, 1, 8, 9, 7))
    # batch 2, undilated: PyTorch's calls, its own (oneDNN) weight gradient; dilated: the trick
    assert run(2, "float32", 1)[0] == ["conv", "conv", "grad_weight"]
    assert run(2, "float32", 2) == (["conv", "conv", "conv"], (4, 2, 10, 11, 9))
    assert run(1, "float64", 1)[0] == ["conv", "grad_input", "grad_weight"]  # no oneDNN f64
    monkeypatch.setattr(tb, "DIRECT_ONEDNN", False)
    assert run(1, "float32", 1)[0] == ["conv", "grad_input", "grad_weight"]


def test_select_cpu_kernels(monkeypatch):
    from dilnet.errors import ConfigError

    monkeypatch.setattr(select, "_choice", "blas")
    assert select.cpu_kernels() is blas
    with pytest.raises(
        ConfigError, match=r"set_cpu_kernels: invalid value for `name`.*received name='mkl'"
    ):
        select.set_cpu_kernels("mkl")
