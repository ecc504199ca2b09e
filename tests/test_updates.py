"""dilnet.updates against plain numpy re-implementations of each rule, step by step.

The references below are written from the papers' (and Lasagne's documented) formulas, one
loop over steps each, independently of dilnet's graph code. The loss is a small nonlinear
function of three float64 parameters (a vector, a dense matrix, a 4-d conv weight) with a
hand-written gradient, so the references need no autodiff.
"""

import doctest
import inspect
from collections import OrderedDict

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from dilnet import updates
from dilnet.errors import ConfigError
from dilnet.updates import (
    adadelta,
    adagrad,
    adam,
    adamax,
    amsgrad,
    apply_momentum,
    apply_nesterov_momentum,
    get_or_compute_grads,
    momentum,
    nesterov_momentum,
    norm_constraint,
    rmsprop,
    sgd,
    total_norm_constraint,
)

MODE = "FAST_COMPILE"
STEPS = 6
SHAPES = {"v": (3,), "W": (4, 3), "K": (2, 3, 2, 2)}

# --- the problem: loss, its numpy gradient, starting points --------------------------------------

_consts = np.random.default_rng(1234)
A = _consts.uniform(0.5, 2.0, SHAPES["v"])  # curvatures of the quadratic term in v
C = _consts.normal(size=SHAPES["W"])  # centres of the log-cosh term in W
K0 = _consts.normal(size=SHAPES["K"])  # centre of the quartic term in K
COUPLING = 0.1


def loss_pt(v, W, K):
    return (
        0.5 * pt.sum(A * v**2)
        + pt.sum(pt.log(pt.cosh(W - C)))
        + 0.25 * pt.sum((K - K0) ** 4)
        + COUPLING * pt.sum(v) * pt.sum(K)
    )


def grads_np(v, W, K):
    return [
        A * v + COUPLING * K.sum(),
        np.tanh(W - C),
        (K - K0) ** 3 + COUPLING * v.sum(),
    ]


def start_values(seed=0, dtype="float64"):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=shape).astype(dtype) for shape in SHAPES.values()]


def make_params(values):
    return [
        pytensor.shared(value.copy(), name=name, shape=value.shape)
        for name, value in zip(SHAPES, values)
    ]


def run(updates_dict, params, steps=STEPS, between=None):
    """Compile the update dictionary and return the parameter values after each step."""
    step = pytensor.function([], [], updates=updates_dict, mode=MODE)
    trajectory = []
    for t in range(1, steps + 1):
        if between is not None:
            between(t)
        step()
        trajectory.append([p.get_value() for p in params])
    return trajectory


def per_step(value, t):
    """A hyperparameter at step t (1-based): a constant, or a list giving one value per step."""
    return value[t - 1] if isinstance(value, list) else value


# --- numpy references, one per rule -----------------------------------------------------------


def ref_sgd(x, steps, learning_rate):
    x = [p.copy() for p in x]
    out = []
    for t in range(1, steps + 1):
        g = grads_np(*x)
        x = [p - per_step(learning_rate, t) * gi for p, gi in zip(x, g)]
        out.append(x)
    return out


def ref_momentum(x, steps, learning_rate, momentum=0.9):
    x = [p.copy() for p in x]
    vel = [np.zeros_like(p) for p in x]
    out = []
    for _ in range(steps):
        g = grads_np(*x)
        vel = [momentum * vi - learning_rate * gi for vi, gi in zip(vel, g)]
        x = [p + vi for p, vi in zip(x, vel)]
        out.append(x)
    return out


def ref_nesterov(x, steps, learning_rate, momentum=0.9):
    x = [p.copy() for p in x]
    vel = [np.zeros_like(p) for p in x]
    out = []
    for _ in range(steps):
        g = grads_np(*x)
        vel = [momentum * vi - learning_rate * gi for vi, gi in zip(vel, g)]
        x = [p + momentum * vi - learning_rate * gi for p, vi, gi in zip(x, vel, g)]
        out.append(x)
    return out


def ref_adagrad(x, steps, learning_rate=1.0, epsilon=1e-6):
    x = [p.copy() for p in x]
    sum_sq = [np.zeros_like(p) for p in x]
    out = []
    for _ in range(steps):
        g = grads_np(*x)
        sum_sq = [s + gi * gi for s, gi in zip(sum_sq, g)]
        x = [p - learning_rate * gi / np.sqrt(s + epsilon) for p, gi, s in zip(x, g, sum_sq)]
        out.append(x)
    return out


