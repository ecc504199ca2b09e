"""Loss and metric expressions for dense (voxelwise) classification, under Lasagne's names.

Every categorical function takes predictions laid out ``(batch, classes, *spatial)`` -- any
number of spatial axes, including none, which is Lasagne's ``(batch, classes)`` case -- with the
class axis given by ``axis`` (default 1). Targets come in one of two forms, as in Lasagne:

* integer labels ``(batch, *spatial)``: the predictions' shape without the class axis;
* one-hot or probability targets of the same shape as the predictions.

The losses are elementwise (one value per voxel, ``(batch, *spatial)``) or per ``(batch, class)``
(`soft_dice`, `dice_score`); `aggregate` turns them into the scalar an update rule needs:

    loss = categorical_crossentropy(probs, labels, ignore_label=255)
    loss = aggregate(loss, label_mask(labels, 255), mode="normalized_sum")

which is the mean over the labelled voxels, PyTorch's
``cross_entropy(logits, labels, ignore_index=255)``.

Ranks, dtypes, class-axis positions and static shapes are checked when the graph is built;
errors name the argument, what was expected and what was received.
"""

from numbers import Real

import numpy as np
import pytensor
import pytensor.tensor as pt
from pytensor.tensor.type import float_dtypes, integer_dtypes

from .errors import ConfigError, RankError, ShapeError, invalid
from .utils import is_int

__all__ = [
    "aggregate",
    "binary_accuracy",
    "binary_crossentropy",
    "binary_hinge_loss",
    "categorical_accuracy",
    "categorical_crossentropy",
    "dice_score",
    "huber_loss",
    "label_mask",
    "multiclass_hinge_loss",
    "soft_dice",
    "squared_error",
]

_AGGREGATE_MODES = ("mean", "sum", "normalized_sum")


# --------------------------------------------------------------------------- argument checks


def _is_integer_dtype(var) -> bool:
    return var.dtype in integer_dtypes


def _float_dtype(var) -> str:
    """The dtype results are computed in: the predictions' own float dtype, else floatX."""
    return var.dtype if var.dtype in float_dtypes else pytensor.config.floatX


def _scalar(value, dtype):
    # A Python float would become a float64 constant and upcast float32 graphs.
    return pt.constant(np.asarray(value, dtype=dtype))


def _like(value, dtype):
    """A Python/numpy number as a constant of `dtype`; a tensor unchanged."""
    return _scalar(value, dtype) if isinstance(value, Real) else value


def _check_real(where, name, value, *, low, high=None):
    ok = isinstance(value, Real) and not isinstance(value, bool) and value >= low
    if ok and high is not None:
        ok = value < high
    if not ok:
        what = f"a real number >= {low}" + ("" if high is None else f" and < {high}")
        raise ConfigError(invalid(where, name, what, value))


def _predictions(predictions, axis, where):
    """Return `predictions` as a tensor and the class axis as a non-negative int."""
    p = pt.as_tensor_variable(predictions)
    if p.ndim < 2:
        raise RankError(
            invalid(
                where,
                "predictions.ndim",
                "at least 2: (batch, classes, *spatial) (a rank mismatch between targets and "
                "predictions otherwise)",
                p.ndim,
            )
        )
    if not is_int(axis) or not -p.ndim < axis < p.ndim or axis % p.ndim == 0:
        # Axis 0 is the batch axis; per-(batch, class) results need the two to differ.
        raise ConfigError(
            invalid(
                where,
                "axis",
                f"the class axis, an int in [1, {p.ndim}) or [-{p.ndim - 1}, 0)",
                axis,
            )
        )
    return p, int(axis) % p.ndim


def _show(shape):
    return tuple("?" if n is None else n for n in shape)


