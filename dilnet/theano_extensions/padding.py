"""Lasagne's ``lasagne.theano_extensions.padding``: constant padding of a tensor's trailing axes."""

import pytensor.tensor as pt

from ..errors import ConfigError, ShapeError, invalid
from ..utils import is_int

__all__ = ["normalize_width", "pad"]


def normalize_width(width, n, where="pad"):
    """`pad`'s `width` for `n` padded axes as ``n`` ``(before, after)`` pairs of ints.

    Raises `ConfigError` naming `where` unless `width` is a non-negative int or `n` entries,
    each a non-negative int or a pair of them.
    """
    if is_int(width):
        entries = (width,) * n
    elif isinstance(width, tuple | list) and len(width) == n:
        entries = tuple(width)
    else:
        raise ConfigError(
            invalid(where, "width", f"an int, or {n} ints or (before, after) pairs", width)
        )
    pairs = []
    for entry in entries:
        pair = (entry, entry) if is_int(entry) else entry
        if (
            not isinstance(pair, tuple | list)
            or len(pair) != 2
            or not all(is_int(p) and p >= 0 for p in pair)
        ):
            raise ConfigError(
                invalid(where, "width", "non-negative ints or (before, after) pairs", width)
            )
        pairs.append((int(pair[0]), int(pair[1])))
    return tuple(pairs)


def pad(x, width, val=0, batch_ndim=1):
    """`x` padded with the constant `val` on every axis after the first `batch_ndim`.

    Parameters
    ----------
    x : tensor (expression or array)
    width : int, iterable of int, or iterable of (before, after) pairs
        An int pads every padded axis by that much on both sides; otherwise one entry per axis
        after the first `batch_ndim`: an int (both sides) or a ``(before, after)`` pair.
    val : number or scalar expression
        The padding value.
    batch_ndim : int
        Leading axes left alone (Lasagne's default 1).

    Returns
    -------
    TensorVariable
        Same dtype as `x`.

    Notes
    -----
    Axis ``a >= batch_ndim`` grows from ``n`` to ``before + n + after``.
    """
    where = "pad"
    x = pt.as_tensor_variable(x)
    if not is_int(batch_ndim) or not 0 <= batch_ndim < x.ndim:
        raise ShapeError(
            invalid(where, "batch_ndim", f"an int in [0, {x.ndim}) for a {x.ndim}-d input",
                    batch_ndim)
        )  # fmt: skip
    pairs = normalize_width(width, x.ndim - batch_ndim, where)
    shape = [x.shape[i] for i in range(x.ndim)]
    index = [slice(None)] * x.ndim
    for axis, (before, after) in enumerate(pairs, start=batch_ndim):
        shape[axis] = shape[axis] + before + after
        index[axis] = slice(before, before + x.shape[axis])
    canvas = pt.full(shape, val, dtype=x.dtype)
    return pt.set_subtensor(canvas[tuple(index)], x)
