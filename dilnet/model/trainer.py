"""The loops behind `Model`: `fit` (over arrays or a `PatchSampler`), `train_on_batch`,
`evaluate` and `predict`, the compiled functions they call, and the checks of their inputs.

As Keras's ``Trainer`` holds ``fit``, ``evaluate`` and ``predict`` apart from the layers, these
functions take the `Model` whose public methods (documented there) call them. Every input is
checked before anything compiles: a mistake costs no compile and changes nothing.
"""

import math

import numpy as np
import pytensor
from tqdm.auto import tqdm

from ..errors import ConfigError, ShapeError, invalid
from ..status import compiling
from ..utils import is_int
from .callbacks import Callback, History
from .data import PatchSampler
from .device import on_device, renew_generators
from .saving import apply_pending_state, apply_sampler_state

__all__ = [
    "check_int",
    "check_x",
    "check_xy",
    "evaluate",
    "fit",
    "function",
    "predict",
    "train_on_batch",
]


# ------------------------------------------------------------------ functions


_WHAT = {"train": "the training function", "eval": "the evaluation function",
         "predict": "the prediction function"}  # fmt: skip


def function(model, kind, verbose=1):
    """The model's compiled function of `kind`, compiled on first use and then reused:
    'train' ``(x, y) -> [loss, *metric counts]`` (one step: updates the parameters, the
    optimizer's state and the batch-norm averages), 'eval' (the same, deterministic, no
    updates) or 'predict' ``x -> probabilities``. `Model.compile` drops all but 'predict'.
    A compile longer than a second says so (`dilnet.status.compiling`; `verbose` as there)."""
    if kind in model._functions:
        return model._functions[kind]
    x, y = model.network.input_layer.input_var, model._labels
    x64 = model.dtype == "float64"
    with (
        pytensor.config.change_flags(floatX=model.dtype),
        model.device.active(x64=x64),
        compiling(_WHAT[kind], verbose),
    ):
        if kind == "predict":
            out = model.network.get_output(deterministic=True)
            fn = pytensor.function([x], out, mode=model.mode)
        else:
            train = kind == "train"
            p = model.network.get_output(deterministic=not train)
            loss = model._loss(p, y)
            counts = [c for m in model._metrics for c in m.counts(p, y, model.ignore_label)]
            updates = None
            if train:
                params = model.network.get_params(trainable=True)
                lr = model.learning_rate
                updates = model._optimizer.updates(loss, params, lr)
                known = set(model.params) | {lr}
                # accumulators of the rule, and the dropout streams: state to snapshot
                model._optimizer_state = [v for v in updates if v not in known]
                renew_generators(model.device, model._optimizer_state)
                apply_pending_state(model)
            fn = pytensor.function([x, y], [loss, *counts], updates=updates, mode=model.mode)
    fn.trust_input = False
    model._functions[kind] = on_device(fn, model.device, x64)
    return model._functions[kind]


# ------------------------------------------------------------------ checks


def check_int(where, name, value, *, minimum=1, expected=None):
    """`ConfigError` naming `name` unless `value` is an int >= `minimum` (bools are not ints);
    `expected` replaces the default wording ("a positive int", "an int >= 0")."""
    if not (is_int(value) and value >= minimum):
        if expected is None:
            expected = "a positive int" if minimum == 1 else f"an int >= {minimum}"
        raise ConfigError(invalid(where, name, expected, value))


def output_shape(model, spatial, where, name="x"):
    """The model's output shape for inputs of `spatial` lengths (checked once per size)."""
    spatial = tuple(int(n) for n in spatial)
    if spatial not in model._sizes_checked:
        try:
            model._sizes_checked[spatial] = model.network.check_size(spatial)
        except ShapeError as err:
            raise ShapeError(f"{where}: `{name}` of spatial shape {spatial}: {err}") from None
    return model._sizes_checked[spatial]