def _targets(p, targets, axis, where):
    """Split `targets` into ``(labels, None)`` for integer labels or ``(None, dense)``.

    Labels have the predictions' shape without the class axis; dense (one-hot or probability)
    targets have the predictions' shape.
    """
    t = pt.as_tensor_variable(targets)
    if t.ndim == p.ndim - 1:
        if not _is_integer_dtype(t):
            raise ConfigError(
                invalid(
                    where,
                    "targets.dtype",
                    f"an integer dtype for label targets of ndim {t.ndim} "
                    f"(one-hot targets have ndim {p.ndim})",
                    t.dtype,
                )
            )
        expected = p.type.shape[:axis] + p.type.shape[axis + 1 :]
        labels, dense = t, None
    elif t.ndim == p.ndim:
        expected = p.type.shape
        labels, dense = None, t
    else:
        raise RankError(
            invalid(
                where,
                "targets.ndim",
                f"{p.ndim - 1} (integer labels) or {p.ndim} (one-hot, like predictions of ndim "
                f"{p.ndim}); a rank mismatch between targets and predictions",
                t.ndim,
            )
        )
    if any(
        a is not None and b is not None and a != b
        for a, b in zip(t.type.shape, expected, strict=True)
    ):
        raise ShapeError(
            invalid(
                where,
                "targets.shape",
                f"{_show(expected)} to match predictions.shape {_show(p.type.shape)} (class axis {axis})",
                _show(t.type.shape),
            )
        )
    return labels, dense


def _labelled(labels, ignore_label, where):
    """Boolean mask of the labelled voxels, or None when nothing is ignored."""
    if ignore_label is None:
        return None
    if not is_int(ignore_label):
        raise ConfigError(invalid(where, "ignore_label", "an int label or None", ignore_label))
    if labels is None:
        raise ConfigError(
            invalid(
                where,
                "ignore_label",
                "None with one-hot targets (ignore_label needs integer label targets)",
                ignore_label,
            )
        )
    return pt.neq(labels, int(ignore_label))


def _safe_labels(labels, mask):
    # Ignored voxels may hold any value (255 with 4 classes): point them at class 0 so that
    # gathers stay in range; their contribution is zeroed separately.
    return labels if mask is None else pt.switch(mask, labels, 0)


def _along(vector, p, axis):
    """A ``(classes,)`` vector shaped to broadcast along `axis` of `p`."""
    return pt.expand_dims(vector, tuple(a for a in range(p.ndim) if a != axis))


def _class_index(p, axis):
    """``arange(classes)`` shaped to broadcast along `axis` of `p`."""
    return _along(pt.arange(p.shape[axis]), p, axis)


def _one_hot(labels, p, axis):
    """Boolean one-hot of `labels` along `axis`; out-of-range labels give an all-False row."""
    return pt.eq(pt.expand_dims(labels, axis), _class_index(p, axis))


def _class_weights(class_weights, p, axis, where):
    if class_weights is None:
        return None
    w = pt.as_tensor_variable(class_weights)
    if w.ndim != 1:
        raise ShapeError(invalid(where, "class_weights.ndim", "1: one weight per class", w.ndim))
    n, c = w.type.shape[0], p.type.shape[axis]
    if n is not None and c is not None and n != c:
        raise ShapeError(
            invalid(where, "class_weights.shape", f"({c},): one weight per class", (n,))
        )
    return pt.cast(w, _float_dtype(p))


def _align_targets(predictions, targets):
    """Lasagne's rule: a vector of targets against a ``(batch, 1)`` column becomes a column.

    Otherwise the two would broadcast to ``(batch, batch)``.
    """
    p = pt.as_tensor_variable(predictions)
    t = pt.as_tensor_variable(targets)
    if p.ndim == 2 and p.type.shape[1] == 1 and t.ndim == 1:
        t = t[:, None]
    return p, t


def _clipped_log(x, eps):
    """``log(clip(x, eps, 1))``: finite at 0 (so ``0 * log 0`` is 0, not nan); exact for eps=0."""
    if eps == 0:
        return pt.log(x)
    return pt.log(pt.clip(x, _scalar(eps, x.dtype), _scalar(1, x.dtype)))


# --------------------------------------------------------------------------- losses


