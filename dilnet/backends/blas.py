"""dilnet's own CPU kernels: dilated N-d cross-correlation on numpy + BLAS, in bounded memory.

No im2col of the whole volume. Every problem is seen as 3D (1D and 2D get leading axes of
length 1) on the *padded grid* ``P = n + before + after``, flattened to rows of length ``P[2]``.
In that flat view a kernel tap ``(a, b, c)`` is a constant offset, so for a chunk of output rows
the contribution of one tap is a single GEMM, ``W[:, :, a, b, c] @ window[:, off : off + len]``,
over a contiguous slice of a small *window*: the padded input rows that chunk needs for one
kernel plane ``a``. Columns past the output's end are computed and dropped (about
``extent - 1`` per row). A window holds ``channels x (chunk rows + extra)`` rows of the last
axis, ``extra`` being the in-plane dilated extent in rows, so the workspace does not grow with the
number of planes: about 4 MB for typical volumes, more when ``channels x padded row length x
in-plane extent`` is itself large (see `workspace_bytes`).

With few input channels (at most `STACK_CHANNELS`) a GEMM per tap sums over too little to be
efficient, so the chunk's taps are stacked instead: one GEMM of depth ``channels x taps`` over
the chunk's im2col (the chunk's, not the volume's; its rows count in the chunk budget).

Strides above 1 compute the dense result over the needed planes and keep every s-th element;
the input gradient zero-inserts the output gradient. Both are correct; neither is tuned.

Padding may be negative here (the input is then cropped); the public Op only passes
non-negative padding, the input gradient needs the negative case internally.
"""

import numpy as np

from ..shapes import conv_output_shape, dilated_extent

__all__ = ["corr_forward", "corr_grad_input", "corr_grad_weights", "workspace_bytes"]

#: Target size of one chunk's buffers (window + accumulator), in bytes.
CHUNK_BYTES = 4 << 20
#: Stack every kernel tap into one GEMM (an im2col of the chunk) for at most this many input
#: channels (per group): a GEMM per tap that only sums over so few channels is too thin (the
#: one-channel first layer of a zoo network on the MNI152 template: 558 ms per tap, 18 ms
#: stacked; even at 16 channels both took the same time, so more are left per tap).
STACK_CHANNELS = 8


def _as3d(nd, *per_axis, fill):
    """Prefix per-axis tuples with ``3 - nd`` neutral entries."""
    return [(fill,) * (3 - nd) + tuple(t) for t in per_axis]


def _segments(g0, g1, rows_per_plane):
    """Split global rows ``[g0, g1)`` into ``(plane, r0, r1, offset_in_chunk)`` pieces."""
    g = g0
    while g < g1:
        plane, r0 = divmod(g, rows_per_plane)
        r1 = min(rows_per_plane, r0 + g1 - g)
        yield plane, r0, r1, g - g0
        g += r1 - r0


