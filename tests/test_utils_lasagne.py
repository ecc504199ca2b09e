"""`dilnet.utils` under Lasagne's ``lasagne.utils`` names: each against a hand-computed value or a
numpy loop, and the errors (dilnet's, also the builtin Lasagne raised)."""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from dilnet.errors import ConfigError, ConfigTypeError, ShapeError, UnsupportedInputError
from dilnet.utils import (
    as_theano_expression,
    as_tuple,
    collect_shared_vars,
    compute_norms,
    create_param,
    inspect_kwargs,
    int_types,
    one_hot,
    shared_empty,
    unique,
)


def test_int_types_cover_python_and_numpy_integers():
    for value in (3, np.int8(3), np.uint16(3), np.int64(3), np.zeros((4, 2)).shape[0]):
        assert isinstance(value, int_types)
    for value in (3.0, np.float32(3), "3", None):
        assert not isinstance(value, int_types)


@pytest.mark.parametrize("dim", [0, 1, 3])
def test_shared_empty_holds_ones_shape_zeros(dim):
    var = shared_empty(dim, dtype="int16")
    assert var.get_value().shape == (1,) * dim
    assert var.get_value().dtype == np.int16
    assert not var.get_value().any()
    var.set_value(np.ones((2,) * dim, dtype="int16"))  # any lengths of that rank fit


def test_shared_empty_defaults_to_floatx():
    with pytensor.config.change_flags(floatX="float32"):
        assert shared_empty().dtype == "float32"
        assert shared_empty().ndim == 2


def test_as_theano_expression():
    x = pt.matrix()
    assert as_theano_expression(x) is x
    c = as_theano_expression(np.arange(3))
    assert isinstance(c, pt.TensorConstant) and list(c.data) == [0, 1, 2]
    with pytest.raises(ConfigTypeError, match="as_theano_expression: invalid value for `input`"):
        as_theano_expression({})
    assert issubclass(ConfigTypeError, TypeError)


def test_collect_shared_vars_order_is_a_left_first_walk():
    x, y, z = (pytensor.shared(np.float64(i), name=n) for i, n in enumerate("xyz"))
    assert collect_shared_vars([z, x, z, y]) == [z, x, y]
    assert collect_shared_vars(y * (z + x)) == [y, z, x]
    assert collect_shared_vars((z - y) * x) == [z, y, x]
    assert collect_shared_vars([pt.exp(x) + pt.vector(), np.float64(2) * y]) == [x, y]
    assert collect_shared_vars(pt.vector() + 1) == []


def test_one_hot_against_a_loop():
    labels = np.array([2, 0, 3, 3, 1])
    expected = np.zeros((5, 4))
    for row, label in enumerate(labels):
        expected[row, label] = 1
    np.testing.assert_array_equal(one_hot(labels).eval(), expected)
    wide = one_hot(pt.as_tensor_variable(labels), 6).eval()
    assert wide.shape == (5, 6) and (wide[:, :4] == expected).all() and not wide[:, 4:].any()


def test_unique_keeps_first_occurrences():
    assert unique([3, 1, 3, 2, 1]) == [3, 1, 2]
    assert unique("abca") == ["a", "b", "c"]


def test_as_tuple_lasagne_semantics():
    assert as_tuple(2, 3) == (2, 2, 2)
    assert as_tuple([1, "a"], 2) == (1, "a")
    assert as_tuple((np.int64(4), 5), 2, int_types) == (4, 5)
    assert all(type(v) is int for v in as_tuple((np.int64(4), 5), 2, int_types))
    assert as_tuple(None, 2) == (None, None)


def test_as_tuple_errors_name_the_argument():
    with pytest.raises(
        ConfigError, match=r"as_tuple: .*an iterable of length 4; received x=\[1, 2, 3\]"
    ):
        as_tuple([1, 2, 3], 4)
    with pytest.raises(ConfigTypeError, match=r"an iterable of int, length 4; received x='abcd'"):
        as_tuple("abcd", 4, int)
    with pytest.raises(ConfigTypeError, match=r"an iterable of int or float, length 2"):
        as_tuple(("a", 1), 2, (int, float))
    with pytest.raises(
        ConfigTypeError, match=r"conv: invalid value for `stride`.*received stride=True"
    ):
        as_tuple(True, 2, int_types, name="stride", where="conv")  # bools are no ints here
    with pytest.raises(ConfigError, match=r"`pad`. Expected values >= 0; received pad=\(1, -1\)"):
        as_tuple((1, -1), 2, int_types, name="pad", where="conv", minimum=0)
    with pytest.raises(ConfigError, match=r"Expected positive integers; received k=0"):
        as_tuple(0, 3, int_types, name="k", where="conv", minimum=1)


