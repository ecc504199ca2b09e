"""Callbacks for `Model.fit`, with Keras's names, hooks and semantics.

A callback gets ``check_logs(keys)`` (the names each epoch's logs will have, before anything
compiles), ``set_model(model)`` and then ``on_train_begin``, ``on_epoch_begin(epoch)``,
``on_batch_end(step, logs)``, ``on_epoch_end(epoch, logs)`` and ``on_train_end`` (always, even
when training fails). Epochs are 0-based indexes, as in Keras. Setting
``model.stop_training = True`` ends training after the current step.
"""

import csv
import math
import os
import re
import string
from numbers import Real

import numpy as np

from ..errors import ConfigError, invalid, suggest
from ..utils import is_int

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


def _is_number(value) -> bool:
    """A real number (Python or numpy), not a bool."""
    return isinstance(value, Real) and not isinstance(value, bool | np.bool_)


def _number(where, name, value, expected, ok) -> float:
    """`value` as a float if it is a finite real number with ``ok(value)``, else ConfigError."""
    if not (_is_number(value) and math.isfinite(value) and ok(value)):
        raise ConfigError(invalid(where, name, expected, value))
    return float(value)


def _patience(where, value) -> int:
    if not (is_int(value) and value >= 0):
        raise ConfigError(invalid(where, "patience", "an int >= 0", value))
    return int(value)


def _names(keys) -> str:
    return ", ".join(map(repr, sorted(set(keys))))


class Callback:
    """Base class; every hook does nothing."""

    model = None

    def set_model(self, model):
        self.model = model

    def check_logs(self, keys):
        """Called by `Model.fit` before compiling with every name an epoch's logs will have;
        raises `ConfigError` when the callback needs a value that will never be logged."""

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
    if not (isinstance(mode, str) and mode in ("auto", "min", "max")):
        raise ConfigError(invalid(where, "mode", "'auto', 'min' or 'max'", mode))
    if mode == "auto":
        higher = any(k in monitor for k in ("acc", "dice"))
        return "max" if higher else "min"
    return mode


class _Monitor(Callback):
    """A callback that follows one logged value, `monitor`."""

    def __init__(self, monitor, mode, min_delta, where):
        if not isinstance(monitor, str):
            raise ConfigError(invalid(where, "monitor", "a log name like 'val_loss'", monitor))
        self.monitor = monitor
        self.mode = _mode(monitor, mode, where)
        self.min_delta = abs(
            _number(where, "min_delta", min_delta, "a finite number", lambda v: True)
        )
        self.best = None
        self.where = where

    def check_logs(self, keys):
        if self.monitor not in set(keys):
            raise ConfigError(
                invalid(
                    self.where,
                    "monitor",
                    f"one of the logged values {_names(keys)}{suggest(self.monitor, keys)}",
                    self.monitor,
                )
            )

    def _stopping(self) -> bool:
        """Training was stopped during this epoch (e.g. by `NaNGuard`), so its logs may lack
        values such as the validation ones."""
        return bool(getattr(self.model, "stop_training", False))

    def value(self, logs):
        """The monitored value of an epoch's logs; None (skip the epoch, as Keras does) where
        the value is missing because training stopped during the epoch. Missing otherwise, it
        is an error: the monitor names a value that is never logged."""
        logs = logs or {}
        if self.monitor in logs:
            return logs[self.monitor]
        if self._stopping():
            return None
        raise ConfigError(
            invalid(
                self.where,
                "monitor",
                f"one of the logged values {_names(logs)}{suggest(self.monitor, logs)}",
                self.monitor,
            )
        )

    def improved(self, value):
        if value is None or not math.isfinite(value):
            return False
        if self.best is None:
            return True
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta


