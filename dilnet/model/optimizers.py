"""Optimizers by name or object, on top of `dilnet.updates`.

The learning rate lives in a shared variable (`Model.learning_rate`) so schedules change it
between steps without recompiling."""

import inspect
import math
from numbers import Real

import attrs

from .. import updates
from ..errors import ConfigError, invalid, suggest

__all__ = ["OPTIMIZERS", "Optimizer", "get_optimizer"]

#: name -> (update rule, default learning rate)
_RULES = {
    "sgd": (updates.sgd, 0.01),
    "momentum": (updates.momentum, 0.01),
    "nesterov": (updates.nesterov_momentum, 0.01),
    "adagrad": (updates.adagrad, 0.01),
    "rmsprop": (updates.rmsprop, 0.001),
    "adadelta": (updates.adadelta, 1.0),
    "adam": (updates.adam, 0.001),
    "adamax": (updates.adamax, 0.002),
    "amsgrad": (updates.amsgrad, 0.001),
}
OPTIMIZERS = tuple(_RULES)


def _rule_options(name) -> list:
    """The keyword arguments of rule `name` other than the loss, the params and the rate."""
    skip = ("loss_or_grads", "params", "learning_rate")
    return [p for p in inspect.signature(_RULES[name][0]).parameters if p not in skip]


def _check_name(name, where, label):
    if not (isinstance(name, str) and name in _RULES):
        raise ConfigError(
            invalid(
                where,
                label,
                f"one of {', '.join(map(repr, OPTIMIZERS))}"
                f"{' or an Optimizer' if label == 'optimizer' else ''}{suggest(name, OPTIMIZERS)}",
                name,
            )
        )


def _check_options(name, options, where) -> dict:
    allowed = _rule_options(name)
    for key in options:
        if key not in allowed:
            raise ConfigError(
                invalid(
                    where,
                    key,
                    f"an option of {name!r}: {', '.join(allowed) or 'none'}{suggest(key, allowed)}",
                    options[key],
                )
            )
    return dict(options)


def _check_learning_rate(value, where) -> float:
    # numbers.Real admits numpy scalars (np.float32(0.01)); bool is an int but no rate
    if not (isinstance(value, Real) and not isinstance(value, bool)) or not (
        math.isfinite(value) and value >= 0
    ):
        raise ConfigError(invalid(where, "learning_rate", "a finite number >= 0", value))
    return float(value)


@attrs.frozen
class Optimizer:
    """An update rule of `dilnet.updates` with its hyper-parameters.

    ``Optimizer("adam", 1e-3, {"beta1": 0.9})``: the rule's name (one of `OPTIMIZERS`), the
    learning rate (None: the rule's default) and the rule's own keyword arguments
    (``{"momentum": 0.9}`` for 'momentum' and 'nesterov', ``{"rho": 0.9}`` for 'rmsprop', …).
    All three are checked when the object is made.
    """

    name: str
    learning_rate: float | None = None
    options: dict = attrs.field(factory=dict, eq=False)

    def __attrs_post_init__(self):
        where = "Optimizer"
        _check_name(self.name, where, "name")
        if not isinstance(self.options, dict):
            raise ConfigError(
                invalid(where, "options", "a dict of the rule's keyword arguments", self.options)
            )
        rate = _RULES[self.name][1] if self.learning_rate is None else self.learning_rate
        # frozen: the checked values replace the given ones once, here
        object.__setattr__(self, "learning_rate", _check_learning_rate(rate, where))
        object.__setattr__(self, "options", _check_options(self.name, self.options, where))

    def updates(self, loss, params, learning_rate):
        rule = _RULES[self.name][0]
        return rule(loss, params, learning_rate, **self.options)


def get_optimizer(optimizer, learning_rate=None, **options) -> Optimizer:
    """An `Optimizer` from a name (with its learning rate and options) or an `Optimizer`."""
    where = "Model.compile"
    if isinstance(optimizer, Optimizer):
        if learning_rate is not None or options:
            name, value = (
                ("learning_rate", learning_rate)
                if learning_rate is not None
                else next(iter(options.items()))
            )
            raise ConfigError(
                invalid(where, name, "None when optimizer is an Optimizer object", value)
            )
        return optimizer
    _check_name(optimizer, where, "optimizer")
    options = _check_options(optimizer, options, where)
    rate = _RULES[optimizer][1] if learning_rate is None else learning_rate
    return Optimizer(optimizer, _check_learning_rate(rate, where), options)
