"""Update rules: from a loss (or its gradients) to the update dictionary of `pytensor.function`.

Lasagne's ``lasagne.updates`` with the same names, signatures, defaults and formulas. Every rule
takes a scalar loss or a list of gradients plus a list of shared variables and returns an
`OrderedDict` mapping each shared variable (parameters and the optimizer's own state) to its
update expression:

    updates = adam(loss, params, learning_rate=1e-3)
    train = pytensor.function([x, y], loss, updates=updates)

Hyperparameters may be Python numbers or symbolic scalars (a shared variable makes a learning
rate schedule without recompiling):

    eta = pytensor.shared(np.float64(0.01))
    updates = sgd(loss, params, learning_rate=eta)
    eta.set_value(eta.get_value() * 0.1)

Dtypes: PyTensor 3 no longer casts Python floats to ``floatX`` and returns gradients in the
loss's dtype, so a float32 parameter would silently get a float64 update. Each rule therefore
casts the gradient and every hyperparameter to the parameter's dtype: a float32 parameter and its
state stay float32 whatever the dtypes of the loss and the hyperparameters. State variables copy
the parameter's dtype and static shape (hence its broadcastable pattern).

`norm_constraint` and `total_norm_constraint` rescale expressions (weights after an update, or
gradients before one) to a maximum norm.
"""

import functools
import operator
from collections import OrderedDict

import numpy as np
import pytensor
import pytensor.tensor as pt
from pytensor.compile import SharedVariable
from pytensor.graph.basic import Variable
from pytensor.tensor.type import TensorType

from .errors import ConfigError, invalid
from .state import collect_state_updates
from .utils import is_int

__all__ = [
    "adadelta",
    "adagrad",
    "adam",
    "adamax",
    "amsgrad",
    "apply_momentum",
    "apply_nesterov_momentum",
    "get_or_compute_grads",
    "momentum",
    "nesterov_momentum",
    "norm_constraint",
    "rmsprop",
    "sgd",
    "total_norm_constraint",
]

_NOT_SHARED = (
    "a floating-point shared variable (an expression of parameters has no storage to update: "
    "pass the shared variables themselves, e.g. from get_all_params)"
)


# --- argument normalisers ------------------------------------------------------------------------


def _check_params(params, where: str, *, floats: bool = True) -> list:
    """`params` as a list, every item a tensor shared variable (a floating-point one when
    `floats`: the update rules)."""
    if isinstance(params, Variable):
        raise ConfigError(invalid(where, "params", "a list of shared variables", params))
    try:
        params = list(params)
    except TypeError as err:
        raise ConfigError(invalid(where, "params", "a list of shared variables", params)) from err
    for i, param in enumerate(params):
        if not (
            isinstance(param, SharedVariable)
            and isinstance(param.type, TensorType)
            and (param.dtype.startswith("float") or not floats)
        ):
            raise ConfigError(invalid(where, f"params[{i}]", _NOT_SHARED, param))
    return params


def _as_tensor(value, name: str, where: str, expected: str):
    try:
        return pt.as_tensor_variable(value)
    except (TypeError, ValueError, NotImplementedError) as err:
        raise ConfigError(invalid(where, name, expected, value)) from err


def _grads(loss_or_grads, params, where: str, *, floats: bool = True) -> tuple[list, list]:
    """Checked `params` and their gradients: the given list, or ``pytensor.grad(loss, params)``."""
    params = _check_params(params, where, floats=floats)
    if isinstance(loss_or_grads, list | tuple):
        if len(loss_or_grads) != len(params):
            expected = f"a scalar loss or {len(params)} gradient expressions (one per parameter)"
            raise ConfigError(invalid(where, "loss_or_grads", expected, loss_or_grads))
        grads = []
        for i, (param, grad) in enumerate(zip(params, loss_or_grads, strict=True)):
            name = f"loss_or_grads[{i}]"
            grad = _as_tensor(grad, name, where, "a tensor expression")
            if grad.ndim != param.ndim:
                expected = f"a gradient with the {param.ndim} dims of params[{i}]"
                raise ConfigError(invalid(where, name, expected, grad.type))
            grads.append(grad)
        return params, grads
    loss = _as_tensor(loss_or_grads, "loss_or_grads", where, "a scalar loss or a list of gradients")
    if loss.ndim != 0:
        expected = "a scalar loss (reduce it, e.g. with .mean()) or a list of gradients"
        raise ConfigError(invalid(where, "loss_or_grads", expected, loss.type))
    return params, pytensor.grad(loss, params)


