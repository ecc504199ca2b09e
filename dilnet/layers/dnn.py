"""Lasagne's ``lasagne.layers.dnn`` names, on dilnet's layers (no GPU or cuDNN needed).

Lasagne's module wrapped Theano's cuDNN Ops and raised `ImportError` on import unless Theano ran
on an NVIDIA GPU with cuDNN. This module always imports: the layers it names are dilnet's own,
which run on every PyTensor backend (the C VM and Numba on the CPU, JAX on a CPU or a GPU,
PyTorch). So ``from lasagne.layers.dnn import Conv3DDNNLayer`` ports as
``from dilnet.layers.dnn import Conv3DDNNLayer``.

| Lasagne (`lasagne.layers.dnn`) | here |
|---|---|
| `Conv2DDNNLayer`, `Conv3DDNNLayer` | `Conv2DLayer` / `Conv3DLayer` with the cuDNN layers' default ``flip_filters=False`` (a subclass each) |
| `Pool2DDNNLayer`, `Pool3DDNNLayer` | the same classes as `Pool2DLayer`, `Pool3DLayer` |
| `MaxPool2DDNNLayer`, `MaxPool3DDNNLayer` | the same classes as `MaxPool2DLayer`, `MaxPool3DLayer` |
| `BatchNormDNNLayer`, `batch_norm_dnn` | the same objects as `BatchNormLayer`, `batch_norm` |
| `SpatialPyramidPoolingDNNLayer` | not provided: accessing it raises `AttributeError` naming the alternative |

The aliases accept everything Lasagne's cuDNN layers accepted, with the same defaults and
results, and a little more: the pooling layers take ``ignore_border=False`` and
`BatchNormDNNLayer` takes any `axes` (Lasagne raised `NotImplementedError` / `ValueError`).
Convolutions differ from Lasagne's the way all of dilnet's do: ``pad='same'`` also takes even
kernels, and with ``stride > 1`` puts the odd extra element after (Lasagne padded ``k // 2`` on
both sides; pass ``pad=k // 2`` for its alignment).
"""

from .. import init, nonlinearities
from .conv import Conv2DLayer, Conv3DLayer
from .normalization import BatchNormLayer, batch_norm
from .pool import MaxPool2DLayer, MaxPool3DLayer, Pool2DLayer, Pool3DLayer

__all__ = [
    "BatchNormDNNLayer",
    "Conv2DDNNLayer",
    "Conv3DDNNLayer",
    "MaxPool2DDNNLayer",
    "MaxPool3DDNNLayer",
    "Pool2DDNNLayer",
    "Pool3DDNNLayer",
    "batch_norm_dnn",
]


class Conv2DDNNLayer(Conv2DLayer):
    """Lasagne's `Conv2DDNNLayer`: a `Conv2DLayer` that cross-correlates by default.

    Same signature and defaults as Lasagne's, ``flip_filters=False`` included; every argument
    means what it means for `ConvLayer` (``dilation`` is accepted too).

    Parameters
    ----------
    flip_filters : bool
        False (the default, as in Lasagne's cuDNN layer): cross-correlation. True: convolution,
        for weights learnt by a `Conv2DLayer`.

    Notes
    -----
    Weights saved from Lasagne's `Conv2DDNNLayer` were never flipped, and
    ``dilnet.interop.lasagne.set_lasagne_param_values`` loads them into this layer as they are
    (its default for these layers is Lasagne's ``flip_filters=False``).
    """

    def __init__(
        self,
        incoming,
        num_filters,
        filter_size,
        stride=(1, 1),
        pad=0,
        untie_biases=False,
        W=init.GlorotUniform(),
        b=init.Constant(0.0),
        nonlinearity=nonlinearities.rectify,
        flip_filters=False,
        num_groups=1,
        **kwargs,
    ):
        super().__init__(
            incoming, num_filters, filter_size, stride, pad, untie_biases, W, b, nonlinearity,
            flip_filters, num_groups, **kwargs,
        )  # fmt: skip


class Conv3DDNNLayer(Conv3DLayer):
    """Lasagne's `Conv3DDNNLayer`: a `Conv3DLayer` that cross-correlates by default.

    Input ``(batch, channels, depth, rows, columns)``. Same signature and defaults as Lasagne's,
    ``flip_filters=False`` included; every argument means what it means for `ConvLayer`
    (``dilation`` is accepted too: see also `DilatedConv3DLayer`).

    Parameters
    ----------
    flip_filters : bool
        False (the default, as in Lasagne's cuDNN layer): cross-correlation. True: convolution,
        for weights learnt by a `Conv3DLayer`.

    Notes
    -----
    Weights saved from Lasagne's `Conv3DDNNLayer` were never flipped, and
    ``dilnet.interop.lasagne.set_lasagne_param_values`` loads them into this layer as they are
    (its default for these layers is Lasagne's ``flip_filters=False``).
    """

    def __init__(
        self,
        incoming,
        num_filters,
        filter_size,
        stride=(1, 1, 1),
        pad=0,
        untie_biases=False,
        W=init.GlorotUniform(),
        b=init.Constant(0.0),
        nonlinearity=nonlinearities.rectify,
        flip_filters=False,
        num_groups=1,
        **kwargs,
    ):
        super().__init__(
            incoming, num_filters, filter_size, stride, pad, untie_biases, W, b, nonlinearity,
            flip_filters, num_groups, **kwargs,
        )  # fmt: skip


Pool2DDNNLayer = Pool2DLayer
Pool3DDNNLayer = Pool3DLayer
MaxPool2DDNNLayer = MaxPool2DLayer
MaxPool3DDNNLayer = MaxPool3DLayer
BatchNormDNNLayer = BatchNormLayer
batch_norm_dnn = batch_norm

#: Lasagne ``lasagne.layers.dnn`` names with no dilnet equivalent, and what to use instead.
NOT_PROVIDED = {
    "SpatialPyramidPoolingDNNLayer": (
        "dilnet has no spatial pyramid pooling layer. For a fixed input size, pool each level "
        "with a Pool2DLayer (pool_size=ceil(n / level), stride=n // level), flatten each with "
        "FlattenLayer(outdim=3) and join them with ConcatLayer(axis=2)."
    ),
    "dnn": (
        "dilnet wraps no cuDNN module: the layers of dilnet.layers.dnn are dilnet's own and run "
        "on every PyTensor backend (mode='JAX' uses a GPU where jax has CUDA; see the GPU page)."
    ),
}
NOT_PROVIDED["dnn_available"] = NOT_PROVIDED["dnn_enabled"] = NOT_PROVIDED["gpu_enabled"] = (
    "there is nothing to check: dilnet.layers.dnn imports without a GPU or cuDNN and its layers "
    "run on every PyTensor backend."
)


def __getattr__(name):
    # PEP 562: only called for names the module does not define
    if name in NOT_PROVIDED:
        raise AttributeError(
            f"dilnet.layers.dnn: Lasagne's `{name}` is not provided; {NOT_PROVIDED[name]}",
            name=name,
        )
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}", name=name)
