"""`Model`: a compiled spec that trains, evaluates and predicts the way Keras users expect.

``Model(spec)`` builds the layer graph once; ``compile(optimizer, loss, metrics)`` chooses the
training setup; the PyTensor functions are compiled on first use (training on the first
``fit``, inference on the first ``predict``/``evaluate``) and then reused. Every input is
checked before anything compiles.
"""

import contextlib
import copy
import math
import os

import numpy as np
import pytensor
import pytensor.tensor as pt
from tqdm.auto import tqdm

from .. import random as dilnet_random
from ..blocks.stacks import Sequential
from ..compiler import build
from ..errors import ConfigError, ShapeError, invalid
from ..layers import NonlinearityLayer
from ..nonlinearities import softmax
from ..utils import is_int
from .callbacks import Callback, History
from .data import PatchSampler
from .device import resolve_device
from .losses import get_loss
from .metrics import get_metric
from .optimizers import get_optimizer

__all__ = ["DEFAULT_MODE", "Model", "load_model"]

#: PyTensor mode of compiled functions. Measured on 2 CPU cores (bench/port_modes.py,
#: bench/model.py): the C VM runs a training step as fast as Numba's JIT but compiles a new
#: graph in about a second from its on-disk cache, where Numba JITs for tens of seconds.
DEFAULT_MODE = "CVM"


def _host_copy(value):
    """A copy on the host: a numpy array for arrays (also JAX ones), a deep copy of anything
    else (the random generators of dropout streams)."""
    if isinstance(value, np.ndarray) or hasattr(value, "__array__"):
        return np.array(value)
    return copy.deepcopy(value)


class _OnDevice:
    """A compiled function called on the model's JAX device (see `Device.active`).

    Before a call, shared values that are numpy arrays (new weights from `set_weights` or a
    checkpoint: ``set_value`` stores numpy) are put on the device once, so that no call copies
    the parameters there again; the function's updates keep them there."""

    def __init__(self, fn, device, x64):
        self.fn, self.device, self.x64 = fn, device, x64
        self.shared = [v for v in fn.get_shared() if hasattr(v, "container")]

    def __call__(self, *args):
        import jax

        with self.device.active(self.x64):
            for variable in self.shared:
                storage = variable.container.storage
                if isinstance(storage[0], np.ndarray):
                    storage[0] = jax.device_put(storage[0], self.device.jax_device)
            out = self.fn(*args)
        # results come back to the host as numpy arrays (this also waits for the device)
        return [np.asarray(o) for o in out] if isinstance(out, list) else np.asarray(out)


_DTYPES = ("float32", "float64")


@contextlib.contextmanager
def _seeded(seed):
    if seed is None:
        yield
        return
    old = dilnet_random.get_rng()
    dilnet_random.set_rng(np.random.default_rng(seed))
    try:
        yield
    finally:
        dilnet_random.set_rng(old)