def _pairs(loss_or_grads, params, where: str) -> list[tuple]:
    """(param, grad) pairs, each gradient cast to its parameter's dtype."""
    params, grads = _grads(loss_or_grads, params, where)
    return [(p, _cast(g, p.dtype)) for p, g in zip(params, grads, strict=True)]


def _hyper(value, name: str, where: str):
    """A hyperparameter checked once: a 0-d numpy array for numbers, else a symbolic scalar."""
    if isinstance(value, Variable):
        if not isinstance(value.type, TensorType) or value.ndim != 0:
            raise ConfigError(invalid(where, name, "a number or a symbolic scalar", value.type))
        return value
    array = np.asarray(value)
    if array.ndim != 0 or array.dtype.kind not in "iuf":  # bools ("b") are refused too
        raise ConfigError(invalid(where, name, "a number or a symbolic scalar", value))
    return array


def _as(value, dtype: str):
    """A hyperparameter from `_hyper` (or any expression) in `dtype`."""
    if isinstance(value, np.ndarray):
        return pt.constant(value.astype(dtype))
    return _cast(value, dtype)


def _cast(expr, dtype: str):
    return expr if expr.dtype == dtype else expr.astype(dtype)


def _zeros_like(param, what: str):
    """A shared zero tensor with `param`'s dtype and static shape (so its broadcastable pattern)."""
    value = param.get_value(borrow=True)
    name = f"{param.name}.{what}" if param.name else None
    return pytensor.shared(
        np.zeros(value.shape, dtype=value.dtype), shape=param.type.shape, name=name
    )


def _step_counter():
    # floatX as in Lasagne; exact for integers up to 2**24 steps even in float32.
    return pytensor.shared(np.asarray(0.0, dtype=pytensor.config.floatX), name="t")


# --- gradients and plain SGD ---------------------------------------------------------------------


def _with_state_updates(rule):
    """Add the state updates found in the loss's (or gradients') graph — batch-norm running
    averages, dropout generators (`dilnet.state`) — after the rule's own updates."""

    @functools.wraps(rule)
    def wrapper(loss_or_grads, params, *args, **kwargs):
        updates = rule(loss_or_grads, params, *args, **kwargs)
        exprs = loss_or_grads if isinstance(loss_or_grads, list | tuple) else [loss_or_grads]
        for variable, new_value in collect_state_updates(exprs).items():
            updates.setdefault(variable, new_value)
        return updates

    return wrapper


def get_or_compute_grads(loss_or_grads, params):
    """Return the gradients of a loss, or check and return a given list of gradients.

    Parameters
    ----------
    loss_or_grads : symbolic scalar or list of expressions
        A scalar loss expression, or a list (or tuple) of gradient expressions, one per
        parameter.
    params : list of shared variables
        The variables to return the gradients for.

    Returns
    -------
    list of expressions
        The given gradients (as tensors), or ``pytensor.grad(loss_or_grads, params)``.

    Raises
    ------
    ConfigError
        If an element of `params` is not a tensor shared variable (its gradient could be
        computed, but it could never be updated, so fail early; integer ones are allowed here,
        their gradient is 0, while the update rules need floats), or if a list of gradients has a different
        length from `params` or a gradient a different number of dims from its parameter.
        `ConfigError` is a `ValueError`, as Lasagne raised.
    """
    grads = _grads(loss_or_grads, params, "get_or_compute_grads", floats=False)[1]
    if isinstance(loss_or_grads, list) and all(
        g is given for g, given in zip(grads, loss_or_grads, strict=True)
    ):
        return loss_or_grads  # as Lasagne: a list of expressions comes back as is
    return grads


@_with_state_updates
def sgd(loss_or_grads, params, learning_rate):
    """Stochastic gradient descent updates.

    ``param := param - learning_rate * grad``

    Parameters
    ----------
    loss_or_grads : symbolic scalar or list of expressions
        A scalar loss expression, or a list of gradient expressions.
    params : list of shared variables
        The variables to generate update expressions for.
    learning_rate : float or symbolic scalar
        The size of the update steps.

    Returns
    -------
    OrderedDict
        Each parameter mapped to its update expression.
    """
    return _sgd(loss_or_grads, params, learning_rate, "sgd")


def _sgd(loss_or_grads, params, learning_rate, where: str) -> OrderedDict:
    lr = _hyper(learning_rate, "learning_rate", where)
    updates = OrderedDict()
    for param, grad in _pairs(loss_or_grads, params, where):
        updates[param] = param - _as(lr, param.dtype) * grad
    return updates


# --- momentum ------------------------------------------------------------------------------------


