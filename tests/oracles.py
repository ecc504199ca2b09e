"""Plain-loop numpy references, written for clarity, not speed. Independent of dilnet's kernels."""

import itertools

import numpy as np


def corr_reference(x, W, stride, dilation, pads, groups=1, flip_filters=False):
    """Dilated N-d cross-correlation by explicit loops over output positions and kernel taps.

    x (N, C, *n), W (O, C // groups, *k); pads: one (before, after) pair per axis.
    """
    nd = x.ndim - 2
    dtype = np.result_type(x.dtype, W.dtype)
    if flip_filters:
        W = W[(slice(None), slice(None)) + (slice(None, None, -1),) * nd]
    N, C = x.shape[:2]
    O, Cg = W.shape[:2]
    Og = O // groups
    kernel = W.shape[2:]
    padded = np.zeros((N, C, *(n + b + a for n, (b, a) in zip(x.shape[2:], pads))), dtype)
    padded[
        (slice(None), slice(None), *(slice(b, b + n) for n, (b, _) in zip(x.shape[2:], pads)))
    ] = x
    out_shape = tuple(
        (p - (k - 1) * d - 1) // s + 1
        for p, k, d, s in zip(padded.shape[2:], kernel, dilation, stride)
    )
    y = np.zeros((N, O, *out_shape), dtype)
    for o in range(O):
        g = o // Og
        for pos in itertools.product(*(range(m) for m in out_shape)):
            total = np.zeros(N, dtype)
            for tap in itertools.product(*(range(k) for k in kernel)):
                src = tuple(p * s + t * d for p, s, t, d in zip(pos, stride, tap, dilation))
                for c in range(Cg):
                    total += W[(o, c, *tap)] * padded[(slice(None), g * Cg + c, *src)]
            y[(slice(None), o, *pos)] = total
    return y


def corr_grads_reference(x, W, gy, stride, dilation, pads, groups=1, flip_filters=False):
    """(dx, dW) of sum(gy * corr(x, W)) by the adjoint loops: scatter each product back."""
    nd = x.ndim - 2
    dtype = np.result_type(x.dtype, W.dtype, gy.dtype)
    Wf = W[(slice(None), slice(None)) + (slice(None, None, -1),) * nd] if flip_filters else W
    N, C = x.shape[:2]
    O, Cg = W.shape[:2]
    Og = O // groups
    kernel = W.shape[2:]
    lo = [b for b, _ in pads]
    padded_shape = tuple(n + b + a for n, (b, a) in zip(x.shape[2:], pads))
    xp = np.zeros((N, C, *padded_shape), dtype)
    inner = (slice(None), slice(None), *(slice(b, b + n) for n, b in zip(x.shape[2:], lo)))
    xp[inner] = x
    gxp = np.zeros_like(xp)
    gW = np.zeros(W.shape, dtype)
    for o in range(O):
        g = o // Og
        for pos in itertools.product(*(range(m) for m in gy.shape[2:])):
            gv = gy[(slice(None), o, *pos)]
            for tap in itertools.product(*(range(k) for k in kernel)):
                src = tuple(p * s + t * d for p, s, t, d in zip(pos, stride, tap, dilation))
                for c in range(Cg):
                    gxp[(slice(None), g * Cg + c, *src)] += Wf[(o, c, *tap)] * gv
                    gW[(o, c, *tap)] += np.dot(gv, xp[(slice(None), g * Cg + c, *src)])
    if flip_filters:
        gW = gW[(slice(None), slice(None)) + (slice(None, None, -1),) * nd]
    return gxp[inner], gW
