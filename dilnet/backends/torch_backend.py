"""PyTorch kernels for the correlation Ops: oneDNN on the CPU, cuDNN on a GPU.

Two faces over one set of tensor functions: numpy-in/numpy-out wrappers that the Ops'
``perform`` uses when ``cpu_kernels`` is 'torch' (zero-copy through ``torch.from_numpy``), and
builders for PyTensor's PYTORCH linker (``funcify_*``), which receive torch tensors.
"""

import math
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
    "register",
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


#: Let the numpy wrappers use dilnet's float32 CPU routes (`_onednn`); False restores
#: PyTorch's ``conv3d``, ``conv3d_input`` and ``conv3d_weight`` everywhere, which
#: ``bench/torch_cpu.py`` uses to time both in one process.
DIRECT_ONEDNN = True


def _onednn(t, direct):
    """Whether dilnet's own routes to oneDNN apply: float32 on the CPU, from the numpy wrappers
    (`direct`; under the PYTORCH linker's ``torch.compile`` ``torch.mkldnn_convolution`` cannot
    be traced). The routes: oneDNN called directly where PyTorch would run natively (`_conv`),
    the input gradient as a forward correlation, the weight gradient as the trick.

    PyTorch's own dispatch (2.13 here) sends a CPU convolution to oneDNN only when the batch is
    above 1, the kernel's last two lengths are above 3, there are groups, or ``N * C * D * H``
    (the first four sizes) is above 20480; otherwise it runs its native ``slow_conv3d``, up to
    16 times slower for a 3-kernel (``bench/torch_cpu.py``: a 16 x 48 x 48 tile with 16
    channels, batch 1, 41 ms against 3.1 ms). Batch-1 inference on thin tiles or small crops,
    and the first layer of a one-channel volume (1.7 times), hit it."""
    return (
        direct
        and DIRECT_ONEDNN
        and t.device.type == "cpu"
        and t.dtype == torch.float32
        and torch.backends.mkldnn.is_available()
        and hasattr(torch, "mkldnn_convolution")
    )


def _pytorch_native(x, kernel, groups):
    """Whether PyTorch's CPU dispatch would run this problem natively rather than in oneDNN
    (see `_onednn`)."""
    big_kernel = len(kernel) >= 2 and kernel[-1] > 3 and kernel[-2] > 3
    return x.shape[0] == 1 and groups == 1 and not big_kernel and math.prod(x.shape[:4]) <= 20480


def _conv(x, W, stride, padding, dilation, groups, direct):
    """A correlation: oneDNN called directly where PyTorch would run it natively, else
    PyTorch's own call (which then picks oneDNN itself, and was up to 7 % faster there: a
    16-channel context module at 64³, 139 against 148 ms)."""
    if _onednn(x, direct) and _pytorch_native(x, W.shape[2:], groups):
        nd = x.ndim - 2
        padding = [padding] * nd if isinstance(padding, int) else list(padding)
        return torch.mkldnn_convolution(
            x.contiguous(), W.contiguous(), None, padding, list(stride), list(dilation), groups
        )
    return _CONV[x.ndim - 2](x, W, None, stride, padding, dilation, groups)


def t_forward(x, W, stride, dilation, pads, groups=1, direct=False):
    """Tensor version of `corr_forward` (`direct`: may call oneDNN directly, see `_onednn`)."""
    padding = _symmetric(pads)
    if padding is None:
        x, padding = F.pad(x, _pad_arg(pads)), 0
    return _conv(x, W, stride, padding, dilation, groups, direct)


