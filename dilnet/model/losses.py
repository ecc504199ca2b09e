"""Training losses by name or object: cross-entropy (with an ignore label and class weights),
soft Dice, and their sum. Each maps class probabilities ``(batch, classes, *spatial)`` and
integer labels ``(batch, *spatial)`` to a scalar."""

import attrs
import numpy as np
import pytensor.tensor as pt

from .. import objectives
from ..blocks.base import suggest
from ..errors import ConfigError, invalid
from ..utils import is_int

__all__ = ["LOSSES", "CrossEntropy", "CrossEntropyDice", "Dice", "Loss", "get_loss"]


def _optional_label(instance, attribute, value):
    if value is not None and not is_int(value):
        raise ConfigError(invalid(type(instance).__name__, attribute.name, "an int or None", value))


def _weights(value):
    return None if value is None else tuple(float(v) for v in value)


def _positive(instance, attribute, value):
    if not (isinstance(value, int | float) and not isinstance(value, bool) and value >= 0):
        raise ConfigError(invalid(type(instance).__name__, attribute.name, "a number >= 0", value))


class Loss:
    """Base class: ``loss(probabilities, labels) -> scalar tensor``."""

    ignore_label = None

    def __call__(self, probabilities, labels):
        raise NotImplementedError


@attrs.frozen(kw_only=True)
class CrossEntropy(Loss):
    """Mean voxelwise categorical cross-entropy over labelled voxels; with `class_weights` the
    weighted mean ``sum(w_y * ce) / sum(w_y)`` (PyTorch's ``cross_entropy(weight=w,
    ignore_index=ignore_label)``)."""

    ignore_label: int | None = attrs.field(default=None, validator=_optional_label)
    class_weights: tuple[float, ...] | None = attrs.field(default=None, converter=_weights)

    def __call__(self, probabilities, labels):
        weights = None if self.class_weights is None else np.asarray(self.class_weights)
        ce = objectives.categorical_crossentropy(
            probabilities, labels, ignore_label=self.ignore_label, class_weights=weights
        )
        mask = objectives.label_mask(labels, self.ignore_label, weights)
        # sum(w * ce) / sum(w): `ce` already carries w_y, so normalise by the mask's sum
        return ce.sum() / pt.maximum(mask.sum(), 1e-12)


@attrs.frozen(kw_only=True)
class Dice(Loss):
    """``1 - mean soft Dice`` over samples and classes (MONAI's ``DiceLoss`` on softmax outputs,
    ``smooth`` added to numerator and denominator)."""

    ignore_label: int | None = attrs.field(default=None, validator=_optional_label)
    smooth: float = attrs.field(default=1e-5, validator=_positive)
    include_background: bool = True

    def __call__(self, probabilities, labels):
        return objectives.soft_dice(
            probabilities,
            labels,
            smooth=self.smooth,
            ignore_label=self.ignore_label,
            include_background=self.include_background,
        ).mean()


@attrs.frozen(kw_only=True)
class CrossEntropyDice(Loss):
    """``ce_weight * CrossEntropy + dice_weight * Dice`` (MONAI's ``DiceCELoss``)."""

    ignore_label: int | None = attrs.field(default=None, validator=_optional_label)
    class_weights: tuple[float, ...] | None = attrs.field(default=None, converter=_weights)
    ce_weight: float = attrs.field(default=1.0, validator=_positive)
    dice_weight: float = attrs.field(default=1.0, validator=_positive)

    def __call__(self, probabilities, labels):
        ce = CrossEntropy(ignore_label=self.ignore_label, class_weights=self.class_weights)
        dice = Dice(ignore_label=self.ignore_label)
        return self.ce_weight * ce(probabilities, labels) + self.dice_weight * dice(
            probabilities, labels
        )


#: loss names accepted by `Model.compile`
LOSSES = {
    "crossentropy": CrossEntropy,
    "categorical_crossentropy": CrossEntropy,
    "ce": CrossEntropy,
    "dice": Dice,
    "soft_dice": Dice,
    "crossentropy+dice": CrossEntropyDice,
    "dice+crossentropy": CrossEntropyDice,
    "dice_ce": CrossEntropyDice,
}


def get_loss(loss, *, ignore_label=None, class_weights=None) -> Loss:
    """A `Loss` from a name (with `ignore_label`/`class_weights`) or a `Loss` object."""
    if isinstance(loss, Loss):
        return loss
    if isinstance(loss, str) and loss in LOSSES:
        cls = LOSSES[loss]
        kwargs = {"ignore_label": ignore_label}
        if "class_weights" in attrs.fields_dict(cls):
            kwargs["class_weights"] = class_weights
        elif class_weights is not None:
            raise ConfigError(
                invalid("Model.compile", "class_weights", f"None for loss={loss!r}", class_weights)
            )
        return cls(**kwargs)
    raise ConfigError(
        invalid(
            "Model.compile",
            "loss",
            f"one of {', '.join(map(repr, LOSSES))} or a dilnet.model.Loss{suggest(loss, LOSSES)}",
            loss,
        )
    )