def rmsprop_step(x, g, mean_sq, learning_rate, rho, epsilon):
    mean_sq = [rho * r + (1 - rho) * gi * gi for r, gi in zip(mean_sq, g)]
    x = [p - learning_rate * gi / np.sqrt(r + epsilon) for p, gi, r in zip(x, g, mean_sq)]
    return x, mean_sq


def ref_rmsprop(x, steps, learning_rate=1.0, rho=0.9, epsilon=1e-6):
    x = [p.copy() for p in x]
    mean_sq = [np.zeros_like(p) for p in x]
    out = []
    for _ in range(steps):
        x, mean_sq = rmsprop_step(x, grads_np(*x), mean_sq, learning_rate, rho, epsilon)
        out.append(x)
    return out


def ref_adadelta(x, steps, learning_rate=1.0, rho=0.95, epsilon=1e-6):
    x = [p.copy() for p in x]
    eg2 = [np.zeros_like(p) for p in x]  # E[g^2]
    edx2 = [np.zeros_like(p) for p in x]  # E[dx^2]
    out = []
    for _ in range(steps):
        g = grads_np(*x)
        new_x = []
        for i, (p, gi) in enumerate(zip(x, g)):
            eg2[i] = rho * eg2[i] + (1 - rho) * gi**2
            dx = np.sqrt(edx2[i] + epsilon) / np.sqrt(eg2[i] + epsilon) * gi
            edx2[i] = rho * edx2[i] + (1 - rho) * dx**2
            new_x.append(p - learning_rate * dx)
        x = new_x
        out.append(x)
    return out


def ref_adam(x, steps, learning_rate=0.001, beta1=0.9, beta2=0.999, epsilon=1e-8, amsgrad=False):
    # Kingma & Ba, Algorithm 1 with the step-size form of section 2 (epsilon "hat").
    x = [p.copy() for p in x]
    m = [np.zeros_like(p) for p in x]
    v = [np.zeros_like(p) for p in x]
    v_max = [np.zeros_like(p) for p in x]
    out = []
    for t in range(1, steps + 1):
        g = grads_np(*x)
        alpha_t = per_step(learning_rate, t) * np.sqrt(1 - beta2**t) / (1 - beta1**t)
        new_x = []
        for i, (p, gi) in enumerate(zip(x, g)):
            m[i] = beta1 * m[i] + (1 - beta1) * gi
            v[i] = beta2 * v[i] + (1 - beta2) * gi**2
            v_max[i] = np.maximum(v_max[i], v[i])
            denom = np.sqrt(v_max[i] if amsgrad else v[i]) + epsilon
            new_x.append(p - alpha_t * m[i] / denom)
        x = new_x
        out.append(x)
    return out


def ref_amsgrad(x, steps, **kwargs):
    return ref_adam(x, steps, amsgrad=True, **kwargs)


def ref_adamax(x, steps, learning_rate=0.002, beta1=0.9, beta2=0.999, epsilon=1e-8):
    x = [p.copy() for p in x]
    m = [np.zeros_like(p) for p in x]
    u = [np.zeros_like(p) for p in x]
    out = []
    for t in range(1, steps + 1):
        g = grads_np(*x)
        new_x = []
        for i, (p, gi) in enumerate(zip(x, g)):
            m[i] = beta1 * m[i] + (1 - beta1) * gi
            u[i] = np.maximum(beta2 * u[i], np.abs(gi))
            new_x.append(p - learning_rate / (1 - beta1**t) * m[i] / (u[i] + epsilon))
        x = new_x
        out.append(x)
    return out


def assert_trajectories_equal(got, expected, rtol=1e-10, atol=1e-12):
    assert len(got) == len(expected) == STEPS
    for t, (got_t, exp_t) in enumerate(zip(got, expected), start=1):
        for name, g, e in zip(SHAPES, got_t, exp_t):
            np.testing.assert_allclose(g, e, rtol=rtol, atol=atol, err_msg=f"{name}, step {t}")