def _updates_and_params(updates, params, where: str) -> tuple[OrderedDict, list]:
    """A copy of `updates` and the parameters to modify (all its keys when `params` is None)."""
    try:
        updates = OrderedDict(updates)
    except (TypeError, ValueError) as err:
        expected = "a dict (or list of pairs) from shared variables to update expressions"
        raise ConfigError(invalid(where, "updates", expected, updates)) from err
    # a snapshot: the loop below adds velocity entries to `updates`
    params = _check_params(list(updates) if params is None else params, where)
    for i, param in enumerate(params):
        if param not in updates:
            raise ConfigError(invalid(where, f"params[{i}]", "a key of `updates`", param))
    return updates, params


def apply_momentum(updates, params=None, momentum=0.9):
    """Return a copy of an update dictionary with (heavy-ball) momentum added.

    ``velocity := momentum * velocity + updates[param] - param``

    ``param := param + velocity``

    Parameters
    ----------
    updates : OrderedDict
        Parameters mapped to update expressions, e.g. from `sgd`.
    params : iterable of shared variables, optional
        The parameters to apply momentum to; all keys of `updates` when omitted, which includes
        the state of a rule other than `sgd` (its accumulators): pass `params` then.
    momentum : float or symbolic scalar, optional
        The decay of the velocity. Higher momentum smooths over more steps. Default 0.9.

    Returns
    -------
    OrderedDict
        A copy of `updates` with the momentum updates of `params` and their velocities.

    Notes
    -----
    Higher momentum also makes larger steps; scale the learning rate by ``1 - momentum`` to
    counter that.

    See Also
    --------
    - `momentum`: SGD with momentum, in one call.
    """
    return _apply_momentum(updates, params, momentum, "apply_momentum")


def _apply_momentum(updates, params, momentum, where: str) -> OrderedDict:
    mu = _hyper(momentum, "momentum", where)
    updates, params = _updates_and_params(updates, params, where)
    for param in params:
        velocity = _zeros_like(param, "velocity")
        x = _cast(_as(mu, param.dtype) * velocity + updates[param], param.dtype)
        updates[velocity] = x - param
        updates[param] = x
    return updates


@_with_state_updates
def momentum(loss_or_grads, params, learning_rate, momentum=0.9):
    """Stochastic gradient descent updates with (heavy-ball) momentum.

    ``velocity := momentum * velocity - learning_rate * grad``

    ``param := param + velocity``

    Parameters
    ----------
    loss_or_grads : symbolic scalar or list of expressions
        A scalar loss expression, or a list of gradient expressions.
    params : list of shared variables
        The variables to generate update expressions for.
    learning_rate : float or symbolic scalar
        The size of the update steps.
    momentum : float or symbolic scalar, optional
        The decay of the velocity. Default 0.9.

    Returns
    -------
    OrderedDict
        Each parameter and each velocity mapped to its update expression.

    Notes
    -----
    Higher momentum also makes larger steps; scale the learning rate by ``1 - momentum`` to
    counter that.

    See Also
    --------
    - `apply_momentum`: adds momentum to any update dictionary.
    - `nesterov_momentum`: Nesterov's variant.
    """
    _hyper(momentum, "momentum", "momentum")  # fail before building the SGD graph
    updates = _sgd(loss_or_grads, params, learning_rate, "momentum")
    return _apply_momentum(updates, None, momentum, "momentum")


def apply_nesterov_momentum(updates, params=None, momentum=0.9):
    """Return a copy of an update dictionary with Nesterov momentum added.

    ``velocity := momentum * velocity + updates[param] - param``

    ``param := param + momentum * velocity + updates[param] - param``

    Parameters
    ----------
    updates : OrderedDict
        Parameters mapped to update expressions, e.g. from `sgd`.
    params : iterable of shared variables, optional
        The parameters to apply momentum to; all keys of `updates` when omitted, which includes
        the state of a rule other than `sgd` (its accumulators): pass `params` then.
    momentum : float or symbolic scalar, optional
        The decay of the velocity. Default 0.9.

    Returns
    -------
    OrderedDict
        A copy of `updates` with the momentum updates of `params` and their velocities.

    Notes
    -----
    Classic Nesterov momentum evaluates the gradient at the look-ahead point
    ``param + momentum * velocity``. This is the reformulation (pylearn2, as in Lasagne) in the
    shifted variable, which evaluates the gradient at the current parameters.

    See Also
    --------
    - `nesterov_momentum`: SGD with Nesterov momentum, in one call.
    """
    return _apply_nesterov_momentum(updates, params, momentum, "apply_nesterov_momentum")


