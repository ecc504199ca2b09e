"""Normalization layers with Lasagne's contracts: batch normalization (Ioffe & Szegedy 2015),
local response normalization (Krizhevsky et al. 2012), standardization, and the `batch_norm`,
`instance_norm` and `layer_norm` macros."""

import warnings

import pytensor.tensor as pt
from pytensor.graph.replace import clone_replace

from .. import init, nonlinearities
from ..errors import ConfigError, ShapeError, UnsupportedError, invalid
from ..utils import is_int
from .base import Layer, add_state_update, describe
from .special import BiasLayer, NonlinearityLayer, ScaleLayer

__all__ = [
    "BatchNormLayer",
    "LocalResponseNormalization2DLayer",
    "StandardizationLayer",
    "batch_norm",
    "instance_norm",
    "layer_norm",
]


class LocalResponseNormalization2DLayer(Layer):
    """Local response normalization across channels (Krizhevsky et al. 2012).

    ``y[:, c] = x[:, c] / (k + alpha * sum(x[:, j] ** 2 for j in window(c))) ** beta`` with
    the window the `n` channels centred on ``c`` (fewer at the edges); `alpha` is not divided
    by `n` (Lasagne's and pylearn2's convention).

    Parameters
    ----------
    alpha, k, beta : float
        Scale, offset and exponent.
    n : int
        Window width in channels, odd.

    Notes
    -----
    The output shape is the input shape, (batch, channels, *spatial); the 2D in the name is
    Lasagne's, any number of spatial axes works.
    """

    def __init__(self, incoming, alpha=1e-4, k=2, beta=0.75, n=5, **kwargs):
        super().__init__(incoming, **kwargs)
        where = describe(self)
        if not is_int(n) or n < 1:
            raise ConfigError(invalid(where, "n", "a positive odd int", n))
        if n % 2 == 0:
            raise UnsupportedError(
                invalid(where, "n", "an odd window (only odd n works, as in Lasagne)", n)
            )
        if len(self.input_shape) < 2:
            raise ShapeError(
                invalid(where, "input shape", "(batch, channels, *spatial)", self.input_shape)
            )
        self.alpha, self.k, self.beta, self.n = alpha, k, beta, int(n)

    def get_output_for(self, input, **kwargs):
        half = self.n // 2
        squares = pt.sqr(input)
        pad = pt.zeros_like(squares[:, :half])
        padded = pt.concatenate([pad, squares, pad], axis=1)
        channels = input.shape[1]
        window = sum(padded[:, i : i + channels] for i in range(self.n))
        return input / (self.k + self.alpha * window) ** self.beta


def _standardization_axes(where, axes, rank):
    if axes == "auto":
        axes = tuple(range(2, rank)) if rank > 2 else (1,)
    elif axes == "spatial":
        axes = tuple(range(2, rank))
    elif axes == "features":
        axes = tuple(range(1, rank))
    elif is_int(axes):
        axes = (axes,)
    # no axes (a 2-d input's 'spatial'): each value is its own mean and the output is 0
    if not isinstance(axes, tuple | list) or not all(is_int(a) and -rank <= a < rank for a in axes):
        raise ConfigError(
            invalid(
                where, "axes", f"'auto', 'spatial', 'features' or axes of a {rank}-d input", axes
            )
        )
    return tuple(sorted({a % rank for a in axes}))


class StandardizationLayer(Layer):
    """Normalize each example to zero mean and unit variance over `axes`; no parameters.

    ``y = (x - mean) / sqrt(var + epsilon)`` with the statistics of each example (not of the
    batch, unlike batch normalization), in training and in deterministic outputs alike.

    Parameters
    ----------
    axes : 'auto', 'spatial', 'features', int or tuple of int
        'spatial': all axes after the channel axis (instance normalization); 'features': all
        axes after the batch axis (layer normalization); 'auto': 'spatial' for inputs with
        spatial axes, else the feature axis 1.
    epsilon : float
        Added to the variance.

    Notes
    -----
    The output shape is the input shape.
    """

    def __init__(self, incoming, axes="auto", epsilon=1e-4, **kwargs):
        super().__init__(incoming, **kwargs)
        self.axes = _standardization_axes(describe(self), axes, len(self.input_shape))
        self.epsilon = epsilon

    def get_output_for(self, input, **kwargs):
        mean = input.mean(self.axes, keepdims=True)
        std = pt.sqrt(input.var(self.axes, keepdims=True) + self.epsilon)
        return (input - mean) / std


