"""Plain-loop numpy references, written for clarity, not speed. Independent of dilnet's kernels;
and `Diverge`, a callback that makes a run diverge on purpose."""

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


def transposed_conv_reference(x, W, stride, dilation, pads, out_spatial):
    """Transposed dilated convolution by scattering: every input element adds ``x * W[tap]``
    at output position ``i * stride + tap * dilation - pad_before`` (dropped outside).

    x (N, C, *n), W (C, O, *k) (the weights of the convolution being transposed), pads
    ``[(before, after)]``, out_spatial the output lengths.
    """
    out = np.zeros((x.shape[0], W.shape[1], *out_spatial))
    for i in np.ndindex(*x.shape[2:]):
        for t in np.ndindex(*W.shape[2:]):
            pos = tuple(
                ii * s + tt * d - p[0]
                for ii, tt, s, d, p in zip(i, t, stride, dilation, pads, strict=True)
            )
            if all(0 <= q < m for q, m in zip(pos, out_spatial, strict=True)):
                out[(slice(None), slice(None), *pos)] += (
                    x[(slice(None), slice(None), *i)] @ W[(slice(None), slice(None), *t)]
                )
    return out


def pool_reference(x, pool, stride, pad, mode, out_spatial):
    """Pooling by explicit windows; padding is -inf for 'max', zero for the averages;
    'average_exc_pad' divides by the number of real elements in each window, 'average_inc_pad'
    by the number inside the padded input (Theano clips a last partial window to it)."""
    out = np.zeros((*x.shape[:2], *out_spatial))
    for o in np.ndindex(*out_spatial):
        window = []
        for oo, k, s, p in zip(o, pool, stride, pad, strict=True):
            start = oo * s - p
            window.append(range(start, start + k))
        values, real, in_padded = [], 0, 0
        for idx in np.ndindex(*pool):
            pos = tuple(w[i] for w, i in zip(window, idx, strict=True))
            in_padded += all(-p <= q < n + p for q, n, p in zip(pos, x.shape[2:], pad, strict=True))
            if all(0 <= q < n for q, n in zip(pos, x.shape[2:], strict=True)):
                values.append(x[(slice(None), slice(None), *pos)])
                real += 1
            elif mode == "max":
                values.append(np.full(x.shape[:2], -np.inf))
            else:
                values.append(np.zeros(x.shape[:2]))
        stack = np.stack(values)
        key = (slice(None), slice(None), *o)
        if mode == "max":
            out[key] = stack.max(0)
        elif mode == "average_inc_pad":
            out[key] = stack.sum(0) / in_padded
        else:
            out[key] = stack.sum(0) / real
    return out


def Diverge():
    """A callback that makes a weight NaN after the first step, as a diverging run does (NaN
    inputs are refused before they reach the network, so they cannot be the cause)."""
    from dilnet.model.callbacks import Callback

    class _Diverge(Callback):
        def on_batch_end(self, step, logs=None):
            if step == 0:
                p = self.model.params[0]
                value = np.array(p.get_value())
                value.flat[0] = np.nan
                p.set_value(value)

    return _Diverge()


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def recurrence_reference(step, x, h0, mask=None, backwards=False):
    """Run ``h = step(x_t, h)`` over axis 1 of `x` (batch, time, ...), one sample and one step at
    a time. Where ``mask[n, t]`` is 0 the state is carried over (``m * new + (1 - m) * old``).
    Returns (states per input step (batch, time, ...), the state after the last step run).

    `h0` is a tuple of per-sample states (e.g. ``(h,)`` or ``(c, h)``); the output is the last
    of them."""
    batch, time = x.shape[:2]
    order = range(time - 1, -1, -1) if backwards else range(time)
    outs = np.zeros((batch, time, *h0[-1].shape[1:]))
    finals = np.zeros((batch, *h0[-1].shape[1:]))
    for n in range(batch):
        state = tuple(s[n] for s in h0)
        for t in order:
            new = step(x[n, t], state)
            m = 1.0 if mask is None else mask[n, t]
            state = tuple(m * a + (1 - m) * b for a, b in zip(new, state, strict=True))
            outs[n, t] = state[-1]
        finals[n] = state[-1]
    return outs, finals


def rnn_step(W_in, W_hid, b, nonlinearity=np.tanh):
    """A vanilla RNN step: ``h = f(x W_in + h W_hid + b)``."""

    def step(x, state):
        (h,) = state
        pre = b.copy()
        for j in range(len(b)):
            pre[j] += sum(x[i] * W_in[i, j] for i in range(len(x)))
            pre[j] += sum(h[i] * W_hid[i, j] for i in range(len(h)))
        return (nonlinearity(pre),)

    return step


def lstm_step(p, peepholes=True):
    """An LSTM step (Graves 2013, forget gate, optional peepholes) from the dict `p` of
    per-gate arrays: ``W_in_to_<g>``, ``W_hid_to_<g>``, ``b_<g>``, ``W_cell_to_<g>``."""

    def gate(g, x, h):
        return x @ p[f"W_in_to_{g}"] + h @ p[f"W_hid_to_{g}"] + p[f"b_{g}"]

    def step(x, state):
        c, h = state
        i, f = gate("ingate", x, h), gate("forgetgate", x, h)
        if peepholes:
            i, f = i + c * p["W_cell_to_ingate"], f + c * p["W_cell_to_forgetgate"]
        c_new = _sigmoid(f) * c + _sigmoid(i) * np.tanh(gate("cell", x, h))
        o = gate("outgate", x, h)
        if peepholes:
            o = o + c_new * p["W_cell_to_outgate"]
        return c_new, _sigmoid(o) * np.tanh(c_new)

    return step


def gru_step(p):
    """A GRU step (Cho et al. 2014: the reset gate scales ``h W_hc``) from the dict `p`."""

    def step(x, state):
        (h,) = state
        r = _sigmoid(x @ p["W_in_to_resetgate"] + h @ p["W_hid_to_resetgate"] + p["b_resetgate"])
        u = _sigmoid(x @ p["W_in_to_updategate"] + h @ p["W_hid_to_updategate"] + p["b_updategate"])
        c = np.tanh(
            x @ p["W_in_to_hidden_update"]
            + r * (h @ p["W_hid_to_hidden_update"])
            + p["b_hidden_update"]
        )
        return ((1 - u) * h + u * c,)

    return step
