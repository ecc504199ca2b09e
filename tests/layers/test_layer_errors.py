"""Bad layer arguments fail at build time with one clear message naming layer and argument."""

import pytest

from dilnet import ConfigError, ShapeError
from dilnet import layers as L

VOL = (None, 4, 9, 9, 9)


@pytest.mark.parametrize(
    "build, error, message",
    [
        (
            lambda i: L.Conv3DLayer(i, 0, 3),
            ConfigError,
            r"Conv3DLayer: invalid value for `num_filters`. Expected a positive int; received num_filters=0",
        ),
        (
            lambda i: L.Conv3DLayer(i, 8, (3, 3)),
            ConfigError,
            r"`filter_size`. Expected a single int or an iterable of int, length 3",
        ),
        (
            lambda i: L.Conv3DLayer(i, 8, 3, dilation=(1, 0, 1)),
            ConfigError,
            r"`dilation`. Expected positive integers",
        ),
        (
            lambda i: L.Conv3DLayer(i, 8, 3, pad="half"),
            ConfigError,
            r"`pad`. Expected 'valid', 'full', 'same'",
        ),
        (
            lambda i: L.Conv3DLayer(i, 6, 3, num_groups=4),
            ShapeError,
            r"`num_groups`. Expected a divisor of both the 4 input channels and num_filters=6",
        ),
        (
            lambda i: L.Conv2DLayer(i, 8, 3),
            ShapeError,
            r"Conv2DLayer: invalid value for `input shape`. Expected 4 input dimensions",
        ),
        (
            lambda i: L.Conv3DLayer(i, 8, 3, dilation=5, name="deep"),
            ShapeError,
            r"'deep' \(Conv3DLayer\): along spatial axis 0 the dilated kernel spans 11 elements \(filter_size=3, dilation=5\) but the input has 9",
        ),
        (
            lambda i: L.MaxPool3DLayer(i, 2, pad=1, ignore_border=False),
            ConfigError,
            r"`ignore_border`. Expected True when pad is not 0",
        ),
        (
            lambda i: L.PoolLayer(i, 2, mode="median"),
            ConfigError,
            r"`mode`. Expected one of \('max', 'average_inc_pad', 'average_exc_pad'\)",
        ),
        (lambda i: L.MaxPool3DLayer(i, 10), ShapeError, r"shorter than the pool window 10"),
        (lambda i: L.ReshapeLayer(i, ([0], 5, -1)), ShapeError, r"cannot reshape input shape"),
        (lambda i: L.ReshapeLayer(i, ([0], -1, -1)), ConfigError, r"at most one -1"),
        (lambda i: L.DimshuffleLayer(i, (0, 1, 2, 3)), ShapeError, r"drops axis 4"),
        (
            lambda i: L.SliceLayer(i, 12, axis=2),
            ShapeError,
            r"`indices`. Expected an index into axis 2 of length 9",
        ),
        (
            lambda i: L.PadLayer(i, (1, 2)),
            ConfigError,
            r"`width`. Expected an int, or 3 ints or \(before, after\) pairs",
        ),
        (
            lambda i: L.ConcatLayer([i, L.InputLayer((None, 4, 8, 9, 9))]),
            ShapeError,
            r"inputs disagree on axis 2.*set `cropping`",
        ),
        (
            lambda i: L.ElemwiseSumLayer([i, i], coeffs=[1, 2, 3]),
            ConfigError,
            r"`coeffs`. Expected a number or 2 numbers",
        ),
        (
            lambda i: L.BatchNormLayer(i, axes=(0, 7)),
            ConfigError,
            r"`axes`. Expected 'auto' or axes of a 5-d input",
        ),
        (
            lambda i: L.BiasLayer(L.InputLayer((None, None, 3)), shared_axes=(0,)),
            ConfigError,
            r"`shared_axes`. Expected axes covering every unknown length",
        ),
        (
            lambda i: L.TransposedConv3DLayer(
                L.InputLayer((None, 4, 3, 3, 3)), 4, 3, crop="full", dilation=3
            ),
            ShapeError,
            r"crop='full' removes more",
        ),
        (
            lambda i: L.Conv3DLayer(L.InputLayer((None, None, 5, 5, 5)), 4, 3),
            ShapeError,
            r"Expected a known number of channels",
        ),
        (
            lambda i: (
                L.Conv3DLayer(i, 4, 3, untie_biases=True, pad="same")
                and L.Conv3DLayer(L.InputLayer((None, 4, None, 5, 5)), 4, 3, untie_biases=True)
            ),
            ShapeError,
            r"`untie_biases`. Expected False when the output's spatial lengths are unknown",
        ),
        (
            lambda i: L.InputLayer((None, 0, 3)),
            ConfigError,
            r"InputLayer: invalid value for `shape`",
        ),
        (
            lambda i: L.Conv3DLayer("input", 4, 3),
            ConfigError,
            r"`incoming`. Expected a Layer, an object with an output_shape, or a shape tuple",
        ),
    ],
)
def test_bad_arguments_raise_one_clear_error(build, error, message):
    with pytest.raises(error, match=message):
        build(L.InputLayer(VOL))


def test_errors_are_also_builtin_value_errors():
    with pytest.raises(ValueError):
        L.Conv3DLayer(L.InputLayer(VOL), 8, 3, stride=0)