def _swap_in_out(W, groups):
    """(O, C / g, *k) -> (C, O / g, *k), flipped: the weights of the input gradient as a forward
    correlation, group by group."""
    O, Cg, *k = W.shape
    W = W.reshape(groups, O // groups, Cg, *k).transpose(1, 2).reshape(Cg * groups, O // groups, *k)
    return _flip(W)


def t_grad_input(W, gy, spatial, stride, dilation, pads, groups=1, direct=False):
    """Tensor version of `corr_grad_input` (asymmetric padding: the padded input's gradient, cropped).

    With stride 1 in float32 on the CPU it is computed as a forward correlation of `gy` with the
    flipped, in/out-swapped weights (oneDNN, see `_onednn`), padded by ``d * (k - 1)`` minus the
    forward padding on each side (a negative amount crops)."""
    N, nd, C = gy.shape[0], gy.ndim - 2, W.shape[1] * groups
    if _onednn(gy, direct) and all(s == 1 for s in stride):
        reach = [d * (k - 1) for d, k in zip(dilation, W.shape[2:], strict=True)]
        back = [(r - b, r - a) for r, (b, a) in zip(reach, pads, strict=True)]
        padding = _symmetric(back)
        if padding is None or min(padding) < 0:
            gy, padding = F.pad(gy, _pad_arg(back)), 0
        return _conv(gy, _swap_in_out(W, groups), stride, padding, dilation, groups, direct)
    padding = _symmetric(pads)
    if padding is not None:
        return _GRAD_INPUT[nd]((N, C, *spatial), W, gy, stride, padding, dilation, groups)
    padded = [n + b + a for n, (b, a) in zip(spatial, pads, strict=True)]
    gxp = _GRAD_INPUT[nd]((N, C, *padded), W, gy, stride, 0, dilation, groups)
    inner = (slice(b, b + n) for n, (b, _) in zip(spatial, pads, strict=True))
    return gxp[(slice(None), slice(None), *inner)]


def t_grad_weights(x, gy, kernel, stride, dilation, pads, groups=1, direct=False):
    """Tensor version of `corr_grad_weights`.

    In float32 on the CPU, without groups, where PyTorch's ``conv3d_weight`` would run natively
    or the kernel is dilated, it is the backward-wrt-weights trick run forwards: a correlation
    of the padded input with the samples as channels and its channels as the batch, by the output
    gradient as the kernel, strided by the dilation and dilated by the stride (oneDNN; 0.09 to
    0.84 times ``conv3d_weight``'s time in those cases in ``bench/torch_cpu.py``; undilated on
    PyTorch's oneDNN path its own weight gradient was faster: 20 against 34 ms for 32 channels
    at 48³)."""
    O, C = gy.shape[1], x.shape[1]
    trick = any(d > 1 for d in dilation) or _pytorch_native(x, kernel, groups)
    if _onednn(x, direct) and groups == 1 and trick:
        xt = F.pad(x, _pad_arg(pads)).transpose(0, 1)  # (C, N, *padded)
        gt = gy.transpose(0, 1)  # (O, N, *m)
        gW = _conv(xt, gt, dilation, 0, stride, 1, direct)  # (C, O, >= *kernel)
        return gW[(slice(None), slice(None), *(slice(0, k) for k in kernel))].transpose(0, 1)
    padding = _symmetric(pads)
    if padding is None:
        x, padding = F.pad(x, _pad_arg(pads)), 0
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
        return t_forward(tx, tW, stride, dilation, pads, groups, direct=True).numpy()


def corr_grad_input(W, gy, spatial, stride, dilation, pads, groups=1):
    """numpy in, numpy out; same contract as `dilnet.backends.blas.corr_grad_input`."""
    tW, tgy = _common(W, gy)
    with torch.no_grad():
        gx = t_grad_input(tW, tgy, tuple(spatial), stride, dilation, pads, groups, direct=True)
        return gx.numpy()


def corr_grad_weights(x, gy, kernel, stride, dilation, pads, groups=1):
    """numpy in, numpy out; same contract as `dilnet.backends.blas.corr_grad_weights`."""
    tx, tgy = _common(x, gy)
    with torch.no_grad():
        gW = t_grad_weights(tx, tgy, tuple(kernel), stride, dilation, pads, groups, direct=True)
        return gW.numpy()


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


def register(forward, grad_inputs, grad_weights):
    """Register the three correlation Op classes with PyTensor's PyTorch linker."""
    from pytensor.link.pytorch.dispatch import pytorch_funcify

    pytorch_funcify.register(forward)(funcify_forward)
    pytorch_funcify.register(grad_inputs)(funcify_grad_inputs)
    pytorch_funcify.register(grad_weights)(funcify_grad_weights)