def _apply_nesterov_momentum(updates, params, momentum, where: str) -> OrderedDict:
    mu = _hyper(momentum, "momentum", where)
    updates, params = _updates_and_params(updates, params, where)
    for param in params:
        velocity = _zeros_like(param, "velocity")
        mu_p = _as(mu, param.dtype)
        x = _cast(mu_p * velocity + updates[param] - param, param.dtype)
        updates[velocity] = x
        updates[param] = _cast(mu_p * x + updates[param], param.dtype)
    return updates


@_with_state_updates
def nesterov_momentum(loss_or_grads, params, learning_rate, momentum=0.9):
    """Stochastic gradient descent updates with Nesterov momentum.

    ``velocity := momentum * velocity - learning_rate * grad``

    ``param := param + momentum * velocity - learning_rate * grad``

    Parameters
    ----------
    loss_or_grads : symbolic scalar or list of expressions
        A scalar loss expression, or a list of gradient expressions.
    params : list of shared variables
        The variables to generate update expressions for.
    learning_rate : float or symbolic scalar
        The size of the update steps.
    momentum : float or symbolic scalar, optional
        The decay of the velocity. Default 0.9.

    Returns
    -------
    OrderedDict
        Each parameter and each velocity mapped to its update expression.

    See Also
    --------
    - `apply_nesterov_momentum`: adds Nesterov momentum to any update dictionary.
    """
    _hyper(momentum, "momentum", "nesterov_momentum")  # fail before building the SGD graph
    updates = _sgd(loss_or_grads, params, learning_rate, "nesterov_momentum")
    return _apply_nesterov_momentum(updates, None, momentum, "nesterov_momentum")


# --- adaptive learning rates ---------------------------------------------------------------------


@_with_state_updates
def adagrad(loss_or_grads, params, learning_rate=1.0, epsilon=1e-6):
    """Adagrad updates (Duchi et al. 2011): divide by the root of the summed squared gradients.

    ``accu := accu + grad ** 2``

    ``param := param - learning_rate * grad / sqrt(accu + epsilon)``

    Parameters
    ----------
    loss_or_grads : symbolic scalar or list of expressions
        A scalar loss expression, or a list of gradient expressions.
    params : list of shared variables
        The variables to generate update expressions for.
    learning_rate : float or symbolic scalar, optional
        The step size. Default 1.0.
    epsilon : float or symbolic scalar, optional
        Added under the square root for numerical stability. Default 1e-6.

    Returns
    -------
    OrderedDict
        Each accumulator and each parameter mapped to its update expression.

    Notes
    -----
    The effective learning rate of each element decreases monotonically. The epsilon is not in
    the paper's formula (see C. Dyer, "Notes on AdaGrad").

    References
    ----------
    Duchi, J., Hazan, E. and Singer, Y. (2011): Adaptive subgradient methods for online
    learning and stochastic optimization. JMLR 12:2121-2159.
    """
    where = "adagrad"
    lr = _hyper(learning_rate, "learning_rate", where)
    eps = _hyper(epsilon, "epsilon", where)
    updates = OrderedDict()
    for param, grad in _pairs(loss_or_grads, params, where):
        dtype = param.dtype
        accu = _zeros_like(param, "accu")
        accu_new = accu + grad**2
        updates[accu] = accu_new
        updates[param] = param - _as(lr, dtype) * grad / pt.sqrt(accu_new + _as(eps, dtype))
    return updates


@_with_state_updates
def rmsprop(loss_or_grads, params, learning_rate=1.0, rho=0.9, epsilon=1e-6):
    """RMSProp updates (Tieleman and Hinton 2012): divide by a running RMS of the gradients.

    ``accu := rho * accu + (1 - rho) * grad ** 2``

    ``param := param - learning_rate * grad / sqrt(accu + epsilon)``

    Parameters
    ----------
    loss_or_grads : symbolic scalar or list of expressions
        A scalar loss expression, or a list of gradient expressions.
    params : list of shared variables
        The variables to generate update expressions for.
    learning_rate : float or symbolic scalar, optional
        The step size. Default 1.0.
    rho : float or symbolic scalar, optional
        The decay of the moving average of squared gradients, in [0, 1): close to 1 forgets
        slowly. Default 0.9.
    epsilon : float or symbolic scalar, optional
        Added under the square root for numerical stability. Default 1e-6.

    Returns
    -------
    OrderedDict
        Each accumulator and each parameter mapped to its update expression.

    References
    ----------
    Tieleman, T. and Hinton, G. (2012): Neural Networks for Machine Learning, lecture
    6.5 - rmsprop. Coursera.
    """
    where = "rmsprop"
    lr = _hyper(learning_rate, "learning_rate", where)
    rho = _hyper(rho, "rho", where)
    eps = _hyper(epsilon, "epsilon", where)
    updates = OrderedDict()
    for param, grad in _pairs(loss_or_grads, params, where):
        dtype = param.dtype
        rho_p = _as(rho, dtype)
        accu = _zeros_like(param, "accu")
        accu_new = rho_p * accu + (1 - rho_p) * grad**2
        updates[accu] = accu_new
        updates[param] = param - _as(lr, dtype) * grad / pt.sqrt(accu_new + _as(eps, dtype))
    return updates