def check_x(model, x, where, name="x"):
    """Inputs ``(N, C, *spatial)`` with N >= 1, the model's channels and a size it takes, as a
    contiguous array of the model's dtype."""
    x = np.asarray(x)
    expected = model.network.input_shape
    if x.ndim >= 1 and x.shape[0] == 0:
        raise ShapeError(invalid(where, f"{name}.shape", "at least one sample", x.shape))
    if (
        x.ndim != len(expected)
        or x.shape[1] != expected[1]
        or any(e is not None and e != n for e, n in zip(expected[2:], x.shape[2:], strict=True))
    ):
        raise ShapeError(
            invalid(where, f"{name}.shape", f"(batch, channels, *spatial) like {expected}", x.shape)
        )
    if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise ConfigError(invalid(where, f"{name}.dtype", "a real number dtype", x.dtype))
    output_shape(model, x.shape[2:], where, name)
    with np.errstate(over="ignore"):  # values beyond the dtype's range: refused just below
        x = np.ascontiguousarray(x, dtype=model.dtype)
    # after the cast: float64 values beyond float32's range become inf here. One NaN voxel in a
    # training batch turns every weight into NaN at the first step; at predict it spreads
    # through every receptive field it touches.
    finite = np.isfinite(x)
    if not finite.all():
        bad = np.flatnonzero(~finite.reshape(len(x), -1).all(axis=1))
        samples = ", ".join(map(str, bad[:5])) + (" ..." if len(bad) > 5 else "")
        raise ConfigError(
            f"{where}: invalid value for `{name}`. Expected finite values (as {model.dtype}); "
            f"received {np.count_nonzero(~finite)} NaN or infinite value(s) in sample(s) "
            f"{samples} of the batch (replace them, e.g. with np.nan_to_num)."
        )
    return x


def check_y(model, y, x, where, name="y"):
    """Integer labels ``(N, *output spatial)`` for inputs `x`, each a class of the model or its
    ``ignore_label``, as a contiguous int64 array."""
    y = np.asarray(y)
    out = output_shape(model, x.shape[2:], where)
    expected = (x.shape[0], *out[2:])
    if y.shape != expected:
        raise ShapeError(
            invalid(
                where,
                f"{name}.shape",
                f"labels (batch, *spatial) = {expected} for inputs of shape {x.shape}",
                y.shape,
            )
        )
    if not np.issubdtype(y.dtype, np.integer):
        raise ConfigError(invalid(where, f"{name}.dtype", "an integer dtype (labels)", y.dtype))
    classes, ignore = out[1], model.ignore_label
    valid = (y >= 0) & (y < classes)
    if ignore is not None:
        valid |= y == ignore
    if not valid.all():
        bad = np.unique(y[~valid])[:5].tolist()
        allowed = f"0..{classes - 1}" + (f" or ignore_label={ignore}" if ignore is not None else "")
        raise ConfigError(invalid(where, f"{name} values", allowed, bad))
    return np.ascontiguousarray(y, dtype="int64")


def check_xy(model, x, y, where, names=("x", "y")):
    """`check_x` and `check_y` of a pair of inputs and labels."""
    x = check_x(model, x, where, names[0])
    return x, check_y(model, y, x, where, names[1])


def check_sampler(model, sampler, where):
    """A sampler's volumes, patch size and labels must fit the model."""
    expected = model.network.input_shape[1]
    if sampler.volumes[0].shape[0] != expected or sampler.rank != model.rank:
        raise ShapeError(
            invalid(
                where,
                "x",
                f"a PatchSampler of {model.rank}D volumes with {expected} channels",
                f"volumes of shape {sampler.volumes[0].shape}",
            )
        )
    out = output_shape(model, sampler.patch_size, where, "x.patch_size")
    if tuple(out[2:]) != tuple(sampler.patch_size):
        raise ShapeError(
            invalid(
                where,
                "x.patch_size",
                "a patch size the model predicts densely (its "
                f"output for {sampler.patch_size} is {tuple(out[2:])}, so labels of the "
                "patch size do not fit)",
                sampler.patch_size,
            )
        )
    if hasattr(sampler, "check_labels"):
        sampler.check_labels(model.network.output_shape[1], model.ignore_label, where)


def check_validation(model, data, where):
    """``(x_val, y_val)`` checked, from a pair of arrays or one epoch of a `PatchSampler`."""
    if isinstance(data, PatchSampler):
        check_sampler(model, data, where)
        xs, ys = zip(*(data.sample() for _ in range(data.steps_per_epoch)), strict=True)
        data = (np.concatenate(xs), np.concatenate(ys))
    if not (isinstance(data, tuple | list) and len(data) == 2):
        raise ConfigError(
            invalid(
                where, "validation_data", "(x_val, y_val) or a PatchSampler", type(data).__name__
            )
        )
    return check_xy(model, *data, where, ("validation_data[0]", "validation_data[1]"))


