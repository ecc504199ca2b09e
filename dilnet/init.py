"""Initializers for parameter arrays, with Lasagne's names, signatures and defaults.

An initializer is called with a shape and returns a numpy array of dtype
``pytensor.config.floatX``; random ones draw from `dilnet.random.get_rng()` at that moment, so
``set_rng(numpy.random.default_rng(seed))`` makes a network's initial weights reproducible.

Weight layouts (Lasagne's): ``(in, out)`` for dense layers and ``(out, in, *kernel)`` for
convolutions. Fan-in and fan-out are computed as Lasagne does:

| shape                  | fan_in                | fan_out                |
|------------------------|-----------------------|------------------------|
| ``(in, out)``          | ``in``                | ``out``                |
| ``(out, in, *kernel)`` | ``in * prod(kernel)`` | ``out * prod(kernel)`` |

`Identity` is a dilnet addition: Yu & Koltun's identity initialisation for dilated context
modules.

Examples
--------
>>> from dilnet.init import GlorotUniform
>>> GlorotUniform(gain="relu")((16, 8, 3, 3, 3)).shape
(16, 8, 3, 3, 3)
"""

from numbers import Integral, Real

import numpy as np
import pytensor

from .errors import ConfigError, UnsupportedInputError, invalid
from .random import get_rng
from .utils import is_int, physical_memory

__all__ = [
    "Constant",
    "Glorot",
    "GlorotNormal",
    "GlorotUniform",
    "He",
    "HeNormal",
    "HeUniform",
    "Identity",
    "Initializer",
    "Normal",
    "Orthogonal",
    "Sparse",
    "Uniform",
]


def _floatX(array) -> np.ndarray:
    return np.asarray(array, dtype=pytensor.config.floatX)


def _is_real(value) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def _check_real(where: str, name: str, value, *, minimum: float | None = None) -> float:
    """Return `value` as a float; `ConfigError` unless it is a real number ``>= minimum``."""
    if not _is_real(value) or (minimum is not None and value < minimum):
        expected = "a real number" if minimum is None else f"a real number >= {minimum}"
        raise ConfigError(invalid(where, name, expected, value))
    return float(value)


def _check_gain(where: str, gain) -> float:
    # Lasagne's one named gain: He et al.'s sqrt(2) for rectified linear units.
    if isinstance(gain, str) and gain == "relu":
        return float(np.sqrt(2))
    if not _is_real(gain):
        raise ConfigError(invalid(where, "gain", "a real number or 'relu'", gain))
    return float(gain)


def _check_shape(where: str, shape, *, min_ndim: int = 0, ndim: int | None = None) -> tuple:
    """Return `shape` as a tuple of positive ints (an int is a 1-d shape), checking its rank."""
    items = (shape,) if is_int(shape) else shape
    try:
        items = tuple(items)
    except TypeError:
        items = None
    if items is None or not all(is_int(n) and n > 0 for n in items):
        raise ConfigError(
            invalid(where, "shape", "a positive int or a tuple of positive ints", shape)
        )
    items = tuple(int(n) for n in items)
    # a rank this initializer does not support: Lasagne's RuntimeError
    if ndim is not None and len(items) != ndim:
        raise UnsupportedInputError(invalid(where, "shape", f"exactly {ndim} dimensions", items))
    if len(items) < min_ndim:
        raise UnsupportedInputError(
            invalid(
                where,
                "shape",
                f"at least {min_ndim} dimensions ((in, out) or (out, in, *kernel))",
                items,
            )
        )
    return items


def _check_fits(shape):
    dims = (
        (shape,)
        if isinstance(shape, Integral)
        else tuple(shape)
        if isinstance(shape, tuple | list)
        else ()
    )
    if not all(isinstance(n, Integral) and n >= 0 for n in dims):
        return  # sample's own checks name it
    count = 1
    for n in dims:
        count *= int(n)
    needed = count * np.dtype(pytensor.config.floatX).itemsize
    memory = physical_memory()
    if memory is not None and needed > memory:
        raise ConfigError(
            invalid("Initializer", "shape", f"a parameter that fits in this machine's "
                    f"{memory:,} bytes of RAM", f"{tuple(dims)} ({needed:,} bytes)")
        )  # fmt: skip