def test_inspect_kwargs():
    def f(a, b, c=1, *args, d=2, **kwargs):
        return a

    assert inspect_kwargs(f) == ["c"]
    assert inspect_kwargs(lambda: 0) == []
    assert inspect_kwargs(lambda x, y=1, z=2: 0) == ["y", "z"]


def _norms_loop(array, axes):
    keep = [a for a in range(array.ndim) if a not in axes]
    out = np.zeros([array.shape[a] for a in keep])
    for index in np.ndindex(*array.shape):
        out[tuple(index[a] for a in keep)] += float(array[index]) ** 2
    return np.sqrt(out)


@pytest.mark.parametrize(
    ("shape", "axes"),
    [((5,), ()), ((3, 4), (0,)), ((2, 3, 4), (1, 2)), ((2, 1, 3, 2, 2), (1, 2, 3, 4))],
)
def test_compute_norms_default_axes(shape, axes):
    array = np.random.default_rng(len(shape)).normal(size=shape).astype("float32")
    got = compute_norms(array)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, _norms_loop(array, axes), rtol=1e-5)
    np.testing.assert_allclose(compute_norms(pytensor.shared(array)).eval(), got, rtol=1e-5)


def test_compute_norms_given_axes_and_errors():
    array = np.random.default_rng(7).normal(size=(2, 3, 4, 5, 2, 2))
    np.testing.assert_allclose(compute_norms(array, norm_axes=(0, 3)), _norms_loop(array, (0, 3)))
    with pytest.raises(ConfigError, match="Unsupported tensor dimensionality 6"):
        compute_norms(array)
    with pytest.raises(UnsupportedInputError, match="Unsupported type list"):
        compute_norms([[1.0, 2.0]])
    assert issubclass(UnsupportedInputError, RuntimeError)


def test_create_param_from_arrays_numbers_and_callables():
    array = np.arange(6, dtype="int16").reshape(2, 3)
    param = create_param(array, (2, 3), name="W")
    assert param.dtype == "int16" and param.name == "W"  # the array's dtype, as Lasagne
    array[0, 0] = 99  # copied: the parameter does not follow later edits
    assert param.get_value()[0, 0] == 0
    assert create_param(np.float64(2.5), ()).get_value() == 2.5
    assert create_param(lambda shape: np.ones(shape, "float32"), iter([1, 4])).broadcastable == (
        True,
        False,
    )


def test_create_param_passes_variables_through_after_checking_them():
    shared = pytensor.shared(np.zeros((2, 3)))
    assert create_param(shared, (2, 3), name="b") is shared and shared.name == "b"
    named = pytensor.shared(np.zeros(2), name="mine")
    assert create_param(named, (2,), name="other").name == "mine"
    expr = shared * 2
    assert create_param(lambda shape: expr, (2, 3)) is expr
    with pytest.raises(ShapeError, match=r"`parameter.ndim`. Expected 3 for shape \(2, 3, 4\)"):
        create_param(shared, (2, 3, 4))
    with pytest.raises(
        ShapeError, match=r"`W.shape`. Expected \(3, 2\); received W.shape=\(2, 3\)"
    ):
        create_param(np.zeros((2, 3)), (3, 2), name="W")


@pytest.mark.parametrize("shape", [(0, 2), (-1, 3)])
def test_create_param_refuses_non_positive_lengths(shape):
    with pytest.raises(ShapeError, match="every length must be positive"):
        create_param(np.zeros, shape)


def test_create_param_refuses_what_is_no_parameter():
    with pytest.raises(ConfigTypeError, match="what the callable spec returned was a dict"):
        create_param(lambda shape: {}, (1, 2))
    with pytest.raises(ConfigTypeError, match="spec was a str"):
        create_param("W", (1, 2))
    with pytest.raises(ConfigTypeError, match="a numeric array"):
        create_param(np.array([["a"]]), (1, 1))