def _check_callbacks(model, callbacks, validation, where):
    """``[History(), *callbacks]``, each checked against the names `fit` will log."""
    if isinstance(callbacks, Callback) or not isinstance(callbacks, list | tuple):
        raise ConfigError(invalid(where, "callbacks", "a list of Callback objects", callbacks))
    classes = model.network.output_shape[1]
    metrics = [n for metric in model._metrics for n in metric.names(classes)]
    keys = ["loss", *metrics, "lr"]
    if validation is not None:
        keys += ["val_loss", *(f"val_{n}" for n in metrics)]
    callbacks = [History(), *callbacks]
    for cb in callbacks:
        if not isinstance(cb, Callback):
            raise ConfigError(invalid(where, "callbacks", "Callback objects", cb))
        cb.check_logs(keys)
    return callbacks


# ------------------------------------------------------------------ batches


def _sampler_batches(model, sampler, y, steps_per_epoch, where):
    """(batches, steps) of a `PatchSampler`: `steps_per_epoch` (default the sampler's) draws."""
    if y is not None:
        raise ConfigError(invalid(where, "y", "None when x is a PatchSampler", "labels"))
    steps = steps_per_epoch or sampler.steps_per_epoch
    check_sampler(model, sampler, where)

    def batches(epoch_rng):
        for _ in range(steps):
            yield check_xy(model, *sampler.sample(), where)

    return batches, steps


def _array_batches(model, x, y, batch_size, steps_per_epoch, shuffle, where):
    """(batches, steps) of arrays: all batches, or the first `steps_per_epoch`, shuffled anew
    each epoch with `shuffle`."""
    if x is None or y is None:
        raise ConfigError(invalid(where, "x, y", "arrays, or x a PatchSampler", (x, y)))
    x, y = check_xy(model, x, y, where)
    check_int(where, "batch_size", batch_size)
    steps = math.ceil(len(x) / batch_size)
    if steps_per_epoch is not None:
        steps = min(steps, steps_per_epoch)

    def batches(epoch_rng):
        order = epoch_rng.permutation(len(x)) if shuffle else None
        for s in range(steps):
            window = slice(s * batch_size, (s + 1) * batch_size)
            if order is None:  # contiguous batches: views, no copies
                yield x[window], y[window]
            else:
                idx = np.sort(order[window])
                yield x[idx], y[idx]

    return batches, steps


class _Running:
    """The logs of a pass over batches: the loss averaged over batches weighted by their sizes,
    and each metric from its counts summed over batches (in float64: no integer overflow)."""

    def __init__(self, model):
        self.model, self.losses, self.sizes, self.totals = model, [], [], None

    def add(self, loss, size, counts):
        self.losses.append(float(loss))
        self.sizes.append(size)
        counts = [np.asarray(c, dtype=np.float64) for c in counts]
        if self.totals is not None:
            counts = [t + c for t, c in zip(self.totals, counts, strict=True)]
        self.totals = counts

    def logs(self) -> dict:
        """``{"loss": ..., <metric names>: ...}``; empty before the first batch."""
        if not self.losses:
            return {}
        logs, i = {"loss": float(np.average(self.losses, weights=self.sizes))}, 0
        for metric, k in zip(self.model._metrics, self.model._metric_sizes, strict=True):
            logs.update(metric.result(self.totals[i : i + k]))
            i += k
        return logs


# ------------------------------------------------------------------ loops


def train_on_batch(model, x, y) -> dict:
    """One optimisation step on checked `x`, `y`; the batch's loss and metrics."""
    model._require_compiled("train_on_batch")
    x, y = check_xy(model, x, y, "Model.train_on_batch")
    loss, *counts = function(model, "train")(x, y)
    running = _Running(model)
    running.add(loss, len(x), counts)
    return running.logs()


def fit(model, x, y, *, batch_size, epochs, steps_per_epoch, validation_data,
        validation_batch_size, callbacks, verbose, shuffle, seed, initial_epoch):  # fmt: skip
    """`Model.fit` (the arguments are documented there); everything is checked, callbacks
    included, before the training function compiles."""
    where = "Model.fit"
    model._require_compiled("fit")
    check_verbose(where, verbose)
    check_int(where, "initial_epoch", initial_epoch, minimum=0)
    check_int(
        where,
        "epochs",
        epochs,
        minimum=initial_epoch + 1,
        expected=f"an int > initial_epoch={initial_epoch} (the index of the last epoch + 1, "
        "as in Keras)",
    )
    if steps_per_epoch is not None:
        check_int(where, "steps_per_epoch", steps_per_epoch)
    if isinstance(x, PatchSampler):
        batches, steps = _sampler_batches(model, x, y, steps_per_epoch, where)
        apply_sampler_state(model, x)  # a PatchSampler's state saved with the model, if any
        model._sampler = x
    else:
        batches, steps = _array_batches(model, x, y, batch_size, steps_per_epoch, shuffle, where)
    if validation_data is not None:
        validation_data = check_validation(model, validation_data, where)
    callbacks = _check_callbacks(model, callbacks, validation_data, where)
    for cb in callbacks:
        cb.set_model(model)
    fn = function(model, "train", verbose)
    model.stop_training = False
    history = model.history = callbacks[0]
    try:
        for cb in callbacks:
            cb.on_train_begin()
        _epochs(model, fn, batches, steps, seed, callbacks, validation_data,
                validation_batch_size or batch_size, initial_epoch, epochs, verbose)  # fmt: skip
    finally:
        for cb in callbacks:
            cb.on_train_end()
    return history


