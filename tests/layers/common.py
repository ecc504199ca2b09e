"""Shared helpers for the layer tests."""

import numpy as np
import pytensor

from dilnet import layers as L

FAST = "FAST_COMPILE"  # Python VM: no C compilation or JIT per graph


def evaluate(layer, *values, mode=FAST, **kwargs):
    """Compile `layer`'s output for its input layers (in get_all_layers order) and run it."""
    inputs = [x for x in L.get_all_layers(layer) if isinstance(x, L.InputLayer)]
    out = L.get_output(layer, **kwargs)
    return pytensor.function([x.input_var for x in inputs], out, mode=mode)(*values)


def rng(seed):
    return np.random.default_rng(seed)
