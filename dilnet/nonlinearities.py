"""Nonlinearities (activation functions) with Lasagne's names, on PyTensor tensors.

Each is a callable mapping a tensor to a tensor of the same shape. Python-number parameters
(leakiness, scales) are cast to the input's float dtype, so float32 graphs stay float32 (Theano
did this by autocasting; PyTensor would upcast to float64).

The one change from Lasagne: `softmax` takes an ``axis`` (default 1, the channel axis of
``(batch, classes, *spatial)``) and works for any rank >= 2; Lasagne's was 2-D only, where
``axis=1`` gives its result.
"""

from numbers import Real

import numpy as np
import pytensor
import pytensor.tensor as pt
from pytensor.tensor.special import softmax as _pt_softmax

from .errors import ConfigError, ShapeError, invalid
from .utils import is_int

__all__ = [
    "SELU",
    "LeakyRectify",
    "ScaledTanH",
    "ScaledTanh",
    "elu",
    "identity",
    "leaky_rectify",
    "linear",
    "rectify",
    "selu",
    "sigmoid",
    "softmax",
    "softplus",
    "tanh",
    "very_leaky_rectify",
]


def _like(value, x):
    """`value` as a constant of `x`'s float dtype (floatX for integer `x`); tensors pass through."""
    if isinstance(value, Real) and not isinstance(value, bool):
        dtype = x.dtype if x.dtype.startswith("float") else pytensor.config.floatX
        return pt.constant(np.asarray(value, dtype=dtype))
    return value


def sigmoid(x):
    """Sigmoid ``φ(x) = 1 / (1 + exp(-x))``, in ``[0, 1]``.

    Parameters
    ----------
    x : tensor_like
        The activation.
    """
    return pt.sigmoid(x)


def softmax(x, axis=1):
    """Softmax over `axis`: ``φ(x)_j = exp(x_j) / Σ_k exp(x_k)``.

    Numerically stable (the maximum over `axis` is subtracted first, so large inputs give no
    overflow), with PyTensor's `Softmax` Op and its gradient.

    Parameters
    ----------
    x : tensor_like of shape (batch, classes, *spatial)
        The activation, at least 2-d.
    axis : int
        Axis to normalise over; default 1, the class/channel axis, so each location of an N-d
        segmentation map gets a distribution over classes. Negative values count from the end.

    Returns
    -------
    TensorVariable
        Same shape as `x`, non-negative, summing to 1 over `axis`.

    Raises
    ------
    ShapeError
        If `x` has fewer than 2 dimensions.
    ConfigError
        If `axis` is not an int in ``[-x.ndim, x.ndim)``.

    Notes
    -----
    Lasagne's ``softmax(x)`` was row-wise on 2-D input only; for 2-D input this is the same.
    """
    x = pt.as_tensor_variable(x)
    if x.ndim < 2:
        raise ShapeError(
            invalid(
                "softmax", "x", "a tensor of at least 2 dimensions (batch, classes, ...)", x.type
            )
        )
    if not is_int(axis) or not -x.ndim <= axis < x.ndim:
        raise ConfigError(invalid("softmax", "axis", f"an int in [-{x.ndim}, {x.ndim})", axis))
    return _pt_softmax(x, axis=int(axis) % x.ndim)


def tanh(x):
    """Hyperbolic tangent ``φ(x) = tanh(x)``, in ``[-1, 1]``.

    Parameters
    ----------
    x : tensor_like
        The activation.
    """
    return pt.tanh(x)


class ScaledTanH:
    """Scaled tanh ``φ(x) = scale_out * tanh(scale_in * x)``.

    Parameters
    ----------
    scale_in : float
        The input scale (smaller: a wider linear regime).
    scale_out : float
        The output scale; the output lies in ``[-scale_out, scale_out]``.

    Notes
    -----
    LeCun et al. (1998, Efficient BackProp, section 4.4) suggest ``scale_in=2/3``,
    ``scale_out=1.7159``, which gives ``φ(±1) = ±1``.
    """

    def __init__(self, scale_in=1, scale_out=1):
        self.scale_in = scale_in
        self.scale_out = scale_out

    def __call__(self, x):
        x = pt.as_tensor_variable(x)
        return pt.tanh(x * _like(self.scale_in, x)) * _like(self.scale_out, x)