def _epochs(model, fn, batches, steps, seed, callbacks, validation_data, validation_batch_size,
            initial_epoch, epochs, verbose):  # fmt: skip
    step = 0
    unseeded = np.random.default_rng()
    for epoch in range(initial_epoch, epochs):
        # each epoch's shuffle from (seed, epoch) alone: a run resumed at this epoch draws it too
        rng = np.random.default_rng([seed, epoch]) if seed is not None else unseeded
        for cb in callbacks:
            cb.on_epoch_begin(epoch)
        running = _Running(model)
        bar = tqdm(
            total=steps,
            desc=f"epoch {epoch + 1}/{epochs}",
            disable=verbose != 1,
            leave=True,
            dynamic_ncols=True,
        )
        for xb, yb in batches(rng):
            loss, *counts = fn(xb, yb)
            running.add(loss, len(xb), counts)
            bar.update(1)
            if not bar.disable:
                live = {k: f"{v:.4g}" for k, v in running.logs().items()}
                bar.set_postfix(live, refresh=False)
            for cb in callbacks:
                cb.on_batch_end(step, {"loss": float(loss)})
            step += 1
            if model.stop_training:
                break
        bar.close()
        logs = running.logs()
        if validation_data is not None:
            val = _evaluate(model, *validation_data, batch_size=validation_batch_size)
            logs.update({f"val_{k}": v for k, v in val.items()})
        logs["lr"] = model.get_learning_rate()
        model.epochs_trained = epoch + 1
        if verbose:
            tqdm.write(f"epoch {epoch + 1}: " + ", ".join(f"{k}={v:.4g}" for k, v in logs.items()))
        for cb in callbacks:
            cb.on_epoch_end(epoch, logs)
        if model.stop_training:
            break


def check_verbose(where, verbose):
    """0, 1 or 2 (Keras's values; True and False are 1 and 0)."""
    ok = isinstance(verbose, bool) or (isinstance(verbose, int) and verbose in (0, 1, 2))
    if not ok:
        raise ConfigError(invalid(where, "verbose", "0, 1 or 2", verbose))


def evaluate(model, x, y, *, batch_size, verbose) -> dict:
    """`Model.evaluate`: the inputs checked, then `_evaluate`."""
    model._require_compiled("evaluate")
    check_verbose("Model.evaluate", verbose)
    x, y = check_xy(model, x, y, "Model.evaluate")
    check_int("Model.evaluate", "batch_size", batch_size)
    return _evaluate(model, x, y, batch_size=batch_size, verbose=verbose)


def _evaluate(model, x, y, *, batch_size, verbose=0) -> dict:
    """Loss and metrics of the deterministic network on checked `x`, `y`."""
    fn = function(model, "eval", verbose)
    running = _Running(model)
    for s in tqdm(range(0, len(x), batch_size), disable=not verbose, desc="evaluate"):
        xb = x[s : s + batch_size]
        loss, *counts = fn(xb, y[s : s + batch_size])
        running.add(loss, len(xb), counts)
    return running.logs()


def predict(model, x, *, batch_size, verbose):
    """`Model.predict`: class probabilities of the deterministic network, batch by batch."""
    x = check_x(model, x, "Model.predict")
    check_int("Model.predict", "batch_size", batch_size)
    check_verbose("Model.predict", verbose)
    fn = function(model, "predict", verbose)
    out = []
    for s in tqdm(range(0, len(x), batch_size), disable=not verbose, desc="predict"):
        batch = x[s : s + batch_size]
        short = batch_size - len(batch)
        if short and s and model.compiles_per_shape:
            batch = np.concatenate([batch, np.repeat(batch[-1:], short, axis=0)])
        out.append(fn(batch)[: batch_size - short])
    return np.concatenate(out)