class BatchNormLayer(Layer):
    """Normalize each feature over `axes`, then scale by `gamma` and shift by `beta`.

    ``y = (x - mean) * inv_std * gamma + beta`` with ``inv_std = 1 / sqrt(var + epsilon)``.

    Parameters
    ----------
    axes : 'auto', int or tuple of int
        Axes to normalize over; 'auto' is the batch and all spatial axes (one statistic per
        channel).
    epsilon : float
        Added to the variance.
    alpha : float
        Running-average coefficient: ``running = (1 - alpha) * running + alpha * batch``.
    beta : initializer, array, shared variable, or None
        Learned shift (None: left out); not regularizable.
    gamma : initializer, array, shared variable, or None
        Learned scale (None: left out); regularizable.
    mean : initializer, array or shared variable
        Running average of the batch means; not trainable, tagged ``batch_norm_stat``.
    inv_std : initializer, array or shared variable
        Running average of the batch inverse standard deviations; not trainable, tagged
        ``batch_norm_stat``.

    Notes
    -----
    ``get_output(..., deterministic=True)`` normalizes with the running averages and leaves
    them alone; otherwise the batch's statistics are used and the averages are updated. Override
    with ``batch_norm_use_averages`` / ``batch_norm_update_averages``. The update is attached
    to the output (see `dilnet.layers.collect_state_updates`); every rule in `dilnet.updates`
    includes it in the updates it returns.
    """

    get_output_kwargs = ("batch_norm_use_averages", "batch_norm_update_averages")

    def __init__(
        self,
        incoming,
        axes="auto",
        epsilon=1e-4,
        alpha=0.1,
        beta=init.Constant(0),
        gamma=init.Constant(1),
        mean=init.Constant(0),
        inv_std=init.Constant(1),
        **kwargs,
    ):
        super().__init__(incoming, **kwargs)
        rank = len(self.input_shape)
        where = describe(self)
        if axes == "auto":
            axes = (0, *range(2, rank))
        elif is_int(axes):
            axes = (axes,)
        if not isinstance(axes, tuple | list) or not all(is_int(a) and 0 <= a < rank for a in axes):
            raise ConfigError(invalid(where, "axes", f"'auto' or axes of a {rank}-d input", axes))
        self.axes = tuple(sorted(set(axes)))
        self.epsilon, self.alpha = epsilon, alpha
        shape = tuple(s for a, s in enumerate(self.input_shape) if a not in self.axes)
        if None in shape:
            raise ConfigError(
                invalid(
                    where,
                    "axes",
                    f"all axes of unknown length in input shape {self.input_shape} (the layer "
                    "needs specified input sizes for all axes not normalized over)",
                    self.axes,
                )
            )
        self.beta = (
            None
            if beta is None
            else self.add_param(beta, shape, "beta", trainable=True, regularizable=False)
        )
        self.gamma = (
            None
            if gamma is None
            else self.add_param(gamma, shape, "gamma", trainable=True, regularizable=True)
        )
        # tagged batch_norm_stat as in Lasagne: get_params(batch_norm_stat=True) finds them
        self.mean = self.add_param(
            mean, shape, "mean", trainable=False, regularizable=False, batch_norm_stat=True
        )
        self.inv_std = self.add_param(
            inv_std, shape, "inv_std", trainable=False, regularizable=False, batch_norm_stat=True
        )

    def get_output_for(
        self,
        input,
        deterministic=False,
        batch_norm_use_averages=None,
        batch_norm_update_averages=None,
        **kwargs,
    ):
        use_averages = deterministic if batch_norm_use_averages is None else batch_norm_use_averages
        update_averages = (
            not deterministic if batch_norm_update_averages is None else batch_norm_update_averages
        )
        if use_averages:
            mean, inv_std = self.mean, self.inv_std
        else:
            mean = input.mean(self.axes)
            inv_std = 1 / pt.sqrt(input.var(self.axes) + self.epsilon)
        pattern, i = [], 0
        for axis in range(input.ndim):
            if axis in self.axes:
                pattern.append("x")
            else:
                pattern.append(i)
                i += 1
        gamma = 1 if self.gamma is None else self.gamma.dimshuffle(pattern)
        beta = 0 if self.beta is None else self.beta.dimshuffle(pattern)
        out = (input - mean.dimshuffle(pattern)) * (gamma * inv_std.dimshuffle(pattern)) + beta
        if update_averages:
            batch_mean = input.mean(self.axes)
            batch_inv_std = 1 / pt.sqrt(input.var(self.axes) + self.epsilon)
            a = pt.cast(self.alpha, self.mean.dtype)
            new_mean = ((1 - a) * self.mean + a * batch_mean).astype(self.mean.dtype)
            new_inv_std = ((1 - a) * self.inv_std + a * batch_inv_std).astype(self.inv_std.dtype)
            # As Lasagne: clones sharing the averages' storage carry the same updates as
            # default updates, so that any function compiled from this output -- also a plain
            # `pytensor.function` without `updates=` -- moves the averages. They enter the graph
            # as `0 * clone` (rewritten away); where `updates=` also holds the explicit update
            # (dilnet's rules, `Model`), both compute the same value from the old one.
            for stored, new_value in ((self.mean, new_mean), (self.inv_std, new_inv_std)):
                running = stored.clone()
                with warnings.catch_warnings():
                    # PyTensor 3 deprecates setting it, and still applies it (tested)
                    warnings.simplefilter("ignore", DeprecationWarning)
                    running.default_update = clone_replace(new_value, {stored: running})
                out = out + 0 * running.sum().astype(out.dtype)
            for variable, new_value in ((self.mean, new_mean), (self.inv_std, new_inv_std)):
                add_state_update(out, variable, new_value)
        return out