# (rule, kwargs, reference): defaults are used wherever they make a stable 6-step run
CASES = {
    "sgd": (sgd, {"learning_rate": 0.1}, ref_sgd),
    "momentum": (momentum, {"learning_rate": 0.05, "momentum": 0.8}, ref_momentum),
    "momentum-default": (momentum, {"learning_rate": 0.05}, ref_momentum),
    "nesterov": (nesterov_momentum, {"learning_rate": 0.05, "momentum": 0.7}, ref_nesterov),
    "nesterov-default": (nesterov_momentum, {"learning_rate": 0.05}, ref_nesterov),
    "adagrad": (adagrad, {"learning_rate": 0.5, "epsilon": 1e-4}, ref_adagrad),
    "adagrad-default": (adagrad, {}, ref_adagrad),
    "rmsprop": (rmsprop, {"learning_rate": 0.05, "rho": 0.8, "epsilon": 1e-4}, ref_rmsprop),
    "rmsprop-default": (rmsprop, {}, ref_rmsprop),
    "adadelta": (adadelta, {"learning_rate": 0.5, "rho": 0.9, "epsilon": 1e-4}, ref_adadelta),
    "adadelta-default": (adadelta, {}, ref_adadelta),
    "adam": (adam, {"learning_rate": 0.05, "beta1": 0.8, "beta2": 0.99, "epsilon": 1e-3}, ref_adam),
    "adam-default": (adam, {}, ref_adam),
    "adamax": (
        adamax,
        {"learning_rate": 0.05, "beta1": 0.8, "beta2": 0.99, "epsilon": 1e-3},
        ref_adamax,
    ),
    "adamax-default": (adamax, {}, ref_adamax),
    "amsgrad": (
        amsgrad,
        {"learning_rate": 0.05, "beta1": 0.8, "beta2": 0.99, "epsilon": 1e-3},
        ref_amsgrad,
    ),
    "amsgrad-default": (amsgrad, {}, ref_amsgrad),
}


@pytest.mark.parametrize("case", CASES)
def test_rule_matches_numpy_reference(case):
    rule, kwargs, reference = CASES[case]
    x0 = start_values(seed=len(case))
    params = make_params(x0)
    result = rule(loss_pt(*params), params, **kwargs)
    assert isinstance(result, OrderedDict)
    got = run(result, params)
    assert_trajectories_equal(got, reference(x0, STEPS, **kwargs))
    # the run moved every parameter, so the comparison is not of starting points
    assert all(not np.allclose(g, x) for g, x in zip(got[-1], x0))


@pytest.mark.parametrize("case", ["sgd", "momentum", "rmsprop", "adam"])
def test_rule_accepts_a_list_of_gradients(case):
    rule, kwargs, reference = CASES[case]
    x0 = start_values(seed=3)
    params = make_params(x0)
    grads = pytensor.grad(loss_pt(*params), params)
    got = run(rule(grads, params, **kwargs), params)
    assert_trajectories_equal(got, reference(x0, STEPS, **kwargs))


def test_symbolic_hyperparameters_follow_a_schedule():
    # float64 shared learning rate and beta1 on float64 params; the rate decays between steps
    x0 = start_values(seed=4)
    params = make_params(x0)
    schedule = [0.05 * 0.5**k for k in range(STEPS)]
    eta = pytensor.shared(np.float64(schedule[0]))
    beta1 = pytensor.shared(np.float64(0.8))
    result = adam(loss_pt(*params), params, learning_rate=eta, beta1=beta1)
    got = run(result, params, between=lambda t: eta.set_value(np.float64(schedule[t - 1])))
    assert_trajectories_equal(got, ref_adam(x0, STEPS, learning_rate=schedule, beta1=0.8))


def test_apply_momentum_to_some_params_of_rmsprop():
    # momentum on W only; v and K keep plain rmsprop updates
    x0 = start_values(seed=5)
    params = make_params(x0)
    base = rmsprop(loss_pt(*params), params, learning_rate=0.05)
    result = apply_momentum(base, params=[params[1]], momentum=0.5)
    assert set(result) == set(base) | {next(k for k in result if k.name == "W.velocity")}
    got = run(result, params)

    x = [p.copy() for p in x0]
    mean_sq = [np.zeros_like(p) for p in x]
    vel_W = np.zeros_like(x[1])
    expected = []
    for _ in range(STEPS):
        proposed, mean_sq = rmsprop_step(x, grads_np(*x), mean_sq, 0.05, 0.9, 1e-6)
        vel_W = 0.5 * vel_W + proposed[1] - x[1]
        x = [proposed[0], x[1] + vel_W, proposed[2]]
        expected.append(x)
    assert_trajectories_equal(got, expected)


