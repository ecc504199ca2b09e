"""PyTorch kernels for the correlation Ops: oneDNN on the CPU, cuDNN on a GPU.

Two faces over one set of tensor functions: numpy-in/numpy-out wrappers that the Ops'
``perform`` uses when ``cpu_kernels`` is 'torch' (zero-copy through ``torch.from_numpy``), and
builders for PyTensor's PYTORCH linker (``funcify_*``), which receive torch tensors.
"""

import warnings

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "corr_forward",
    "corr_grad_input",
    "corr_grad_weights",
    "funcify_forward",
    "funcify_grad_inputs",
    "funcify_grad_weights",
    "t_forward",
    "t_grad_input",
    "t_grad_weights",
]

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_GRAD_INPUT = {
    1: torch.nn.grad.conv1d_input,
    2: torch.nn.grad.conv2d_input,
    3: torch.nn.grad.conv3d_input,
}
_GRAD_WEIGHT = {
    1: torch.nn.grad.conv1d_weight,
    2: torch.nn.grad.conv2d_weight,
    3: torch.nn.grad.conv3d_weight,
}


def _pad_arg(pads):
    """Per-axis (before, after) -> F.pad's flat list, last axis first."""
    return [v for before, after in reversed(pads) for v in (before, after)]


def _flip(t):
    return torch.flip(t, dims=tuple(range(2, t.ndim)))


def _symmetric(pads):
    """torch's own `padding` argument when before == after on every axis (no padded copy)."""
    return [b for b, _ in pads] if all(b == a for b, a in pads) else None


def t_forward(x, W, stride, dilation, pads, groups=1):
    """Tensor version of `corr_forward`."""
    padding = _symmetric(pads)
    if padding is None:
        x, padding = F.pad(x, _pad_arg(pads)), 0
    return _CONV[x.ndim - 2](x, W, None, stride, padding, dilation, groups)


def t_grad_input(W, gy, spatial, stride, dilation, pads, groups=1):
    """Tensor version of `corr_grad_input` (asymmetric padding: the padded input's gradient, cropped)."""
    N, nd, C = gy.shape[0], gy.ndim - 2, W.shape[1] * groups
    padding = _symmetric(pads)
    if padding is not None:
        return _GRAD_INPUT[nd]((N, C, *spatial), W, gy, stride, padding, dilation, groups)
    padded = [n + b + a for n, (b, a) in zip(spatial, pads, strict=True)]
    gxp = _GRAD_INPUT[nd]((N, C, *padded), W, gy, stride, 0, dilation, groups)
    inner = (slice(b, b + n) for n, (b, _) in zip(spatial, pads, strict=True))
    return gxp[(slice(None), slice(None), *inner)]


def t_grad_weights(x, gy, kernel, stride, dilation, pads, groups=1):
    """Tensor version of `corr_grad_weights`."""
    padding = _symmetric(pads)
    if padding is None:
        x, padding = F.pad(x, _pad_arg(pads)), 0
    O, C = gy.shape[1], x.shape[1]
    return _GRAD_WEIGHT[x.ndim - 2](
        x, (O, C // groups, *kernel), gy, stride, padding, dilation, groups
    )


def _common(*arrays):
    """Zero-copy tensors of one dtype. Read-only arrays (PyTensor constants) are fine: the
    kernels never write to their inputs, so torch's warning about them does not apply."""
    dtype = np.result_type(*(a.dtype for a in arrays))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "The given NumPy array is not writable", UserWarning)
        return [torch.from_numpy(_contiguous(a, dtype)) for a in arrays]


def _contiguous(a, dtype):
    a = np.ascontiguousarray(a, dtype=dtype)
    # a flipped length-1 axis counts as contiguous in numpy but has a negative stride
    return a.copy() if any(s < 0 for s in a.strides) else a


def corr_forward(x, W, stride, dilation, pads, groups=1):
    """numpy in, numpy out; same contract as `dilnet.backends.blas.corr_forward`."""
    tx, tW = _common(x, W)
    with torch.no_grad():
        return t_forward(tx, tW, stride, dilation, pads, groups).numpy()


def corr_grad_input(W, gy, spatial, stride, dilation, pads, groups=1):
    """numpy in, numpy out; same contract as `dilnet.backends.blas.corr_grad_input`."""
    tW, tgy = _common(W, gy)
    with torch.no_grad():
        return t_grad_input(tW, tgy, tuple(spatial), stride, dilation, pads, groups).numpy()


def corr_grad_weights(x, gy, kernel, stride, dilation, pads, groups=1):
    """numpy in, numpy out; same contract as `dilnet.backends.blas.corr_grad_weights`."""
    tx, tgy = _common(x, gy)
    with torch.no_grad():
        return t_grad_weights(tx, tgy, tuple(kernel), stride, dilation, pads, groups).numpy()


# PyTensor PYTORCH linker: receives torch tensors; `op` provides the properties and
# `resolve_pads(spatial, kernel)`.


def _dtype(node):
    return getattr(torch, node.outputs[0].dtype)


def funcify_forward(op, node=None, **kwargs):
    dtype = _dtype(node)

    def dilated_corr(x, W):
        x, W = x.to(dtype), W.to(dtype)
        pads = op.resolve_pads(tuple(x.shape[2:]), tuple(W.shape[2:]))
        if op.flip_filters:
            W = _flip(W)
        return t_forward(x, W, op.stride, op.dilation, pads, op.groups)

    return dilated_corr


def funcify_grad_inputs(op, node=None, **kwargs):
    dtype = _dtype(node)

    def dilated_corr_grad_inputs(W, gy, x):
        W, gy = W.to(dtype), gy.to(dtype)
        pads = op.resolve_pads(tuple(x.shape[2:]), tuple(W.shape[2:]))
        if op.flip_filters:
            W = _flip(W)
        return t_grad_input(W, gy, tuple(x.shape[2:]), op.stride, op.dilation, pads, op.groups)

    return dilated_corr_grad_inputs


def funcify_grad_weights(op, node=None, **kwargs):
    dtype = _dtype(node)

    def dilated_corr_grad_weights(x, gy, W):
        x, gy = x.to(dtype), gy.to(dtype)
        pads = op.resolve_pads(tuple(x.shape[2:]), tuple(W.shape[2:]))
        gW = t_grad_weights(x, gy, tuple(W.shape[2:]), op.stride, op.dilation, pads, op.groups)
        return _flip(gW) if op.flip_filters else gW

    return dilated_corr_grad_weights