@_with_state_updates
def adadelta(loss_or_grads, params, learning_rate=1.0, rho=0.95, epsilon=1e-6):
    """Adadelta updates (Zeiler 2012): scale by the ratio of running RMS updates to gradients.

    ``accu := rho * accu + (1 - rho) * grad ** 2``

    ``update = grad * sqrt(delta_accu + epsilon) / sqrt(accu + epsilon)``  (the *old* delta_accu)

    ``param := param - learning_rate * update``

    ``delta_accu := rho * delta_accu + (1 - rho) * update ** 2``

    Parameters
    ----------
    loss_or_grads : symbolic scalar or list of expressions
        A scalar loss expression, or a list of gradient expressions.
    params : list of shared variables
        The variables to generate update expressions for.
    learning_rate : float or symbolic scalar, optional
        A factor on the step; the paper has none, so best kept at 1.0 (the default).
    rho : float or symbolic scalar, optional
        The decay of both moving averages, in [0, 1). Default 0.95 (the paper's).
    epsilon : float or symbolic scalar, optional
        Added under both square roots; it makes the very first step non-zero. Default 1e-6.

    Returns
    -------
    OrderedDict
        Each accumulator and each parameter mapped to its update expression.

    Notes
    -----
    `update` is accumulated before `learning_rate` scales it, as in Lasagne.

    References
    ----------
    Zeiler, M. D. (2012): ADADELTA: An Adaptive Learning Rate Method.
    arXiv:1212.5701.
    """
    where = "adadelta"
    lr = _hyper(learning_rate, "learning_rate", where)
    rho = _hyper(rho, "rho", where)
    eps = _hyper(epsilon, "epsilon", where)
    updates = OrderedDict()
    for param, grad in _pairs(loss_or_grads, params, where):
        dtype = param.dtype
        rho_p, eps_p = _as(rho, dtype), _as(eps, dtype)
        accu = _zeros_like(param, "accu")  # running mean of squared gradients
        delta_accu = _zeros_like(param, "delta_accu")  # running mean of squared updates
        accu_new = rho_p * accu + (1 - rho_p) * grad**2
        updates[accu] = accu_new
        update = grad * pt.sqrt(delta_accu + eps_p) / pt.sqrt(accu_new + eps_p)
        updates[param] = param - _as(lr, dtype) * update
        updates[delta_accu] = rho_p * delta_accu + (1 - rho_p) * update**2
    return updates


def _adam_scalars(lr, beta1, beta2, eps, t):
    """dtype -> (beta1, beta2, epsilon, bias-corrected step size) of Adam and AMSGrad, each
    built once per dtype rather than once per parameter: the merge rewrite would fold the copies,
    but building and rewriting them cost 0.2 s of a training function's compile."""

    @functools.cache
    def scalars(dtype):
        b1, b2, t_p = _as(beta1, dtype), _as(beta2, dtype), _cast(t, dtype)
        return b1, b2, _as(eps, dtype), _as(lr, dtype) * pt.sqrt(1 - b2**t_p) / (1 - b1**t_p)

    return scalars