def test_apply_nesterov_momentum_to_adagrad():
    x0 = start_values(seed=6)
    params = make_params(x0)
    # params given, as Lasagne's docs do: by default the accumulators would get momentum too
    base = adagrad(loss_pt(*params), params, 0.2)
    result = apply_nesterov_momentum(base, params, momentum=0.6)
    got = run(result, params)

    x = [p.copy() for p in x0]
    sum_sq = [np.zeros_like(p) for p in x]
    vel = [np.zeros_like(p) for p in x]
    expected = []
    for _ in range(STEPS):
        g = grads_np(*x)
        sum_sq = [s + gi**2 for s, gi in zip(sum_sq, g)]
        step = [-0.2 * gi / np.sqrt(s + 1e-6) for gi, s in zip(g, sum_sq)]
        vel = [0.6 * vi + si for vi, si in zip(vel, step)]
        x = [p + 0.6 * vi + si for p, vi, si in zip(x, vel, step)]
        expected.append(x)
    assert_trajectories_equal(got, expected)


def test_update_order_and_state_follow_lasagne():
    params = make_params(start_values())
    loss = loss_pt(*params)

    def per_param(*templates, tail=()):
        return [tpl.format(p) for p in SHAPES for tpl in templates] + list(tail)

    names = {
        adam: per_param("{}.m", "{}.v", "{}", tail=["t"]),
        amsgrad: per_param("{}.m", "{}.v", "{}.v_hat", "{}", tail=["t"]),
        adamax: per_param("{}.m", "{}.u", "{}", tail=["t"]),
        adadelta: per_param("{}.accu", "{}", "{}.delta_accu"),
        rmsprop: per_param("{}.accu", "{}"),
        momentum: per_param("{}") + per_param("{}.velocity"),
    }
    for rule, expected in names.items():
        result = rule(loss, params, learning_rate=0.1)
        assert [k.name for k in result] == expected, rule.__name__


# --- dtypes and static shapes ----------------------------------------------------------------

REFERENCES = {
    sgd: ref_sgd,
    momentum: ref_momentum,
    nesterov_momentum: ref_nesterov,
    adagrad: ref_adagrad,
    rmsprop: ref_rmsprop,
    adadelta: ref_adadelta,
    adam: ref_adam,
    adamax: ref_adamax,
    amsgrad: ref_amsgrad,
}
RULES = list(REFERENCES)


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.__name__)
@pytest.mark.parametrize("rate", ["python-float", "float64-shared"])
def test_float32_params_stay_float32(rule, rate):
    x0 = start_values(seed=7, dtype="float32")
    params = make_params(x0)
    # a float64 loss (its gradients are float64) and a float64 rate would upcast without casts
    loss = loss_pt(*(p.astype("float64") for p in params))
    lr = 0.01 if rate == "python-float" else pytensor.shared(np.float64(0.01))
    result = rule(loss, params, learning_rate=lr)
    for var, expr in result.items():
        if var.name != "t":
            assert var.dtype == "float32", var.name
        assert expr.type == var.type, var.name
    got = run(result, params, steps=3)
    assert all(g.dtype == np.float32 for g in got[-1])
    # still the same algorithm: close to a float64 run of it
    expected = REFERENCES[rule]([x.astype("float64") for x in x0], 3, learning_rate=0.01)
    for g, e in zip(got[-1], expected[-1]):
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.__name__)
def test_state_copies_param_type(rule):
    # a (1, None) bias-like param keeps its broadcastable pattern in every state variable
    b = pytensor.shared(np.ones((1, 4)), name="b", shape=(1, None))
    W = pytensor.shared(np.ones((3, 4)), name="W", shape=(3, 4))
    result = rule(pt.sum((W + b) ** 2), [W, b], learning_rate=0.1)
    for var, expr in result.items():
        if var.name == "t":
            assert var.type == pt.scalar(dtype=pytensor.config.floatX).type
            continue
        param = {"W": W, "b": b}[var.name.split(".")[0]]
        assert var.type == param.type, var.name
        assert param.type.is_super(expr.type), var.name  # W + b has static shape (3, 4)
        assert (var is param) or not np.any(var.get_value()), var.name  # state starts at zero


