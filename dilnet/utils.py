"""Lasagne's ``lasagne.utils`` under its names, and argument normalisers shared by dilnet.

Lasagne's helpers keep their signatures and semantics: `floatX`, `shared_empty`,
`as_theano_expression`, `collect_shared_vars`, `one_hot`, `unique`, `int_types`, `as_tuple`,
`inspect_kwargs`, `compute_norms`, `create_param` and `unroll_scan`. Their errors are dilnet's
(`dilnet.errors`) and are also the builtin Lasagne raised (`TypeError`, `ValueError`,
`RuntimeError`). `as_tuple` takes dilnet's keywords besides Lasagne's ``(x, N, t=None)``: the
argument's `name` and `where` for the message and a `minimum`.
"""

import inspect
import numbers
import os

import numpy as np
import pytensor
import pytensor.tensor as pt
from pytensor.compile.sharedvalue import SharedVariable
from pytensor.graph.basic import Variable

from .errors import ConfigError, ConfigTypeError, ShapeError, UnsupportedInputError, invalid

__all__ = [
    "as_theano_expression",
    "as_tuple",
    "collect_shared_vars",
    "compute_norms",
    "create_param",
    "floatX",
    "format_bytes",
    "inspect_kwargs",
    "int_types",
    "is_int",
    "one_hot",
    "physical_memory",
    "shared_empty",
    "unique",
    "unroll_scan",
]

#: The types `as_tuple` and the layers accept as integers (Lasagne's ``utils.int_types``).
int_types = (numbers.Integral, np.integer)


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


def shared_empty(dim=2, dtype=None):
    """A shared variable of `dim` axes holding zeros of shape ``(1,) * dim``.

    Parameters
    ----------
    dim : int
        Number of axes (default 2).
    dtype : numpy dtype, optional
        Default ``pytensor.config.floatX``.

    Returns
    -------
    SharedVariable
        Its value can be replaced by one of any shape with the same number of axes.
    """
    if not is_int(dim) or dim < 0:
        raise ConfigError(invalid("shared_empty", "dim", "a non-negative int", dim))
    dtype = pytensor.config.floatX if dtype is None else dtype
    return pytensor.shared(np.zeros((1,) * int(dim), dtype=dtype))


def as_theano_expression(input):
    """`input` as a PyTensor expression: a variable is returned as is, anything else (a number,
    a numpy array) is wrapped as a constant.

    Raises
    ------
    ConfigTypeError
        `input` cannot be a constant (a dict, a string of no numeric dtype, ...).
    """
    if isinstance(input, Variable):
        return input
    try:
        return pt.constant(input)
    except Exception as err:  # pytensor raises TypeError, ValueError or NotImplementedError
        raise ConfigTypeError(
            invalid(
                "as_theano_expression",
                "input",
                f"a PyTensor expression, a number or an array (wrapping it failed: {err})",
                input,
            )
        ) from err


def collect_shared_vars(expressions):
    """The shared variables that `expressions` (one expression or a list) are built from.

    Each appears once, in the order of a left-to-right depth-first walk of the graphs
    (``(x + y) + z`` and ``x + (y + z)`` both give ``[x, y, z]``); constants and other inputs
    are left out.
    """
    if isinstance(expressions, Variable):
        expressions = [expressions]
    found, seen = [], set()
    stack = list(reversed(list(expressions)))
    while stack:
        var = stack.pop()
        if id(var) in seen:
            continue
        seen.add(id(var))
        if isinstance(var, SharedVariable):
            found.append(var)
        elif var.owner is not None:
            stack.extend(reversed(var.owner.inputs))
    return found


def one_hot(x, m=None):
    """One-hot rows for an integer vector: row ``i`` is 1 at column ``x[i]``, 0 elsewhere.

    Parameters
    ----------
    x : integer vector (expression or array)
        Values in ``[0, m)``.
    m : int or scalar expression, optional
        Number of columns; default ``max(x) + 1``.

    Returns
    -------
    TensorVariable
        ``(len(x), m)`` of dtype ``floatX``.
    """
    x = as_theano_expression(x)
    if m is None:
        m = pt.cast(pt.max(x) + 1, "int32")
    return pt.eye(m, dtype=pytensor.config.floatX)[pt.cast(x, "int32")]


def unique(items):
    """The elements of `items` without repeats (compared with ``==``), in first-seen order."""
    out = []
    for item in items:
        if item not in out:
            out.append(item)
    return out


def is_int(value) -> bool:
    """True for Python and numpy integers, False for bools and floats."""
    return isinstance(value, int_types) and not isinstance(value, bool | np.bool_)


def _type_name(t) -> str:
    if t is int_types:
        return "int"
    if isinstance(t, tuple):
        return " or ".join(_type_name(u) for u in t)
    return t.__name__


def as_tuple(x, N, t=None, *, name="x", where="as_tuple", minimum=None) -> tuple:
    """`x` as an `N`-tuple (Lasagne's ``utils.as_tuple``): ``tuple(x)`` if `x` is iterable,
    else ``(x,) * N``.

    Parameters
    ----------
    x : value or iterable
    N : int
        Length of the tuple.
    t : type or tuple of types, optional
        Required type of every element. With `int_types` (or `int`) bools are refused and the
        elements are returned as Python ints.
    name, where : str
        Name the argument and its owner in the error message (dilnet's keywords).
    minimum : number, optional
        Every element must be ``>= minimum`` (dilnet's keyword).

    Raises
    ------
    ConfigTypeError
        An element is not of type `t` (also a `TypeError`).
    ConfigError
        `x` is iterable but not of length `N`, or an element is below `minimum` (also a
        `ValueError`).
    """
    try:
        items = tuple(x)
    except TypeError:
        items = (x,) * N
    integers = t is int_types or t is int
    what = f"a single value or an iterable of length {N}"
    if t is not None:
        what = f"a single {_type_name(t)} or an iterable of {_type_name(t)}, length {N}"
        if not all(
            isinstance(v, t) and not (integers and isinstance(v, bool | np.bool_)) for v in items
        ):
            raise ConfigTypeError(invalid(where, name, what, x))
    if len(items) != N:
        raise ConfigError(invalid(where, name, what, x))
    if integers:
        items = tuple(int(v) for v in items)
    if minimum is not None and any(v < minimum for v in items):
        what = "positive integers" if minimum == 1 and integers else f"values >= {minimum}"
        raise ConfigError(invalid(where, name, what, x))
    return items


