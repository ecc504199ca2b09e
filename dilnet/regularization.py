"""Weight penalties: Lasagne's ``lasagne.regularization`` with the same names and semantics.

A penalty maps one tensor to a symbolic scalar (`l1`, `l2`, or any callable that does);
`apply_penalty` sums it over a tensor or a list of tensors; the ``regularize_*`` helpers apply it
to the parameters of layers, by default only those tagged ``regularizable=True``: convolution and
dense weights and batch-norm ``gamma``, not biases, ``beta`` or the running averages.

    from dilnet.regularization import l2, regularize_network_params

    loss = loss + 1e-4 * regularize_network_params(net, l2)

Every result is a symbolic PyTensor scalar, ready to add to a loss and differentiate.
"""

from numbers import Number

import numpy as np
import pytensor
import pytensor.tensor as pt
from pytensor.graph.basic import Variable

from .layers import Layer, get_all_params

__all__ = [
    "apply_penalty",
    "l1",
    "l2",
    "regularize_layer_params",
    "regularize_layer_params_weighted",
    "regularize_network_params",
]


def l1(x):
    """The L1 norm of `x`: ``sum(abs(x))`` over all its elements.

    Parameters
    ----------
    x : tensor or array_like

    Returns
    -------
    TensorVariable
        A symbolic scalar.
    """
    return pt.sum(abs(pt.as_tensor_variable(x)))


def l2(x):
    """The squared L2 norm of `x`: ``sum(x ** 2)`` over all its elements (no square root).

    Parameters
    ----------
    x : tensor or array_like

    Returns
    -------
    TensorVariable
        A symbolic scalar; its gradient with respect to `x` is ``2 * x``.
    """
    return pt.sum(pt.as_tensor_variable(x) ** 2)


def _zero():
    return pt.as_tensor_variable(np.asarray(0, dtype=pytensor.config.floatX))


def apply_penalty(tensor_or_tensors, penalty, **kwargs):
    """The sum of ``penalty(x, **kwargs)`` over a tensor or a list of tensors.

    Parameters
    ----------
    tensor_or_tensors : tensor, array or iterable of them
        A single tensor (a PyTensor variable, a numpy array or a number) is penalised as a
        whole; any other iterable is taken as a list of tensors.
    penalty : callable
        ``penalty(x, **kwargs)`` returns a scalar, e.g. `l1` or `l2`.
    **kwargs
        Passed to `penalty`.

    Returns
    -------
    TensorVariable
        A symbolic scalar; 0 (of dtype ``floatX``) for an empty list.

    Notes
    -----
    Lasagne tried to iterate first and fell back to a single tensor on a `TypeError`. PyTensor
    can iterate a tensor whose first axis has a static length, which would penalise its rows one
    by one, so tensors are recognised by type instead.
    """
    if isinstance(tensor_or_tensors, Variable | np.ndarray | Number):
        return penalty(tensor_or_tensors, **kwargs)
    terms = [penalty(x, **kwargs) for x in tensor_or_tensors]
    # Python's sum, as Lasagne (its ``0 +`` is folded away when compiled), so graphs compare
    # equal to Lasagne's; nothing to penalise is a symbolic zero rather than the int 0
    return sum(terms) if terms else _zero()


def regularize_layer_params(layer, penalty, tags=None, **kwargs):
    """`penalty` applied to the parameters of one layer or of a list of layers.

    Only the layers given are used, not the layers below them (see
    `regularize_network_params`).

    Parameters
    ----------
    layer : Layer or list of Layer
    penalty : callable
        ``penalty(x, **kwargs)`` returns a scalar, e.g. `l1` or `l2`.
    tags : dict, optional
        Tag filter for ``layer.get_params(**tags)``; None (the default) is Lasagne's
        ``{'regularizable': True}``.
    **kwargs
        Passed to `penalty`.

    Returns
    -------
    TensorVariable
        A symbolic scalar. As in Lasagne, a parameter shared by two layers of the list is
        counted twice.
    """
    tags = {"regularizable": True} if tags is None else tags
    layers = [layer] if isinstance(layer, Layer) else layer
    params = [p for each in layers for p in each.get_params(**tags)]
    return apply_penalty(params, penalty, **kwargs)


def regularize_layer_params_weighted(layers, penalty, tags=None, **kwargs):
    """The sum over ``{layer: coefficient}`` of ``coefficient * penalty`` of the layer's
    parameters.

    Parameters
    ----------
    layers : dict
        Maps each `Layer` to its coefficient (a number or a symbolic scalar).
    penalty : callable
        ``penalty(x, **kwargs)`` returns a scalar, e.g. `l1` or `l2`.
    tags : dict, optional
        Tag filter for ``layer.get_params(**tags)``; None (the default) is Lasagne's
        ``{'regularizable': True}``.
    **kwargs
        Passed to `penalty`.

    Returns
    -------
    TensorVariable
        A symbolic scalar; 0 (of dtype ``floatX``) for an empty dict.
    """
    tags = {"regularizable": True} if tags is None else tags
    terms = [
        coeff * apply_penalty(layer.get_params(**tags), penalty, **kwargs)
        for layer, coeff in layers.items()
    ]
    return sum(terms) if terms else _zero()


def regularize_network_params(layer, penalty, tags=None, **kwargs):
    """`penalty` applied to the parameters of `layer` and of every layer below it.

    Parameters
    ----------
    layer : Layer or list of Layer
        The network's output layer(s); parameters come from `dilnet.layers.get_all_params`,
        each once.
    penalty : callable
        ``penalty(x, **kwargs)`` returns a scalar, e.g. `l1` or `l2`.
    tags : dict, optional
        Tag filter for `get_all_params`; None (the default) is Lasagne's
        ``{'regularizable': True}``.
    **kwargs
        Passed to `penalty`.

    Returns
    -------
    TensorVariable
        A symbolic scalar.
    """
    tags = {"regularizable": True} if tags is None else tags
    return apply_penalty(get_all_params(layer, **tags), penalty, **kwargs)