class _Grid:
    """The padded grid of one 3D problem and the chunking of its output rows."""

    def __init__(self, in_shape, kernel, stride, dilation, pads, channels, out_channels, itemsize):
        self.n = in_shape
        self.s = stride
        self.lo = tuple(b for b, _ in pads)
        self.P = tuple(n + b + a for n, (b, a) in zip(in_shape, pads, strict=True))
        self.m = conv_output_shape(in_shape, kernel, stride, pads, dilation)
        P1, P2 = self.P[1], self.P[2]
        # window rows needed past a chunk's last row for the in-plane taps
        self.extra = -(-((kernel[1] - 1) * dilation[1] * P2 + (kernel[2] - 1) * dilation[2]) // P2)
        taps = kernel[0] * kernel[1] * kernel[2]
        # per output row: window + accumulator, and with stacked taps the stack as well
        per_row = itemsize * P2 * (channels + out_channels)
        stacked_rows = CHUNK_BYTES // (per_row + itemsize * P2 * channels * taps) - self.extra
        #: the chunk's taps stacked into one GEMM of depth ``channels x taps`` (STACK_CHANNELS),
        #: unless the stack would shrink the chunk below twice the rows its window re-reads
        #: (large dilated kernels: a 5^3 kernel at dilation 4 ran 11x slower stacked)
        self.stack = (
            channels <= STACK_CHANNELS and taps > 1 and stacked_rows >= max(1, 2 * self.extra)
        )
        # memory first: with very long rows and large in-plane extents a chunk may be a single
        # row and its window mostly rows re-read by the next chunk (slower, still bounded)
        self.rows_per_chunk = (
            stacked_rows if self.stack else max(1, CHUNK_BYTES // per_row - self.extra)
        )
        self.plane_offsets = [a * dilation[0] * P1 for a in range(kernel[0])]
        self.inplane = [
            (b, c, b * dilation[1] * P2 + c * dilation[2])
            for b in range(kernel[1])
            for c in range(kernel[2])
        ]

    def chunks(self):
        """Row ranges ``[g0, g1)`` of the padded grid that hold (dense) output rows."""
        P1, s0, m0 = self.P[1], self.s[0], self.m[0]
        last_row = (self.m[1] - 1) * self.s[1] + 1  # rows past this hold no output
        if s0 == 1:
            ranges = [(0, (m0 - 1) * P1 + last_row)]
        else:
            ranges = [(o * s0 * P1, o * s0 * P1 + last_row) for o in range(m0)]
        step = self.rows_per_chunk
        for r0, r1 in ranges:
            for g0 in range(r0, r1, step):
                yield g0, min(r1, g0 + step)

    def fill_window(self, x, g0, g1, buf):
        """Write padded-grid rows ``[g0, g1)`` of `x` (C, n0, n1, n2) into `buf` (C, rows, P2)."""
        buf.fill(0)
        (n0, n1, n2), (b0, b1, b2), P2 = self.n, self.lo, self.P[2]
        c_lo, c_hi = max(b2, 0), min(b2 + n2, P2)
        if c_lo >= c_hi:
            return
        for plane, r0, r1, k in _segments(g0, g1, self.P[1]):
            xp = plane - b0
            ra, rb = max(r0, b1), min(r1, b1 + n1)
            if 0 <= xp < n0 and ra < rb:
                buf[:, k + ra - r0 : k + rb - r0, c_lo:c_hi] = x[
                    :, xp, ra - b1 : rb - b1, c_lo - b2 : c_hi - b2
                ]

    def _output_pieces(self, g0, g1):
        """Yield ``(out_plane, out_rows, chunk_rows)`` slices linking chunk rows to output rows."""
        (s0, s1, _), (m0, m1, _) = self.s, self.m
        for plane, r0, r1, k in _segments(g0, g1, self.P[1]):
            if plane % s0 or plane // s0 >= m0:
                continue
            ra, rb = -(-r0 // s1) * s1, min(r1, (m1 - 1) * s1 + 1)
            if ra < rb:
                count = (rb - ra + s1 - 1) // s1
                yield (
                    plane // s0,
                    slice(ra // s1, ra // s1 + count),
                    slice(k + ra - r0, k + rb - r0, s1),
                )

    def columns(self):
        return slice(0, (self.m[2] - 1) * self.s[2] + 1, self.s[2])


def _plane_window(x, grid, g0, g1, plane_off, win):
    """Fill the window for chunk rows ``[g0, g1)`` and kernel plane offset `plane_off`; return
    it flat, ``(C, (rows + extra) * P2)``."""
    C, P2, length = x.shape[0], grid.P[2], g1 - g0 + grid.extra
    grid.fill_window(x, g0 + plane_off, g1 + plane_off + grid.extra,
                     win[:, : length * P2].reshape(C, length, P2))  # fmt: skip
    return win[:, : length * P2]


def _stacked(x, grid, g0, g1, win, stack):
    """The chunk's im2col, ``(C * taps, rows * P2)``: row ``tap * C + c`` holds channel ``c``
    shifted by kernel tap ``tap`` (taps in W's order)."""
    C, n = x.shape[0], (g1 - g0) * grid.P[2]
    for a, plane_off in enumerate(grid.plane_offsets):
        wf = _plane_window(x, grid, g0, g1, plane_off, win)
        for t, (_, _, off) in enumerate(grid.inplane):
            row = (a * len(grid.inplane) + t) * C
            stack[row : row + C, :n] = wf[:, off : off + n]
    return stack[:, :n]


def _forward3d(x, W, grid, y, buffers):
    """y (O, m0, m1, m2) = correlation of x (C, n0, n1, n2) with W (O, C, k0, k1, k2)."""
    win, acc, tmp, stack = buffers
    C, O, P2 = x.shape[0], W.shape[0], grid.P[2]
    if grid.stack:  # (O, taps * C), in the stack's row order
        Wk = np.ascontiguousarray(W.reshape(O, C, -1).transpose(0, 2, 1).reshape(O, -1))
    else:
        taps = [
            [np.ascontiguousarray(W[:, :, a, b, c]) for b, c, _ in grid.inplane]
            for a in range(W.shape[2])
        ]
    cols = grid.columns()
    for g0, g1 in grid.chunks():
        rows = g1 - g0
        n = rows * P2
        a_out = acc[:, :n]
        if grid.stack:
            np.matmul(Wk, _stacked(x, grid, g0, g1, win, stack), out=a_out)
        else:
            first = True
            for a, plane_off in enumerate(grid.plane_offsets):
                wf = _plane_window(x, grid, g0, g1, plane_off, win)
                for (_, _, off), Wt in zip(grid.inplane, taps[a], strict=True):
                    if first:
                        np.matmul(Wt, wf[:, off : off + n], out=a_out)
                        first = False
                    else:
                        t = tmp[:, :n]
                        np.matmul(Wt, wf[:, off : off + n], out=t)
                        a_out += t
        a3 = a_out.reshape(O, rows, P2)
        for plane, out_rows, chunk_rows in grid._output_pieces(g0, g1):
            y[:, plane, out_rows] = a3[:, chunk_rows, cols]


def _grad_weights3d(x, gy, grid, gW, buffers):
    """gW (O, C, k0, k1, k2) += correlation of x (C, ...) with gy (O, m0, m1, m2)."""
    win, gyc, tmp, stack = buffers
    C, O, P2 = x.shape[0], gy.shape[0], grid.P[2]
    cols = grid.columns()
    for g0, g1 in grid.chunks():
        rows = g1 - g0
        n = rows * P2
        g3 = gyc[:, :n].reshape(O, rows, P2)
        g3.fill(0)
        for plane, out_rows, chunk_rows in grid._output_pieces(g0, g1):
            g3[:, chunk_rows, cols] = gy[:, plane, out_rows]
        gflat = gyc[:, :n]
        if grid.stack:
            # one GEMM for all taps: (O, n) @ (n, taps * C) -> (O, taps, C)
            per_tap = gflat @ _stacked(x, grid, g0, g1, win, stack).T
            gW += per_tap.reshape(O, -1, C).transpose(0, 2, 1).reshape(gW.shape)
            continue
        for a, plane_off in enumerate(grid.plane_offsets):
            wf = _plane_window(x, grid, g0, g1, plane_off, win)
            for b, c, off in grid.inplane:
                np.matmul(gflat, wf[:, off : off + n].T, out=tmp)
                gW[:, :, a, b, c] += tmp


def _buffers(grid, C, O, dtype, for_weights=False):
    """``(window, accumulator, scratch, stack)``: window (C, rows), accumulator (O, rows), and
    either the per-tap GEMM scratch -- (O, rows), or (O, C) for the weight gradient, whose GEMMs
    produce one kernel tap's weights -- or, with stacked taps, the stack (C * taps, rows); the
    unused one is None."""
    P2 = grid.P[2]
    rows = min(grid.rows_per_chunk, max(1, grid.m[0] * grid.P[1]))
    win = np.empty((C, (rows + grid.extra) * P2), dtype)
    acc = np.empty((O, rows * P2), dtype)
    if grid.stack:
        taps = len(grid.plane_offsets) * len(grid.inplane)
        return win, acc, None, np.empty((C * taps, rows * P2), dtype)
    tmp = np.empty((O, C), dtype) if for_weights else np.empty((O, rows * P2), dtype)
    return win, acc, tmp, None


def workspace_bytes(in_channels, out_channels, spatial, kernel, dilation, pads, itemsize=4):
    """Bytes of scratch the forward kernel allocates for one problem (per group)."""
    nd = len(spatial)
    n, k, d = _as3d(nd, spatial, kernel, dilation, fill=1)
    (p,) = _as3d(nd, pads, fill=(0, 0))
    grid = _Grid(n, k, (1, 1, 1), d, p, in_channels, out_channels, itemsize)
    buffers = _buffers(grid, in_channels, out_channels, np.dtype(f"f{itemsize}"))
    return sum(b.nbytes for b in buffers if b is not None)


def _prepare(x, nd, stride, dilation, pads, kernel):
    spatial, k, s, d = _as3d(nd, x.shape[2:], kernel, stride, dilation, fill=1)
    (p,) = _as3d(nd, pads, fill=(0, 0))
    return spatial, k, s, d, p


def corr_forward(x, W, stride, dilation, pads, groups=1):
    """Cross-correlate x (N, C, *spatial) with W (O, C // groups, *kernel).

    `pads` is one resolved ``(before, after)`` pair per spatial axis. Returns a C-contiguous
    array (N, O, *out) of dtype ``result_type(x, W)``.
    """
    dtype = np.result_type(x.dtype, W.dtype)
    x, W = x.astype(dtype, copy=False), W.astype(dtype, copy=False)
    nd = x.ndim - 2
    N, O, Cg = x.shape[0], W.shape[0], W.shape[1]
    Og = O // groups
    spatial, k, s, d, p = _prepare(x, nd, stride, dilation, pads, W.shape[2:])
    grid = _Grid(spatial, k, s, d, p, Cg, Og, dtype.itemsize)
    y = np.empty((N, O, *grid.m), dtype)
    x3 = x.reshape(N, x.shape[1], *spatial)
    W3 = W.reshape(O, Cg, *k)
    buffers = _buffers(grid, Cg, Og, dtype)
    for i in range(N):
        for g in range(groups):
            _forward3d(
                x3[i, g * Cg : (g + 1) * Cg],
                W3[g * Og : (g + 1) * Og],
                grid,
                y[i, g * Og : (g + 1) * Og],
                buffers,
            )
    return y.reshape((N, O, *grid.m[3 - nd :]))


def corr_grad_weights(x, gy, kernel, stride, dilation, pads, groups=1):
    """Gradient of `corr_forward` with respect to W, shape (O, C // groups, *kernel)."""
    dtype = np.result_type(x.dtype, gy.dtype)
    x, gy = x.astype(dtype, copy=False), gy.astype(dtype, copy=False)
    nd = x.ndim - 2
    N, C, O = x.shape[0], x.shape[1], gy.shape[1]
    Cg, Og = C // groups, O // groups
    spatial, k, s, d, p = _prepare(x, nd, stride, dilation, pads, kernel)
    grid = _Grid(spatial, k, s, d, p, Cg, Og, dtype.itemsize)
    gW = np.zeros((O, Cg, *k), dtype)
    x3 = x.reshape(N, C, *spatial)
    gy3 = gy.reshape(N, O, *grid.m)
    buffers = _buffers(grid, Cg, Og, dtype, for_weights=True)
    for i in range(N):
        for g in range(groups):
            _grad_weights3d(
                x3[i, g * Cg : (g + 1) * Cg],
                gy3[i, g * Og : (g + 1) * Og],
                grid,
                gW[g * Og : (g + 1) * Og],
                buffers,
            )
    return gW.reshape((O, Cg, *tuple(kernel)))


def corr_grad_input(W, gy, spatial, stride, dilation, pads, groups=1):
    """Gradient of `corr_forward` with respect to x, shape (N, C, *spatial).

    A forward correlation of the (zero-inserted, for stride > 1) output gradient with the
    spatially flipped, in/out-swapped weights, padded so that its output is exactly x's extent.
    """
    nd = gy.ndim - 2
    N, O, Cg = gy.shape[0], W.shape[0], W.shape[1]
    Og = O // groups
    flip = (slice(None), slice(None)) + (slice(None, None, -1),) * nd
    # (O, Cg, *k) -> (groups * Cg, Og, *k): per group, swap in/out and flip
    Wt = W[flip].reshape(groups, Og, Cg, *W.shape[2:]).swapaxes(1, 2)
    Wt = Wt.reshape(groups * Cg, Og, *W.shape[2:])
    if any(st > 1 for st in stride):
        m = gy.shape[2:]
        z = np.zeros(
            (N, O, *((mi - 1) * st + 1 for mi, st in zip(m, stride, strict=True))), gy.dtype
        )
        z[(slice(None), slice(None), *(slice(None, None, st) for st in stride))] = gy
    else:
        z = gy
    new_pads = []
    for n, nz, k, d, (b, _) in zip(spatial, z.shape[2:], W.shape[2:], dilation, pads, strict=True):
        ext = dilated_extent(k, d)
        before = ext - 1 - b
        new_pads.append((before, n - 1 + ext - nz - before))
    return corr_forward(z, Wt, (1,) * nd, dilation, tuple(new_pads), groups)