class Model:
    """A trainable network built from a spec.

    Parameters
    ----------
    spec : Sequential or list of blocks
        Starts with an `Input` block; ends (for training with the built-in losses) with a
        softmax, e.g. `Classifier`.
    dtype : 'float32' or 'float64'
        Parameters, inputs and outputs.
    mode : str or pytensor Mode, optional
        How functions are compiled (default `DEFAULT_MODE`, the C VM; ``"JAX"`` on the CPU
        takes the GPU's code path there).
    seed : int, optional
        Seeds the initial weights and the dropout streams: equal seeds give equal models.
    device : {'cpu', 'cuda', 'cuda:N'}, optional
        Where to compute (default the CPU). A CUDA GPU runs every function through PyTensor's
        JAX linker with the parameters and the optimizer's state kept on the device between
        steps: only batches go there and only losses, metric counts and predictions come back
        (`dilnet.model.device`). Without JAX, or with a JAX that sees no GPU, a `BackendError`
        says what to install. There, dropout draws from a JAX key kept inside each compiled
        function: `get_state`/`set_state` restore the weights and the optimizer's state but
        not those draws. A model on a device is not thread-safe (its calls set JAX's default
        device and warning filters). ``mode="JAX"`` without a device runs on the CPU.

    Attributes
    ----------
    network : dilnet.compiler.Network
        The layer graph, with paths and receptive fields.
    history : History or None
        Of the last `fit`.
    stop_training : bool
        Set by callbacks to end `fit` after the current step.
    """

    def __init__(self, spec, *, dtype="float32", mode=None, seed=None, device=None):
        if isinstance(spec, list | tuple):
            spec = Sequential(list(spec))
        try:
            dtype = np.dtype(dtype).name
        except TypeError:
            dtype = repr(dtype)
        if dtype not in _DTYPES:
            raise ConfigError(invalid("Model", "dtype", "'float32' or 'float64'", dtype))
        if seed is not None and not (is_int(seed) and seed >= 0):
            raise ConfigError(invalid("Model", "seed", "an int >= 0 or None", seed))
        self.device = resolve_device(device, mode)
        if self.device.kind == "cuda" and mode is None:
            mode = "JAX"
        mode = DEFAULT_MODE if mode is None else mode
        try:
            pytensor.compile.mode.get_mode(mode)
        except (ValueError, TypeError, KeyError) as err:
            raise ConfigError(
                invalid(
                    "Model",
                    "mode",
                    "a PyTensor mode name (e.g. 'CVM', 'NUMBA', 'JAX', "
                    "'FAST_COMPILE') or a pytensor Mode",
                    mode,
                )
            ) from err
        self.spec = spec
        self.dtype = dtype
        self.mode = mode
        with pytensor.config.change_flags(floatX=dtype), _seeded(seed):
            self.network = build(spec)
        self.rank = self.network.rank
        self._labels = pt.tensor("labels", dtype="int64", shape=(None,) * (self.rank + 1))
        self._functions = {}
        self._compiled = None
        self._optimizer_state = []
        self._sizes_checked = {}
        self.learning_rate = None
        self.history = None
        self.stop_training = False

    # ------------------------------------------------------------------ set-up

    def compile(
        self,
        optimizer="adam",
        loss="crossentropy",
        metrics=(),
        *,
        learning_rate=None,
        ignore_label=None,
        class_weights=None,
        **optimizer_options,
    ):
        """Choose the optimizer, the loss and the metrics.

        Parameters
        ----------
        optimizer : str or Optimizer
            'sgd', 'momentum', 'nesterov', 'adagrad', 'rmsprop', 'adadelta', 'adam',
            'adamax', 'amsgrad'; their options as keyword arguments (``momentum=0.9``).
        loss : str or Loss
            'crossentropy', 'dice' or 'crossentropy+dice' (or a `dilnet.model.losses` object).
        metrics : sequence of str or Metric
            'accuracy', 'dice' (per class ``dice_<c>`` and their mean ``dice``).
        learning_rate : float, optional
            Default: the optimizer's.
        ignore_label : int, optional
            Labels with this value count in no loss and no metric.
        class_weights : sequence of float, optional
            Cross-entropy class weights.
        """
        # everything is checked before the model changes: a failed compile leaves it as it was
        optimizer = get_optimizer(optimizer, learning_rate, **optimizer_options)
        loss_fn = get_loss(loss, ignore_label=ignore_label, class_weights=class_weights)
        if metrics is None:
            metrics = ()
        if isinstance(metrics, str):
            metrics = [metrics]
        if not isinstance(metrics, list | tuple):
            raise ConfigError(invalid("Model.compile", "metrics", "a list of metrics", metrics))
        metrics = [get_metric(m) for m in metrics]
        self._check_softmax_output(loss)
        classes = self.network.output_shape[1]
        weights = getattr(loss_fn, "class_weights", None)
        if weights is not None and len(weights) != classes:
            raise ShapeError(
                invalid(
                    "Model.compile", "class_weights", f"{classes} weights, one per class", weights
                )
            )
        ignore = getattr(loss_fn, "ignore_label", None)
        probe = pt.tensor(dtype=self.dtype, shape=(None,) * (self.rank + 2))
        sizes = [len(m.counts(probe, self._labels, ignore)) for m in metrics]
        self._optimizer, self._loss, self._metrics = optimizer, loss_fn, metrics
        self._metric_sizes, self.ignore_label = sizes, ignore
        lr = np.asarray(optimizer.learning_rate, dtype=self.dtype)
        if self.learning_rate is None:
            self.learning_rate = pytensor.shared(lr, name="learning_rate")
        else:
            self.learning_rate.set_value(lr)
        self._functions = {k: v for k, v in self._functions.items() if k == "predict"}
        self._optimizer_state = []
        self._compiled = True
        return self

    def _metric_names(self, prefix=""):
        """The log names the metrics will produce (for checking callbacks before training)."""
        classes = self.network.output_shape[1]
        return [prefix + n for metric in self._metrics for n in metric.names(classes)]

    def _check_softmax_output(self, loss):
        layer = self.network.output_layer
        if not (isinstance(layer, NonlinearityLayer) and layer.nonlinearity is softmax):
            raise ConfigError(
                f"Model.compile: loss={loss!r} needs class probabilities, but the model's last "
                f"layer is {layer.name!r} ({type(layer).__name__}); end the spec with "
                "Classifier(num_classes=..., activation='softmax')."
            )

    def get_learning_rate(self) -> float:
        self._require_compiled("get_learning_rate")
        return float(self.learning_rate.get_value())

    def set_learning_rate(self, value):
        self._require_compiled("set_learning_rate")
        self.learning_rate.set_value(np.asarray(value, dtype=self.dtype))

    def _require_compiled(self, where):
        if not self._compiled:
            raise ConfigError(f"Model.{where}: call model.compile(optimizer=..., loss=...) first.")

    # ------------------------------------------------------------------ functions

    def _function(self, kind):
        if kind in self._functions:
            return self._functions[kind]
        x, y = self.network.input_layer.input_var, self._labels
        with (
            pytensor.config.change_flags(floatX=self.dtype),
            self.device.active(x64=self.dtype == "float64"),
        ):
            if kind == "predict":
                out = self.network.get_output(deterministic=True)
                fn = pytensor.function([x], out, mode=self.mode)
            else:
                train = kind == "train"
                p = self.network.get_output(deterministic=not train)
                loss = self._loss(p, y)
                counts = [c for m in self._metrics for c in m.counts(p, y, self.ignore_label)]
                updates = None
                if train:
                    params = self.network.get_params(trainable=True)
                    lr = self.learning_rate
                    updates = self._optimizer.updates(loss, params, lr)
                    known = set(self.params) | {lr}
                    # accumulators of the rule, and the dropout streams: state to snapshot
                    self._optimizer_state = [v for v in updates if v not in known]
                    if self.device.jax_device is not None:
                        # the JAX linker copies each generator into the function and never
                        # advances ours: a fresh one per compile, or a recompiled function
                        # would replay the same dropout masks
                        for v in self._optimizer_state:
                            gen = v.get_value(borrow=True)
                            if isinstance(gen, np.random.Generator):
                                v.set_value(np.random.default_rng(gen.integers(2**63)))
                fn = pytensor.function([x, y], [loss, *counts], updates=updates, mode=self.mode)
        fn.trust_input = False
        if self.device.jax_device is not None:
            fn = _OnDevice(fn, self.device, x64=self.dtype == "float64")
        self._functions[kind] = fn
        return fn

    # ------------------------------------------------------------------ checks

    def _check_x(self, x, where, name="x"):
        x = np.asarray(x)
        expected = self.network.input_shape
        if x.ndim >= 1 and x.shape[0] == 0:
            raise ShapeError(invalid(where, f"{name}.shape", "at least one sample", x.shape))
        if (
            x.ndim != len(expected)
            or x.shape[1] != expected[1]
            or any(e is not None and e != n for e, n in zip(expected[2:], x.shape[2:], strict=True))
        ):
            raise ShapeError(
                invalid(
                    where, f"{name}.shape", f"(batch, channels, *spatial) like {expected}", x.shape
                )
            )
        if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
            raise ConfigError(invalid(where, f"{name}.dtype", "a real number dtype", x.dtype))
        self._output_shape(x.shape[2:], where, name)
        return np.ascontiguousarray(x, dtype=self.dtype)

    def _output_shape(self, spatial, where, name="x"):
        """The output shape for inputs of `spatial` lengths (checked once per size)."""
        spatial = tuple(int(n) for n in spatial)
        if spatial not in self._sizes_checked:
            try:
                self._sizes_checked[spatial] = self.network.check_size(spatial)
            except ShapeError as err:
                raise ShapeError(f"{where}: `{name}` of spatial shape {spatial}: {err}") from None
        return self._sizes_checked[spatial]

    def _check_y(self, y, x, where, name="y"):
        y = np.asarray(y)
        out = self._output_shape(x.shape[2:], where)
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
        classes = out[1]
        valid = (y >= 0) & (y < classes)
        if self.ignore_label is not None:
            valid |= y == self.ignore_label
        if not valid.all():
            bad = np.unique(y[~valid])[:5].tolist()
            allowed = f"0..{classes - 1}" + (
                f" or ignore_label={self.ignore_label}" if self.ignore_label is not None else ""
            )
            raise ConfigError(invalid(where, f"{name} values", allowed, bad))
        return np.ascontiguousarray(y, dtype="int64")

    @staticmethod
    def _check_positive(where, name, value):
        if not (is_int(value) and value > 0):
            raise ConfigError(invalid(where, name, "a positive int", value))

    # ------------------------------------------------------------------ training

    def train_on_batch(self, x, y) -> dict:
        """One optimisation step; returns the batch's loss and metrics."""
        self._require_compiled("train_on_batch")
        x = self._check_x(x, "Model.train_on_batch")
        y = self._check_y(y, x, "Model.train_on_batch")
        loss, *counts = self._function("train")(x, y)
        metrics = self._metric_values(self._accumulate(None, counts)) if counts else {}
        return {"loss": float(loss), **metrics}

    def _metric_values(self, totals):
        """Each metric's values from its counts summed over batches (`_accumulate`)."""
        out, i = {}, 0
        for metric, k in zip(self._metrics, self._metric_sizes, strict=True):
            out.update(metric.result(totals[i : i + k]))
            i += k
        return out

    @staticmethod
    def _accumulate(totals, counts):
        """Add one batch's counts to the running sums (float64: no integer overflow)."""
        counts = [np.asarray(c, dtype=np.float64) for c in counts]
        return counts if totals is None else [t + c for t, c in zip(totals, counts, strict=True)]

    def fit(
        self,
        x=None,
        y=None,
        *,
        batch_size=2,
        epochs=1,
        steps_per_epoch=None,
        validation_data=None,
        validation_batch_size=None,
        callbacks=(),
        verbose=1,
        shuffle=True,
        seed=None,
        initial_epoch=0,
    ):
        """Train for `epochs` epochs on arrays or on a `PatchSampler`.

        Parameters
        ----------
        x : array or PatchSampler
            Inputs ``(N, C, *spatial)``, or a `PatchSampler` that draws batches (then `y` is
            None).
        y : array, optional
            Integer labels ``(N, *spatial)``, for array inputs.
        batch_size : int
            For arrays.
        epochs : int
            The index of the last epoch plus one (Keras's rule).
        steps_per_epoch : int, optional
            For a sampler (default: its own `steps_per_epoch`); for arrays, all batches.
        validation_data : (x_val, y_val) or PatchSampler, optional
            Evaluated after each epoch; logged with the prefix ``val_``.
        validation_batch_size : int, optional
            Batch size of the validation pass; default `batch_size`.
        callbacks : sequence of Callback
            Called at the start and end of training, each epoch and each batch.
        verbose : int
            1: a progress bar per epoch with the running loss and metrics, then the epoch's
            logs on one line; 2: only that line (as Keras: for logs that are not a terminal);
            0: silent.
        shuffle : bool
            Shuffle array samples each epoch.
        seed : int, optional
            Seeds the shuffling.
        initial_epoch : int
            The epoch to start from, to resume a run: ``fit(..., epochs=10, initial_epoch=6)``
            trains epochs 6 to 9.

        Returns
        -------
        History
            The logs of every epoch (``history.history["loss"]``, ...).
        """
        where = "Model.fit"
        self._require_compiled("fit")
        if not (is_int(initial_epoch) and initial_epoch >= 0):
            raise ConfigError(invalid(where, "initial_epoch", "an int >= 0", initial_epoch))
        if not (is_int(epochs) and epochs > initial_epoch):
            raise ConfigError(
                invalid(
                    where,
                    "epochs",
                    f"an int > initial_epoch={initial_epoch} (the index of "
                    "the last epoch + 1, as in Keras)",
                    epochs,
                )
            )
        if isinstance(x, PatchSampler):
            if y is not None:
                raise ConfigError(invalid(where, "y", "None when x is a PatchSampler", "labels"))
            if steps_per_epoch is not None:
                self._check_positive(where, "steps_per_epoch", steps_per_epoch)
            steps = steps_per_epoch or x.steps_per_epoch
            self._check_sampler(x, where)

            def batches(epoch_rng):
                for _ in range(steps):
                    xb, yb = x.sample()
                    yield self._check_x(xb, where), self._check_y(yb, xb, where)
        else:
            if x is None or y is None:
                raise ConfigError(invalid(where, "x, y", "arrays, or x a PatchSampler", (x, y)))
            x = self._check_x(x, where)
            y = self._check_y(y, x, where)
            self._check_positive(where, "batch_size", batch_size)
            steps = math.ceil(len(x) / batch_size)
            if steps_per_epoch is not None:
                self._check_positive(where, "steps_per_epoch", steps_per_epoch)
                steps = min(steps, steps_per_epoch)

            def batches(epoch_rng):
                if not shuffle:  # contiguous batches: views, no copies
                    for s in range(steps):
                        yield (
                            x[s * batch_size : (s + 1) * batch_size],
                            y[s * batch_size : (s + 1) * batch_size],
                        )
                    return
                order = epoch_rng.permutation(len(x))
                for s in range(steps):
                    idx = np.sort(order[s * batch_size : (s + 1) * batch_size])
                    yield x[idx], y[idx]

        if validation_data is not None:
            validation_data = self._check_validation(validation_data, where)
        if isinstance(callbacks, Callback) or not isinstance(callbacks, list | tuple):
            raise ConfigError(invalid(where, "callbacks", "a list of Callback objects", callbacks))
        history = History()
        callbacks = [history, *callbacks]
        keys = ["loss", *self._metric_names(), "lr"]
        if validation_data is not None:
            keys += ["val_loss", *self._metric_names("val_")]
        for cb in callbacks:
            if not isinstance(cb, Callback):
                raise ConfigError(invalid(where, "callbacks", "Callback objects", cb))
            cb.check_logs(keys)
        for cb in callbacks:
            cb.set_model(self)
        fn = self._function("train")
        rng = np.random.default_rng(seed)
        self.stop_training = False
        self.history = history
        try:
            for cb in callbacks:
                cb.on_train_begin()
            self._epochs(
                fn,
                batches,
                steps,
                rng,
                callbacks,
                validation_data,
                validation_batch_size or batch_size,
                initial_epoch,
                epochs,
                verbose,
            )
        finally:
            for cb in callbacks:
                cb.on_train_end()
        return history

    def _epochs(self, fn, batches, steps, rng, callbacks, validation_data, validation_batch_size,
                initial_epoch, epochs, verbose):  # fmt: skip
        step = 0
        for epoch in range(initial_epoch, epochs):
            for cb in callbacks:
                cb.on_epoch_begin(epoch)
            losses, weights, totals = [], [], None
            bar = tqdm(
                total=steps,
                desc=f"epoch {epoch + 1}/{epochs}",
                disable=verbose != 1,
                leave=True,
                dynamic_ncols=True,
            )
            for xb, yb in batches(rng):
                loss, *c = fn(xb, yb)
                loss = float(loss)
                losses.append(loss)
                weights.append(len(xb))
                totals = self._accumulate(totals, c)
                logs = {"loss": loss}
                bar.update(1)
                if not bar.disable:
                    live = {"loss": np.average(losses, weights=weights)}
                    live.update(self._metric_values(totals) if totals else {})
                    bar.set_postfix({k: f"{v:.4g}" for k, v in live.items()}, refresh=False)
                for cb in callbacks:
                    cb.on_batch_end(step, logs)
                step += 1
                if self.stop_training:
                    break
            bar.close()
            logs = {"loss": float(np.average(losses, weights=weights))} if losses else {}
            if totals:
                logs.update(self._metric_values(totals))
            if validation_data is not None:
                val = self._evaluate(*validation_data, batch_size=validation_batch_size)
                logs.update({f"val_{k}": v for k, v in val.items()})
            logs["lr"] = self.get_learning_rate()
            if verbose:
                tqdm.write(
                    f"epoch {epoch + 1}: " + ", ".join(f"{k}={v:.4g}" for k, v in logs.items())
                )
            for cb in callbacks:
                cb.on_epoch_end(epoch, logs)
            if self.stop_training:
                break

    def _check_sampler(self, sampler, where):
        """A sampler's volumes, patch size and labels must fit the model (before compiling)."""
        expected = self.network.input_shape[1]
        if sampler.volumes[0].shape[0] != expected or sampler.rank != self.rank:
            raise ShapeError(
                invalid(
                    where,
                    "x",
                    f"a PatchSampler of {self.rank}D volumes with {expected} channels",
                    f"volumes of shape {sampler.volumes[0].shape}",
                )
            )
        out = self._output_shape(sampler.patch_size, where, "x.patch_size")
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
            sampler.check_labels(self.network.output_shape[1], self.ignore_label, where)

    def _check_validation(self, data, where):
        if isinstance(data, PatchSampler):
            self._check_sampler(data, where)
            xs, ys = zip(*(data.sample() for _ in range(data.steps_per_epoch)), strict=True)
            data = (np.concatenate(xs), np.concatenate(ys))
        if not (isinstance(data, tuple | list) and len(data) == 2):
            raise ConfigError(
                invalid(
                    where,
                    "validation_data",
                    "(x_val, y_val) or a PatchSampler",
                    type(data).__name__,
                )
            )
        x = self._check_x(data[0], where, "validation_data[0]")
        return x, self._check_y(data[1], x, where, "validation_data[1]")

    # ------------------------------------------------------------------ evaluation

    def evaluate(self, x, y, *, batch_size=2, verbose=0) -> dict:
        """Loss (mean over batches, weighted by batch size) and metrics (over all voxels) of the
        deterministic network (batch-norm averages, no dropout)."""
        self._require_compiled("evaluate")
        x = self._check_x(x, "Model.evaluate")
        y = self._check_y(y, x, "Model.evaluate")
        self._check_positive("Model.evaluate", "batch_size", batch_size)
        return self._evaluate(x, y, batch_size=batch_size, verbose=verbose)

    def _evaluate(self, x, y, batch_size, verbose=0):
        fn = self._function("eval")
        losses, weights, totals = [], [], None
        for s in tqdm(range(0, len(x), batch_size), disable=not verbose, desc="evaluate"):
            loss, *c = fn(x[s : s + batch_size], y[s : s + batch_size])
            losses.append(float(loss))
            weights.append(len(x[s : s + batch_size]))
            totals = self._accumulate(totals, c)
        metrics = self._metric_values(totals) if totals else {}
        return {"loss": float(np.average(losses, weights=weights)), **metrics}

    @property
    def compiles_per_shape(self) -> bool:
        """Whether each new input shape costs a compile (True on the JAX linker: the device
        path and ``mode="JAX"``; the C VM runs any shape). `predict` and
        `dilnet.inference.predict_volume` then keep their calls to one shape."""
        return self.device.jax_device is not None

    def predict(self, x, *, batch_size=1, verbose=0):
        """Class probabilities ``(N, K, *spatial)`` of the deterministic network.

        Where `compiles_per_shape`, a last short batch is filled up to `batch_size` with copies
        of its last sample (their predictions dropped), so that it reuses the compiled shape;
        a batch that is the only one is run as it is."""
        x = self._check_x(x, "Model.predict")
        self._check_positive("Model.predict", "batch_size", batch_size)
        fn = self._function("predict")
        out = []
        for s in tqdm(range(0, len(x), batch_size), disable=not verbose, desc="predict"):
            batch = x[s : s + batch_size]
            short = batch_size - len(batch)
            if short and s and self.compiles_per_shape:
                batch = np.concatenate([batch, np.repeat(batch[-1:], short, axis=0)])
            out.append(fn(batch)[: batch_size - short])
        return np.concatenate(out)

    def predict_on_batch(self, x):
        """`predict` of one batch, in one call."""
        return self._function("predict")(self._check_x(x, "Model.predict_on_batch"))

    # ------------------------------------------------------------------ weights

    @property
    def params(self) -> list:
        """All parameters (trainable and batch-norm averages), in a fixed order."""
        return self.network.get_params()

    def get_weights(self) -> list:
        """Copies of all parameter values as numpy arrays (from the device, if the model is on
        one), in `params` order."""
        return [np.array(p.get_value(borrow=True)) for p in self.params]

    def set_weights(self, values):
        """Set all parameters at once; nothing changes unless every value fits."""
        from ..layers import set_all_param_values

        set_all_param_values(self.network.output_layer, list(values))

    def get_state(self):
        """A snapshot of everything training changes: the parameters (batch-norm averages
        included) and the optimizer's accumulators and dropout streams (`set_state`)."""
        return {
            "weights": self.get_weights(),
            "optimizer": [(v, _host_copy(v.get_value(borrow=True))) for v in self._optimizer_state],
        }

    def set_state(self, state):
        """Put back a `get_state` snapshot (optimizer state only if it is of the current
        training function)."""
        self.set_weights(state["weights"])
        current = set(self._optimizer_state)
        for variable, value in state.get("optimizer", []):
            if variable in current:
                variable.set_value(value)

    def weights_finite(self) -> bool:
        return all(np.isfinite(p.get_value(borrow=True)).all() for p in self.params)

    def summary(self, input_size=None, batch_size=1, print_fn=print):
        """`Sequential.summary` of this model's spec, in the model's dtype."""
        with pytensor.config.change_flags(floatX=self.dtype):
            return self.spec.summary(
                input_size=input_size, batch_size=batch_size, print_fn=print_fn
            )

    def _arrays(self):
        return {p.name: np.array(p.get_value(borrow=True)) for p in self.params}

    def _expected(self):
        return [(p.name, tuple(p.get_value(borrow=True).shape), str(p.dtype)) for p in self.params]

    def save_weights(self, path):
        """Write all parameters to `path` (one `.npz`, atomically, with a manifest of names,
        shapes, dtypes and sha256 checksums; `dilnet.io.weights`)."""
        from ..io.weights import save_checkpoint

        return save_checkpoint(
            os.fspath(path),
            self._arrays(),
            metadata={"kind": "weights", "spec": self.spec.to_config(), "dtype": self.dtype},
        )

    def load_weights(self, path, *, cast=False, skip_mismatch=False):
        """Read weights written by `save_weights` or `save`. The file's checksums, names,
        shapes and dtypes are all verified before any parameter changes; with ``cast=True``
        float weights of another precision (a float64 checkpoint into a float32 model) are
        converted.

        With ``skip_mismatch=True`` (Keras's name, for fine-tuning, e.g. a pretrained network
        with a new classifier) only the parameters whose name, shape and dtype fit (float
        dtypes may differ with ``cast=True``) are loaded; the others keep their values. The
        returned manifest lists them under ``"skipped"`` (empty without `skip_mismatch`).
        The checksums are still verified, and a file of which nothing fits is an error.
        """
        from ..errors import WeightsError
        from ..io.weights import read_checkpoint, verify_against

        where = "Model.load_weights"
        if not isinstance(cast, bool):
            raise ConfigError(invalid(where, "cast", "True or False", cast))
        if not isinstance(skip_mismatch, bool):
            raise ConfigError(invalid(where, "skip_mismatch", "True or False", skip_mismatch))
        arrays, manifest = read_checkpoint(os.fspath(path))
        if not skip_mismatch:
            verify_against(manifest, self._expected(), where=os.fspath(path), cast=cast)
            self.set_weights([arrays[p.name].astype(p.dtype, copy=False) for p in self.params])
            return {**manifest, "skipped": []}

        def fits(p):
            a = arrays.get(p.name)
            if a is None or a.shape != p.get_value(borrow=True).shape:
                return False
            floats = np.issubdtype(a.dtype, np.floating) and p.dtype.startswith("float")
            return a.dtype == p.dtype or (cast and floats)

        loaded = {p.name for p in self.params if fits(p)}
        if not loaded:
            raise WeightsError(
                f"{os.fspath(path)}: no parameter fits this model (skip_mismatch=True loads those "
                "whose name, shape and dtype match; cast=True lets float dtypes differ)."
            )
        values = [
            arrays[p.name].astype(p.dtype, copy=False) if p.name in loaded else w
            for p, w in zip(self.params, self.get_weights(), strict=True)
        ]
        self.set_weights(values)
        return {**manifest, "skipped": [p.name for p in self.params if p.name not in loaded]}

    def save(self, path, metadata=None):
        """Write the whole model: its spec config, dtype and weights, in one file; `metadata`
        (a JSON-able dict, e.g. how it was trained and what it scored) goes into the manifest
        too."""
        from ..io.weights import save_checkpoint

        if metadata is not None and not isinstance(metadata, dict):
            raise ConfigError(invalid("Model.save", "metadata", "a dict or None", metadata))
        base = {"kind": "model", "spec": self.spec.to_config(), "dtype": self.dtype}
        clash = sorted(set(base) & set(metadata or {}))
        if clash:
            raise ConfigError(
                invalid("Model.save", "metadata", f"no keys named {', '.join(base)}", clash)
            )
        return save_checkpoint(
            os.fspath(path), self._arrays(), metadata={**base, **(metadata or {})}
        )


def load_model(path, *, mode=None, device=None) -> Model:
    """A `Model` from a file written by `Model.save` or `Model.save_weights` (spec and dtype
    from the file's manifest; weights verified before use), on `device` (as in `Model`)."""
    from ..io.config import from_config
    from ..io.weights import read_checkpoint

    _, manifest = read_checkpoint(os.fspath(path))
    metadata = manifest.get("metadata", {})
    if "spec" not in metadata:
        raise ConfigError(
            f"load_model: {os.fspath(path)} holds weights but no model config (it was not "
            "written by Model.save or Model.save_weights); build the Model from its spec and "
            "use load_weights."
        )
    dtype = metadata.get("dtype") or next(
        (np.dtype(p["dtype"]).name for p in manifest["params"]), "float32"
    )
    model = Model(from_config(metadata["spec"]), dtype=dtype, mode=mode, device=device)
    model.load_weights(path)
    return model
