"""Argument normalisers shared by the Ops and the layers."""

from collections.abc import Iterable
from numbers import Integral

from .errors import ConfigError, invalid

__all__ = ["as_tuple", "is_int"]


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
