"""`Model`: a compiled spec that trains, evaluates and predicts the way Keras users expect.

``Model(spec)`` builds the layer graph once; ``compile(optimizer, loss, metrics)`` chooses the
training setup; the PyTensor functions are compiled on first use (training on the first
``fit``, inference on the first ``predict``/``evaluate``) and then reused. Every input is
checked before anything compiles.

`Model` is the facade: its loops and their checks are in `dilnet.model.trainer`, saving and
loading in `dilnet.model.saving`, the device its functions run on in `dilnet.model.device`.
"""

import contextlib
import os

import numpy as np
import pytensor
import pytensor.tensor as pt

from .. import random as dilnet_random
from ..blocks.stacks import Sequential
from ..compiler import build
from ..errors import ConfigError, ShapeError, invalid
from ..layers import NonlinearityLayer, set_all_param_values
from ..nonlinearities import softmax
from . import saving, trainer
from .contract import InputContract
from .device import host_copy, resolve_device
from .losses import get_loss
from .metrics import get_metric
from .optimizers import get_optimizer

__all__ = ["DEFAULT_MODE", "Model"]

#: PyTensor mode of compiled functions: dilnet's ``"NUMPY"`` (`dilnet.modes`: FAST_RUN's
#: rewrites, numpy elementwise work, nothing built by gcc). Measured on 2 CPU cores
#: (``bench/cold_start.py``, docs/benchmarks.md): the first training step of a fresh process
#: comes several times sooner than with the C VM's cold cache, and steps run as fast.
DEFAULT_MODE = "NUMPY"

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
        How functions are compiled (default `DEFAULT_MODE`, dilnet's ``"NUMPY"`` mode,
        `dilnet.modes`; ``"CVM"`` for PyTensor's C VM; ``"JAX"`` on the CPU takes the GPU's
        code path there).
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
    input_contract : InputContract, optional
        The orientation, voxel size and intensity scaling the model expects
        (`dilnet.model.contract`): saved with the model, applied by
        `dilnet.preprocessing.predict_image`, ``dilnet predict`` and (intensities only)
        `dilnet.inference.predict_volume`.

    Attributes
    ----------
    network : dilnet.network.Network
        The layer graph, with paths and receptive fields.
    history : History or None
        Of the last `fit`.
    stop_training : bool
        Set by callbacks to end `fit` after the current step.
    """

    def __init__(
        self, spec, *, dtype="float32", mode=None, seed=None, device=None, input_contract=None
    ):
        if isinstance(spec, list | tuple):
            spec = Sequential(list(spec))
        try:
            dtype = np.dtype(dtype).name
        except TypeError:
            dtype = repr(dtype)
        if dtype not in _DTYPES:
            raise ConfigError(invalid("Model", "dtype", "'float32' or 'float64'", dtype))
        if seed is not None:
            trainer.check_int("Model", "seed", seed, minimum=0, expected="an int >= 0 or None")
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
                    "a PyTensor mode name (e.g. 'NUMPY', 'CVM', 'NUMBA', 'JAX', "
                    "'FAST_COMPILE') or a pytensor Mode",
                    mode,
                )
            ) from err
        if input_contract is not None and not isinstance(input_contract, InputContract):
            raise ConfigError(
                invalid("Model", "input_contract", "an InputContract or None", input_contract)
            )
        self.spec = spec
        self.dtype = dtype
        #: what the model expects of its input (`dilnet.model.contract`); saved with the model
        self.input_contract = input_contract
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
        #: epochs trained so far (`fit` counts them; saved and restored with the training state)
        self.epochs_trained = 0
        self._compile_args = None
        self._pending_state = None
        self._sampler = None
        self._sampler_state = None

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
        args = {"optimizer": optimizer, "loss": loss, "metrics": metrics,
                "learning_rate": learning_rate, "ignore_label": ignore_label,
                "class_weights": class_weights, **optimizer_options}  # fmt: skip
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
        self._pending_state = None
        # saved with the training state when plain JSON (names, numbers): load_model compiles
        # the model again with them
        self._compile_args = saving.plain_compile_args(args)
        self._compiled = True
        return self

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
        """The compiled function of `kind` ('train', 'eval' or 'predict'; `trainer.function`)."""
        return trainer.function(self, kind)

    # ------------------------------------------------------------------ training

    def train_on_batch(self, x, y) -> dict:
        """One optimisation step; returns the batch's loss and metrics."""
        return trainer.train_on_batch(self, x, y)

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
            logs on one line; 2: only that line (as Keras: for logs that are not a terminal),
            and one line for a compile longer than a second; 0: no bar or lines. Whatever
            `verbose`, a compile longer than a second shows a status line on a terminal
            (`dilnet.status`).
        shuffle : bool
            Shuffle array samples each epoch.
        seed : int, optional
            Seeds the shuffling.
        initial_epoch : int
            The epoch to start from, to resume a run: ``fit(..., epochs=10, initial_epoch=6)``
            trains epochs 6 to 9. A model saved by ``save(path)`` (or
            ``ModelCheckpoint(save_weights_only=False)``) after epoch 6 and loaded with
            `load_model` continues *exactly* as the uninterrupted run would have, given the same
            `seed` and data: the file holds the optimizer's state, the dropout streams, the
            learning rate, the epoch count (`epochs_trained`) and a `PatchSampler`'s random
            state, and each epoch's shuffle is drawn from ``(seed, epoch)``.

        Returns
        -------
        History
            The logs of every epoch (``history.history["loss"]``, ...).
        """
        return trainer.fit(
            self,
            x,
            y,
            batch_size=batch_size,
            epochs=epochs,
            steps_per_epoch=steps_per_epoch,
            validation_data=validation_data,
            validation_batch_size=validation_batch_size,
            callbacks=callbacks,
            verbose=verbose,
            shuffle=shuffle,
            seed=seed,
            initial_epoch=initial_epoch,
        )

    # ------------------------------------------------------------------ evaluation

    def evaluate(self, x, y, *, batch_size=2, verbose=0) -> dict:
        """Loss (mean over batches, weighted by batch size) and metrics (over all voxels) of the
        deterministic network (batch-norm averages, no dropout)."""
        return trainer.evaluate(self, x, y, batch_size=batch_size, verbose=verbose)

    @property
    def compiles_per_shape(self) -> bool:
        """Whether each new input shape costs a compile (True on the JAX linker: the device
        path and ``mode="JAX"``; the NUMPY mode and the C VM run any shape). `predict` and
        `dilnet.inference.predict_volume` then keep their calls to one shape."""
        return self.device.jax_device is not None

    def predict(self, x, *, batch_size=1, verbose=0):
        """Class probabilities ``(N, K, *spatial)`` of the deterministic network.

        Where `compiles_per_shape`, a last short batch is filled up to `batch_size` with copies
        of its last sample (their predictions dropped), so that it reuses the compiled shape;
        a batch that is the only one is run as it is.

        Like `fit` and `evaluate`, it takes `x` as the network sees it: `input_contract` is
        **not** applied here. Give raw volumes to `dilnet.inference.predict_volume` (intensity
        scaling) or images to `dilnet.preprocessing.predict_image` (orientation, voxel size and
        intensities)."""
        return trainer.predict(self, x, batch_size=batch_size, verbose=verbose)

    def predict_on_batch(self, x):
        """`predict` of one batch, in one call."""
        return self._function("predict")(trainer.check_x(self, x, "Model.predict_on_batch"))

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
        set_all_param_values(self.network.output_layer, list(values))

    def get_state(self):
        """A snapshot of everything training changes: the parameters (batch-norm averages
        included) and the optimizer's accumulators and dropout streams (`set_state`)."""
        return {
            "weights": self.get_weights(),
            "optimizer": [(v, host_copy(v.get_value(borrow=True))) for v in self._optimizer_state],
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
        return self.spec.summary(
            input_size=input_size, batch_size=batch_size, print_fn=print_fn, dtype=self.dtype
        )

    def save_weights(self, path):
        """Write all parameters to `path` (one `.npz`, atomically, with a manifest of names,
        shapes, dtypes and sha256 checksums; `dilnet.io.weights`)."""
        return saving.save_weights(self, path)

    def load_weights(self, path, *, cast=False, skip_mismatch=False, allow_nonfinite=False):
        """Read weights written by `save_weights` or `save`. The file's checksums, names,
        shapes and dtypes are all verified before any parameter changes; with ``cast=True``
        float weights of another precision (a float64 checkpoint into a float32 model) are
        converted.

        With ``skip_mismatch=True`` (Keras's name, for fine-tuning, e.g. a pretrained network
        with a new classifier) only the parameters whose name, shape and dtype fit (float
        dtypes may differ with ``cast=True``) are loaded; the others keep their values. The
        returned manifest lists them under ``"skipped"`` (empty without `skip_mismatch`).
        The checksums are still verified, and a file of which nothing fits is an error.

        Weights holding NaN or infinite values (a run that diverged before it was saved) are
        refused with a `WeightsError` naming each parameter; ``allow_nonfinite=True`` loads
        them for inspection only.
        """
        return saving.load_weights(
            self, path, cast=cast, skip_mismatch=skip_mismatch, allow_nonfinite=allow_nonfinite
        )

    def export_onnx(self, path):
        """Write the deterministic network (batch-norm running averages, no dropout) to an
        ONNX file, atomically (`dilnet.io.onnx.export`; needs the ``onnx`` extra:
        ``pip install 'dilnet[onnx]'``). Its output is `predict`'s for any batch and any input
        size the network accepts; `input_contract` and the spec go into the file's metadata
        (``dilnet.input_contract``, ``dilnet.spec``, JSON). Returns the path.

        Like `predict`, the exported graph takes `x` as the network sees it: a runtime must
        scale intensities (and orient and resample) as `input_contract` says.
        """
        from ..io.onnx import export

        contract = self.input_contract
        metadata = {
            "dtype": self.dtype,
            "input_contract": None if contract is None else contract.to_dict(),
        }
        return export(self.network, path, metadata=metadata)

    def save(self, path, metadata=None, *, include_optimizer=True):
        """Write the whole model: its spec config, dtype and weights, in one file; `metadata`
        (a JSON-able dict, e.g. how it was trained and what it scored) goes into the manifest
        too. With `include_optimizer` (default, as in Keras) and once the model has trained,
        the training state goes in as well (the optimizer's accumulators, the dropout
        streams, the learning rate, `epochs_trained`, the compile arguments and the random
        state of the `PatchSampler` of the last `fit`), so that `load_model` and
        ``fit(initial_epoch=model.epochs_trained)`` resume exactly."""
        return saving.save(self, path, metadata, include_optimizer=include_optimizer)


def load_model(path, *, mode=None, device=None, allow_nonfinite=False) -> Model:
    """A `Model` from a file written by `Model.save` or `Model.save_weights` (spec, dtype and
    input contract from the file's manifest; weights verified before use, NaN or infinite ones
    refused unless ``allow_nonfinite=True``, for inspection), on `device` (as in `Model`)."""
    spec, dtype, contract, checkpoint = saving.read_model(path)
    training = saving.split_training_state(checkpoint)
    if not isinstance(allow_nonfinite, bool):
        raise ConfigError(
            invalid("load_model", "allow_nonfinite", "True or False", allow_nonfinite)
        )
    if not allow_nonfinite:
        saving.check_finite(checkpoint[0], os.fspath(path))
    model = Model(spec, dtype=dtype, mode=mode, device=device, input_contract=contract)
    saving.load_weights(model, path, cast=False, skip_mismatch=False, checkpoint=checkpoint,
                        allow_nonfinite=allow_nonfinite)  # fmt: skip
    if training is not None:
        saving.restore_training_state(model, training, os.fspath(path))
    return model