def _steal(layer):
    """Take `layer`'s nonlinearity (leaving identity) and its bias; return the nonlinearity."""
    nonlinearity = getattr(layer, "nonlinearity", None)
    if nonlinearity is not None:
        layer.nonlinearity = nonlinearities.identity
    if getattr(layer, "b", None) is not None:
        del layer.params[layer.b]
        layer.b = None
    return nonlinearity


def _nonlinearity_on_top(layer, nonlinearity, name):
    """A `NonlinearityLayer` applying the nonlinearity taken from the wrapped layer.

    It was validated when that layer was built (or came from a layer built elsewhere, e.g.
    a test double): moved as is, not checked again.
    """
    top = NonlinearityLayer(layer, nonlinearities.identity, name=name)
    top.nonlinearity = nonlinearity
    return top


def batch_norm(layer, **kwargs):
    """Insert a `BatchNormLayer` after `layer`, moving its nonlinearity after the BN.

    `layer`'s bias is removed (the BN's `beta` replaces it). As in Lasagne, a
    `NonlinearityLayer` follows whenever `layer` has a nonlinearity (identity included). The
    BN layer is named ``<layer name>_bn`` and the nonlinearity layer ``<layer name>_bn_nonlin``
    when `layer` has a name. Returns the last layer added.
    """
    nonlinearity = _steal(layer)
    name = getattr(layer, "name", None)
    bn_name = kwargs.pop("name", None) or (name and name + "_bn")
    layer = BatchNormLayer(layer, name=bn_name, **kwargs)
    if nonlinearity is not None:
        layer = _nonlinearity_on_top(layer, nonlinearity, bn_name and bn_name + "_nonlin")
    return layer


def _standardize_stack(layer, axes, suffix, learn_scale, learn_bias, kwargs):
    nonlinearity = _steal(layer)
    name = getattr(layer, "name", None)
    std_name = kwargs.pop("name", None) or (name and name + suffix)
    layer = StandardizationLayer(layer, axes=axes, name=std_name, **kwargs)
    if learn_scale:
        layer = ScaleLayer(layer, shared_axes="auto", name=std_name and std_name + "_scale")
    if learn_bias:
        layer = BiasLayer(layer, shared_axes="auto", name=std_name and std_name + "_bias")
    if nonlinearity is not None:
        layer = _nonlinearity_on_top(layer, nonlinearity, std_name and std_name + "_nonlin")
    return layer


def instance_norm(layer, learn_scale=True, learn_bias=True, **kwargs):
    """Instance normalization (Ulyanov et al. 2016) after `layer`, as Lasagne's macro.

    Adds a `StandardizationLayer` over the spatial axes, then (optionally) a per-channel
    `ScaleLayer` and `BiasLayer`, then `layer`'s nonlinearity in a `NonlinearityLayer`;
    `layer` loses its bias and nonlinearity. Layers are named ``<name>_in``,
    ``<name>_in_scale``, ``<name>_in_bias``, ``<name>_in_nonlin`` (or from ``name=``).
    Other keyword arguments go to the `StandardizationLayer`. Returns the last layer added.
    """
    return _standardize_stack(layer, "spatial", "_in", learn_scale, learn_bias, kwargs)


def layer_norm(layer, **kwargs):
    """Layer normalization (Ba et al. 2016) after `layer`, as Lasagne's macro.

    As `instance_norm`, standardizing over all axes after the batch axis ('features'), always
    with a learned per-channel scale and bias; layers are named ``<name>_ln...``.
    """
    return _standardize_stack(layer, "features", "_ln", True, True, kwargs)
