"""Callbacks for `Model.fit`, with Keras's names and hooks.

A callback gets ``set_model(model)`` and then ``on_train_begin``, ``on_epoch_begin(epoch)``,
``on_batch_end(step, logs)``, ``on_epoch_end(epoch, logs)`` and ``on_train_end``. Setting
``model.stop_training = True`` ends training after the current step.
"""

import csv
import math
import os

import numpy as np

from ..errors import ConfigError, invalid

__all__ = [
    "CSVLogger",
    "Callback",
    "EarlyStopping",
    "History",
    "LearningRateScheduler",
    "ModelCheckpoint",
    "NaNGuard",
    "ReduceLROnPlateau",
    "cosine_decay",
    "step_decay",
]


class Callback:
    """Base class; every hook does nothing."""

    model = None

    def set_model(self, model):
        self.model = model

    def on_train_begin(self, logs=None):
        pass

    def on_train_end(self, logs=None):
        pass

    def on_epoch_begin(self, epoch, logs=None):
        pass

    def on_epoch_end(self, epoch, logs=None):
        pass

    def on_batch_end(self, step, logs=None):
        pass


class History(Callback):
    """Records each epoch's logs: ``history.history["loss"]`` is the list of epoch losses."""

    def __init__(self):
        self.history = {}
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)


def _mode(monitor, mode, where):
    if mode not in ("auto", "min", "max"):
        raise ConfigError(invalid(where, "mode", "'auto', 'min' or 'max'", mode))
    if mode == "auto":
        higher = any(k in monitor for k in ("acc", "dice"))
        return "max" if higher else "min"
    return mode


class _Monitor(Callback):
    def __init__(self, monitor, mode, min_delta, where):
        if not isinstance(monitor, str):
            raise ConfigError(invalid(where, "monitor", "a log name like 'val_loss'", monitor))
        self.monitor = monitor
        self.mode = _mode(monitor, mode, where)
        self.min_delta = abs(min_delta)
        self.best = None
        self.where = where

    def value(self, logs):
        if self.monitor not in (logs or {}):
            raise ConfigError(
                invalid(
                    self.where,
                    "monitor",
                    f"one of the logged values {sorted(logs or {})}",
                    self.monitor,
                )
            )
        return logs[self.monitor]

    def improved(self, value):
        if value is None or not math.isfinite(value):
            return False
        if self.best is None:
            return True
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta


class ModelCheckpoint(_Monitor):
    """Save the weights (or the whole model) after each epoch.

    ``save_best_only=True`` keeps the best epoch by `monitor`; otherwise the last epoch is
    written. `filepath` may contain ``{epoch}`` and log names (``"ckpt-{epoch:03d}.npz"``).
    Writes are atomic, and weights that are not finite are never written, so a run that diverges
    keeps its last good checkpoint.
    """

    def __init__(
        self,
        filepath,
        monitor="val_loss",
        mode="auto",
        save_best_only=False,
        save_weights_only=True,
        min_delta=0.0,
    ):
        super().__init__(monitor, mode, min_delta, "ModelCheckpoint")
        self.filepath = os.fspath(filepath)
        self.save_best_only = bool(save_best_only)
        self.save_weights_only = bool(save_weights_only)
        self.saved = []

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.save_best_only:
            value = self.value(logs)
            if not self.improved(value):
                return
            self.best = value
        if not self.model.weights_finite():
            return
        path = self.filepath.format(epoch=epoch, **logs)
        if self.save_weights_only:
            self.model.save_weights(path)
        else:
            self.model.save(path)
        self.saved.append(path)


class EarlyStopping(_Monitor):
    """Stop when `monitor` has not improved by `min_delta` for `patience` epochs; with
    ``restore_best_weights`` put back the best epoch's weights at the end."""

    def __init__(
        self, monitor="val_loss", min_delta=0.0, patience=0, mode="auto", restore_best_weights=False
    ):
        super().__init__(monitor, mode, min_delta, "EarlyStopping")
        if not isinstance(patience, int) or patience < 0:
            raise ConfigError(invalid("EarlyStopping", "patience", "an int >= 0", patience))
        self.patience = patience
        self.restore_best_weights = bool(restore_best_weights)
        self.stopped_epoch = None

    def on_train_begin(self, logs=None):
        self.best, self.wait, self.best_weights, self.stopped_epoch = None, 0, None, None

    def on_epoch_end(self, epoch, logs=None):
        value = self.value(logs)
        if self.improved(value):
            self.best, self.wait = value, 0
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            return
        self.wait += 1
        if self.wait > self.patience:
            self.model.stop_training = True
            self.stopped_epoch = epoch

    def on_train_end(self, logs=None):
        if self.restore_best_weights and self.best_weights is not None:
            self.model.set_weights(self.best_weights)