def binary_crossentropy(predictions, targets, *, eps=1e-7):
    """Elementwise binary cross-entropy between probabilities and targets:

        L = -t log(max(p, eps)) - (1 - t) log(max(1 - p, eps))

    Parameters
    ----------
    predictions : tensor
        Probabilities in [0, 1], such as sigmoid outputs; any shape.
    targets : tensor
        Targets in [0, 1], broadcastable against `predictions`. A vector against a ``(batch, 1)``
        column of predictions is treated as a column (Lasagne's rule).
    eps : float, default 1e-7
        Lower clip of each log's argument, so saturated predictions give a finite loss
        (``-log(eps)``, about 16.1) instead of ``inf``/``nan``. Lasagne did not clip; ``eps=0``
        restores that. The gradient is zero where the clip is active.

    Returns
    -------
    tensor
        The elementwise loss, shaped like ``predictions * targets``.
    """
    _check_real("binary_crossentropy", "eps", eps, low=0, high=0.5)
    p, t = _align_targets(predictions, targets)
    return -(t * _clipped_log(p, eps) + (1 - t) * _clipped_log(1 - p, eps))


def categorical_crossentropy(
    predictions, targets, axis=1, *, ignore_label=None, weights=None, class_weights=None, eps=1e-7
):
    """Voxelwise categorical cross-entropy between class probabilities and targets:

        L[b, x] = -v[b, x] * sum_c w[c] t[b, c, x] log(max(p[b, c, x], eps))

    where `t` is the one-hot encoding of integer labels (or the given one-hot/probability
    targets), `w` the class weights and `v` the per-voxel weights (both 1 when omitted).
    With labels this is ``-v w_y log p_y``.

    Parameters
    ----------
    predictions : tensor of shape (batch, classes, *spatial)
        Class probabilities (softmax outputs) along `axis`.
    targets : tensor
        Integer labels ``(batch, *spatial)`` or one-hot/probability targets shaped like
        `predictions`.
    axis : int, default 1
        The class axis of `predictions` (not the batch axis 0).
    ignore_label : int, optional
        Voxels whose label equals it contribute 0 (label targets only). It need not be a class
        index: ``ignore_label=255`` with 4 classes is fine.
    weights : tensor, optional
        Per-voxel weights ``v``, broadcastable to ``(batch, *spatial)``, multiplied in.
    class_weights : tensor or array of shape (classes,), optional
        Per-class weights ``w``, PyTorch's ``weight=``. For PyTorch's weighted mean divide the
        summed loss by ``sum(label_mask(targets, ignore_label, class_weights))`` -- or, without
        `class_weights` here, use
        ``aggregate(loss, label_mask(targets, ignore_label, class_weights), "normalized_sum")``.
    eps : float, default 1e-7
        Lower clip of the probabilities inside the log: a probability of 0 gives ``-log(eps)``
        (about 16.1) instead of ``inf``, and ``0 * log 0`` terms of one-hot targets give 0
        instead of ``nan``. Lasagne did not clip; ``eps=0`` restores that. The gradient is zero
        where the clip is active.

    Returns
    -------
    tensor of shape (batch, *spatial)
        The elementwise loss (0 at ignored voxels), to pass to `aggregate`.

    Notes
    -----
    The gradient with respect to the logits of ``softmax(logits)`` is ``softmax - onehot`` at
    labelled voxels (where no probability is clipped) and 0 at ignored ones.
    """
    where = "categorical_crossentropy"
    _check_real(where, "eps", eps, low=0, high=1)
    p, axis = _predictions(predictions, axis, where)
    labels, dense = _targets(p, targets, axis, where)
    mask = _labelled(labels, ignore_label, where)
    w = _class_weights(class_weights, p, axis, where)
    if labels is not None:
        safe = _safe_labels(labels, mask)
        # Gather p_y instead of summing t * log p: one log per voxel, and no 0 * log 0.
        p_true = pt.take_along_axis(p, pt.expand_dims(safe, axis), axis).squeeze(axis)
        loss = -_clipped_log(p_true, eps)
        if w is not None:
            loss = loss * w[safe]
        if mask is not None:
            loss = pt.switch(mask, loss, _scalar(0, loss.dtype))
    else:
        t = dense if w is None else dense * _along(w, p, axis)
        loss = -pt.sum(t * _clipped_log(p, eps), axis=axis)
    if weights is not None:
        v = pt.as_tensor_variable(weights)
        if v.ndim > loss.ndim:
            raise ShapeError(
                invalid(
                    where,
                    "weights.ndim",
                    f"at most {loss.ndim}: per-voxel weights broadcastable to (batch, *spatial)",
                    v.ndim,
                )
            )
        loss = loss * v
    return loss