class Initializer:
    """Base class of parameter initializers: ``init(shape)`` returns ``init.sample(shape)``.

    Subclasses implement `sample`, returning a numpy array of the given shape and dtype
    ``pytensor.config.floatX``.
    """

    def __call__(self, shape):
        """Sample an array of `shape` (an int or a tuple of ints); see `sample`. A shape whose
        array would not fit in the machine's memory is a `ConfigError` before anything is
        allocated."""
        _check_fits(shape)
        return self.sample(shape)

    def sample(self, shape):
        """Return a numpy array of `shape` and dtype ``pytensor.config.floatX``.

        Parameters
        ----------
        shape : int or tuple of int
            Shape of the parameter.
        """
        raise NotImplementedError(f"{type(self).__name__} does not implement sample(shape)")


class Normal(Initializer):
    """Weights sampled from the normal distribution ``N(mean, std)``.

    Parameters
    ----------
    std : float
        Standard deviation, ``>= 0``.
    mean : float
        Mean.
    """

    def __init__(self, std=0.01, mean=0.0):
        self.std = _check_real("Normal", "std", std, minimum=0)
        self.mean = _check_real("Normal", "mean", mean)

    def sample(self, shape):
        shape = _check_shape(type(self).__name__, shape)
        return _floatX(get_rng().normal(self.mean, self.std, size=shape))


class Uniform(Initializer):
    """Weights sampled from the uniform distribution ``U(a, b)``.

    Parameters
    ----------
    range : float or (float, float)
        Used when `std` is None: a number ``r`` gives ``U(-r, r)``, a pair gives
        ``U(range[0], range[1])``.
    std : float or None
        If given, ``U(mean - sqrt(3) * std, mean + sqrt(3) * std)``: the uniform distribution
        with this mean and standard deviation.
    mean : float
        Only used with `std` (as in Lasagne).

    Attributes
    ----------
    range : (float, float)
        The bounds ``(a, b)`` actually sampled from.

    Notes
    -----
    Lasagne's constructor warned that the default bounds are no longer Glorot's; dilnet never had
    the old behaviour, so there is no warning.
    """

    def __init__(self, range=0.01, std=None, mean=0.0):
        if std is not None:
            std = _check_real("Uniform", "std", std, minimum=0)
            mean = _check_real("Uniform", "mean", mean)
            a, b = mean - np.sqrt(3) * std, mean + np.sqrt(3) * std
        elif _is_real(range):
            a, b = -float(range), float(range)
        else:
            try:
                a, b = range
            except (TypeError, ValueError):
                a = b = None
            if not (_is_real(a) and _is_real(b)):
                raise ConfigError(
                    invalid("Uniform", "range", "a number or a pair (low, high)", range)
                ) from None
        if a > b:
            raise ConfigError(invalid("Uniform", "range", "low <= high", range))
        self.range = (float(a), float(b))

    def sample(self, shape):
        shape = _check_shape(type(self).__name__, shape)
        return _floatX(get_rng().uniform(low=self.range[0], high=self.range[1], size=shape))


def _fan_scaled(self, initializer, gain, c01b):
    """Set the arguments `Glorot` and `He` share: a std-taking initializer, a gain, the layout."""
    where = type(self).__name__
    if not callable(initializer):
        raise ConfigError(
            invalid(where, "initializer", "a callable taking std=, e.g. Normal", initializer)
        )
    self.initializer = initializer
    self.gain = _check_gain(where, gain)
    self.c01b = bool(c01b)


