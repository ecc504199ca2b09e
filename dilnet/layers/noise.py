"""`DropoutLayer` (Srivastava et al. 2014)."""

from numbers import Real

import numpy as np
import pytensor
import pytensor.tensor as pt
from pytensor.graph.basic import Variable
from pytensor.tensor.random.basic import normal, uniform

from .. import random as dilnet_random
from ..errors import ConfigError, invalid
from ..utils import is_int
from .base import Layer, add_state_update, describe

__all__ = [
    "DropoutLayer",
    "GaussianNoiseLayer",
    "dropout",
    "dropout_channels",
    "dropout_locations",
    "spatial_dropout",
]


def _is_real(value) -> bool:
    """Python and numpy ints and floats (``np.float32(0.5)`` too), not bools."""
    return isinstance(value, Real) and not isinstance(value, bool | np.bool_)


def _layer_rng(layer):
    """A shared generator seeded from `dilnet.random.get_rng()`."""
    seed = dilnet_random.draw_seed()
    return pytensor.shared(np.random.default_rng(seed), name=f"{layer.name or 'noise'}.rng")


class DropoutLayer(Layer):
    """Set input elements to zero with probability `p` during training.

    Parameters
    ----------
    p : float or scalar tensor
        Drop probability, ``0 <= p < 1`` (a shared scalar lets you change it between steps).
    rescale : bool
        Divide the kept elements by ``1 - p`` so the expected sum is unchanged (inverted
        dropout); deterministic outputs are then the input itself.
    shared_axes : tuple of int
        Axes along which one mask value is shared, e.g. the spatial axes for dropping whole
        channels of a volume.

    Notes
    -----
    ``get_output(..., deterministic=True)`` returns the input unchanged. The layer's random
    generator is a shared variable seeded from `dilnet.random.get_rng()`; its advance is
    attached to the output like batch-norm's updates (see
    `dilnet.layers.collect_state_updates`), so each training step draws a new mask when the
    updates from `dilnet.updates` are used.
    """

    def __init__(self, incoming, p=0.5, rescale=True, shared_axes=(), **kwargs):
        super().__init__(incoming, **kwargs)
        where = describe(self)
        symbolic = isinstance(p, Variable) and p.ndim == 0
        if not symbolic and (not _is_real(p) or not 0 <= p < 1):
            raise ConfigError(invalid(where, "p", "a probability in [0, 1) or a scalar tensor", p))
        rank = len(self.input_shape)
        axes = (shared_axes,) if is_int(shared_axes) else tuple(shared_axes)
        if not all(is_int(a) and -rank <= a < rank for a in axes):
            raise ConfigError(
                invalid(where, "shared_axes", f"axes of a {rank}-d input", shared_axes)
            )
        self.p, self.rescale = (p if symbolic else float(p)), bool(rescale)
        self.shared_axes = tuple(sorted({a % rank for a in axes}))
        self._rng = _layer_rng(self)

    def get_output_for(self, input, deterministic=False, **kwargs):
        if deterministic or (not isinstance(self.p, Variable) and self.p == 0):
            return input
        retain = 1 - self.p
        if self.rescale:
            input = input / pt.cast(retain, input.dtype)
        mask_shape = tuple(
            1 if a in self.shared_axes else input.shape[a] for a in range(input.ndim)
        )
        # Bernoulli(retain) from a uniform: every linker has uniform (JAX's has no binomial
        # without NumPyro)
        # drop where u < p, so that p == 0 keeps everything even where u rounds to 1
        next_rng, u = uniform(0, 1, size=mask_shape, rng=self._rng, return_next_rng=True)
        mask = pt.cast(pt.ge(u, self.p), input.dtype)
        if self.shared_axes:
            mask = pt.specify_broadcastable(mask, *self.shared_axes)
        out = input * mask
        return add_state_update(out, self._rng, next_rng)


dropout = DropoutLayer


class GaussianNoiseLayer(Layer):
    """Add zero-mean Gaussian noise of standard deviation `sigma` during training.

    ``get_output(..., deterministic=True)`` returns the input; the generator advances like
    `DropoutLayer`'s.
    """

    def __init__(self, incoming, sigma=0.1, **kwargs):
        super().__init__(incoming, **kwargs)
        if not isinstance(sigma, Variable) and (not _is_real(sigma) or sigma < 0):
            raise ConfigError(invalid(describe(self), "sigma", "a non-negative number", sigma))
        self.sigma = sigma
        self._rng = _layer_rng(self)

    def get_output_for(self, input, deterministic=False, **kwargs):
        if deterministic or (not isinstance(self.sigma, Variable) and self.sigma == 0):
            return input
        next_rng, noise = normal(
            0, self.sigma, size=input.shape, rng=self._rng, return_next_rng=True
        )
        return add_state_update(input + pt.cast(noise, input.dtype), self._rng, next_rng)


def dropout_channels(incoming, *args, **kwargs):
    """`DropoutLayer` sharing the mask over all spatial axes: drops whole channels."""
    rank = len(incoming.output_shape if isinstance(incoming, Layer) else incoming)
    kwargs["shared_axes"] = tuple(range(2, rank))
    return DropoutLayer(incoming, *args, **kwargs)


spatial_dropout = dropout_channels


def dropout_locations(incoming, *args, **kwargs):
    """`DropoutLayer` sharing the mask over the channels (axis 1): drops every channel of a
    location together."""
    kwargs["shared_axes"] = (1,)
    return DropoutLayer(incoming, *args, **kwargs)
