"""Metrics accumulated over a whole epoch or dataset: voxel accuracy and per-class Dice.

Each metric contributes count tensors to the compiled function (e.g. per class: overlap,
predicted voxels, true voxels); the counts are summed over batches in numpy and turned into
values once, so an epoch's Dice is the Dice of all its voxels, not a mean of batch Dice."""

import numpy as np
import pytensor.tensor as pt

from ..errors import ConfigError, invalid, suggest

__all__ = ["METRICS", "Accuracy", "Dice", "Metric", "dice_per_class", "get_metric"]


class Metric:
    """Base class. `counts` returns symbolic count tensors; `result` maps their sums to
    ``{name: value}``."""

    name = "metric"

    def counts(self, probabilities, labels, ignore_label):
        raise NotImplementedError

    def result(self, sums) -> dict:
        raise NotImplementedError

    def names(self, num_classes) -> list:
        """The keys `result` returns, for a model with `num_classes` outputs."""
        return [self.name]


def _labelled(labels, ignore_label):
    return (
        pt.ones_like(labels, dtype="bool") if ignore_label is None else pt.neq(labels, ignore_label)
    )


class Accuracy(Metric):
    """Fraction of labelled voxels whose argmax class equals the label."""

    name = "accuracy"

    def counts(self, probabilities, labels, ignore_label):
        mask = _labelled(labels, ignore_label)
        correct = pt.and_(pt.eq(pt.argmax(probabilities, axis=1), labels), mask)
        return [pt.sum(correct, dtype="int64"), pt.sum(mask, dtype="int64")]

    def result(self, sums):
        correct, total = sums
        return {self.name: float(correct) / float(total) if total else float("nan")}


class Dice(Metric):
    """Hard Dice per class of the argmax segmentation over all voxels seen:
    ``2 |P_c ∩ T_c| / (|P_c| + |T_c|)``, reported as ``dice_<c>`` per class and ``dice`` (their
    mean over classes present in prediction or target; background included unless
    ``include_background=False``)."""

    name = "dice"

    def __init__(self, include_background=True):
        if isinstance(include_background, np.bool_):
            include_background = bool(include_background)
        if not isinstance(include_background, bool):
            raise ConfigError(
                invalid("metrics.Dice", "include_background", "True or False", include_background)
            )
        self.include_background = include_background

    def counts(self, probabilities, labels, ignore_label):
        k = probabilities.shape[1]
        mask = _labelled(labels, ignore_label)
        pred = pt.argmax(probabilities, axis=1)
        classes = pt.arange(k).reshape((k, *([1] * labels.ndim)))
        p = pt.and_(pt.eq(pred[None], classes), mask[None])
        t = pt.and_(pt.eq(labels[None], classes), mask[None])
        axes = tuple(range(1, labels.ndim + 1))
        return [
            pt.sum(pt.and_(p, t), axis=axes, dtype="int64"),
            pt.sum(p, axis=axes, dtype="int64"),
            pt.sum(t, axis=axes, dtype="int64"),
        ]

    def names(self, num_classes):
        first = 0 if self.include_background else 1
        return [f"dice_{c}" for c in range(first, num_classes)] + [self.name]

    def result(self, sums):
        overlap, pred, true = (np.asarray(s, dtype=np.float64) for s in sums)
        denom = pred + true
        with np.errstate(invalid="ignore", divide="ignore"):
            dice = np.where(denom > 0, 2 * overlap / np.where(denom > 0, denom, 1), np.nan)
        first = 0 if self.include_background else 1
        out = {f"dice_{c}": float(dice[c]) for c in range(first, len(dice))}
        present = dice[first:][~np.isnan(dice[first:])]
        out[self.name] = float(present.mean()) if present.size else float("nan")
        return out


#: metric names accepted by `Model.compile`
METRICS = {"accuracy": Accuracy, "acc": Accuracy, "dice": Dice}


def get_metric(metric) -> Metric:
    if isinstance(metric, Metric):
        return metric
    if isinstance(metric, str) and metric in METRICS:
        return METRICS[metric]()
    raise ConfigError(
        invalid(
            "Model.compile",
            "metrics",
            f"names from {', '.join(map(repr, METRICS))} or dilnet.model.Metric objects"
            f"{suggest(metric, METRICS)}",
            metric,
        )
    )


def dice_per_class(prediction, labels, num_classes) -> list:
    """Hard Dice of each class on whole label maps (numpy, outside any graph):
    ``2 |P ∩ T| / (|P| + |T|)`` for class ``c`` in ``0..num_classes-1``; NaN for a class in
    neither map."""
    prediction, labels = np.asarray(prediction), np.asarray(labels)
    out = []
    for c in range(num_classes):
        p, t = prediction == c, labels == c
        denom = int(p.sum() + t.sum())
        out.append(float(2 * (p & t).sum() / denom) if denom else float("nan"))
    return out
