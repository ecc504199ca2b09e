"""Argument normalisers shared by the Ops and the layers, and Lasagne's `floatX`.

Of ``lasagne.utils`` only `floatX` is here under its Lasagne name and semantics. `as_tuple` is
dilnet's own (it names the argument in its errors) and does not take Lasagne's
``as_tuple(x, N, t=None)`` arguments.
"""

import os
from collections.abc import Iterable
from numbers import Integral

import numpy as np
import pytensor

from .errors import ConfigError, invalid

__all__ = ["as_tuple", "floatX", "format_bytes", "is_int", "physical_memory", "unroll_scan"]


def floatX(arr):
    """`arr` as a numpy array of dtype ``pytensor.config.floatX`` (Lasagne's ``utils.floatX``).

    ``np.asarray(arr, dtype=pytensor.config.floatX)``: scalars and nested lists become arrays,
    an array that already has that dtype is returned as is (no copy), others are cast.

    Parameters
    ----------
    arr : array_like
        Data to cast.

    Returns
    -------
    numpy.ndarray
        `arr` with dtype ``pytensor.config.floatX``, read at call time.
    """
    return np.asarray(arr, dtype=pytensor.config.floatX)


def is_int(value) -> bool:
    """True for Python and numpy integers, False for bools and floats."""
    return isinstance(value, Integral) and not isinstance(value, bool)


def as_tuple(value, n: int, name: str, where: str, *, minimum: int | None = None) -> tuple:
    """Return `value` as an `n`-tuple of ints: an int is repeated, an iterable must have length `n`.

    Raises `ConfigError` naming `name` when the length, the type or the range (``>= minimum``) is
    wrong.
    """
    if is_int(value):
        items = (int(value),) * n
    elif isinstance(value, Iterable) and not isinstance(value, str):
        items = tuple(value)
        if len(items) != n or not all(is_int(i) for i in items):
            raise ConfigError(
                invalid(where, name, f"an int or {n} ints (one per spatial axis)", value)
            )
        items = tuple(int(i) for i in items)
    else:
        raise ConfigError(invalid(where, name, f"an int or {n} ints", value))
    if minimum is not None and any(i < minimum for i in items):
        what = "positive integers" if minimum == 1 else f"integers >= {minimum}"
        raise ConfigError(invalid(where, name, what, value))
    return items


def format_bytes(n) -> str:
    """A byte count for people: ``'512 B'``, ``'2.19 KiB'``, ``'1.50 GiB'`` (binary units, up to
    TiB, two decimals above bytes)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def physical_memory() -> int | None:
    """The machine's RAM in bytes, or None where the platform does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


# --- unroll_scan (Lasagne's ``lasagne.utils.unroll_scan``) -------------------------------------


def unroll_scan(fn, sequences, outputs_info, non_sequences, n_steps, go_backwards=False):
    """A Python loop that builds what ``pytensor.scan`` would compute, one copy of `fn` per step.

    Lasagne's ``utils.unroll_scan``, with ``pytensor.scan``'s argument names and order of the
    arguments to `fn`: the step-`t` slice of each sequence, the previous value of each output,
    then the non-sequences. The graph has no loop (PyTensor may fuse across steps; the gradient
    always covers every step: there is no ``truncate_gradient``), at the price of a graph that
    grows with `n_steps`, which must therefore be known when the graph is built.

    Parameters
    ----------
    fn : callable
        ``fn(*slices, *previous_outputs, *non_sequences)`` returning one expression or a list /
        tuple of them (one per entry of `outputs_info`).
    sequences : expression or list of expressions
        Iterated over their first axis.
    outputs_info : list
        Initial values of the outputs (expressions, arrays or numbers).
    non_sequences : list
        Passed unchanged to every call of `fn`.
    n_steps : int
        Number of steps (every sequence must be at least this long).
    go_backwards : bool
        Steps ``n_steps - 1, ..., 0`` instead of ``0, ..., n_steps - 1``; as in ``scan``, the
        outputs are stacked in the order the steps ran.

    Returns
    -------
    list of expressions
        One per output: its values after each step, stacked on a new first axis, so
        ``result[k][t]`` is output ``k`` after step ``t`` (shape ``(n_steps,) + step shape``);
        for an output that is not a tensor (a random generator), its last value.

    Raises
    ------
    ConfigError
        `n_steps` is not a positive int (e.g. ``None``: an unknown sequence length).
    """
    if not is_int(n_steps) or n_steps < 1:
        raise ConfigError(
            invalid("unroll_scan", "n_steps", "a positive int (a known number of steps)", n_steps)
        )
    if not isinstance(sequences, list | tuple):
        sequences = [sequences]
    previous = list(outputs_info)
    non_sequences = list(non_sequences or ())
    steps = range(n_steps - 1, -1, -1) if go_backwards else range(n_steps)
    history = []
    for t in steps:
        result = fn(*[s[t] for s in sequences], *previous, *non_sequences)
        previous = list(result) if isinstance(result, list | tuple) else [result]
        history.append(previous)
    # a non-tensor output (a random generator threaded through the steps) is not stacked: its
    # last value is returned, as `scan` does
    return [
        pytensor.tensor.stack([step[k] for step in history])
        if not isinstance(previous[k], pytensor.graph.basic.Variable)
        or isinstance(previous[k].type, pytensor.tensor.TensorType)
        else previous[k]
        for k in range(len(previous))
    ]