def huber_loss(predictions, targets, delta=1):
    """Elementwise Huber loss: squared for small errors, linear for large ones.

    With ``d = |targets - predictions|``:

        L = 0.5 * d ** 2              if d <= delta
        L = delta * (d - delta / 2)   otherwise

    Parameters
    ----------
    predictions, targets : tensors
        Of the same shape (a vector of targets against a ``(batch, 1)`` column is aligned to a
        column, as in Lasagne).
    delta : scalar, default 1
        Where the quadratic part meets the linear one (the two agree in value and slope there).

    Returns
    -------
    tensor
        The elementwise loss, in the predictions' float dtype.
    """
    p, t = _align_targets(predictions, targets)
    dtype = _float_dtype(p)
    if isinstance(delta, Real):
        _check_real("huber_loss", "delta", delta, low=0)
    delta = _like(delta, dtype)
    diff = abs(t - p)
    half = _scalar(0.5, dtype)
    return pt.switch(diff <= delta, half * pt.square(diff), delta * (diff - half * delta))


def squared_error(a, b):
    """Elementwise squared difference ``(a - b) ** 2``.

    Parameters
    ----------
    a, b : tensor
        Broadcastable tensors; a vector against a ``(batch, 1)`` column is treated as a column.

    Returns
    -------
    tensor
        The elementwise loss, for regression and auto-encoders with linear outputs.
    """
    a, b = _align_targets(a, b)
    return pt.square(a - b)


def binary_hinge_loss(predictions, targets, delta=1, log_odds=None, binary=True):
    """Elementwise binary hinge loss:

        L = max(0, delta - t z)

    with `z` the log-odds and `t` in {-1, 1}.

    Parameters
    ----------
    predictions : tensor
        Log-odds (sigmoid inputs) when ``log_odds=True``; probabilities in (0, 1) when
        ``log_odds=False``, converted by ``z = log(p / (1 - p))``.
    targets : tensor
        Targets in {0, 1} when ``binary=True`` (mapped to ``2 t - 1``), else in {-1, 1}.
    delta : scalar, default 1
        The margin.
    log_odds : bool
        Required. Lasagne's ``None`` default raised a deprecation error; here it raises
        `ConfigError` asking for an explicit choice.
    binary : bool, default True
        Whether targets are in {0, 1} rather than {-1, 1}.

    Returns
    -------
    tensor
        The elementwise loss.
    """
    where = "binary_hinge_loss"
    if not isinstance(log_odds, bool):
        raise ConfigError(
            invalid(
                where,
                "log_odds",
                "True (predictions are log-odds) or False (predictions are probabilities)",
                log_odds,
            )
        )
    z, t = _align_targets(predictions, targets)
    if not log_odds:
        z = pt.log(z / (1 - z))
    if binary:
        t = 2 * t - 1
    return pt.maximum(0, _like(delta, _float_dtype(z)) - z * t)


def multiclass_hinge_loss(predictions, targets, delta=1, axis=1, *, ignore_label=None):
    """Voxelwise multi-class hinge loss, with ``y`` the label of voxel ``(b, x)``:

        L[b, x] = max(0, max_{c != y} p[b, c, x] - p[b, y, x] + delta)

    Parameters
    ----------
    predictions : tensor of shape (batch, classes, *spatial)
        Class scores along `axis`.
    targets : tensor
        Integer labels ``(batch, *spatial)`` or one-hot targets shaped like `predictions` (any
        nonzero entry marks the true class; soft targets do not work).
    delta : scalar, default 1
        The margin.
    axis : int, default 1
        The class axis.
    ignore_label : int, optional
        Voxels with this label contribute 0 (label targets only).

    Returns
    -------
    tensor of shape (batch, *spatial)
        The elementwise loss.
    """
    where = "multiclass_hinge_loss"
    p, axis = _predictions(predictions, axis, where)
    labels, dense = _targets(p, targets, axis, where)
    mask = _labelled(labels, ignore_label, where)
    hot = _one_hot(labels, p, axis) if labels is not None else pt.neq(dense, 0)
    zero = _scalar(0, p.dtype)
    correct = pt.sum(pt.switch(hot, p, zero), axis=axis)
    rest = pt.max(pt.switch(hot, _scalar(-np.inf, p.dtype), p), axis=axis)
    loss = pt.maximum(zero, rest - correct + _like(delta, p.dtype))
    if mask is not None:
        loss = pt.switch(mask, loss, zero)
    return loss


