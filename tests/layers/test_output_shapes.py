"""`output_shape` equals the compiled output's shape for every layer type, built on inputs with
known lengths and on inputs with unknown (None) lengths."""

import numpy as np
import pytest
from common import evaluate, rng

from dilnet import layers as L

SHAPE = (2, 4, 7, 6, 5)

CATALOGUE = {
    "ConvLayer": lambda i: L.ConvLayer(
        i, 3, (3, 2, 1), stride=(2, 1, 3), dilation=(1, 2, 1), pad="same"
    ),
    "Conv3DLayer-valid": lambda i: L.Conv3DLayer(i, 3, 3, dilation=2),
    "Conv3DLayer-full": lambda i: L.Conv3DLayer(i, 2, 2, pad="full", stride=2),
    "DilatedConv3DLayer": lambda i: L.DilatedConv3DLayer(i, 5, 3, dilation=(1, 2, 1), pad="same"),
    "TransposedConv3DLayer": lambda i: L.TransposedConv3DLayer(i, 3, 3, stride=2, crop=1),
    "TransposedConv3DLayer-same": lambda i: L.TransposedConv3DLayer(
        i, 3, 2, stride=(2, 1, 3), crop="same"
    ),
    "MaxPool3DLayer": lambda i: L.MaxPool3DLayer(i, 2),
    "Pool3DLayer-border": lambda i: L.Pool3DLayer(
        i, 3, stride=2, ignore_border=False, mode="average_exc_pad"
    ),
    "Upscale3DLayer": lambda i: L.Upscale3DLayer(i, (1, 2, 3)),
    "PadLayer": lambda i: L.PadLayer(i, [1, (0, 2), 3]),
    "SliceLayer": lambda i: L.SliceLayer(i, slice(1, 5, 2), axis=2),
    "SliceLayer-int": lambda i: L.SliceLayer(i, 0, axis=1),
    "ReshapeLayer": lambda i: L.ReshapeLayer(i, ([0], [1], -1)),
    "DimshuffleLayer": lambda i: L.DimshuffleLayer(i, (0, 2, 3, 4, "x", 1)),
    "FlattenLayer": lambda i: L.FlattenLayer(i, 3),
    "NonlinearityLayer": lambda i: L.NonlinearityLayer(i),
    "BiasLayer": lambda i: L.BiasLayer(i),
    "ScaleLayer": lambda i: L.ScaleLayer(i),
    "ExpressionLayer-auto": lambda i: L.ExpressionLayer(
        i, lambda x: x[:, :, ::2], output_shape="auto"
    ),
    "BatchNormLayer": lambda i: L.BatchNormLayer(i),
    "DropoutLayer": lambda i: L.DropoutLayer(i, 0.5),
    "ParametricRectifierLayer": lambda i: L.ParametricRectifierLayer(i),
    "ElemwiseSumLayer": lambda i: L.ElemwiseSumLayer([i, L.Conv3DLayer(i, 4, 1)]),
    "ConcatLayer": lambda i: L.ConcatLayer([i, L.Conv3DLayer(i, 2, 3, pad="same")]),
    "ConcatLayer-cropped": lambda i: L.ConcatLayer(
        [i, L.Conv3DLayer(i, 2, 3)], cropping=[None, None, "center", "center", "center"]
    ),
}


@pytest.mark.parametrize("known", [True, False], ids=["known", "unknown"])
@pytest.mark.parametrize("name", sorted(CATALOGUE))
def test_output_shape_matches_compiled_shape(name, known):
    shape = SHAPE if known else (None, 4, None, None, None)
    inp = L.InputLayer(shape)
    layer = CATALOGUE[name](inp)
    x = rng(len(name)).standard_normal(SHAPE)
    inputs = [x for layer_ in L.get_all_layers(layer) if isinstance(layer_, L.InputLayer)]
    got = np.asarray(evaluate(layer, *inputs)).shape
    static = layer.output_shape
    assert len(static) == len(got)
    for s, g in zip(static, got):
        assert s is None or s == g, (static, got)
    if known:
        assert static == got
    assert (
        L.get_output_shape(
            layer, {l_: SHAPE for l_ in L.get_all_layers(layer) if isinstance(l_, L.InputLayer)}
        )
        == got
    )
