"""The package-wide random number generator, used by initializers and to seed noise layers.

As in Lasagne, every initializer draws from `get_rng()` when it samples (not when it is
constructed), so ``set_rng(numpy.random.default_rng(seed))`` before building a network makes its
initial weights reproducible. The default is an *unseeded* ``numpy.random.RandomState()``: like
Lasagne's default (the global, unseeded ``numpy.random``) it has ``seed``, so Lasagne code's
``lasagne.random.get_rng().seed(1234)`` works unchanged, but it is dilnet's own generator, not
numpy's global state.

Both `numpy.random.Generator` and the legacy `numpy.random.RandomState` are accepted: the methods
the initializers use (``normal``, ``uniform``, ``shuffle``) have the same signatures on both.
"""

import numpy as np

from .errors import ConfigError, invalid

__all__ = ["draw_seed", "get_rng", "set_rng"]

_rng = np.random.RandomState()  # Lasagne code calls get_rng().seed(n)

# The largest seed Lasagne drew for Theano's RandomStreams; kept so seeds stay in int32 range.
_MAX_SEED = 2147462579


def get_rng():
    """Return the package-level random number generator.

    Returns
    -------
    numpy.random.Generator or numpy.random.RandomState
        The generator passed to the most recent `set_rng`, or an unseeded
        ``numpy.random.RandomState()`` if `set_rng` has never been called.
    """
    return _rng


def set_rng(new_rng):
    """Set the package-level random number generator.

    Parameters
    ----------
    new_rng : numpy.random.Generator or numpy.random.RandomState
        The generator every initializer and noise layer draws from from now on. The
        ``numpy.random`` module itself (Lasagne's default) is accepted too.

    Raises
    ------
    ConfigError
        If `new_rng` is none of these.
    """
    global _rng
    if not (
        isinstance(new_rng, np.random.Generator | np.random.RandomState) or new_rng is np.random
    ):
        raise ConfigError(
            invalid(
                "set_rng",
                "new_rng",
                "a numpy.random.Generator or numpy.random.RandomState",
                new_rng,
            )
        )
    _rng = new_rng


def draw_seed(rng=None) -> int:
    """Draw an integer seed in ``[1, 2147462579)`` for a symbolic random stream (e.g. dropout).

    A dilnet addition: Lasagne called ``get_rng().randint(...)``, which `numpy.random.Generator`
    does not have (it has ``integers``).

    Parameters
    ----------
    rng : numpy.random.Generator or numpy.random.RandomState, optional
        Defaults to `get_rng()`.
    """
    rng = get_rng() if rng is None else rng
    if isinstance(rng, np.random.Generator):
        return int(rng.integers(1, _MAX_SEED))
    return int(rng.randint(1, _MAX_SEED))