def soft_dice(
    predictions,
    targets,
    axis=1,
    *,
    smooth=1e-5,
    ignore_label=None,
    include_background=True,
    square=False,
):
    """Soft Dice loss per sample and class:

        L[b, c] = 1 - (2 sum_x p[b, c, x] t[b, c, x] + s)
                    / (sum_x p[b, c, x] + sum_x t[b, c, x] + s)

    summed over the spatial axes `x` (``p**2`` and ``t**2`` in the denominator when
    ``square=True``). This is MONAI's ``DiceLoss(batch=False, reduction="none")`` with
    ``smooth_nr = smooth_dr = s``, on probabilities (apply the softmax first).

    Parameters
    ----------
    predictions : tensor of shape (batch, classes, *spatial)
        Class probabilities along `axis`.
    targets : tensor
        Integer labels ``(batch, *spatial)`` or one-hot/probability targets shaped like
        `predictions`.
    axis : int, default 1
        The class axis.
    smooth : float, default 1e-5
        Added to numerator and denominator (MONAI's default). It keeps a class absent from
        both target and prediction at a loss near 0 instead of ``0/0``; small enough not to bias
        classes that are present.
    ignore_label : int, optional
        Voxels with this label are left out of every sum (label targets only).
    include_background : bool, default True
        False drops class 0 from the result, as MONAI does.
    square : bool, default False
        Square `p` and `t` in the denominator (V-Net's form).

    Returns
    -------
    tensor of shape (batch, classes)
        The loss per sample and class (``classes - 1`` without the background); `aggregate`
        averages it.
    """
    where = "soft_dice"
    _check_real(where, "smooth", smooth, low=0)
    p, axis = _predictions(predictions, axis, where)
    labels, dense = _targets(p, targets, axis, where)
    mask = _labelled(labels, ignore_label, where)
    dtype = _float_dtype(p)
    p = pt.cast(p, dtype)
    t = pt.cast(_one_hot(labels, p, axis) if labels is not None else dense, dtype)
    if mask is not None:
        m = pt.cast(pt.expand_dims(mask, axis), dtype)
        p, t = p * m, t * m
    spatial = tuple(a for a in range(p.ndim) if a not in (0, axis))
    intersection = pt.sum(p * t, axis=spatial)
    if square:
        p, t = pt.square(p), pt.square(t)
    denominator = pt.sum(p, axis=spatial) + pt.sum(t, axis=spatial)
    s = _scalar(smooth, dtype)
    loss = 1 - (2 * intersection + s) / (denominator + s)
    return _drop_background(loss, include_background, where)


def _drop_background(per_class, include_background, where):
    if not isinstance(include_background, bool):
        raise ConfigError(invalid(where, "include_background", "True or False", include_background))
    # The result is (batch, classes) when the class axis comes after the batch axis.
    return per_class if include_background else per_class[:, 1:]


