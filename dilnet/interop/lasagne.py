"""Load parameter values saved by Lasagne into an equivalent dilnet layer graph.

Lasagne users saved ``lasagne.layers.get_all_param_values(network)`` — a list of arrays, often
with ``np.savez(path, *values)`` or in a pickle (the Lasagne Recipes model zoo). Build the same
network with `dilnet.layers` (change the imports), then:

    from dilnet.interop.lasagne import load_npz, set_lasagne_param_values
    set_lasagne_param_values(network, load_npz("model.npz"))

Two layouts differ and are converted:

- Lasagne's `DilatedConv2DLayer` stored ``W`` as ``(channels, num_filters, rows, cols)``;
  dilnet's stores ``(num_filters, channels, rows, cols)``. Weights of dilnet's
  `DilatedConv2DLayer` / `DilatedConv3DLayer` are transposed, and so are those of any layer
  named in `dilated_layers` (for a port that uses ``ConvLayer(..., dilation=...)`` instead).
- Lasagne's convolutions flipped their filters by default (``flip_filters=True``; its dilated
  layer never did). Where the dilnet layer's `flip_filters` differs from the Lasagne layer's
  (`lasagne_flip_filters`), the kernel is reversed along every spatial axis so that both
  compute the same function.

Pickles are not read (``pickle.load`` runs arbitrary code); convert them once in an environment
you trust with ``np.savez(path, *values)``.
"""

import zipfile

import numpy as np

from ..errors import ConfigError, ShapeError, invalid
from ..layers.conv import ConvLayer, DilatedConv2DLayer, TransposedConvLayer
from ..layers.dnn import Conv2DDNNLayer, Conv3DDNNLayer
from ..layers.helper import _layer_params, set_all_param_values

__all__ = ["convert_lasagne_param_values", "load_npz", "set_lasagne_param_values"]


def load_npz(path):
    """The arrays of an ``np.savez(path, *values)`` file, in order (``arr_0``, ``arr_1``, …).

    Read with ``allow_pickle=False``: object arrays are refused.
    """
    try:
        with np.load(path, allow_pickle=False) as data:
            names = list(data.files)
            if not all(n.startswith("arr_") and n[4:].isdigit() for n in names):
                raise ConfigError(
                    invalid(
                        "load_npz",
                        "path",
                        "an .npz written by np.savez(path, *values) (arrays arr_0, arr_1, ...)",
                        f"{path} with arrays {names[:5]}",
                    )
                )
            return [data[n] for n in sorted(names, key=lambda n: int(n[4:]))]
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        if isinstance(err, ConfigError):
            raise
        raise ConfigError(f"load_npz: cannot read {path}: {err}") from err


def convert_lasagne_param_values(
    layer, values, lasagne_flip_filters=True, dilated_layers=(), **tags
):
    """`values` (Lasagne's order and layouts) converted to dilnet's layouts, same order.

    Parameters
    ----------
    layer : Layer
        The output layer of the dilnet network equivalent to the Lasagne one.
    values : list of array
        From Lasagne's ``get_all_param_values(network, **tags)``.
    lasagne_flip_filters : bool or dict
        The ``flip_filters`` of the Lasagne convolution layers (Lasagne's default True), or a
        dict ``{layer name: bool}`` with Lasagne's defaults for names left out (True for
        convolutions; False for transposed ones and for the cuDNN layers of
        `dilnet.layers.dnn`, ``Conv2DDNNLayer``/``Conv3DDNNLayer``, whose Lasagne originals
        default to False). Lasagne's `DilatedConv2DLayer` is always taken as False; a bool
        applies to the plain convolutions only: transposed and cuDNN layers keep False unless
        named in a dict.
    dilated_layers : iterable of str
        Names of dilnet layers whose weights came from a Lasagne `DilatedConv2DLayer`, when the
        dilnet layer is a plain `ConvLayer` (dilnet's dilated layers are recognised by type).
    """
    pairs = _layer_params(layer, **tags)
    values = [np.asarray(v) for v in values]
    if len(values) != len(pairs):
        raise ShapeError(
            invalid(
                "convert_lasagne_param_values",
                "len(values)",
                f"{len(pairs)} arrays, one per parameter",
                len(values),
            )
        )
    dilated_layers = set(dilated_layers)
    out = []
    for (owner, param), value in zip(pairs, values, strict=True):
        is_weight = isinstance(owner, ConvLayer | TransposedConvLayer) and param is owner.W
        if not is_weight or value.ndim < 3:
            out.append(value)
            continue
        from_dilated = isinstance(owner, DilatedConv2DLayer) or owner.name in dilated_layers
        if from_dilated:
            value = np.swapaxes(value, 0, 1)
            source_flip = False
        else:
            default = not isinstance(owner, TransposedConvLayer | Conv2DDNNLayer | Conv3DDNNLayer)
            if isinstance(lasagne_flip_filters, dict):
                source_flip = lasagne_flip_filters.get(owner.name, default)
            else:
                source_flip = bool(lasagne_flip_filters) if default else False
        if source_flip != owner.flip_filters:
            value = value[(slice(None), slice(None)) + (slice(None, None, -1),) * (value.ndim - 2)]
        out.append(np.ascontiguousarray(value))
    return out


def set_lasagne_param_values(layer, values, lasagne_flip_filters=True, dilated_layers=(), **tags):
    """Convert `values` (see `convert_lasagne_param_values`) and set them on `layer`'s graph.

    Everything is checked before anything changes (`dilnet.layers.set_all_param_values`).
    """
    converted = convert_lasagne_param_values(
        layer, values, lasagne_flip_filters, dilated_layers, **tags
    )
    set_all_param_values(layer, converted, **tags)
