"""Training losses by name or object: cross-entropy (with an ignore label and class weights),
soft Dice, and their sum. Each maps class probabilities ``(batch, classes, *spatial)`` and
integer labels ``(batch, *spatial)`` to a scalar."""

import math
from numbers import Real

import attrs
import numpy as np
import pytensor.tensor as pt

from .. import objectives
from ..errors import ConfigError, invalid, suggest
from ..utils import is_int

__all__ = [
    "LOSSES",
    "CrossEntropy",
    "CrossEntropyDice",
    "Dice",
    "Loss",
    "get_loss",
    "loss_ignore_label",
]


def _is_number(value) -> bool:
    """A real number (Python or numpy), not a bool."""
    return isinstance(value, Real) and not isinstance(value, bool | np.bool_)


def _label(value):
    return int(value) if is_int(value) else value


def _optional_label(instance, attribute, value):
    if value is not None and not is_int(value):
        raise ConfigError(invalid(type(instance).__name__, attribute.name, "an int or None", value))


def _weights(value):
    """A tuple of floats where `value` is a sequence of numbers; anything else is left for
    `_check_weights` to reject with a message."""
    if value is None or isinstance(value, str | bytes):
        return value
    try:
        items = tuple(value)
    except TypeError:  # not iterable (or a 0-d array)
        return value
    return tuple(float(v) if _is_number(v) else v for v in items)


def _check_weights(instance, attribute, value):
    if value is None:
        return
    if not (
        isinstance(value, tuple)
        and value
        and all(_is_number(v) and math.isfinite(v) and v >= 0 for v in value)
        and any(v > 0 for v in value)
    ):
        raise ConfigError(
            invalid(
                type(instance).__name__,
                attribute.name,
                "None or a sequence of finite numbers >= 0 (one per class), at least one > 0",
                value,
            )
        )


def _non_negative(instance, attribute, value):
    if not (_is_number(value) and math.isfinite(value) and value >= 0):
        raise ConfigError(
            invalid(type(instance).__name__, attribute.name, "a finite number >= 0", value)
        )


def _boolean(instance, attribute, value):
    if not isinstance(value, bool):
        raise ConfigError(invalid(type(instance).__name__, attribute.name, "True or False", value))


def _bool(value):
    return bool(value) if isinstance(value, np.bool_) else value


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

    ignore_label: int | None = attrs.field(
        default=None, converter=_label, validator=_optional_label
    )
    class_weights: tuple[float, ...] | None = attrs.field(
        default=None, converter=_weights, validator=_check_weights
    )

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

    ignore_label: int | None = attrs.field(
        default=None, converter=_label, validator=_optional_label
    )
    smooth: float = attrs.field(default=1e-5, validator=_non_negative)
    include_background: bool = attrs.field(default=True, converter=_bool, validator=_boolean)

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

    ignore_label: int | None = attrs.field(
        default=None, converter=_label, validator=_optional_label
    )
    class_weights: tuple[float, ...] | None = attrs.field(
        default=None, converter=_weights, validator=_check_weights
    )
    ce_weight: float = attrs.field(default=1.0, validator=_non_negative)
    dice_weight: float = attrs.field(default=1.0, validator=_non_negative)

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


def _merge(loss, name, value, where):
    """`loss` with its field `name` set to `value` where it has none (an evolved copy); `loss`
    where the two agree; a `ConfigError` naming `name` where they differ."""
    if value is None:
        return loss
    own = getattr(loss, name, None)
    if attrs.has(type(loss)) and name in attrs.fields_dict(type(loss)):
        candidate = attrs.evolve(loss, **{name: value})  # converts and validates `value`
        if own is None:
            return candidate
        if getattr(candidate, name) == own:
            return loss
    elif own is not None and own == value:
        return loss
    elif own is None:
        raise ConfigError(
            invalid(
                where,
                name,
                f"None for loss={loss!r}, which has no `{name}` field to set",
                value,
            )
        )
    raise ConfigError(invalid(where, name, f"None or the loss object's own {name}={own!r}", value))


def get_loss(loss, *, ignore_label=None, class_weights=None) -> Loss:
    """A `Loss` from a name (with `ignore_label`/`class_weights`) or a `Loss` object.

    For a `Loss` object, `ignore_label` and `class_weights` must be None or equal the object's
    own fields; where the object's field is None, the returned loss is a copy with the given
    value (``attrs.evolve``).
    """
    where = "Model.compile"
    if isinstance(loss, Loss):
        loss = _merge(loss, "ignore_label", ignore_label, where)
        return _merge(loss, "class_weights", class_weights, where)
    if isinstance(loss, str) and loss in LOSSES:
        cls = LOSSES[loss]
        kwargs = {"ignore_label": ignore_label}
        if "class_weights" in attrs.fields_dict(cls):
            kwargs["class_weights"] = class_weights
        elif class_weights is not None:
            raise ConfigError(
                invalid(where, "class_weights", f"None for loss={loss!r}", class_weights)
            )
        return cls(**kwargs)
    raise ConfigError(
        invalid(
            where,
            "loss",
            f"one of {', '.join(map(repr, LOSSES))} or a dilnet.model.Loss{suggest(loss, LOSSES)}",
            loss,
        )
    )


def loss_ignore_label(loss):
    """The label `loss` leaves out (its `ignore_label`; None for a loss without one)."""
    value = getattr(loss, "ignore_label", None)
    return int(value) if is_int(value) else value