def label_mask(targets, ignore_label=None, class_weights=None):
    """Per-voxel weights for `aggregate`: 1 where labelled, 0 where ``targets == ignore_label``.

    With `class_weights`, labelled voxels get the weight of their class instead, so that
    ``aggregate(loss, label_mask(t, 255, w), mode="normalized_sum")`` is PyTorch's
    ``cross_entropy(..., weight=w, ignore_index=255)`` mean:
    ``sum(w_y * loss) / sum(w_y)`` over labelled voxels.

    Parameters
    ----------
    targets : int tensor of shape (batch, *spatial)
        Integer labels.
    ignore_label : int, optional
        The label to mask out; None masks nothing.
    class_weights : tensor or array of shape (classes,), optional
        Per-class weights. Labels other than `ignore_label` must index it.

    Returns
    -------
    tensor of floatX, shaped like targets
        The mask (or weights).
    """
    where = "label_mask"
    t = pt.as_tensor_variable(targets)
    if not _is_integer_dtype(t):
        raise ConfigError(invalid(where, "targets.dtype", "an integer dtype (labels)", t.dtype))
    mask = _labelled(t, ignore_label, where)
    dtype = pytensor.config.floatX
    if class_weights is None:
        out = pt.ones_like(t, dtype=dtype) if mask is None else pt.cast(mask, dtype)
        return out
    w = pt.as_tensor_variable(class_weights)
    if w.ndim != 1:
        raise ShapeError(invalid(where, "class_weights.ndim", "1: one weight per class", w.ndim))
    w = pt.cast(w, dtype)
    out = w[_safe_labels(t, mask)]
    return out if mask is None else pt.switch(mask, out, _scalar(0, dtype))


def aggregate(loss, weights=None, mode="mean"):
    """Reduce an elementwise loss to a scalar:

        mean:           sum_i w_i L_i / N
        sum:            sum_i w_i L_i
        normalized_sum: sum_i w_i L_i / sum_i w_i

    Parameters
    ----------
    loss : tensor
        An elementwise loss, e.g. ``(batch, *spatial)`` or ``(batch, classes)``.
    weights : tensor, optional
        Broadcastable to `loss`; 0/1 weights mask entries out (see `label_mask`). Masked
        entries must still be finite: ``nan * 0`` is ``nan``.
    mode : 'mean', 'sum' or 'normalized_sum', default 'mean'
        'normalized_sum' needs `weights` and is the mean over the weighted entries.

    Returns
    -------
    scalar tensor

    Notes
    -----
    The sums run over the broadcast shape of ``loss * weights``, so per-sample weights
    ``(batch, 1, 1, 1)`` give a weighted mean under 'normalized_sum'. Lasagne divided by
    ``weights.sum()`` as given, which agrees only when `weights` has the loss's full shape.
    """
    where = "aggregate"
    if mode not in _AGGREGATE_MODES:
        raise ConfigError(
            f"{where}: mode must be 'mean', 'sum' or 'normalized_sum'; received mode={mode!r}."
        )
    if mode == "normalized_sum" and weights is None:
        raise ConfigError(
            f"{where}: normalized sums require weights (mode='normalized_sum'); received "
            "weights=None."
        )
    loss = pt.as_tensor_variable(loss)
    if weights is not None:
        weights = pt.as_tensor_variable(weights)
        loss = loss * weights
    if mode == "mean":
        return loss.mean()
    if mode == "sum":
        return loss.sum()
    if weights.type.broadcastable == loss.type.broadcastable:
        # same rank and no broadcasting (PyTensor broadcasts only static length-1 axes): the
        # weights already have the loss's shape
        return loss.sum() / weights.sum()
    return loss.sum() / pt.broadcast_to(weights, loss.shape).sum()


# --------------------------------------------------------------------------- metrics


def binary_accuracy(predictions, targets, threshold=0.5):
    """Elementwise binary accuracy: ``targets == (predictions >= threshold)``.

    Parameters
    ----------
    predictions : tensor
        Probabilities of the positive class.
    targets : tensor
        Targets in {0, 1}; a vector against a ``(batch, 1)`` column is treated as a column.
    threshold : scalar, default 0.5

    Returns
    -------
    tensor of bool
        1 where correct. Has no useful gradient: for validation, not training.
    """
    p, t = _align_targets(predictions, targets)
    return pt.eq(pt.ge(p, threshold), t)


