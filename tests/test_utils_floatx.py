"""`dilnet.utils.floatX` is Lasagne's ``lasagne.utils.floatX``:
``np.asarray(arr, dtype=theano.config.floatX)``, with PyTensor's config read at call time."""

import numpy as np
import pytensor
import pytest

import dilnet as lasagne
from dilnet.utils import floatX


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize(
    "arr",
    [[1, 2, 3], [[0.5, -1.25], [2.0, 3.0]], 7, 2.5, np.arange(6, dtype="int64").reshape(2, 3)],
    ids=["list", "nested", "int", "float", "int64-array"],
)
def test_casts_to_the_configured_floatX(arr, dtype):
    with pytensor.config.change_flags(floatX=dtype):
        out = floatX(arr)
    assert isinstance(out, np.ndarray)
    assert out.dtype == np.dtype(dtype)
    assert out.shape == np.shape(arr)
    np.testing.assert_array_equal(out, np.array(arr, dtype="float64"))


def test_an_array_of_that_dtype_is_returned_without_a_copy():
    with pytensor.config.change_flags(floatX="float32"):
        a = np.ones((2, 3), dtype="float32")
        assert floatX(a) is a
        b = np.ones((2, 3), dtype="float64")
        cast = floatX(b)
        assert cast is not b and cast.dtype == np.float32


def test_float64_values_round_like_numpy_when_cast_to_float32():
    values = np.array([0.1, 1 / 3, 1e-40])
    with pytensor.config.change_flags(floatX="float32"):
        np.testing.assert_array_equal(floatX(values), values.astype(np.float32))


def test_reachable_as_lasagne_utils_floatX():
    # ported code reads `lasagne.utils.floatX(...)` after `import dilnet as lasagne`
    assert lasagne.utils.floatX is floatX
    assert "floatX" in lasagne.utils.__all__
