"""Bad input to dilated_conv raises one documented error naming the argument, before compiling."""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from dilnet.errors import ConfigError, ConfigTypeError, DilnetError, ShapeError
from dilnet.ops import dilated_conv


def _x(shape=(1, 4, 8, 8, 8), dtype="float64"):
    return pt.tensor("x", dtype=dtype, shape=shape)


def _W(shape=(4, 4, 3, 3, 3), dtype="float64"):
    return pt.tensor("W", dtype=dtype, shape=shape)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            {"dilation": (1, 0, 4)},
            ConfigError,
            r"`dilation`\. Expected positive integers; received dilation=\(1, 0, 4\)",
        ),
        (
            {"dilation": (1, 2)},
            ConfigError,
            r"`dilation`\. Expected a single int or an iterable of int, length 3; received dilation=\(1, 2\)",
        ),
        ({"stride": 0}, ConfigError, r"`stride`\. Expected positive integers; received stride=0"),
        (
            {"stride": 1.5},
            ConfigTypeError,
            r"`stride`\. Expected a single int or an iterable of int, length 3; received stride=1\.5",
        ),
        ({"pad": -1}, ConfigError, r"`pad`\. Expected .*no negative values.*received pad=-1"),
        (
            {"pad": "half"},
            ConfigError,
            r"`pad`\. Expected 'valid', 'full', 'same', a non-negative int, .*received pad='half'",
        ),
        ({"pad": ((1, 1), (2,), 0)}, ConfigError, r"`pad`\..*received pad=\(\(1, 1\), \(2,\), 0\)"),
        ({"groups": 0}, ConfigError, r"`groups`\. Expected a positive int; received groups=0"),
        (
            {"groups": 3},
            ShapeError,
            r"`groups`\. Expected a divisor of the 4 output channels of W; received groups=3",
        ),
    ],
)
def test_argument_errors_name_the_argument(kwargs, error, match):
    with pytest.raises(error, match="^dilated_conv: invalid value for " + match):
        dilated_conv(_x(), _W(), **kwargs)


def test_errors_are_dilnet_errors_and_value_errors():
    with pytest.raises(ValueError) as info:
        dilated_conv(_x(), _W(), dilation=0)
    assert isinstance(info.value, DilnetError)


def test_wrong_ndim():
    with pytest.raises(
        ShapeError, match=r"`x.ndim`\. Expected 3, 4 or 5: .*; received x.ndim=2\.$"
    ):
        dilated_conv(pt.matrix("x"), pt.matrix("W"))
    with pytest.raises(ShapeError, match=r"`W.ndim`\. Expected 5 like x: .*; received W.ndim=4\.$"):
        dilated_conv(_x(), pt.tensor4("W"))


def test_integer_dtype():
    with pytest.raises(
        ConfigError, match=r"`x.dtype`\. Expected float32 or float64; received x.dtype='int32'"
    ):
        dilated_conv(_x(dtype="int32"), _W())


def test_channel_mismatch():
    with pytest.raises(
        ShapeError,
        match=r"invalid value for `W.shape\[1\]`\. Expected x.shape\[1\] / groups = 4 / 2 .*; received W.shape\[1\]=3\.",
    ):
        dilated_conv(_x(shape=(1, 4, 8, 8, 8)), _W(shape=(4, 3, 3, 3, 3)), groups=2)


def test_empty_kernel():
    with pytest.raises(
        ShapeError, match=r"`W.shape\[2\]`\. Expected a kernel size >= 1; received W.shape\[2\]=0"
    ):
        dilated_conv(_x(), _W(shape=(4, 4, 0, 3, 3)), pad="valid")


def test_flip_filters_must_be_a_bool():
    with pytest.raises(
        ConfigError, match=r"`flip_filters`\. Expected True or False; received flip_filters='no'"
    ):
        dilated_conv(_x(), _W(), flip_filters="no")


def test_kernel_larger_than_padded_input_at_build_time():
    with pytest.raises(
        ShapeError,
        match=r"along spatial axis 1 the dilated kernel spans 9 elements \(filter_size=3, dilation=4\) "
        r"but the padded input has only 8 \(length 8, pad=\(0, 0\)\)",
    ):
        dilated_conv(_x(), _W(), dilation=(1, 4, 1), pad="valid")


def test_kernel_larger_than_padded_input_at_run_time():
    """With unknown static shapes the same error comes when the function runs."""
    x = pt.tensor("x", shape=(None,) * 4)
    y = dilated_conv(x, pt.constant(np.ones((1, 1, 3, 3))), dilation=3, pad="valid")
    f = pytensor.function([x], y, mode="FAST_COMPILE")
    with pytest.raises(ShapeError, match=r"dilated kernel spans 7 elements .* only 5"):
        f(np.ones((1, 1, 5, 9)))