@_with_state_updates
def adam(loss_or_grads, params, learning_rate=0.001, beta1=0.9, beta2=0.999, epsilon=1e-8):
    """Adam updates (Kingma and Ba 2014), in the paper's bias-corrected step-size form.

    ``t := t + 1``

    ``m := beta1 * m + (1 - beta1) * grad``

    ``v := beta2 * v + (1 - beta2) * grad ** 2``

    ``param := param - learning_rate * sqrt(1 - beta2 ** t) / (1 - beta1 ** t) * m / (sqrt(v) + epsilon)``

    Parameters
    ----------
    loss_or_grads : symbolic scalar or list of expressions
        A scalar loss expression, or a list of gradient expressions.
    params : list of shared variables
        The variables to generate update expressions for.
    learning_rate : float or symbolic scalar, optional
        The step size. Default 0.001.
    beta1 : float or symbolic scalar, optional
        The decay of the first-moment estimate. Default 0.9.
    beta2 : float or symbolic scalar, optional
        The decay of the second-moment estimate. Default 0.999.
    epsilon : float or symbolic scalar, optional
        Added to ``sqrt(v)`` for numerical stability. Default 1e-8.

    Returns
    -------
    OrderedDict
        Each moment and each parameter mapped to its update expression, then the step counter
        ``t`` (a shared ``floatX`` scalar, one for all parameters).

    Notes
    -----
    The bias correction is folded into the step size (the end of section 2 of the paper), so
    epsilon is added to the uncorrected ``sqrt(v)``: the paper's "epsilon hat". The paper's
    lambda (decaying beta1) only serves its convergence proof and is omitted.

    References
    ----------
    Kingma, D. P. and Ba, J. (2014): Adam: A Method for Stochastic Optimization.
    arXiv:1412.6980.
    """
    where = "adam"
    lr = _hyper(learning_rate, "learning_rate", where)
    beta1 = _hyper(beta1, "beta1", where)
    beta2 = _hyper(beta2, "beta2", where)
    eps = _hyper(epsilon, "epsilon", where)
    pairs = _pairs(loss_or_grads, params, where)
    t_prev = _step_counter()
    t = t_prev + 1
    updates = OrderedDict()

    scalars = _adam_scalars(lr, beta1, beta2, eps, t)
    for param, grad in pairs:
        b1, b2, eps_p, a_t = scalars(param.dtype)
        m_prev = _zeros_like(param, "m")
        v_prev = _zeros_like(param, "v")
        m_t = b1 * m_prev + (1 - b1) * grad
        v_t = b2 * v_prev + (1 - b2) * grad**2
        updates[m_prev] = m_t
        updates[v_prev] = v_t
        updates[param] = param - a_t * m_t / (pt.sqrt(v_t) + eps_p)
    updates[t_prev] = t
    return updates


@_with_state_updates
def adamax(loss_or_grads, params, learning_rate=0.002, beta1=0.9, beta2=0.999, epsilon=1e-8):
    """Adamax updates (Kingma and Ba 2014): Adam with an infinity-norm second moment.

    ``t := t + 1``

    ``m := beta1 * m + (1 - beta1) * grad``

    ``u := max(beta2 * u, abs(grad))``

    ``param := param - learning_rate / (1 - beta1 ** t) * m / (u + epsilon)``

    Parameters
    ----------
    loss_or_grads : symbolic scalar or list of expressions
        A scalar loss expression, or a list of gradient expressions.
    params : list of shared variables
        The variables to generate update expressions for.
    learning_rate : float or symbolic scalar, optional
        The step size. Default 0.002.
    beta1 : float or symbolic scalar, optional
        The decay of the first-moment estimate. Default 0.9.
    beta2 : float or symbolic scalar, optional
        The decay of the weighted infinity norm. Default 0.999.
    epsilon : float or symbolic scalar, optional
        Added to ``u`` for numerical stability (the paper has none). Default 1e-8.

    Returns
    -------
    OrderedDict
        Each moment and each parameter mapped to its update expression, then the step counter.

    References
    ----------
    Kingma, D. P. and Ba, J. (2014): Adam: A Method for Stochastic Optimization.
    arXiv:1412.6980, section 7.1.
    """
    where = "adamax"
    lr = _hyper(learning_rate, "learning_rate", where)
    beta1 = _hyper(beta1, "beta1", where)
    beta2 = _hyper(beta2, "beta2", where)
    eps = _hyper(epsilon, "epsilon", where)
    pairs = _pairs(loss_or_grads, params, where)
    t_prev = _step_counter()
    t = t_prev + 1
    updates = OrderedDict()

    @functools.cache  # one scalar graph per dtype, not per parameter (less to compile)
    def scalars(dtype):
        b1 = _as(beta1, dtype)
        return b1, _as(beta2, dtype), _as(eps, dtype), _as(lr, dtype) / (1 - b1 ** _cast(t, dtype))

    for param, grad in pairs:
        b1, b2, eps_p, a_t = scalars(param.dtype)
        m_prev = _zeros_like(param, "m")
        u_prev = _zeros_like(param, "u")
        m_t = b1 * m_prev + (1 - b1) * grad
        u_t = pt.maximum(b2 * u_prev, abs(grad))
        updates[m_prev] = m_t
        updates[u_prev] = u_t
        updates[param] = param - a_t * m_t / (u_t + eps_p)
    updates[t_prev] = t
    return updates