def categorical_accuracy(predictions, targets, top_k=1, axis=1, *, ignore_label=None):
    """Voxelwise categorical accuracy, optionally top-`k`: 1 where the label ``y[b, x]`` is among
    the ``top_k`` largest ``predictions[b, :, x]``, else 0.

    Parameters
    ----------
    predictions : tensor of shape (batch, classes, *spatial)
        Class scores along `axis`.
    targets : tensor
        Integer labels ``(batch, *spatial)`` or one-hot targets shaped like `predictions` (their
        argmax is the label).
    top_k : int, default 1
        Count a voxel correct when its label is among the `top_k` highest scores.
    axis : int, default 1
        The class axis.
    ignore_label : int, optional
        Ignored voxels count as 0; average with
        ``aggregate(acc, label_mask(targets, ignore_label), "normalized_sum")``.

    Returns
    -------
    bool tensor of shape (batch, *spatial)
        1 where correct. Has no useful gradient: for validation, not training.
    """
    where = "categorical_accuracy"
    if not is_int(top_k) or top_k < 1:
        raise ConfigError(invalid(where, "top_k", "a positive int", top_k))
    p, axis = _predictions(predictions, axis, where)
    labels, dense = _targets(p, targets, axis, where)
    mask = _labelled(labels, ignore_label, where)
    if labels is None:
        labels = pt.argmax(dense, axis=axis)
    if top_k == 1:
        correct = pt.eq(pt.argmax(p, axis=axis), labels)
    else:
        top = pt.argsort(p, axis=axis)
        top = top[(slice(None),) * axis + (slice(-int(top_k), None),)]
        correct = pt.any(pt.eq(top, pt.expand_dims(labels, axis)), axis=axis)
    return correct if mask is None else pt.and_(correct, mask)


def dice_score(
    predictions,
    targets,
    axis=1,
    *,
    ignore_label=None,
    include_background=True,
    ignore_empty=True,
):
    """Hard Dice score per sample and class of the argmax segmentation:

        D[b, c] = 2 sum_x h[b, c, x] t[b, c, x] / (sum_x h[b, c, x] + sum_x t[b, c, x])

    where ``h`` is the one-hot argmax of `predictions` along `axis`. This is MONAI's
    ``DiceMetric(reduction="none")`` on ``one_hot(argmax(predictions))``.

    Parameters
    ----------
    predictions : tensor of shape (batch, classes, *spatial)
        Class scores or probabilities along `axis`.
    targets : tensor
        Integer labels ``(batch, *spatial)`` or one-hot targets shaped like `predictions` (used
        as given, like MONAI's ``y``).
    axis : int, default 1
        The class axis.
    ignore_label : int, optional
        Voxels with this label are left out of every sum (label targets only).
    include_background : bool, default True
        False drops class 0 from the result.
    ignore_empty : bool, default True
        MONAI's rule for a class absent from the target: ``nan`` when True (average with
        ``numpy.nanmean``), else 1.0 when the prediction is empty too and 0.0 otherwise.

    Returns
    -------
    tensor of shape (batch, classes)
        Scores in [0, 1] (or ``nan``). A metric: no useful gradient.
    """
    where = "dice_score"
    if not isinstance(ignore_empty, bool):
        raise ConfigError(invalid(where, "ignore_empty", "True or False", ignore_empty))
    p, axis = _predictions(predictions, axis, where)
    labels, dense = _targets(p, targets, axis, where)
    mask = _labelled(labels, ignore_label, where)
    dtype = _float_dtype(p)
    hard = pt.cast(_one_hot(pt.argmax(p, axis=axis), p, axis), dtype)
    t = pt.cast(_one_hot(labels, p, axis) if labels is not None else dense, dtype)
    if mask is not None:
        m = pt.cast(pt.expand_dims(mask, axis), dtype)
        hard, t = hard * m, t * m
    spatial = tuple(a for a in range(p.ndim) if a not in (0, axis))
    intersection = pt.sum(hard * t, axis=spatial)
    target_sum = pt.sum(t, axis=spatial)
    denominator = pt.sum(hard, axis=spatial) + target_sum
    # Divide by 1 where the denominator is 0 so no 0/0 is ever evaluated.
    dice = 2 * intersection / pt.switch(denominator > 0, denominator, _scalar(1, dtype))
    if ignore_empty:
        score = pt.switch(target_sum > 0, dice, _scalar(np.nan, dtype))
    else:
        score = pt.switch(denominator > 0, dice, _scalar(1, dtype))
    return _drop_background(score, include_background, where)