# --- norm constraints ------------------------------------------------------------------------


def ref_norm_constraint(x, max_norm, slices):
    """Rescale each slice (an index tuple) whose norm exceeds max_norm; the rest unchanged."""
    out = x.copy()
    for index in slices:
        norm = np.sqrt(np.sum(x[index] ** 2))
        if norm > max_norm:
            out[index] = x[index] * (max_norm / norm)
    return out


def column_slices(x):
    return [(slice(None), j) for j in range(x.shape[1])]


def filter_slices(x):
    return [(i,) for i in range(x.shape[0])]


@pytest.mark.parametrize(
    "shape, slices",
    [
        ((6, 5), column_slices),  # dense (num_inputs, num_units): one norm per unit
        ((4, 3, 2), filter_slices),  # conv weights (filters, channels, *kernel)
        ((4, 3, 2, 2), filter_slices),
        ((5, 2, 3, 2, 2), filter_slices),
    ],
)
def test_norm_constraint_default_axes(shape, slices):
    rng = np.random.default_rng(sum(shape))
    x = rng.normal(size=shape)
    norms = [np.linalg.norm(x[s]) for s in slices(x)]
    max_norm = float(np.median(norms))  # some slices above, some below
    assert min(norms) < max_norm < max(norms)
    out = norm_constraint(pt.as_tensor(x), max_norm).eval(mode=MODE)
    expected = ref_norm_constraint(x, max_norm, slices(x))
    np.testing.assert_allclose(out, expected, rtol=1e-6)  # unchanged up to epsilon / norm
    for s in slices(x):
        assert np.linalg.norm(out[s]) <= max_norm * (1 + 1e-12)
    # and exactly Lasagne's formula x * min(n, max_norm) / (n + epsilon)
    axes = (0,) if x.ndim == 2 else tuple(range(1, x.ndim))
    n = np.sqrt(np.sum(x**2, axis=axes, keepdims=True))
    np.testing.assert_allclose(out, x * np.minimum(n, max_norm) / (n + 1e-7), rtol=1e-13)


def test_norm_constraint_explicit_axes_and_float32():
    rng = np.random.default_rng(11)
    x = rng.normal(size=(3, 4, 5)).astype("float32")
    out = norm_constraint(pt.as_tensor(x), 1.5, norm_axes=(-1,)).eval(mode=MODE)
    assert out.dtype == np.float32
    rows = [(i, j) for i in range(3) for j in range(4)]
    np.testing.assert_allclose(out, ref_norm_constraint(x, 1.5, rows), rtol=1e-5)
    same = norm_constraint(pt.as_tensor(x), 1.5, norm_axes=2).eval(mode=MODE)
    np.testing.assert_array_equal(same, out)


def test_norm_constraint_on_a_weight_update():
    # the max-norm constraint as used in training: constrain the updated conv weights
    x0 = start_values(seed=12)
    params = make_params(x0)
    result = sgd(loss_pt(*params), params, learning_rate=0.1)
    result[params[2]] = norm_constraint(result[params[2]], 1.0)
    got = run(result, params, steps=1)[0]
    stepped = x0[2] - 0.1 * grads_np(*x0)[2]
    expected = ref_norm_constraint(stepped, 1.0, filter_slices(stepped))
    np.testing.assert_allclose(got[2], expected, rtol=1e-6)
    assert any(np.linalg.norm(stepped[i]) > 1.0 for i in range(2))  # the constraint did bite


def test_norm_constraint_keeps_zero_slices_zero():
    x = np.zeros((3, 2))
    x[:, 1] = [3.0, 4.0, 0.0]
    out = norm_constraint(pt.as_tensor(x), 2.5).eval(mode=MODE)
    np.testing.assert_allclose(out, [[0.0, 1.5], [0.0, 2.0], [0.0, 0.0]], rtol=1e-7)


def test_total_norm_constraint_rescales_all_together():
    rng = np.random.default_rng(13)
    xs = [rng.normal(size=s) for s in SHAPES.values()]
    total = np.sqrt(sum(np.sum(x**2) for x in xs))
    scaled, norm = total_norm_constraint([pt.as_tensor(x) for x in xs], 2.0, return_norm=True)
    values = pytensor.function([], [*scaled, norm], mode=MODE)()
    np.testing.assert_allclose(values[-1], total, rtol=1e-13)
    for got, x in zip(values[:-1], xs):
        np.testing.assert_allclose(got, x * 2.0 / total, rtol=1e-6)
    assert np.sqrt(sum(np.sum(v**2) for v in values[:-1])) == pytest.approx(2.0, rel=1e-6)