def _pattern_fields(pattern, where) -> set:
    """The field names of a `str.format` pattern (``'ckpt-{epoch:03d}-{val_loss:.3f}'`` ->
    ``{'epoch', 'val_loss'}``); ConfigError naming `filepath` for a malformed pattern or a
    positional field."""
    expected = "a path, optionally a str.format pattern with named fields like 'ckpt-{epoch:03d}'"
    try:
        parsed = list(string.Formatter().parse(pattern))
    except ValueError as err:
        raise ConfigError(invalid(where, "filepath", expected, pattern)) from err
    fields = set()
    for _, field, spec, _ in parsed:
        if field is None:
            continue
        name = re.match(r"[^.\[]*", field).group()
        if not name or name.isdigit():
            raise ConfigError(invalid(where, "filepath", expected, pattern))
        fields.add(name)
        if spec and "{" in spec:  # a nested field: '{val_loss:.{digits}f}'
            fields |= _pattern_fields(spec, where)
    return fields


class ModelCheckpoint(_Monitor):
    """Save the weights (or the whole model) after each epoch.

    ``save_best_only=True`` keeps the best epoch by `monitor`; otherwise the last epoch is
    written. `filepath` may contain ``{epoch}`` and log names (``"ckpt-{epoch:03d}.npz"``);
    as in Keras, ``{epoch}`` counts from 1 (the file of the first epoch is ``ckpt-001.npz``)
    although callbacks receive 0-based epoch indexes. Writes are atomic, and weights that are
    not finite are never written, so a run that diverges keeps its last good checkpoint.
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
        try:
            self.filepath = os.fspath(filepath)
        except TypeError as err:
            raise ConfigError(invalid(self.where, "filepath", "a str or path", filepath)) from err
        if not isinstance(self.filepath, str):
            raise ConfigError(invalid(self.where, "filepath", "a str or path", filepath))
        self.fields = _pattern_fields(self.filepath, self.where)
        self.save_best_only = bool(save_best_only)
        self.save_weights_only = bool(save_weights_only)
        self.saved = []

    def check_logs(self, keys):
        if self.save_best_only:
            super().check_logs(keys)
        unknown = sorted(self.fields - {"epoch", *keys})
        if unknown:
            close = suggest(unknown[0], {"epoch", *keys})
            raise ConfigError(
                invalid(
                    self.where,
                    "filepath",
                    f"a pattern whose fields are 'epoch' or logged values ({_names(keys)}); "
                    f"{', '.join(map(repr, unknown))} is never logged{close}",
                    self.filepath,
                )
            )

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        value = None
        if self.save_best_only:
            value = self.value(logs)
            if value is None or not self.improved(value):
                return
        missing = sorted(self.fields - {"epoch", *logs})
        if missing:
            if self._stopping():
                return  # an epoch cut short: skip it, as for a missing monitored value
            raise ConfigError(
                invalid(
                    self.where,
                    "filepath",
                    f"a pattern whose fields are 'epoch' or logged values ({_names(logs)}); "
                    f"{', '.join(map(repr, missing))} is not logged",
                    self.filepath,
                )
            )
        if not self.model.weights_finite():
            return
        try:
            path = self.filepath.format(**{**logs, "epoch": epoch + 1})
        except (ValueError, TypeError, KeyError, IndexError, AttributeError) as err:
            raise ConfigError(
                invalid(self.where, "filepath", f"a pattern the logs fit ({err})", self.filepath)
            ) from err
        if self.save_best_only:
            self.best = value
        if self.save_weights_only:
            self.model.save_weights(path)
        else:
            self.model.save(path)
        self.saved.append(path)


class EarlyStopping(_Monitor):
    """Stop training once `monitor` has gone `patience` epochs in a row without improving by
    more than `min_delta` (Keras's rule: ``patience=0`` stops at the first epoch that does not
    improve, ``patience=2`` after the second in a row). With ``restore_best_weights`` the best
    epoch's weights are put back when training ends. `stopped_epoch` is the (0-based) epoch
    after which training stopped, or None."""

    def __init__(
        self, monitor="val_loss", min_delta=0.0, patience=0, mode="auto", restore_best_weights=False
    ):
        super().__init__(monitor, mode, min_delta, "EarlyStopping")
        self.patience = _patience(self.where, patience)
        self.restore_best_weights = bool(restore_best_weights)
        self.stopped_epoch = None
        self.wait, self.best_weights = 0, None

    def on_train_begin(self, logs=None):
        self.best, self.wait, self.best_weights, self.stopped_epoch = None, 0, None, None

    def on_epoch_end(self, epoch, logs=None):
        value = self.value(logs)
        if value is None:
            return
        if self.improved(value):
            self.best, self.wait = value, 0
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.model.stop_training = True
            self.stopped_epoch = epoch

    def on_train_end(self, logs=None):
        if self.restore_best_weights and self.best_weights is not None:
            self.model.set_weights(self.best_weights)


class CSVLogger(Callback):
    """Write one row per epoch (the 0-based epoch and every log value) to a CSV file, flushed
    each epoch.

    With ``append=True`` rows go under the existing file's header (values it has no row for are
    left empty); logging a value the header has no column for is a `ConfigError`.
    """

    def __init__(self, filename, separator=",", append=False):
        where = "CSVLogger"
        try:
            self.filename = os.fspath(filename)
        except TypeError as err:
            raise ConfigError(invalid(where, "filename", "a str or path", filename)) from err
        if not (isinstance(separator, str) and len(separator) == 1 and separator not in '"\r\n'):
            raise ConfigError(invalid(where, "separator", "one character like ','", separator))
        self.separator = separator
        self.append = bool(append)
        self.file = None
        self.writer = None
        self.columns = None

    def _existing_header(self):
        """The header of the file to append to, or None (no append, no file, or empty)."""
        if not (self.append and os.path.exists(self.filename)):
            return None
        with open(self.filename, newline="") as f:
            header = next(csv.reader(f, delimiter=self.separator), None)
        return header or None

    def _check_columns(self, keys, header):
        new = sorted({"epoch", *keys} - set(header))
        if new:
            raise ConfigError(
                f"CSVLogger: invalid value for `filename`. Expected a CSV file with a column for "
                f"every logged value, or append=False; received filename={self.filename!r} whose "
                f"header {header} lacks the new keys {new}."
            )

    def check_logs(self, keys):
        header = self._existing_header()
        if header is not None:
            self._check_columns(keys, header)

    def on_train_begin(self, logs=None):
        self.on_train_end()  # a file a previous run left open
        self.columns = self._existing_header()
        newline = False
        if self.columns is not None:
            with open(self.filename, "rb") as f:
                f.seek(-1, os.SEEK_END)
                newline = f.read(1) not in (b"\n", b"\r")
        self.file = open(self.filename, "a" if self.append else "w", newline="")
        if newline:  # the last row of the existing file was left unterminated
            self.file.write("\n")
        self.writer = None

    def on_epoch_end(self, epoch, logs=None):
        logs = {k: v for k, v in (logs or {}).items() if k != "epoch"}
        if self.writer is None:
            header = self.columns is None
            if header:
                self.columns = ["epoch", *sorted(logs)]
            self.writer = csv.DictWriter(
                self.file, self.columns, restval="", delimiter=self.separator
            )
            if header:
                self.writer.writeheader()
        self._check_columns(logs, self.columns)
        self.writer.writerow({"epoch": epoch, **logs})
        self.file.flush()
        os.fsync(self.file.fileno())

    def on_train_end(self, logs=None):
        if self.file is not None:
            self.file.close()
        self.file, self.writer = None, None


class NaNGuard(Callback):
    """Stop training at the first non-finite loss and put back the last good training state.

    The model's state (`Model.get_state`: the weights and the optimizer's accumulators, such as
    Adam's moments) is snapshotted when training starts and after every epoch whose loss was
    finite (and whose weights are: the epoch's last update may have overflowed); on a
    ``nan``/``inf`` batch loss the model gets that snapshot back (`Model.set_state`),
    ``model.stop_training`` is set, and `stopped_step` records where. Together with
    `ModelCheckpoint` (which never writes non-finite weights) the last checkpoint on disk stays
    good, and training can go on from the restored state.
    """

    def __init__(self):
        self.stopped_step = None
        self.snapshot = None

    def on_train_begin(self, logs=None):
        self.snapshot, self.stopped_step = self.model.get_state(), None

    def on_batch_end(self, step, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            self.model.set_state(self.snapshot)
            self.model.stop_training = True
            self.stopped_step = step

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get("loss")
        if (
            self.stopped_step is None
            and _is_number(loss)
            and math.isfinite(loss)
            and self.model.weights_finite()
        ):
            self.snapshot = self.model.get_state()


class LearningRateScheduler(Callback):
    """Set the learning rate at the start of each epoch to ``schedule(epoch, lr)`` (a finite
    number >= 0); the value is logged as ``lr``."""

    def __init__(self, schedule):
        if not callable(schedule):
            raise ConfigError(invalid("LearningRateScheduler", "schedule", "a callable", schedule))
        self.schedule = schedule

    def on_epoch_begin(self, epoch, logs=None):
        lr = self.model.get_learning_rate()
        result = self.schedule(epoch, lr)
        if isinstance(result, np.ndarray) and result.ndim == 0:
            result = result[()]
        if not (_is_number(result) and math.isfinite(result) and result >= 0):
            raise ConfigError(
                "LearningRateScheduler: invalid value for `schedule`. Expected a callable "
                "returning a finite learning rate >= 0; received a schedule that returned "
                f"{result!r} for epoch={epoch}, lr={lr!r}."
            )
        self.model.set_learning_rate(float(result))


class ReduceLROnPlateau(_Monitor):
    """Multiply the learning rate by `factor` (in (0, 1)) once `monitor` has gone `patience`
    epochs in a row without improving by more than `min_delta`, not below `min_lr` (Keras's
    rule: ``patience=0`` reduces at every epoch that does not improve)."""

    def __init__(
        self, monitor="val_loss", factor=0.1, patience=10, mode="auto", min_delta=1e-4, min_lr=0.0
    ):
        super().__init__(monitor, mode, min_delta, "ReduceLROnPlateau")
        self.factor = _number(
            self.where, "factor", factor, "a number in (0, 1)", lambda v: 0 < v < 1
        )
        self.patience = _patience(self.where, patience)
        self.min_lr = _number(
            self.where, "min_lr", min_lr, "a finite number >= 0", lambda v: v >= 0
        )
        self.wait = 0

    def on_train_begin(self, logs=None):
        self.best, self.wait = None, 0

    def on_epoch_end(self, epoch, logs=None):
        value = self.value(logs)
        if value is None:
            return
        if self.improved(value):
            self.best, self.wait = value, 0
            return
        self.wait += 1
        if self.wait >= self.patience:
            lr = self.model.get_learning_rate()
            self.model.set_learning_rate(max(self.min_lr, lr * self.factor))
            self.wait = 0


def step_decay(initial, drop=0.5, every=10):
    """A schedule: ``initial * drop ** (epoch // every)`` (`initial` >= 0, `drop` > 0, `every`
    a positive int)."""
    where = "step_decay"
    initial = _number(where, "initial", initial, "a finite number >= 0", lambda v: v >= 0)
    drop = _number(where, "drop", drop, "a finite number > 0", lambda v: v > 0)
    if not (is_int(every) and every >= 1):
        raise ConfigError(invalid(where, "every", "an int >= 1", every))
    every = int(every)

    def schedule(epoch, lr):
        return initial * drop ** (epoch // every)

    return schedule


def cosine_decay(initial, epochs, final=0.0):
    """A schedule: cosine from `initial` at epoch 0 to `final` at epoch `epochs` (> 0), then
    `final`."""
    where = "cosine_decay"
    initial = _number(where, "initial", initial, "a finite number >= 0", lambda v: v >= 0)
    epochs = _number(where, "epochs", epochs, "a finite number > 0", lambda v: v > 0)
    final = _number(where, "final", final, "a finite number >= 0", lambda v: v >= 0)

    def schedule(epoch, lr):
        return final + 0.5 * (initial - final) * (
            1 + math.cos(math.pi * min(epoch, epochs) / epochs)
        )

    return schedule
