"""`DropoutLayer` (Srivastava et al. 2014)."""

import numpy as np
import pytensor
import pytensor.tensor as pt
from pytensor.tensor.random.basic import binomial

from .. import random as dilnet_random
from ..errors import ConfigError, invalid
from ..utils import is_int
from .base import Layer, add_state_update, describe

__all__ = ["DropoutLayer", "dropout", "dropout_channels", "spatial_dropout"]


class DropoutLayer(Layer):
    """Set input elements to zero with probability `p` during training.

    Parameters
    ----------
    p : float
        Drop probability, ``0 <= p < 1``.
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
        if not isinstance(p, int | float) or isinstance(p, bool) or not 0 <= p < 1:
            raise ConfigError(invalid(where, "p", "a probability in [0, 1)", p))
        rank = len(self.input_shape)
        axes = (shared_axes,) if is_int(shared_axes) else tuple(shared_axes)
        if not all(is_int(a) and -rank <= a < rank for a in axes):
            raise ConfigError(
                invalid(where, "shared_axes", f"axes of a {rank}-d input", shared_axes)
            )
        self.p, self.rescale = float(p), bool(rescale)
        self.shared_axes = tuple(sorted({a % rank for a in axes}))
        rng = dilnet_random.get_rng()
        seed = (
            int(rng.integers(1, 2**31)) if hasattr(rng, "integers") else int(rng.randint(1, 2**31))
        )
        self._rng = pytensor.shared(
            np.random.default_rng(seed), name=f"{self.name or 'dropout'}.rng"
        )

    def get_output_for(self, input, deterministic=False, **kwargs):
        if deterministic or self.p == 0:
            return input
        retain = 1 - self.p
        if self.rescale:
            input = input / np.asarray(retain, dtype=input.dtype)
        mask_shape = tuple(
            1 if a in self.shared_axes else input.shape[a] for a in range(input.ndim)
        )
        next_rng, mask = binomial(1, retain, size=mask_shape, rng=self._rng, return_next_rng=True)
        mask = pt.cast(mask, input.dtype)
        if self.shared_axes:
            mask = pt.specify_broadcastable(mask, *self.shared_axes)
        out = input * mask
        return add_state_update(out, self._rng, next_rng)


dropout = DropoutLayer


def dropout_channels(incoming, *args, **kwargs):
    """`DropoutLayer` sharing the mask over all spatial axes: drops whole channels."""
    rank = len(incoming.output_shape if isinstance(incoming, Layer) else incoming)
    kwargs["shared_axes"] = tuple(range(2, rank))
    return DropoutLayer(incoming, *args, **kwargs)


spatial_dropout = dropout_channels
