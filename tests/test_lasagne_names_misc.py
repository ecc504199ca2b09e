"""Lasagne behaviours of dilnet's objectives, nonlinearities, init, updates and regularization
that Lasagne's own suite checks: each against a hand-computed value or a loop."""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.graph.basic import equal_computations

from dilnet import init, layers, nonlinearities, objectives, regularization, updates
from dilnet.errors import ConfigError, RankError, UnsupportedInputError


@pytest.mark.parametrize("delta", [0.5, 1.0, 2])
def test_huber_loss_against_its_two_pieces(delta):
    p = np.array([0.0, 0.2, -1.0, 3.0, 1.5], dtype="float32")
    t = np.array([0.0, 0.0, 0.5, 0.0, 1.5], dtype="float32")
    expected = []
    for a, b in zip(p, t, strict=True):
        d = abs(float(a) - float(b))
        expected.append(0.5 * d * d if d <= delta else delta * (d - delta / 2))
    got = objectives.huber_loss(pt.as_tensor(p), pt.as_tensor(t), delta).eval()
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_huber_loss_aligns_a_vector_with_a_column():
    p, t = pt.matrix(shape=(None, 1)), pt.vector()
    loss = objectives.huber_loss(p, t)
    assert loss.ndim == 2
    got = loss.eval({p: np.array([[0.0], [3.0]]), t: np.array([1.0, 0.0])})
    np.testing.assert_allclose(got, [[0.5], [2.5]])


def test_aggregate_normalized_sum_divides_by_the_weights_sum():
    x, w = pt.matrix(), pt.matrix()
    got = objectives.aggregate(x, w, "normalized_sum")
    assert equal_computations([got], [(x * w).sum() / w.sum()])
    column = pt.matrix(shape=(None, 1))
    value = objectives.aggregate(x, column, "normalized_sum").eval(
        {x: np.array([[1.0, 3.0], [5.0, 7.0]]), column: np.array([[1.0], [0.0]])}
    )
    assert value == pytest.approx((1 + 3) / 2)  # a (batch, 1) weight counts once per element


def test_rank_mismatches_are_type_errors_too():
    with pytest.raises(RankError, match="rank mismatch between targets and predictions"):
        objectives.categorical_accuracy(pt.vector(), pt.matrix())
    with pytest.raises(RankError, match="rank mismatch"):
        objectives.multiclass_hinge_loss(pt.tensor3(), pt.tensor4())
    assert issubclass(RankError, TypeError) and issubclass(RankError, ValueError)


def test_rectify_of_an_array_is_an_array():
    x = np.array([-1.5, 0.0, 2.0], dtype="float32")
    got = nonlinearities.rectify(x)
    assert isinstance(got, np.ndarray) and got.dtype == np.float32
    np.testing.assert_array_equal(got, [0.0, 0.0, 2.0])


@pytest.mark.parametrize(
    "make", [init.GlorotUniform, init.GlorotNormal, init.HeNormal, init.HeUniform, init.Orthogonal]
)
def test_initializers_refuse_one_axis_with_a_runtime_error(make):
    with pytest.raises(UnsupportedInputError, match="at least 2 dimensions"):
        make().sample((100,))
    assert issubclass(UnsupportedInputError, RuntimeError)


def test_c01b_needs_four_axes_and_sparse_two():
    with pytest.raises(RuntimeError, match="exactly 4 dimensions"):
        init.GlorotUniform(c01b=True).sample((10, 10))
    with pytest.raises(RuntimeError, match="exactly 2 dimensions"):
        init.Sparse().sample((10,))


def test_glorot_and_he_are_direct_initializer_subclasses():
    assert init.Glorot.__bases__ == (init.Initializer,) == init.He.__bases__
    std = init.Glorot(init.Normal).sample((300, 500)).std()
    assert std == pytest.approx(np.sqrt(2 / 800), rel=0.02)


def test_get_or_compute_grads_returns_a_given_list_as_is():
    a, b = pytensor.shared(1), pytensor.shared(2)  # integer shared variables: gradient 0
    grads = updates.get_or_compute_grads(a * b, [a, b])
    assert [float(g.eval()) for g in grads] == [0.0, 0.0]
    assert updates.get_or_compute_grads(grads, [a, b]) is grads
    with pytest.raises(ConfigError, match="one per parameter"):
        updates.get_or_compute_grads(grads, [a])
    with pytest.raises(ConfigError, match=r"params\[1\]"):
        updates.get_or_compute_grads(a + pt.scalar(), [a, pt.scalar()])
    with pytest.raises(ConfigError, match="floating-point shared variable"):
        updates.sgd(a * b, [a, b], 0.1)  # the update rules need float parameters


def test_norm_constraint_names_the_unsupported_rank():
    with pytest.raises(ConfigError, match="Unsupported tensor dimensionality 6"):
        updates.norm_constraint(pytensor.shared(np.ones((1,) * 6)), 1.0)


def test_weighted_layer_penalties_sum_like_lasagne():
    inp = layers.InputLayer((None, 4))
    l2, l3 = layers.DenseLayer(inp, 3), layers.DenseLayer(inp, 2)
    loss = regularization.regularize_layer_params_weighted({l2: 0.1, l3: 0.5}, regularization.l2)
    expected = sum(
        [
            0.1 * regularization.apply_penalty([l2.W], regularization.l2),
            0.5 * regularization.apply_penalty([l3.W], regularization.l2),
        ]
    )
    assert equal_computations([loss], [expected])
    by_hand = 0.1 * (l2.W.get_value() ** 2).sum() + 0.5 * (l3.W.get_value() ** 2).sum()
    assert float(loss.eval()) == pytest.approx(by_hand)
