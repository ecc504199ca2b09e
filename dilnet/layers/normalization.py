"""Batch normalization (Ioffe & Szegedy 2015) with Lasagne's `BatchNormLayer` contract."""

import warnings

import pytensor.tensor as pt
from pytensor.graph.replace import clone_replace

from .. import init, nonlinearities
from ..errors import ConfigError, invalid
from ..utils import is_int
from .base import Layer, add_state_update, describe
from .special import NonlinearityLayer

__all__ = ["BatchNormLayer", "batch_norm"]


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
                    f"all axes of unknown length in input shape {self.input_shape}",
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


def batch_norm(layer, **kwargs):
    """Insert a `BatchNormLayer` after `layer`, moving its nonlinearity after the BN.

    `layer`'s bias is removed (the BN's `beta` replaces it). As in Lasagne, a
    `NonlinearityLayer` follows whenever `layer` has a nonlinearity (identity included). The BN layer is named
    ``<layer name>_bn`` and the nonlinearity layer ``<layer name>_bn_nonlin`` when `layer` has
    a name. Returns the last layer added.
    """
    nonlinearity = getattr(layer, "nonlinearity", None)
    if nonlinearity is not None:
        layer.nonlinearity = nonlinearities.identity
    if getattr(layer, "b", None) is not None:
        del layer.params[layer.b]
        layer.b = None
    bn_name = kwargs.pop("name", None) or (layer.name and layer.name + "_bn")
    layer = BatchNormLayer(layer, name=bn_name, **kwargs)
    if nonlinearity is not None:
        nonlin_name = bn_name and bn_name + "_nonlin"
        layer = NonlinearityLayer(layer, nonlinearity, name=nonlin_name)
    return layer
