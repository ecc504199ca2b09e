"""The CPU kernels (dilnet's BLAS kernels and the torch ones) against the plain-loop oracle."""

import tracemalloc
import zlib

import numpy as np
import pytest
from cases import CASES
from oracles import corr_grads_reference, corr_reference

from dilnet.backends import blas, select

KERNELS = ["blas", pytest.param("torch", marks=pytest.mark.torch)]


def _kernels(name):
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
def test_forward_and_gradients_match_oracle(kernels, case):
    rng = np.random.default_rng(zlib.crc32(case.id.encode()))
    k = _kernels(kernels)
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


def test_blas_chunking_covers_many_chunks(monkeypatch):
    # tiny chunks force many windows, plane crossings and partial final chunks
    monkeypatch.setattr(blas, "CHUNK_BYTES", 256)
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


def test_select_cpu_kernels(monkeypatch):
    from dilnet.errors import ConfigError

    monkeypatch.setattr(select, "_choice", "blas")
    assert select.cpu_kernels() is blas
    with pytest.raises(
        ConfigError, match=r"set_cpu_kernels: invalid value for `name`.*received name='mkl'"
    ):
        select.set_cpu_kernels("mkl")