def test_total_norm_constraint_below_threshold_and_dtypes():
    rng = np.random.default_rng(14)
    xs = [rng.normal(size=(3,)).astype("float32"), rng.normal(size=(2, 2))]
    total = np.sqrt(sum(np.sum(x.astype("float64") ** 2) for x in xs))
    scaled = total_norm_constraint([pt.as_tensor(x) for x in xs], 10.0 * total)
    assert isinstance(scaled, list)
    assert [s.dtype for s in scaled] == ["float32", "float64"]
    for s, x in zip(scaled, xs):
        np.testing.assert_allclose(s.eval(mode=MODE), x, rtol=1e-6)


def test_gradient_clipping_with_sgd():
    x0 = start_values(seed=15)
    params = make_params(x0)
    grads = get_or_compute_grads(loss_pt(*params), params)
    got = run(sgd(total_norm_constraint(grads, 1.0), params, learning_rate=0.1), params)
    x = [p.copy() for p in x0]
    expected = []
    for _ in range(STEPS):
        g = grads_np(*x)
        norm = np.sqrt(sum(np.sum(gi**2) for gi in g))
        factor = min(norm, 1.0) / (norm + 1e-7)
        x = [p - 0.1 * factor * gi for p, gi in zip(x, g)]
        expected.append(x)
    assert_trajectories_equal(got, expected)


# --- API: signatures, errors, docstring examples ---------------------------------------------

SIGNATURES = {
    get_or_compute_grads: "(loss_or_grads, params)",
    sgd: "(loss_or_grads, params, learning_rate)",
    apply_momentum: "(updates, params=None, momentum=0.9)",
    momentum: "(loss_or_grads, params, learning_rate, momentum=0.9)",
    apply_nesterov_momentum: "(updates, params=None, momentum=0.9)",
    nesterov_momentum: "(loss_or_grads, params, learning_rate, momentum=0.9)",
    adagrad: "(loss_or_grads, params, learning_rate=1.0, epsilon=1e-06)",
    rmsprop: "(loss_or_grads, params, learning_rate=1.0, rho=0.9, epsilon=1e-06)",
    adadelta: "(loss_or_grads, params, learning_rate=1.0, rho=0.95, epsilon=1e-06)",
    adam: "(loss_or_grads, params, learning_rate=0.001, beta1=0.9, beta2=0.999, epsilon=1e-08)",
    adamax: "(loss_or_grads, params, learning_rate=0.002, beta1=0.9, beta2=0.999, epsilon=1e-08)",
    amsgrad: "(loss_or_grads, params, learning_rate=0.001, beta1=0.9, beta2=0.999, epsilon=1e-08)",
    norm_constraint: "(tensor_var, max_norm, norm_axes=None, epsilon=1e-07)",
    total_norm_constraint: "(tensor_vars, max_norm, epsilon=1e-07, return_norm=False)",
}


def test_signatures_are_lasagnes():
    assert sorted(updates.__all__) == sorted(f.__name__ for f in SIGNATURES)
    for fn, signature in SIGNATURES.items():
        assert str(inspect.signature(fn)) == signature, fn.__name__


def test_get_or_compute_grads():
    params = make_params(start_values())
    loss = loss_pt(*params)
    grads = get_or_compute_grads(loss, iter(params))  # any iterable of params
    values = pytensor.function([], grads, mode=MODE)()
    for got, expected in zip(values, grads_np(*start_values())):
        np.testing.assert_allclose(got, expected, rtol=1e-12)
    given = [pt.zeros_like(p) for p in params]
    assert get_or_compute_grads(given, params) == given
    assert get_or_compute_grads(tuple(given), params) == given