class Glorot(Initializer):
    """Glorot (Xavier) initialisation: standard deviation ``gain * sqrt(2 / (fan_in + fan_out))``.

    Parameters
    ----------
    initializer : callable
        Called as ``initializer(std=...)`` to make the initializer that samples, e.g. `Normal` or
        `Uniform` (the class itself).
    gain : float or 'relu'
        Scale factor: 1 for linear and sigmoid units, 'relu' (``sqrt(2)``) for rectifiers.
    c01b : bool
        Weights laid out ``(in, rows, cols, out)`` (cuda-convnet's layout); needs a 4-d shape.

    Notes
    -----
    With `shape` ``(n1, n2, *kernel)`` (``(in, out)`` dense, ``(out, in, *kernel)`` conv),
    ``fan_in + fan_out = (n1 + n2) * prod(kernel)``. With `Uniform` the bounds are therefore
    ``± gain * sqrt(6 / (fan_in + fan_out))``.

    References
    ----------
    X. Glorot and Y. Bengio (2010): Understanding the difficulty of training deep
    feedforward neural networks. AISTATS.
    """

    def __init__(self, initializer, gain=1.0, c01b=False):
        _fan_scaled(self, initializer, gain, c01b)

    def sample(self, shape):
        where = type(self).__name__
        if self.c01b:
            shape = _check_shape(where, shape, ndim=4)
            n1, n2 = shape[0], shape[3]
            receptive_field = shape[1] * shape[2]
        else:
            shape = _check_shape(where, shape, min_ndim=2)
            n1, n2 = shape[:2]
            receptive_field = int(np.prod(shape[2:]))
        std = self.gain * np.sqrt(2.0 / ((n1 + n2) * receptive_field))
        return self.initializer(std=std).sample(shape)


class GlorotNormal(Glorot):
    """`Glorot` sampling from `Normal`: ``N(0, gain * sqrt(2 / (fan_in + fan_out)))``."""

    def __init__(self, gain=1.0, c01b=False):
        super().__init__(Normal, gain, c01b)


class GlorotUniform(Glorot):
    """`Glorot` sampling from `Uniform`: ``U(±gain * sqrt(6 / (fan_in + fan_out)))``.

    Lasagne's default for weights.
    """

    def __init__(self, gain=1.0, c01b=False):
        super().__init__(Uniform, gain, c01b)


class He(Initializer):
    """He initialisation: standard deviation ``gain * sqrt(1 / fan_in)``.

    Parameters
    ----------
    initializer : callable
        Called as ``initializer(std=...)``, e.g. `Normal` or `Uniform`.
    gain : float or 'relu'
        Scale factor; 'relu' (``sqrt(2)``) gives He et al.'s rule for rectifiers.
    c01b : bool
        Weights laid out ``(in, rows, cols, out)``; needs a 4-d shape.

    Notes
    -----
    ``fan_in`` is ``shape[0]`` for a dense ``(in, out)`` shape, ``prod(shape[1:])`` for a conv
    ``(out, in, *kernel)`` shape and ``prod(shape[:3])`` with `c01b`.

    References
    ----------
    K. He et al. (2015): Delving deep into rectifiers: surpassing human-level performance
    on ImageNet classification. arXiv:1502.01852.
    """

    def __init__(self, initializer, gain=1.0, c01b=False):
        _fan_scaled(self, initializer, gain, c01b)

    def sample(self, shape):
        where = type(self).__name__
        if self.c01b:
            shape = _check_shape(where, shape, ndim=4)
            fan_in = int(np.prod(shape[:3]))
        else:
            shape = _check_shape(where, shape, min_ndim=2)
            fan_in = shape[0] if len(shape) == 2 else int(np.prod(shape[1:]))
        std = self.gain * np.sqrt(1.0 / fan_in)
        return self.initializer(std=std).sample(shape)