@_with_state_updates
def amsgrad(loss_or_grads, params, learning_rate=0.001, beta1=0.9, beta2=0.999, epsilon=1e-8):
    """AMSGrad updates (Reddi et al. 2018): Adam dividing by the running maximum of ``v``.

    ``t := t + 1``

    ``m := beta1 * m + (1 - beta1) * grad``

    ``v := beta2 * v + (1 - beta2) * grad ** 2``

    ``v_hat := max(v_hat, v)``

    ``param := param - learning_rate * sqrt(1 - beta2 ** t) / (1 - beta1 ** t) * m / (sqrt(v_hat) + epsilon)``

    Parameters
    ----------
    loss_or_grads : symbolic scalar or list of expressions
        A scalar loss expression, or a list of gradient expressions.
    params : list of shared variables
        The variables to generate update expressions for.
    learning_rate : float or symbolic scalar, optional
        The step size. Default 0.001.
    beta1 : float or symbolic scalar, optional
        The decay of the first-moment estimate. Default 0.9.
    beta2 : float or symbolic scalar, optional
        The decay of the second-moment estimate. Default 0.999.
    epsilon : float or symbolic scalar, optional
        Added to ``sqrt(v_hat)`` for numerical stability. Default 1e-8.

    Returns
    -------
    OrderedDict
        Each moment and each parameter mapped to its update expression, then the step counter.

    Notes
    -----
    As in Lasagne, the step keeps Adam's bias-corrected step size (the paper's algorithm has no
    bias correction).

    References
    ----------
    Reddi, S. J., Kale, S. and Kumar, S. (2018): On the Convergence of Adam and Beyond.
    ICLR. https://openreview.net/forum?id=ryQu7f-RZ
    """
    where = "amsgrad"
    lr = _hyper(learning_rate, "learning_rate", where)
    beta1 = _hyper(beta1, "beta1", where)
    beta2 = _hyper(beta2, "beta2", where)
    eps = _hyper(epsilon, "epsilon", where)
    pairs = _pairs(loss_or_grads, params, where)
    t_prev = _step_counter()
    t = t_prev + 1
    updates = OrderedDict()

    scalars = _adam_scalars(lr, beta1, beta2, eps, t)
    for param, grad in pairs:
        b1, b2, eps_p, a_t = scalars(param.dtype)
        m_prev = _zeros_like(param, "m")
        v_prev = _zeros_like(param, "v")
        v_hat_prev = _zeros_like(param, "v_hat")
        m_t = b1 * m_prev + (1 - b1) * grad
        v_t = b2 * v_prev + (1 - b2) * grad**2
        v_hat_t = pt.maximum(v_hat_prev, v_t)
        updates[m_prev] = m_t
        updates[v_prev] = v_t
        updates[v_hat_prev] = v_hat_t
        updates[param] = param - a_t * m_t / (pt.sqrt(v_hat_t) + eps_p)
    updates[t_prev] = t
    return updates


# --- norm constraints ----------------------------------------------------------------------------


def _float_tensor(value, name: str, where: str):
    tensor = _as_tensor(value, name, where, "a floating-point tensor expression")
    if not tensor.dtype.startswith("float"):
        raise ConfigError(invalid(where, name, "a floating-point tensor expression", tensor.type))
    return tensor


def _norm_axes(norm_axes, ndim: int, where: str) -> tuple[int, ...]:
    """`norm_axes` (an int or a sequence of ints, negatives from the end) as distinct axes."""
    expected = f"distinct axes in [-{ndim}, {ndim}) of the {ndim}-d tensor"
    axes = (norm_axes,) if is_int(norm_axes) else norm_axes
    try:
        axes = tuple(axes)
    except TypeError as err:
        raise ConfigError(invalid(where, "norm_axes", expected, norm_axes)) from err
    if not axes or not all(is_int(a) and -ndim <= a < ndim for a in axes):
        raise ConfigError(invalid(where, "norm_axes", expected, norm_axes))
    axes = tuple(int(a) % ndim for a in axes)
    if len(set(axes)) != len(axes):
        raise ConfigError(invalid(where, "norm_axes", expected, norm_axes))
    return axes