class CSVLogger(Callback):
    """Append one row per epoch (epoch and every log value) to a CSV file, flushed each
    epoch."""

    def __init__(self, filename, separator=",", append=False):
        self.filename = os.fspath(filename)
        self.separator = separator
        self.append = append
        self.keys = None

    def on_train_begin(self, logs=None):
        exists = self.append and os.path.exists(self.filename)
        self.file = open(self.filename, "a" if self.append else "w", newline="")
        self.keys = None
        self.header_written = exists and os.path.getsize(self.filename) > 0

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.keys is None:
            self.keys = sorted(logs)
            self.writer = csv.DictWriter(self.file, ["epoch", *self.keys], delimiter=self.separator)
            if not self.header_written:
                self.writer.writeheader()
        self.writer.writerow({"epoch": epoch, **{k: logs.get(k, "") for k in self.keys}})
        self.file.flush()
        os.fsync(self.file.fileno())

    def on_train_end(self, logs=None):
        self.file.close()


class NaNGuard(Callback):
    """Stop training at the first non-finite loss and put back the last good weights.

    The weights are snapshotted when training starts and after every epoch whose loss was
    finite; on a ``nan``/``inf`` batch loss the model gets that snapshot back,
    ``model.stop_training`` is set, and `stopped_step` records where. Together with
    `ModelCheckpoint` (which never writes non-finite weights) the last checkpoint on disk stays
    good.
    """

    def __init__(self):
        self.stopped_step = None
        self.snapshot = None

    def on_train_begin(self, logs=None):
        self.snapshot, self.stopped_step = self.model.get_weights(), None

    def on_batch_end(self, step, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            self.model.set_weights(self.snapshot)
            self.model.stop_training = True
            self.stopped_step = step

    def on_epoch_end(self, epoch, logs=None):
        if self.stopped_step is None and self.model.weights_finite():
            self.snapshot = self.model.get_weights()


class LearningRateScheduler(Callback):
    """Set the learning rate at the start of each epoch to ``schedule(epoch, lr)``; the value
    is logged as ``lr``."""

    def __init__(self, schedule):
        if not callable(schedule):
            raise ConfigError(invalid("LearningRateScheduler", "schedule", "a callable", schedule))
        self.schedule = schedule

    def on_epoch_begin(self, epoch, logs=None):
        lr = float(self.schedule(epoch, self.model.get_learning_rate()))
        if not (math.isfinite(lr) and lr >= 0):
            raise ConfigError(
                invalid(
                    "LearningRateScheduler",
                    "schedule(epoch, lr)",
                    "a finite learning rate >= 0",
                    lr,
                )
            )
        self.model.set_learning_rate(lr)


class ReduceLROnPlateau(_Monitor):
    """Multiply the learning rate by `factor` when `monitor` has not improved for `patience`
    epochs (not below `min_lr`)."""

    def __init__(
        self, monitor="val_loss", factor=0.1, patience=10, mode="auto", min_delta=1e-4, min_lr=0.0
    ):
        super().__init__(monitor, mode, min_delta, "ReduceLROnPlateau")
        if not 0 < factor < 1:
            raise ConfigError(invalid("ReduceLROnPlateau", "factor", "a number in (0, 1)", factor))
        self.factor, self.patience, self.min_lr = factor, patience, min_lr

    def on_train_begin(self, logs=None):
        self.best, self.wait = None, 0

    def on_epoch_end(self, epoch, logs=None):
        value = self.value(logs)
        if self.improved(value):
            self.best, self.wait = value, 0
            return
        self.wait += 1
        if self.wait > self.patience:
            lr = self.model.get_learning_rate()
            self.model.set_learning_rate(max(self.min_lr, lr * self.factor))
            self.wait = 0


def step_decay(initial, drop=0.5, every=10):
    """A schedule: ``initial * drop ** (epoch // every)``."""
    return lambda epoch, lr: initial * drop ** (epoch // every)


def cosine_decay(initial, epochs, final=0.0):
    """A schedule: cosine from `initial` at epoch 0 to `final` at epoch `epochs`."""
    return lambda epoch, lr: (
        final + 0.5 * (initial - final) * (1 + np.cos(np.pi * min(epoch, epochs) / epochs))
    )
