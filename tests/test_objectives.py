"""dilnet.objectives against independent numpy oracles, hand-computed examples and PyTorch."""

import itertools

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.tensor.special import softmax

from dilnet.errors import ConfigError, RankError, ShapeError
from dilnet.objectives import (
    aggregate,
    binary_accuracy,
    binary_crossentropy,
    binary_hinge_loss,
    categorical_accuracy,
    categorical_crossentropy,
    dice_score,
    label_mask,
    multiclass_hinge_loss,
    soft_dice,
    squared_error,
)

SHAPE = (2, 4, 5, 6, 3)  # (batch, classes, *spatial)
C = SHAPE[1]
IGNORE = 255


def compile_(inputs, outputs):
    return pytensor.function(inputs, outputs, mode="FAST_COMPILE")


def ptensor(name="p", ndim=5, dtype="float64"):
    return pt.tensor(name, dtype=dtype, shape=(None,) * ndim)


def labels_var(name="y", ndim=4, dtype="int64"):
    return pt.tensor(name, dtype=dtype, shape=(None,) * ndim)


def np_softmax(z, axis=1):
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def volume(seed, ignore_fraction=0.0):
    """Logits, probabilities and labels (some set to IGNORE) for a (2, 4, 5, 6, 3) volume."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=SHAPE)
    labels = rng.integers(0, C, size=SHAPE[:1] + SHAPE[2:])
    labels[rng.random(labels.shape) < ignore_fraction] = IGNORE
    return logits, np_softmax(logits), labels


def one_hot(labels, classes=C):
    """(batch, *spatial) labels -> (batch, classes, *spatial); out-of-range labels give zeros."""
    out = np.zeros((labels.shape[0], classes, *labels.shape[1:]))
    for idx in np.ndindex(labels.shape):
        if 0 <= labels[idx] < classes:
            out[(idx[0], labels[idx], *idx[1:])] = 1.0
    return out


# ----------------------------------------------------------------------------- oracles


def ce_oracle(probs, targets, ignore=None, class_weights=None, eps=1e-7):
    """Loop over voxels: -w_y log max(p_y, eps), or -sum_c w_c t_c log max(p_c, eps)."""
    out = np.zeros(probs.shape[:1] + probs.shape[2:])
    w = np.ones(probs.shape[1]) if class_weights is None else class_weights
    for b, *x in np.ndindex(out.shape):
        if targets.ndim == probs.ndim - 1:
            y = targets[(b, *x)]
            if ignore is not None and y == ignore:
                continue
            out[(b, *x)] = -w[y] * np.log(max(probs[(b, y, *x)], eps))
        else:
            out[(b, *x)] = -sum(
                w[c] * targets[(b, c, *x)] * np.log(max(probs[(b, c, *x)], eps))
                for c in range(probs.shape[1])
            )
    return out


def soft_dice_oracle(probs, labels, smooth, ignore=None, square=False):
    """Per (batch, class): sums accumulated voxel by voxel, skipping ignored voxels."""
    B, K = probs.shape[:2]
    out = np.zeros((B, K))
    for b, c in itertools.product(range(B), range(K)):
        inter = sp = st = 0.0
        for x in np.ndindex(labels.shape[1:]):
            y = labels[(b, *x)]
            if ignore is not None and y == ignore:
                continue
            pv, tv = probs[(b, c, *x)], float(y == c)
            inter += pv * tv
            sp += pv**2 if square else pv
            st += tv**2 if square else tv
        out[b, c] = 1 - (2 * inter + smooth) / (sp + st + smooth)
    return out


def dice_oracle(probs, labels, ignore=None, ignore_empty=True):
    B, K = probs.shape[:2]
    pred = probs.argmax(axis=1)
    out = np.zeros((B, K))
    for b, c in itertools.product(range(B), range(K)):
        keep = np.ones(labels.shape[1:], bool) if ignore is None else labels[b] != ignore
        p, t = (pred[b] == c) & keep, (labels[b] == c) & keep
        inter, sp, st = (p & t).sum(), p.sum(), t.sum()
        if st == 0 and ignore_empty:
            out[b, c] = np.nan
        elif sp + st == 0:
            out[b, c] = 1.0
        else:
            out[b, c] = 2 * inter / (sp + st)
    return out


def accuracy_oracle(probs, labels, top_k, ignore=None):
    out = np.zeros(labels.shape, bool)
    for b, *x in np.ndindex(labels.shape):
        y = labels[(b, *x)]
        if ignore is not None and y == ignore:
            continue
        scores = probs[(b, slice(None), *x)]
        out[(b, *x)] = y in np.argsort(-scores)[:top_k]
    return out


def multiclass_hinge_oracle(scores, labels, delta, ignore=None):
    out = np.zeros(labels.shape)
    for b, *x in np.ndindex(labels.shape):
        y = labels[(b, *x)]
        if ignore is not None and y == ignore:
            continue
        s = scores[(b, slice(None), *x)]
        others = max(s[c] for c in range(len(s)) if c != y)
        out[(b, *x)] = max(0.0, others - s[y] + delta)
    return out


# ----------------------------------------------------------------------------- cross-entropy


@pytest.mark.parametrize("ignore", [None, IGNORE, 0])
@pytest.mark.parametrize("use_class_weights", [False, True])
def test_categorical_crossentropy_labels(ignore, use_class_weights):
    _, probs, labels = volume(1, ignore_fraction=0.2 if ignore == IGNORE else 0.0)
    w = np.array([0.5, 2.0, 1.0, 3.0]) if use_class_weights else None
    p, y = ptensor(), labels_var()
    loss = categorical_crossentropy(p, y, ignore_label=ignore, class_weights=w)
    assert loss.ndim == 4
    got = compile_([p, y], loss)(probs, labels)
    np.testing.assert_allclose(got, ce_oracle(probs, labels, ignore, w), rtol=1e-12)
    if ignore is not None:
        assert (labels == ignore).any()
        assert np.all(got[labels == ignore] == 0)
        assert np.all(got[labels != ignore] > 0)


def test_categorical_crossentropy_one_hot_and_soft_targets():
    rng = np.random.default_rng(2)
    _, probs, labels = volume(2)
    soft = np_softmax(rng.normal(size=SHAPE))
    w = np.array([1.0, 0.25, 2.0, 4.0])
    p, t = ptensor(), ptensor("t")
    f = compile_([p, t], categorical_crossentropy(p, t, class_weights=w))
    np.testing.assert_allclose(f(probs, soft), ce_oracle(probs, soft, class_weights=w), rtol=1e-12)
    # One-hot targets give the same loss as the labels they encode.
    y = labels_var()
    g = compile_([p, y], categorical_crossentropy(p, y, class_weights=w))
    np.testing.assert_allclose(f(probs, one_hot(labels)), g(probs, labels), rtol=1e-12)


def test_categorical_crossentropy_voxel_weights():
    rng = np.random.default_rng(3)
    _, probs, labels = volume(3, ignore_fraction=0.2)
    v = rng.random(labels.shape)
    p, y, vw = ptensor(), labels_var(), ptensor("v", ndim=4)
    loss = categorical_crossentropy(p, y, ignore_label=IGNORE, weights=vw)
    got = compile_([p, y, vw], loss)(probs, labels, v)
    np.testing.assert_allclose(got, v * ce_oracle(probs, labels, IGNORE), rtol=1e-12)


def test_categorical_crossentropy_lasagne_2d_and_channels_last():
    _, probs, labels = volume(4)
    flat_p = np.moveaxis(probs, 1, -1).reshape(-1, C)  # (items, classes): Lasagne's layout
    flat_y = labels.reshape(-1)
    p2, y1 = ptensor(ndim=2), labels_var(ndim=1)
    got = compile_([p2, y1], categorical_crossentropy(p2, y1))(flat_p, flat_y)
    expected = -np.log(flat_p[np.arange(len(flat_y)), flat_y])
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    # The class axis may be last (axis=-1).
    p, y = ptensor(), labels_var()
    last = compile_([p, y], categorical_crossentropy(p, y, axis=-1))
    np.testing.assert_allclose(last(np.moveaxis(probs, 1, -1), labels), ce_oracle(probs, labels))


def test_categorical_crossentropy_clips_zero_probabilities():
    probs = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    p, y, t = ptensor(ndim=2), labels_var(ndim=1), ptensor("t", ndim=2)
    by_label = compile_([p, y], categorical_crossentropy(p, y))(probs, np.array([1, 1]))
    np.testing.assert_allclose(by_label, [-np.log(1e-7), 0.0])
    # one-hot targets: the 0 * log(0) terms are 0, not nan
    by_onehot = compile_([p, t], categorical_crossentropy(p, t, eps=1e-3))(probs, np.eye(3)[[1, 1]])
    np.testing.assert_allclose(by_onehot, [-np.log(1e-3), 0.0])


def test_categorical_crossentropy_keeps_float32():
    p, y8 = ptensor(dtype="float32"), labels_var(dtype="uint8")
    loss = categorical_crossentropy(p, y8, ignore_label=IGNORE, class_weights=np.ones(C))
    assert loss.dtype == "float32"
    _, probs, labels = volume(5, ignore_fraction=0.2)
    f = compile_([p, y8], loss)
    out = f(probs.astype("float32"), labels.astype("uint8"))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, ce_oracle(probs, labels, IGNORE), rtol=1e-5)


def test_crossentropy_gradient_is_softmax_minus_onehot_on_labelled_voxels():
    logits, probs, labels = volume(6, ignore_fraction=0.25)
    z, y = ptensor("z"), labels_var()
    cost = categorical_crossentropy(softmax(z, axis=1), y, ignore_label=IGNORE).sum()
    grad = compile_([z, y], pytensor.grad(cost, z))(logits, labels)
    # d/dz_c of -log softmax(z)_y = softmax(z)_c - [c == y]; ignored voxels: 0.
    expected = probs - one_hot(labels)
    labelled = (labels != IGNORE)[:, None]
    expected = np.where(labelled, expected, 0.0)
    assert (~labelled).any()
    np.testing.assert_allclose(grad, expected, atol=1e-12)


@pytest.mark.torch
def test_crossentropy_matches_torch_ignore_index_and_weight():
    import torch
    import torch.nn.functional as F

    logits, probs, labels = volume(7, ignore_fraction=0.2)
    w = np.array([0.5, 2.0, 1.0, 3.0])
    tl, ty, tw = torch.from_numpy(logits), torch.from_numpy(labels), torch.from_numpy(w)

    p, y = ptensor(), labels_var()
    plain = categorical_crossentropy(p, y, ignore_label=IGNORE)
    weighted = categorical_crossentropy(p, y, ignore_label=IGNORE, class_weights=w)
    f = compile_(
        [p, y],
        [
            aggregate(plain, label_mask(y, IGNORE), mode="normalized_sum"),
            aggregate(plain, label_mask(y, IGNORE, w), mode="normalized_sum"),
            weighted.sum() / label_mask(y, IGNORE, w).sum(),
            weighted,
        ],
    )
    mean, wmean, wmean2, elementwise = f(probs, labels)
    torch_mean = F.cross_entropy(tl, ty, ignore_index=IGNORE).item()
    torch_wmean = F.cross_entropy(tl, ty, weight=tw, ignore_index=IGNORE).item()
    torch_none = F.cross_entropy(tl, ty, weight=tw, ignore_index=IGNORE, reduction="none")
    np.testing.assert_allclose(mean, torch_mean, rtol=1e-10)
    np.testing.assert_allclose(wmean, torch_wmean, rtol=1e-10)
    np.testing.assert_allclose(wmean2, torch_wmean, rtol=1e-10)
    np.testing.assert_allclose(elementwise, torch_none.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.torch
def test_crossentropy_matches_torch_probability_targets_with_weight():
    import torch
    import torch.nn.functional as F

    rng = np.random.default_rng(8)
    logits, probs, _ = volume(8)
    soft = np_softmax(rng.normal(size=SHAPE))
    w = np.array([1.0, 0.25, 2.0, 4.0])
    p, t = ptensor(), ptensor("t")
    got = compile_([p, t], categorical_crossentropy(p, t, class_weights=w))(probs, soft)
    expected = F.cross_entropy(
        torch.from_numpy(logits),
        torch.from_numpy(soft),
        weight=torch.from_numpy(w),
        reduction="none",
    )
    np.testing.assert_allclose(got, expected.numpy(), rtol=1e-10)


# ----------------------------------------------------------------------------- label_mask, aggregate


def test_label_mask():
    labels = np.array([[0, 3, IGNORE], [IGNORE, 1, 2]])
    y = labels_var(ndim=2)
    w = np.array([0.5, 2.0, 1.0, 3.0])
    f = compile_([y], [label_mask(y, IGNORE), label_mask(y, IGNORE, w), label_mask(y)])
    mask, weights, ones = f(labels)
    assert mask.dtype == np.dtype(pytensor.config.floatX)
    np.testing.assert_array_equal(mask, [[1, 1, 0], [0, 1, 1]])
    np.testing.assert_array_equal(weights, [[0.5, 3.0, 0.0], [0.0, 2.0, 1.0]])
    np.testing.assert_array_equal(ones, np.ones((2, 3)))


@pytest.mark.parametrize(
    ("mode", "use_weights", "oracle"),
    [
        ("mean", False, lambda L, W: L.sum() / L.size),
        ("sum", False, lambda L, W: L.sum()),
        ("mean", True, lambda L, W: (L * W).sum() / L.size),
        ("sum", True, lambda L, W: (L * W).sum()),
        ("normalized_sum", True, lambda L, W: (L * W).sum() / W.sum()),
    ],
)
def test_aggregate_modes(mode, use_weights, oracle):
    rng = np.random.default_rng(9)
    L, W = rng.random((2, 5, 6, 3)), rng.random((2, 5, 6, 3))
    loss, weights = ptensor("L", ndim=4), ptensor("W", ndim=4)
    out = aggregate(loss, weights if use_weights else None, mode=mode)
    assert out.ndim == 0
    got = compile_([loss, weights], out)(L, W) if use_weights else compile_([loss], out)(L)
    np.testing.assert_allclose(got, oracle(L, W), rtol=1e-12)


def test_aggregate_broadcasts_per_sample_weights():
    L = np.arange(12.0).reshape(2, 6)
    loss = ptensor("L", ndim=2)
    weights = pt.tensor("W", dtype="float64", shape=(None, 1))  # PyTensor broadcasts static 1s
    f = compile_([loss, weights], aggregate(loss, weights, "normalized_sum"))
    # sample 0 weighted 1, sample 1 weighted 0: the mean of sample 0 alone
    np.testing.assert_allclose(f(L, np.array([[1.0], [0.0]])), L[0].mean())


# ----------------------------------------------------------------------------- binary losses


def test_binary_crossentropy():
    rng = np.random.default_rng(10)
    P, T = rng.random((2, 1, 5, 6, 3)), rng.random((2, 1, 5, 6, 3))
    P.flat[:3] = [0.0, 1.0, 0.5]
    T.flat[:3] = [0.0, 1.0, 1.0]
    p, t = ptensor(), ptensor("t")
    got = compile_([p, t], binary_crossentropy(p, t))(P, T)
    expected = np.zeros_like(P)
    for i in np.ndindex(P.shape):
        p_, t_ = P[i], T[i]
        expected[i] = -t_ * np.log(max(p_, 1e-7)) - (1 - t_) * np.log(max(1 - p_, 1e-7))
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    assert got.flat[0] == 0 and got.flat[1] == 0  # saturated but right: no nan
    np.testing.assert_allclose(got.flat[2], np.log(2))


def test_binary_losses_align_vector_targets_with_a_column():
    col = pt.tensor("p", dtype="float64", shape=(None, 1))
    vec = pt.vector("t", dtype="float64")
    P, T = np.array([[0.2], [0.9], [0.6]]), np.array([0.0, 1.0, 1.0])
    out = [
        binary_crossentropy(col, vec),
        squared_error(col, vec),
        binary_accuracy(col, vec),
        binary_hinge_loss(col, vec, log_odds=False),
    ]
    assert all(o.type.shape[1] == 1 for o in out)
    bce, se, acc, hinge = compile_([col, vec], out)(P, T)
    np.testing.assert_allclose(bce[:, 0], -np.log([0.8, 0.9, 0.6]))
    np.testing.assert_allclose(se[:, 0], [0.04, 0.01, 0.16])
    np.testing.assert_array_equal(acc[:, 0], [True, True, True])
    z = np.log(P[:, 0] / (1 - P[:, 0]))
    np.testing.assert_allclose(hinge[:, 0], np.maximum(0, 1 - z * (2 * T - 1)))


def test_squared_error():
    rng = np.random.default_rng(11)
    A, B = rng.normal(size=SHAPE), rng.normal(size=SHAPE)
    a, b = ptensor("a"), ptensor("b")
    got = compile_([a, b], squared_error(a, b))(A, B)
    expected = np.empty_like(A)
    for i in np.ndindex(A.shape):
        expected[i] = (A[i] - B[i]) * (A[i] - B[i])
    np.testing.assert_allclose(got, expected, rtol=1e-12)


@pytest.mark.parametrize("log_odds", [True, False])
@pytest.mark.parametrize("binary", [True, False])
@pytest.mark.parametrize("delta", [1, 0.5])
def test_binary_hinge_loss(log_odds, binary, delta):
    rng = np.random.default_rng(12)
    P = rng.normal(size=(2, 1, 5, 6, 3)) if log_odds else rng.uniform(0.01, 0.99, (2, 1, 5, 6, 3))
    T01 = rng.integers(0, 2, size=P.shape).astype(float)
    T = T01 if binary else 2 * T01 - 1
    p, t = ptensor(), ptensor("t")
    loss = binary_hinge_loss(p, t, delta=delta, log_odds=log_odds, binary=binary)
    got = compile_([p, t], loss)(P, T)
    expected = np.empty_like(P)
    for i in np.ndindex(P.shape):
        z = P[i] if log_odds else np.log(P[i] / (1 - P[i]))
        sign = 1.0 if T01[i] == 1 else -1.0
        expected[i] = max(0.0, delta - sign * z)
    np.testing.assert_allclose(got, expected, rtol=1e-12)


@pytest.mark.parametrize("ignore", [None, IGNORE])
def test_multiclass_hinge_loss(ignore):
    logits, _, labels = volume(13, ignore_fraction=0.2 if ignore else 0.0)
    p, y, t = ptensor(), labels_var(), ptensor("t")
    f = compile_([p, y], multiclass_hinge_loss(p, y, delta=0.5, ignore_label=ignore))
    got = f(logits, labels)
    np.testing.assert_allclose(got, multiclass_hinge_oracle(logits, labels, 0.5, ignore))
    assert (got > 0).any() and (got == 0).any()
    if ignore is None:
        g = compile_([p, t], multiclass_hinge_loss(p, t, 0.5))
        np.testing.assert_allclose(g(logits, one_hot(labels)), got)


# ----------------------------------------------------------------------------- soft Dice


def test_soft_dice_hand_computed():
    # one sample, 2 classes, 4 voxels; labels [0, 0, 1, 1]
    probs = np.array([[[0.9, 0.6, 0.2, 0.1], [0.1, 0.4, 0.8, 0.9]]])
    labels = np.array([[0, 0, 1, 1]])
    p, y = ptensor(ndim=3), labels_var(ndim=2)
    f = compile_([p, y], soft_dice(p, y, smooth=0.0))
    # class 0: 2*(0.9+0.6) / (1.8 + 2) = 3/3.8; class 1: 2*(0.8+0.9) / (2.2 + 2) = 3.4/4.2
    np.testing.assert_allclose(f(probs, labels), [[1 - 3 / 3.8, 1 - 3.4 / 4.2]], rtol=1e-12)
    # with ignore_label=1, class-1 voxels leave every sum: class 0 sums over voxels 0 and 1
    g = compile_([p, y], soft_dice(p, y, smooth=1.0, ignore_label=1))
    np.testing.assert_allclose(
        g(probs, labels), [[1 - (2 * 1.5 + 1) / (1.5 + 2 + 1), 1 - 1 / (0.5 + 0 + 1)]]
    )


@pytest.mark.parametrize(
    ("smooth", "ignore", "square"),
    [(1e-5, None, False), (1.0, IGNORE, False), (1e-5, IGNORE, True), (0.0, 0, False)],
)
def test_soft_dice_volume(smooth, ignore, square):
    _, probs, labels = volume(14, ignore_fraction=0.2 if ignore == IGNORE else 0.0)
    p, y, t = ptensor(), labels_var(), ptensor("t")
    loss = soft_dice(p, y, smooth=smooth, ignore_label=ignore, square=square)
    f = compile_([p, y], [loss, soft_dice(p, y, ignore_label=ignore, include_background=False)])
    got, no_bg = f(probs, labels)
    expected = soft_dice_oracle(probs, labels, smooth, ignore, square)
    assert got.shape == (2, C)
    np.testing.assert_allclose(got, expected, rtol=1e-10)
    np.testing.assert_allclose(no_bg, soft_dice_oracle(probs, labels, 1e-5, ignore)[:, 1:])
    if ignore is None:
        dense = compile_([p, t], soft_dice(p, t, smooth=smooth, square=square))
        np.testing.assert_allclose(dense(probs, one_hot(labels)), expected, rtol=1e-10)


def test_soft_dice_perfect_and_absent_classes():
    labels = np.array([[0, 0, 1, 1, 0, 1]])
    perfect = one_hot(labels, 3)  # class 2 absent from both
    p, y = ptensor(ndim=3), labels_var(ndim=2)
    got = compile_([p, y], soft_dice(p, y))(perfect, labels)
    np.testing.assert_allclose(got, np.zeros((1, 3)), atol=1e-12)


def test_dice_without_spatial_axes_is_per_item():
    # Lasagne's 2-D layout (batch, classes): each item is its own "volume" of one voxel.
    probs = np.array([[0.7, 0.3], [0.4, 0.6]])
    labels = np.array([0, 0])
    p, y = ptensor(ndim=2), labels_var(ndim=1)
    soft, hard = compile_([p, y], [soft_dice(p, y, smooth=0.0), dice_score(p, y)])(probs, labels)
    np.testing.assert_allclose(soft, [[1 - 1.4 / 1.7, 1.0], [1 - 0.8 / 1.4, 1.0]])
    np.testing.assert_allclose(hard, [[1.0, np.nan], [0.0, np.nan]])


def test_soft_dice_gradient_matches_finite_differences():
    rng = np.random.default_rng(15)
    _, probs, labels = volume(15, ignore_fraction=0.2)
    p, y = ptensor(), labels_var()
    cost = aggregate(soft_dice(p, y, ignore_label=IGNORE, smooth=1.0))
    grad = compile_([p, y], pytensor.grad(cost, p))(probs, labels)
    f = compile_([p, y], cost)
    direction = rng.normal(size=SHAPE)
    h = 1e-6
    numeric = (f(probs + h * direction, labels) - f(probs - h * direction, labels)) / (2 * h)
    np.testing.assert_allclose((grad * direction).sum(), numeric, rtol=1e-6)
    # ignored voxels get no gradient
    assert np.all(grad[np.broadcast_to((labels == IGNORE)[:, None], SHAPE)] == 0)


# ----------------------------------------------------------------------------- metrics


def test_dice_score_hand_computed():
    # 2 samples, 3 classes, 4 voxels.  argmax predictions / labels:
    #   sample 0: pred [0, 1, 1, 0]  labels [0, 1, 0, 0]  -> class 2 absent from both
    #   sample 1: pred [0, 0, 2, 2]  labels [0, 0, 0, 0]  -> classes 1, 2 absent from target
    pred = np.array([[0, 1, 1, 0], [0, 0, 2, 2]])
    labels = np.array([[0, 1, 0, 0], [0, 0, 0, 0]])
    scores = one_hot(pred, 3) + 0.1  # argmax as above
    p, y = ptensor(ndim=3), labels_var(ndim=2)
    f = compile_(
        [p, y],
        [dice_score(p, y), dice_score(p, y, ignore_empty=False), dice_score(p, y, ignore_label=0)],
    )
    monai, filled, ignored = f(scores, labels)
    # sample 0: class 0 2*2/(2+3) = 0.8, class 1 2*1/(2+1); sample 1: class 0 2*2/(2+4)
    np.testing.assert_allclose(monai, [[0.8, 2 / 3, np.nan], [2 / 3, np.nan, np.nan]])
    np.testing.assert_allclose(filled, [[0.8, 2 / 3, 1.0], [2 / 3, 1.0, 0.0]])
    # ignoring label 0 leaves sample 0's voxel 1 only, sample 1 nothing
    np.testing.assert_allclose(ignored, [[np.nan, 1.0, np.nan], [np.nan] * 3])


@pytest.mark.parametrize("ignore", [None, IGNORE])
@pytest.mark.parametrize("ignore_empty", [True, False])
def test_dice_score_volume(ignore, ignore_empty):
    _, probs, labels = volume(16, ignore_fraction=0.3 if ignore else 0.0)
    labels[0][labels[0] == 3] = 1  # class 3 absent from sample 0's target
    p, y = ptensor(), labels_var()
    out = [
        dice_score(p, y, ignore_label=ignore, ignore_empty=ignore_empty),
        dice_score(p, y, ignore_label=ignore, include_background=False),
    ]
    got, no_bg = compile_([p, y], out)(probs, labels)
    expected = dice_oracle(probs, labels, ignore, ignore_empty)
    assert np.isnan(expected[0, 3]) == ignore_empty
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    np.testing.assert_allclose(no_bg, dice_oracle(probs, labels, ignore)[:, 1:], rtol=1e-12)


@pytest.mark.parametrize("top_k", [1, 2, 4])
@pytest.mark.parametrize("ignore", [None, IGNORE])
def test_categorical_accuracy(top_k, ignore):
    _, probs, labels = volume(17, ignore_fraction=0.2 if ignore else 0.0)
    p, y = ptensor(), labels_var()
    acc = categorical_accuracy(p, y, top_k=top_k, ignore_label=ignore)
    got = compile_([p, y], acc)(probs, labels)
    expected = accuracy_oracle(probs, labels, top_k, ignore)
    np.testing.assert_array_equal(got, expected)
    assert expected.any() and ((top_k == C and ignore is None) or not expected.all())


def test_categorical_accuracy_one_hot_targets_and_2d():
    _, probs, labels = volume(18)
    p, t = ptensor(), ptensor("t")
    got = compile_([p, t], categorical_accuracy(p, t, top_k=2))(probs, one_hot(labels))
    np.testing.assert_array_equal(got, accuracy_oracle(probs, labels, 2))
    p2, y1 = ptensor(ndim=2), labels_var(ndim=1)
    flat = compile_([p2, y1], categorical_accuracy(p2, y1))
    np.testing.assert_array_equal(
        flat(np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]]), np.array([1, 1, 1])),
        [True, False, True],
    )


def test_binary_accuracy():
    rng = np.random.default_rng(19)
    P, T = rng.random((2, 1, 5, 6, 3)), rng.integers(0, 2, (2, 1, 5, 6, 3)).astype(float)
    p, t = ptensor(), ptensor("t")
    f = compile_([p, t], [binary_accuracy(p, t), binary_accuracy(p, t, threshold=0.8)])
    half, high = f(P, T)
    for i in np.ndindex(P.shape):
        assert half[i] == (T[i] == (P[i] >= 0.5))
        assert high[i] == (T[i] == (P[i] >= 0.8))
    assert (half != high).any()


# ----------------------------------------------------------------------------- errors


LABELLED = [categorical_crossentropy, multiclass_hinge_loss, soft_dice, dice_score]


@pytest.mark.parametrize("fn", [*LABELLED, categorical_accuracy])
def test_targets_of_the_wrong_rank(fn):
    # a RankError: a ShapeError and, as Lasagne's rank-mismatch error, a TypeError
    with pytest.raises(
        RankError,
        match=rf"{fn.__name__}: invalid value for `targets.ndim`. Expected 4 \(integer labels\) "
        r"or 5 \(one-hot.*\); a rank mismatch between targets and predictions; received "
        r"targets.ndim=3\.",
    ):
        fn(ptensor(), labels_var(ndim=3))


@pytest.mark.parametrize("fn", [*LABELLED, categorical_accuracy])
def test_float_labels_are_rejected(fn):
    with pytest.raises(ConfigError, match=r"`targets.dtype`. Expected an integer dtype.*float64"):
        fn(ptensor(), ptensor("t", ndim=4))


@pytest.mark.parametrize("fn", [*LABELLED, categorical_accuracy])
def test_ignore_label_needs_label_targets(fn):
    with pytest.raises(ConfigError, match=r"`ignore_label`. Expected None with one-hot targets"):
        fn(ptensor(), ptensor("t"), ignore_label=IGNORE)


def test_static_shape_mismatch():
    p = pt.tensor("p", dtype="float64", shape=(2, 4, 5, 6, 3))
    y = pt.tensor("y", dtype="int64", shape=(2, 5, 6, 4))
    with pytest.raises(
        ShapeError,
        match=r"`targets.shape`. Expected \(2, 5, 6, 3\) to match predictions.shape "
        r"\(2, 4, 5, 6, 3\) \(class axis 1\); received targets.shape=\(2, 5, 6, 4\)",
    ):
        categorical_crossentropy(p, y)
    with pytest.raises(ShapeError, match=r"`class_weights.shape`. Expected \(4,\)"):
        categorical_crossentropy(
            p, pt.tensor("y", dtype="int64", shape=(2, 5, None, 3)), class_weights=[1.0, 2.0]
        )


@pytest.mark.parametrize("axis", [0, -5, 5, 1.0])
def test_bad_class_axis(axis):
    with pytest.raises(
        ConfigError, match=r"soft_dice: invalid value for `axis`. Expected the class axis"
    ):
        soft_dice(ptensor(), labels_var(), axis=axis)


def test_predictions_need_a_class_axis():
    with pytest.raises(ShapeError, match=r"`predictions.ndim`. Expected at least 2.*ndim=1"):
        categorical_crossentropy(pt.vector("p"), pt.vector("y", dtype="int64"))


def test_other_argument_errors():
    p, y = ptensor(), labels_var()
    with pytest.raises(
        ConfigError,
        match=r"`ignore_label`. Expected an int label or None; received ignore_label=0.5",
    ):
        categorical_crossentropy(p, y, ignore_label=0.5)
    with pytest.raises(
        ConfigError, match=r"`eps`. Expected a real number >= 0 and < 1; received eps=-1"
    ):
        categorical_crossentropy(p, y, eps=-1)
    with pytest.raises(ShapeError, match=r"`class_weights.ndim`. Expected 1"):
        categorical_crossentropy(p, y, class_weights=np.ones((2, 2)))
    with pytest.raises(ShapeError, match=r"`weights.ndim`. Expected at most 4"):
        categorical_crossentropy(p, y, weights=p)
    with pytest.raises(
        ConfigError, match=r"`smooth`. Expected a real number >= 0; received smooth=-0.1"
    ):
        soft_dice(p, y, smooth=-0.1)
    with pytest.raises(ConfigError, match=r"`include_background`. Expected True or False"):
        soft_dice(p, y, include_background=0)
    with pytest.raises(ConfigError, match=r"`top_k`. Expected a positive int; received top_k=0"):
        categorical_accuracy(p, y, top_k=0)
    with pytest.raises(ConfigError, match=r"`ignore_empty`. Expected True or False"):
        dice_score(p, y, ignore_empty=None)
    with pytest.raises(ConfigError, match=r"label_mask: invalid value for `targets.dtype`"):
        label_mask(ptensor("t", ndim=4), IGNORE)
    with pytest.raises(
        ConfigError,
        match=r"binary_hinge_loss: invalid value for `log_odds`. Expected True \(predictions are log-odds\) or False",
    ):
        binary_hinge_loss(p, p)


def test_aggregate_errors():
    loss = ptensor("L", ndim=4)
    with pytest.raises(
        ConfigError,
        match=r"aggregate: mode must be 'mean', 'sum' or 'normalized_sum'; received mode='avg'\.",
    ):
        aggregate(loss, mode="avg")
    with pytest.raises(
        ConfigError,
        match=r"aggregate: normalized sums require weights \(mode='normalized_sum'\); received weights=None\.",
    ):
        aggregate(loss, mode="normalized_sum")