def norm_constraint(tensor_var, max_norm, norm_axes=None, epsilon=1e-7):
    """Rescale the slices of a tensor whose norm exceeds `max_norm` to norm `max_norm`.

    ``norms = sqrt(sum(tensor_var ** 2, axis=norm_axes, keepdims=True))``

    ``result = tensor_var * min(norms, max_norm) / (norms + epsilon)``

    Used as a max-norm weight constraint (apply it to the updated weights) or for per-unit
    gradient clipping.

    Parameters
    ----------
    tensor_var : TensorVariable
        The expression to constrain: an update, a gradient, ...
    max_norm : float or symbolic scalar
        The largest allowed norm of any slice.
    norm_axes : int or sequence of int, optional
        The axes the norm is taken over. By default ``(0,)`` for a 2-d tensor (a dense
        layer's ``(num_inputs, num_units)`` weights: one norm per unit) and all axes but 0 for
        a 3-, 4- or 5-d tensor (a conv layer's ``(num_filters, channels, *filter_size)`` weights:
        one norm per filter). Required for any other number of dims.
    epsilon : float or symbolic scalar, optional
        Added to the norms before dividing, so zero slices stay zero. Default 1e-7.

    Returns
    -------
    TensorVariable
        `tensor_var` with each violating slice rescaled; the others are multiplied by
        ``norm / (norm + epsilon)``, within ``epsilon / norm`` of 1.

    Examples
    --------
    >>> W = pytensor.shared(np.random.default_rng(0).normal(size=(20, 10)))
    >>> step = pytensor.function([], [], updates=[(W, norm_constraint(W + 1.0, 3.0))])
    >>> step()
    []
    >>> bool(np.linalg.norm(W.get_value(), axis=0).max() <= 3.0)
    True
    """
    where = "norm_constraint"
    tensor_var = _float_tensor(tensor_var, "tensor_var", where)
    ndim = tensor_var.ndim
    if norm_axes is not None:
        sum_over = _norm_axes(norm_axes, ndim, where)
    elif ndim == 2:  # dense weights (num_inputs, num_units)
        sum_over = (0,)
    elif ndim in (3, 4, 5):  # conv weights (num_filters, channels, *filter_size)
        sum_over = tuple(range(1, ndim))
    else:
        expected = (
            f"explicit axes for a {ndim}-d tensor (Unsupported tensor dimensionality {ndim}: "
            "the default covers 2- to 5-d weights)"
        )
        raise ConfigError(invalid(where, "norm_axes", expected, norm_axes))
    dtype = tensor_var.dtype
    max_norm = _as(_hyper(max_norm, "max_norm", where), dtype)
    epsilon = _as(_hyper(epsilon, "epsilon", where), dtype)
    norms = pt.sqrt(pt.sum(pt.sqr(tensor_var), axis=sum_over, keepdims=True))
    target_norms = pt.clip(norms, 0, max_norm)
    return tensor_var * (target_norms / (epsilon + norms))


def total_norm_constraint(tensor_vars, max_norm, epsilon=1e-7, return_norm=False):
    """Rescale a list of tensors together when their combined norm exceeds `max_norm`.

    ``norm = sqrt(sum over tensors of sum(tensor ** 2))``

    ``result[i] = tensor_vars[i] * min(norm, max_norm) / (norm + epsilon)``

    Clipping the total norm of the gradients is common when training recurrent networks
    (Sutskever et al. 2014): ``sgd(total_norm_constraint(grads, 5.0), params, 0.1)``.

    Parameters
    ----------
    tensor_vars : list of TensorVariable
        The tensors to rescale, e.g. the gradients of all parameters.
    max_norm : float or symbolic scalar
        The largest allowed combined norm.
    epsilon : float or symbolic scalar, optional
        Added to the norm before dividing, so all-zero tensors stay zero. Default 1e-7.
    return_norm : bool, optional
        Also return the combined norm before rescaling (useful to monitor training).

    Returns
    -------
    tensor_vars_scaled : list of TensorVariable
        The rescaled tensors, each in its own dtype.
    norm : symbolic scalar
        The combined norm before rescaling, in the upcast of the tensors' dtypes; only when
        `return_norm` is true.

    References
    ----------
    Sutskever, I., Vinyals, O. and Le, Q. V. (2014): Sequence to sequence learning with
    neural networks. NIPS, 3104-3112.
    """
    where = "total_norm_constraint"
    expected = "a non-empty list of tensor expressions"
    if isinstance(tensor_vars, Variable):
        raise ConfigError(invalid(where, "tensor_vars", expected, tensor_vars))
    try:
        tensor_vars = list(tensor_vars)
    except TypeError as err:
        raise ConfigError(invalid(where, "tensor_vars", expected, tensor_vars)) from err
    if not tensor_vars:
        raise ConfigError(invalid(where, "tensor_vars", expected, tensor_vars))
    tensors = [_float_tensor(t, f"tensor_vars[{i}]", where) for i, t in enumerate(tensor_vars)]
    norm = pt.sqrt(functools.reduce(operator.add, (pt.sum(pt.sqr(t)) for t in tensors)))
    max_norm = _as(_hyper(max_norm, "max_norm", where), norm.dtype)
    epsilon = _as(_hyper(epsilon, "epsilon", where), norm.dtype)
    multiplier = pt.clip(norm, 0, max_norm) / (epsilon + norm)
    scaled = [t * _cast(multiplier, t.dtype) for t in tensors]
    if return_norm:
        return scaled, norm
    return scaled