ScaledTanh = ScaledTanH  # Lasagne's alias with the other capitalisation


def rectify(x):
    """Rectifier ``φ(x) = max(0, x)``.

    Parameters
    ----------
    x : tensor_like
        The activation. A numpy array gives a numpy array (as Lasagne, whose rectify was
        arithmetic that numpy evaluates too).
    """
    if isinstance(x, np.ndarray):
        return np.maximum(x, np.zeros((), dtype=x.dtype))
    x = pt.as_tensor_variable(x)
    return pt.maximum(x, _like(0, x))


class LeakyRectify:
    """Leaky rectifier ``φ(x) = x`` if ``x > 0``, else ``leakiness * x``.

    Parameters
    ----------
    leakiness : float
        The slope for negative input: 0 is `rectify`, 1 is `linear`.

    See Also
    --------
    - `leaky_rectify`: the instance with leakiness 0.01 (Maas et al., 2013).
    - `very_leaky_rectify`: the instance with leakiness 1/3 (Graham, 2014).
    """

    def __init__(self, leakiness=0.01):
        self.leakiness = leakiness

    def __call__(self, x):
        x = pt.as_tensor_variable(x)
        return pt.switch(x > 0, x, _like(self.leakiness, x) * x)


leaky_rectify = LeakyRectify()
leaky_rectify.__doc__ = """leaky_rectify(x)

    Instance of `LeakyRectify` with leakiness 0.01.
    """

very_leaky_rectify = LeakyRectify(1.0 / 3)
very_leaky_rectify.__doc__ = """very_leaky_rectify(x)

    Instance of `LeakyRectify` with leakiness 1/3.
    """


def _expm1_negative(x):
    # expm1 of min(x, 0): equal where switch keeps it (x <= 0), and finite elsewhere, so the
    # discarded branch cannot overflow to inf and turn the gradient into 0 * inf = nan.
    return pt.expm1(pt.minimum(x, _like(0, x)))


def elu(x):
    """Exponential linear unit ``φ(x) = x`` if ``x > 0``, else ``exp(x) - 1``.

    Parameters
    ----------
    x : tensor_like
        The activation.

    Notes
    -----
    Clevert et al.'s scale of the negative part (alpha) is fixed to 1, as in Lasagne; `SELU` has both scales.

    References
    ----------
    D.-A. Clevert, T. Unterthiner and S. Hochreiter (2015): Fast and accurate deep network
    learning by exponential linear units (ELUs). arXiv:1511.07289.
    """
    x = pt.as_tensor_variable(x)
    return pt.switch(x > 0, x, _expm1_negative(x))


class SELU:
    """Scaled exponential linear unit ``φ(x) = scale * x`` if ``x > 0``, else
    ``scale * scale_neg * (exp(x) - 1)``.

    Parameters
    ----------
    scale : float
        Scaling all output (Klambauer et al.'s lambda).
    scale_neg : float
        Scaling the output for non-positive input (Klambauer et al.'s alpha).

    See Also
    --------
    - `selu`: the instance with Klambauer et al.'s self-normalising constants.

    References
    ----------
    G. Klambauer, T. Unterthiner, A. Mayr and S. Hochreiter (2017): Self-normalizing
    neural networks. arXiv:1706.02515.
    """

    def __init__(self, scale=1, scale_neg=1):
        self.scale = scale
        self.scale_neg = scale_neg

    def __call__(self, x):
        x = pt.as_tensor_variable(x)
        negative = _like(self.scale_neg, x) * _expm1_negative(x)
        return _like(self.scale, x) * pt.switch(x > 0, x, negative)


selu = SELU(scale=1.0507009873554804934193349852946, scale_neg=1.6732632423543772848170429916717)
selu.__doc__ = """selu(x)

    Instance of `SELU` with ``scale_neg ≈ 1.6733`` and ``scale ≈ 1.0507``:
    a stable, attracting fixed point at mean 0 and variance 1 (Klambauer et al., 2017).
    """


def softplus(x):
    """Softplus ``φ(x) = log(1 + exp(x))``, computed without overflow.

    Parameters
    ----------
    x : tensor_like
        The activation.
    """
    return pt.softplus(x)


def linear(x):
    """Linear (identity) activation ``φ(x) = x``; returns `x` itself.

    Parameters
    ----------
    x : tensor_like
        The activation.
    """
    return x


identity = linear