def error_cases():
    W = pytensor.shared(np.ones((2, 3)), name="W")
    b = pytensor.shared(np.ones(3), name="b")
    loss = pt.sum(W**2) + pt.sum(b**2)
    n = pytensor.shared(np.arange(3), name="n")
    return [
        (lambda: sgd(loss, [W, 2 * b], 0.1), r"sgd: invalid value for `params\[1\]`\. Expected a floating-point shared variable"),
        (lambda: adam(loss, [n]), r"adam: invalid value for `params\[0\]`\. Expected a floating-point shared variable"),
        (lambda: adam(loss, W), r"adam: invalid value for `params`\. Expected a list of shared variables; received params=W"),
        (lambda: get_or_compute_grads([W], [W, b]), r"get_or_compute_grads: invalid value for `loss_or_grads`\. Expected a scalar loss or 2 gradient expressions \(one per parameter\); received loss_or_grads=\[W\]"),
        (lambda: rmsprop([b, b], [W, b]), r"rmsprop: invalid value for `loss_or_grads\[0\]`\. Expected a gradient with the 2 dims of params\[0\]"),
        (lambda: adagrad(W**2, [W]), r"adagrad: invalid value for `loss_or_grads`\. Expected a scalar loss \(reduce it, e\.g\. with \.mean\(\)\)"),
        (lambda: sgd("loss", [W], 0.1), r"sgd: invalid value for `loss_or_grads`\. Expected a scalar loss or a list of gradients; received loss_or_grads='loss'"),
        (lambda: adam(loss, [W], learning_rate=[0.1, 0.2]), r"adam: invalid value for `learning_rate`\. Expected a number or a symbolic scalar; received learning_rate=\[0\.1, 0\.2\]"),
        (lambda: sgd(loss, [W], None), r"sgd: invalid value for `learning_rate`\. Expected a number or a symbolic scalar; received learning_rate=None"),
        (lambda: rmsprop(loss, [W], rho=True), r"rmsprop: invalid value for `rho`\. Expected a number or a symbolic scalar; received rho=True"),
        (lambda: momentum(loss, [W], 0.1, momentum=pt.vector()), r"momentum: invalid value for `momentum`\. Expected a number or a symbolic scalar; received momentum=TensorType\(float64, shape=\(None,\)\)"),
        (lambda: apply_momentum(sgd(loss, [W], 0.1), params=[b]), r"apply_momentum: invalid value for `params\[0\]`\. Expected a key of `updates`; received params\[0\]=b"),
        (lambda: apply_nesterov_momentum(3), r"apply_nesterov_momentum: invalid value for `updates`\. Expected a dict"),
        (lambda: norm_constraint(b, 1.0), r"norm_constraint: invalid value for `norm_axes`\. Expected explicit axes for a 1-d tensor"),
        (lambda: norm_constraint(W, 1.0, norm_axes=(2,)), r"norm_constraint: invalid value for `norm_axes`\. Expected distinct axes in \[-2, 2\) of the 2-d tensor; received norm_axes=\(2,\)"),
        (lambda: norm_constraint(W, 1.0, norm_axes=(0, -2)), r"Expected distinct axes in \[-2, 2\)"),
        (lambda: norm_constraint(W, 1.0, norm_axes=()), r"Expected distinct axes in \[-2, 2\)"),
        (lambda: norm_constraint(n, 1.0, norm_axes=0), r"norm_constraint: invalid value for `tensor_var`\. Expected a floating-point tensor expression"),
        (lambda: norm_constraint(W, "big"), r"norm_constraint: invalid value for `max_norm`\. Expected a number or a symbolic scalar; received max_norm='big'"),
        (lambda: total_norm_constraint([], 1.0), r"total_norm_constraint: invalid value for `tensor_vars`\. Expected a non-empty list of tensor expressions; received tensor_vars=\[\]"),
        (lambda: total_norm_constraint(W, 1.0), r"total_norm_constraint: invalid value for `tensor_vars`\. Expected a non-empty list"),
        (lambda: total_norm_constraint([W, n], 1.0), r"invalid value for `tensor_vars\[1\]`\. Expected a floating-point tensor expression"),
    ]  # fmt: skip


@pytest.mark.parametrize("index", range(len(error_cases())))
def test_errors(index):
    call, message = error_cases()[index]
    with pytest.raises(ConfigError, match=message) as info:
        call()
    assert isinstance(info.value, ValueError)  # Lasagne raised ValueError here


def test_docstring_examples_run():
    with pytensor.config.change_flags(mode=MODE):
        result = doctest.testmod(
            updates, extraglobs={"np": np, "pytensor": pytensor}, optionflags=doctest.ELLIPSIS
        )
    assert result.attempted > 0
    assert result.failed == 0