class HeNormal(He):
    """`He` sampling from `Normal`: ``N(0, gain * sqrt(1 / fan_in))``."""

    def __init__(self, gain=1.0, c01b=False):
        super().__init__(Normal, gain, c01b)


class HeUniform(He):
    """`He` sampling from `Uniform`: ``U(±gain * sqrt(3 / fan_in))``."""

    def __init__(self, gain=1.0, c01b=False):
        super().__init__(Uniform, gain, c01b)


class Constant(Initializer):
    """Every weight set to `val`.

    Parameters
    ----------
    val : float
        The value.
    """

    def __init__(self, val=0.0):
        self.val = val

    def sample(self, shape):
        shape = _check_shape(type(self).__name__, shape)
        return _floatX(np.full(shape, self.val))


class Sparse(Initializer):
    """A sparse ``(in, out)`` matrix: in each column, ``int(sparsity * in)`` entries ``~ N(0, std)``.

    Parameters
    ----------
    sparsity : float
        Exact fraction of non-zero values per column, in ``[0, 1]``; larger is less sparse.
    std : float
        Standard deviation of the non-zero weights.
    """

    def __init__(self, sparsity=0.1, std=0.01):
        self.sparsity = _check_real("Sparse", "sparsity", sparsity, minimum=0)
        if self.sparsity > 1:
            raise ConfigError(invalid("Sparse", "sparsity", "a fraction in [0, 1]", sparsity))
        self.std = _check_real("Sparse", "std", std, minimum=0)

    def sample(self, shape):
        n_inputs, n_outputs = _check_shape("Sparse", shape, ndim=2)
        size = int(self.sparsity * n_inputs)
        rng = get_rng()
        w = np.zeros((n_inputs, n_outputs), dtype=pytensor.config.floatX)
        for k in range(n_outputs):
            rows = rng.permutation(n_inputs)[:size]
            w[rows, k] = rng.normal(0.0, self.std, size=size)
        return w


class Orthogonal(Initializer):
    """A (scaled) orthogonal matrix, with the trailing axes of `shape` flattened.

    For ``shape = (n, *rest)`` the matrix ``Q`` of shape ``(n, prod(rest))`` has orthonormal rows
    if ``n <= prod(rest)`` and orthonormal columns otherwise; the result is ``gain * Q``
    reshaped to `shape`. For a conv weight ``(out, in, *kernel)`` the flattened axes are the
    fan-in, so this suits dense and convolutional layers alike.

    Parameters
    ----------
    gain : float or 'relu'
        Scale factor; 'relu' is ``sqrt(2)``.

    References
    ----------
    A. M. Saxe, J. L. McClelland and S. Ganguli (2014): Exact solutions to the nonlinear
    dynamics of learning in deep linear neural networks. ICLR.
    """

    def __init__(self, gain=1.0):
        self.gain = _check_gain("Orthogonal", gain)

    def sample(self, shape):
        shape = _check_shape("Orthogonal", shape, min_ndim=2)
        flat_shape = (shape[0], int(np.prod(shape[1:])))
        a = get_rng().normal(0.0, 1.0, flat_shape)
        u, _, vt = np.linalg.svd(a, full_matrices=False)
        # u is (n, min) and vt is (min, m): exactly one of them has the flat shape (u if square).
        q = u if u.shape == flat_shape else vt
        return _floatX(self.gain * q.reshape(shape))


_IDENTITY_VARIANTS = ("basic", "large")