def inspect_kwargs(func):
    """The names of `func`'s arguments that have default values, in order."""
    spec = inspect.getfullargspec(func)
    return list(spec.args[len(spec.args) - len(spec.defaults) :]) if spec.defaults else []


def compute_norms(array, norm_axes=None):
    """Norms of the incoming weight vectors of a weight array or expression.

    ``sqrt(sum(array ** 2, axis=norm_axes))``. Default axes: none for 1-d (the absolute
    values), ``(0,)`` for 2-d (dense weights ``(in, out)``), all but the first for 3-d to 5-d
    (convolution weights ``(out, in, *kernel)``).

    Parameters
    ----------
    array : numpy.ndarray or TensorVariable
    norm_axes : sequence of int, optional
        Overrides the default; required for other ranks.

    Returns
    -------
    numpy.ndarray or TensorVariable
        Same kind and dtype as `array`.

    Raises
    ------
    UnsupportedInputError
        `array` is neither an array nor an expression (also a `RuntimeError`, as Lasagne).
    ConfigError
        No `norm_axes` for a rank other than 1 to 5 (also a `ValueError`).
    """
    if isinstance(array, Variable):
        sqrt, total = pt.sqrt, pt.sum
    elif isinstance(array, np.ndarray):
        sqrt, total = np.sqrt, np.sum
    else:
        raise UnsupportedInputError(
            invalid(
                "compute_norms",
                "array",
                f"a numpy array or a tensor expression (Unsupported type {type(array).__name__})",
                array,
            )
        )
    ndim = array.ndim
    if norm_axes is not None:
        axes = tuple(norm_axes)
    elif ndim == 1:
        axes = ()
    elif ndim == 2:
        axes = (0,)
    elif ndim in (3, 4, 5):
        axes = tuple(range(1, ndim))
    else:
        raise ConfigError(
            f"compute_norms: Unsupported tensor dimensionality {ndim}: pass `norm_axes` for "
            "arrays that are not 1-d to 5-d."
        )
    return sqrt(total(array**2, axis=axes))


def create_param(spec, shape, name=None, where="create_param"):
    """A parameter of `shape` from `spec` (Lasagne's ``utils.create_param``).

    Parameters
    ----------
    spec : callable, numpy array, number, shared variable or PyTensor expression
        A callable (an initializer from `dilnet.init`) is called with `shape` and its result is
        treated as `spec`; a number or array becomes a new shared variable of the same dtype; a
        shared variable or an expression is returned as is after checking its rank (and, for a
        shared variable, its shape), named `name` if it has no name.
    shape : iterable of int
        Positive lengths.
    name : str, optional
    where : str
        Names the caller in error messages (dilnet's keyword).

    Returns
    -------
    Variable
        A new shared variable has a static shape, so its length-1 axes are broadcastable.

    Raises
    ------
    ShapeError
        A length is not positive, or the array, shared variable or expression does not have
        `shape` / its rank (also a `ValueError`).
    ConfigTypeError
        `spec`, or what a callable returned, is none of the above (also a `TypeError`).
    """
    shape = tuple(shape)
    label = name or "parameter"
    if not all(is_int(s) for s in shape):
        raise ConfigTypeError(invalid(where, f"{label} shape", "a tuple of ints", shape))
    shape = tuple(int(s) for s in shape)
    if any(s <= 0 for s in shape):
        raise ShapeError(
            f"{where}: cannot create parameter {name!r} of shape {shape}: every length must be "
            "positive (is an input length unknown or too small?)."
        )
    origin = "spec"
    if callable(spec) and not isinstance(spec, Variable):
        spec, origin = spec(shape), "what the callable spec returned"
    if isinstance(spec, numbers.Number | np.generic) and np.asarray(spec).dtype.kind in "biuf":
        spec = np.asarray(spec)
    if isinstance(spec, np.ndarray):
        if spec.dtype.kind not in "biuf":
            raise ConfigTypeError(
                invalid(where, name or "spec", "a numeric array", f"array of {spec.dtype}")
            )
        if spec.shape != shape:
            raise ShapeError(invalid(where, f"{label}.shape", shape, spec.shape))
        return pytensor.shared(spec.copy(), name=name, shape=shape)
    if isinstance(spec, Variable):
        if spec.ndim != len(shape):
            raise ShapeError(
                invalid(where, f"{label}.ndim", f"{len(shape)} for shape {shape}", spec.ndim)
            )
        if isinstance(spec, SharedVariable):
            got = tuple(spec.get_value(borrow=True).shape)
            if got != shape:
                raise ShapeError(invalid(where, f"{label}.shape", shape, got))
        if not spec.name:
            spec.name = name
        return spec
    raise ConfigTypeError(
        invalid(
            where,
            name or "spec",
            f"a callable, a numpy array, a shared variable or an expression ({origin} was a "
            f"{type(spec).__name__})",
            spec,
        )
    )


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
