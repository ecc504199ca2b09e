"""Optimizers by name or object, on top of `dilnet.updates`.

The learning rate lives in a shared variable (`Model.learning_rate`) so schedules change it
between steps without recompiling."""

import inspect

import attrs

from .. import updates
from ..blocks.base import suggest
from ..errors import ConfigError, invalid

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


@attrs.frozen
class Optimizer:
    """An update rule of `dilnet.updates` with its hyper-parameters.

    ``Optimizer("adam", learning_rate=1e-3, beta1=0.9)``; the other keyword arguments are the
    rule's own (``momentum=`` for 'momentum' and 'nesterov', ``rho=`` for 'rmsprop', …).
    """

    name: str
    learning_rate: float
    options: dict = attrs.field(factory=dict, eq=False)

    def updates(self, loss, params, learning_rate):
        rule = _RULES[self.name][0]
        return rule(loss, params, learning_rate, **self.options)


def get_optimizer(optimizer, learning_rate=None, **options) -> Optimizer:
    """An `Optimizer` from a name (with its options) or an `Optimizer`."""
    where = "Model.compile"
    if isinstance(optimizer, Optimizer):
        if learning_rate is not None or options:
            raise ConfigError(
                invalid(
                    where,
                    "learning_rate",
                    "None when optimizer is an Optimizer object",
                    learning_rate,
                )
            )
        return optimizer
    if not (isinstance(optimizer, str) and optimizer in _RULES):
        raise ConfigError(
            invalid(
                where,
                "optimizer",
                f"one of {', '.join(map(repr, OPTIMIZERS))} or an "
                f"Optimizer{suggest(optimizer, OPTIMIZERS)}",
                optimizer,
            )
        )
    rule, default_lr = _RULES[optimizer]
    allowed = [
        p
        for p in inspect.signature(rule).parameters
        if p not in ("loss_or_grads", "params", "learning_rate")
    ]
    for key in options:
        if key not in allowed:
            raise ConfigError(
                invalid(
                    where,
                    key,
                    f"an option of {optimizer!r}: {', '.join(allowed) or 'none'}"
                    f"{suggest(key, allowed)}",
                    options[key],
                )
            )
    lr = default_lr if learning_rate is None else learning_rate
    if isinstance(lr, bool) or not isinstance(lr, int | float) or not lr >= 0:
        raise ConfigError(invalid(where, "learning_rate", "a number >= 0", learning_rate))
    return Optimizer(optimizer, float(lr), dict(options))