class Identity(Initializer):
    """Identity initialisation of a conv weight ``(c_out, c_in, *kernel)`` (Yu & Koltun, 2016).

    With odd kernel sizes and ``t`` a kernel tap (``t = 0`` the centre), ``a`` an input channel
    and ``b`` an output channel, the weight ``k^b(t, a)`` (stored as ``W[b, a, *t]``) is:

    - ``variant="basic"`` (needs ``c_out == c_in``): ``k^b(t, a) = 1[t = 0] 1[a = b]``, so a
      'same'-padded correlation passes its input through unchanged. With ``noise_std > 0``,
      ``N(0, noise_std)`` noise is added to every entry.
    - ``variant="large"`` (any channel counts; ``C`` the base channel count):

          k^b(t, a) = C / c_out   if t = 0 and floor(a C / c_in) == floor(b C / c_out)
                      eps         otherwise,      eps ~ N(0, sigma), sigma = noise_std

      Channels are split into ``C`` consecutive groups on each side; each output channel
      averages (``c_out > C``) or sums (``c_in > C``) the matching input group. The paper uses
      ``sigma << C / c_out``; ``noise_std=0`` (the default) gives exact zeros. With
      ``c_in == c_out == C`` this is the basic identity.

    Parameters
    ----------
    variant : 'basic' or 'large'
        Which rule (the paper's basic or large context module).
    noise_std : float
        Standard deviation of the noise, ``>= 0``; drawn from `dilnet.random.get_rng()` only
        when positive.
    C : int or None
        Base channel count for ``variant="large"``; None means ``min(c_in, c_out)``. Not used
        by the basic variant (giving it there is an error).

    Raises
    ------
    ConfigError
        Unknown variant, negative `noise_std`, `C` not a positive int; when sampling: an even
        kernel size, or ``c_out != c_in`` for the basic variant.
    UnsupportedInputError
        When sampling a shape of rank < 3 (also a `RuntimeError`, as Lasagne's initializers
        raised for ranks they do not support).

    References
    ----------
    F. Yu and V. Koltun (2016): Multi-scale context aggregation by dilated convolutions.
    ICLR. arXiv:1511.07122 (section 3, identity initialisation).
    """

    def __init__(self, variant="basic", noise_std=0.0, C=None):
        if variant not in _IDENTITY_VARIANTS:
            raise ConfigError(invalid("Identity", "variant", "'basic' or 'large'", variant))
        self.variant = variant
        self.noise_std = _check_real("Identity", "noise_std", noise_std, minimum=0)
        if C is not None:
            if variant == "basic":
                raise ConfigError(
                    invalid("Identity", "C", "None for variant='basic' (C is for 'large')", C)
                )
            if not (is_int(C) and C > 0):
                raise ConfigError(invalid("Identity", "C", "a positive int or None", C))
            C = int(C)
        self.C = C

    def sample(self, shape):
        shape = _check_shape("Identity", shape)
        if len(shape) < 3:
            raise UnsupportedInputError(
                invalid("Identity", "shape", "at least 3 dimensions (c_out, c_in, *kernel)", shape)
            )
        c_out, c_in, *kernel = shape
        if any(k % 2 == 0 for k in kernel):
            raise ConfigError(
                invalid("Identity", "shape", "odd kernel sizes (a centre tap)", shape)
            )
        centre = tuple(k // 2 for k in kernel)
        if self.variant == "basic" and c_out != c_in:
            raise ConfigError(
                invalid(
                    "Identity",
                    "shape",
                    "c_out == c_in for variant='basic' (use variant='large' to change width)",
                    shape,
                )
            )

        if self.variant == "basic":
            w = np.zeros(shape)
            w[(np.arange(c_out), np.arange(c_in), *centre)] = 1.0
            if self.noise_std > 0:
                w += get_rng().normal(0.0, self.noise_std, size=shape)
        else:
            C = min(c_in, c_out) if self.C is None else self.C
            # Integer floor division is exact; float a * C / c_in could round across an integer.
            same_group = (np.arange(c_in)[None, :] * C // c_in) == (
                np.arange(c_out)[:, None] * C // c_out
            )
            if self.noise_std > 0:
                w = get_rng().normal(0.0, self.noise_std, size=shape)
            else:
                w = np.zeros(shape)
            centre_taps = w[(slice(None), slice(None), *centre)]  # a view: writes go into w
            centre_taps[same_group] = C / c_out
        return _floatX(w)
