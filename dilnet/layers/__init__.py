"""Lasagne-style layer graph on PyTensor (`import lasagne.layers` ports to `dilnet.layers`).

Layers are built on each other (``Conv3DLayer(InputLayer((None, 1, None, None, None)), 32,
3)``), and the helpers turn a graph into expressions (`get_output`), shapes, parameter lists
and values. One N-d class per kind with rank aliases (`ConvLayer` -> `Conv3DLayer`).
"""

from .base import (
    Layer,
    MergeLayer,
    add_state_update,
    collect_state_updates,
    create_param,
    describe,
)
from .conv import (
    Conv1DLayer,
    Conv2DLayer,
    Conv3DLayer,
    ConvLayer,
    Deconv2DLayer,
    Deconv3DLayer,
    DilatedConv2DLayer,
    DilatedConv3DLayer,
    TransposedConv2DLayer,
    TransposedConv3DLayer,
    TransposedConvLayer,
)
from .dense import (
    DenseLayer,
)
from .helper import (
    count_params,
    get_all_layers,
    get_all_param_values,
    get_all_params,
    get_output,
    get_output_shape,
    set_all_param_values,
)
from .input import (
    InputLayer,
)
from .merge import (
    ConcatLayer,
    ElemwiseMergeLayer,
    ElemwiseSumLayer,
    autocrop,
    autocrop_array_shapes,
    concat,
)
from .noise import (
    DropoutLayer,
    GaussianNoiseLayer,
    dropout,
    dropout_channels,
    spatial_dropout,
)
from .normalization import (
    BatchNormLayer,
    batch_norm,
)
from .pool import (
    MaxPool1DLayer,
    MaxPool2DLayer,
    MaxPool3DLayer,
    Pool1DLayer,
    Pool2DLayer,
    Pool3DLayer,
    PoolLayer,
    Upscale1DLayer,
    Upscale2DLayer,
    Upscale3DLayer,
    UpscaleLayer,
)
from .recurrent import (
    CustomRecurrentLayer,
    Gate,
    GRULayer,
    LSTMLayer,
    RecurrentLayer,
)
from .shape import (
    DimshuffleLayer,
    FlattenLayer,
    PadLayer,
    ReshapeLayer,
    SliceLayer,
    dimshuffle,
    flatten,
    pad,
    pad_tensor,
    reshape,
)
from .special import (
    BiasLayer,
    ExpressionLayer,
    NonlinearityLayer,
    ParametricRectifierLayer,
    ScaleLayer,
    prelu,
)

__all__ = [
    "BatchNormLayer",
    "BiasLayer",
    "ConcatLayer",
    "Conv1DLayer",
    "Conv2DLayer",
    "Conv3DLayer",
    "ConvLayer",
    "CustomRecurrentLayer",
    "Deconv2DLayer",
    "Deconv3DLayer",
    "DenseLayer",
    "DilatedConv2DLayer",
    "DilatedConv3DLayer",
    "DimshuffleLayer",
    "DropoutLayer",
    "ElemwiseMergeLayer",
    "ElemwiseSumLayer",
    "ExpressionLayer",
    "FlattenLayer",
    "GRULayer",
    "Gate",
    "GaussianNoiseLayer",
    "InputLayer",
    "LSTMLayer",
    "Layer",
    "MaxPool1DLayer",
    "MaxPool2DLayer",
    "MaxPool3DLayer",
    "MergeLayer",
    "NonlinearityLayer",
    "PadLayer",
    "ParametricRectifierLayer",
    "Pool1DLayer",
    "Pool2DLayer",
    "Pool3DLayer",
    "PoolLayer",
    "RecurrentLayer",
    "ReshapeLayer",
    "ScaleLayer",
    "SliceLayer",
    "TransposedConv2DLayer",
    "TransposedConv3DLayer",
    "TransposedConvLayer",
    "Upscale1DLayer",
    "Upscale2DLayer",
    "Upscale3DLayer",
    "UpscaleLayer",
    "add_state_update",
    "autocrop",
    "autocrop_array_shapes",
    "batch_norm",
    "collect_state_updates",
    "concat",
    "count_params",
    "create_param",
    "describe",
    "dimshuffle",
    "dropout",
    "dropout_channels",
    "flatten",
    "get_all_layers",
    "get_all_param_values",
    "get_all_params",
    "get_output",
    "get_output_shape",
    "pad",
    "pad_tensor",
    "prelu",
    "reshape",
    "set_all_param_values",
    "spatial_dropout",
]

# Lasagne's cuDNN module names (`lasagne.layers.dnn`); not star-exported, as in Lasagne
from . import dnn as dnn
