"""The Model's parts on their own: callbacks (Keras's patience and checkpoint numbering, log
checks, NaNGuard's state), schedules, optimizers, losses, metrics and the patch sampler."""

import csv
import math

import attrs
import numpy as np
import pytest
from oracles import Diverge

from dilnet import ConfigError, Sequential, ShapeError
from dilnet import blocks as B
from dilnet.model import (
    Callback,
    CrossEntropy,
    CrossEntropyDice,
    CSVLogger,
    Dice,
    DiceMetric,
    EarlyStopping,
    LearningRateScheduler,
    Loss,
    Model,
    ModelCheckpoint,
    NaNGuard,
    Optimizer,
    PatchSampler,
    ReduceLROnPlateau,
    cosine_decay,
    step_decay,
)
from dilnet.model.losses import get_loss, loss_ignore_label
from dilnet.model.optimizers import get_optimizer

FAST = "FAST_COMPILE"  # see test_model_training.py


def spec():
    return Sequential(
        [B.Input(channels=1, spatial=(None, None)), B.Conv(filters=2), B.Classifier(num_classes=2)]
    )


def model(optimizer="sgd", learning_rate=0.1, metrics=("accuracy",), **compile_kwargs):
    m = Model(spec(), mode=FAST, seed=0)
    m.compile(
        optimizer, "crossentropy", list(metrics), learning_rate=learning_rate, **compile_kwargs
    )
    return m


def data(seed=0, n=4, size=6):
    rng = np.random.default_rng(seed)
    return rng.random((n, 1, size, size)).astype("float32"), rng.integers(0, 2, (n, size, size))


class StubModel:
    """What the callbacks use of a Model, without compiling anything."""

    def __init__(self, lr=0.1):
        self.lr, self.stop_training, self.saved, self.states = lr, False, [], 0

    def get_learning_rate(self):
        return self.lr

    def set_learning_rate(self, value):
        self.lr = float(value)

    def get_weights(self):
        return [np.zeros(1)]

    def set_weights(self, values):
        pass

    def weights_finite(self):
        return True

    def save_weights(self, path):
        self.saved.append(path)

    def get_state(self):
        self.states += 1
        return self.states

    def set_state(self, state):
        self.restored = state


def run(callback, values, monitor="loss", stub=None):
    """Feed `values` of `monitor` as epoch logs; the epochs seen before training stopped."""
    stub = stub or StubModel()
    callback.set_model(stub)
    callback.on_train_begin()
    seen = []
    for epoch, value in enumerate(values):
        seen.append(epoch)
        callback.on_epoch_end(epoch, {monitor: value, "lr": stub.lr})
        if stub.stop_training:
            break
    callback.on_train_end()
    return seen


# ------------------------------------------------------------------ 1. patience, as in Keras


@pytest.mark.parametrize(
    "patience, epochs, stopped", [(0, [0, 1], 1), (1, [0, 1], 1), (2, [0, 1, 2], 2)]
)
def test_early_stopping_patience_counts_non_improving_epochs_like_keras(patience, epochs, stopped):
    x, y = data()
    m = model()
    m.set_learning_rate(0.0)  # nothing improves after the first epoch
    stop = EarlyStopping(monitor="loss", patience=patience, min_delta=1e-6)
    history = m.fit(x, y, epochs=10, callbacks=[stop], verbose=0)
    assert history.epoch == epochs and stop.stopped_epoch == stopped


def test_early_stopping_resets_its_count_on_improvement_and_restores_the_best():
    stop = EarlyStopping(monitor="loss", patience=2, restore_best_weights=True)
    assert run(stop, [3.0, 2.0, 2.5, 1.0, 1.5, 1.2, 0.5]) == [0, 1, 2, 3, 4, 5]
    assert stop.stopped_epoch == 5 and stop.best == 1.0
    stop = EarlyStopping(monitor="val_accuracy", patience=0)  # 'auto': higher is better
    assert run(stop, [0.5, 0.6, 0.6, 0.9], monitor="val_accuracy") == [0, 1, 2]


@pytest.mark.parametrize(
    "patience, lrs",
    [
        (0, [0.8, 0.4, 0.2, 0.1]),  # as in Keras, patience 0 and 1 both reduce at each plateau
        (1, [0.8, 0.4, 0.2, 0.1]),
        (2, [0.8, 0.8, 0.4, 0.4]),
        (3, [0.8, 0.8, 0.8, 0.4]),
    ],
)
def test_reduce_lr_on_plateau_patience_like_keras(patience, lrs):
    stub = StubModel(lr=0.8)
    reduce = ReduceLROnPlateau(monitor="loss", factor=0.5, patience=patience, min_lr=0.05)
    reduce.set_model(stub)
    reduce.on_train_begin()
    seen = []
    for epoch in range(4):  # epoch 0 improves (first value), the others do not
        reduce.on_epoch_end(epoch, {"loss": 1.0})
        seen.append(stub.lr)
    assert seen == pytest.approx(lrs)
    stub = StubModel(lr=0.1)
    run(
        ReduceLROnPlateau(monitor="loss", factor=0.1, patience=0, min_lr=0.05), [1, 1, 1], stub=stub
    )
    assert stub.lr == pytest.approx(0.05)  # never below min_lr


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: EarlyStopping(patience=-1), r"EarlyStopping: .*`patience`. Expected an int >= 0"),
        (lambda: EarlyStopping(patience=1.5), r"`patience`"),
        (lambda: EarlyStopping(patience=True), r"`patience`"),
        (lambda: ReduceLROnPlateau(patience="2"), r"ReduceLROnPlateau: .*`patience`"),
        (lambda: ReduceLROnPlateau(factor=1), r"`factor`. Expected a number in \(0, 1\)"),
        (lambda: ReduceLROnPlateau(factor=0), r"`factor`"),
        (lambda: ReduceLROnPlateau(factor="0.5"), r"`factor`.*received factor='0.5'"),
        (lambda: ReduceLROnPlateau(factor=float("nan")), r"`factor`"),
        (lambda: ReduceLROnPlateau(min_lr=-1e-3), r"`min_lr`. Expected a finite number >= 0"),
        (lambda: ReduceLROnPlateau(min_lr="0"), r"`min_lr`"),
        (lambda: EarlyStopping(min_delta="x"), r"`min_delta`"),
        (lambda: EarlyStopping(mode="up"), r"`mode`"),
        (lambda: ModelCheckpoint("a.npz", monitor=3), r"`monitor`"),
    ],
)
def test_monitor_callbacks_validate_their_arguments(make, message):
    with pytest.raises(ConfigError, match=message):
        make()


def test_numpy_numbers_are_accepted_by_callbacks():
    reduce = ReduceLROnPlateau(factor=np.float32(0.5), patience=np.int64(2), min_lr=np.float64(0))
    assert (reduce.factor, reduce.patience, reduce.min_lr) == (0.5, 2, 0.0)
    assert EarlyStopping(patience=np.int32(3)).patience == 3


# ------------------------------------------------------------------ 2. checkpoints and check_logs


def test_model_checkpoint_numbers_files_from_one(tmp_path):
    x, y = data()
    last = ModelCheckpoint(tmp_path / "e{epoch:02d}-{loss:.3f}.npz")
    seen = []

    class Epochs(Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(epoch)

    history = model().fit(x, y, epochs=3, callbacks=[last, Epochs()], verbose=0)
    assert seen == [0, 1, 2]  # callbacks still get 0-based indexes
    names = [p.rsplit("/", 1)[-1] for p in last.saved]
    assert names == [
        f"e{e + 1:02d}-{loss:.3f}.npz" for e, loss in enumerate(history.history["loss"])
    ]
    assert all((tmp_path / n).exists() for n in names)


KEYS = ["loss", "accuracy", "lr", "val_loss", "val_accuracy"]


@pytest.mark.parametrize(
    "callback, message",
    [
        (EarlyStopping(monitor="val_acc"),
         r"EarlyStopping: invalid value for `monitor`. Expected one of the logged values 'accuracy'"
         r", 'loss', 'lr', 'val_accuracy', 'val_loss' \(did you mean 'val_accuracy'"),
        (ReduceLROnPlateau(monitor="dice"), r"ReduceLROnPlateau: .*`monitor`.*received monitor='dice'"),
        (ModelCheckpoint("best.npz", monitor="val_dice", save_best_only=True), r"`monitor`"),
        (ModelCheckpoint("ckpt-{epoch}-{val_dice:.2f}.npz"),
         r"ModelCheckpoint: invalid value for `filepath`. Expected a pattern whose fields are "
         r"'epoch' or logged values .*'val_dice' is never logged"),
        (ModelCheckpoint("ckpt-{step}.npz"), r"'step' is never logged"),
    ],
)  # fmt: skip
def test_check_logs_rejects_values_that_are_never_logged(callback, message):
    with pytest.raises(ConfigError, match=message):
        callback.check_logs(KEYS)


def test_check_logs_accepts_what_is_logged():
    Callback().check_logs([])  # the base class checks nothing
    EarlyStopping(monitor="val_loss").check_logs(KEYS)
    ReduceLROnPlateau(monitor="loss").check_logs(KEYS)
    # without save_best_only the monitor is unused, so it need not be logged
    ModelCheckpoint("c-{epoch:03d}-{val_accuracy:.2f}.npz", monitor="dice").check_logs(KEYS)
    ModelCheckpoint("b.npz", monitor="val_accuracy", save_best_only=True).check_logs(KEYS)


@pytest.mark.parametrize("pattern", ["ckpt-{epoch.npz", "ckpt-{}.npz", "ckpt-{0}.npz", "a}b"])
def test_model_checkpoint_rejects_malformed_patterns(pattern):
    with pytest.raises(ConfigError, match=r"ModelCheckpoint: invalid value for `filepath`"):
        ModelCheckpoint(pattern)
    with pytest.raises(ConfigError, match=r"`filepath`. Expected a str or path"):
        ModelCheckpoint(3)


def test_fit_checks_callbacks_logs_before_compiling(tmp_path):
    x, y = data()
    m = model()
    with pytest.raises(ConfigError, match=r"EarlyStopping: invalid value for `monitor`"):
        m.fit(x, y, callbacks=[EarlyStopping()], verbose=0)  # val_loss without validation_data
    with pytest.raises(ConfigError, match=r"`filepath`.*'val_loss' is never logged"):
        m.fit(x, y, callbacks=[ModelCheckpoint(tmp_path / "{val_loss}.npz")], verbose=0)
    assert "train" not in m._functions


def test_value_still_checks_at_run_time():
    stop = EarlyStopping(monitor="val_loss")
    stop.set_model(StubModel())
    stop.on_train_begin()
    with pytest.raises(ConfigError, match=r"`monitor`. Expected one of the logged values 'loss'"):
        stop.on_epoch_end(0, {"loss": 1.0})


# ------------------------------------------------------------------ 3. epochs cut short


@pytest.mark.parametrize(
    ("callback", "best"),
    [
        # the best is the first epoch's val_loss, which the epoch cut short does not replace
        (EarlyStopping(monitor="val_loss", patience=0), 1.0),
        (ReduceLROnPlateau(monitor="val_loss", patience=0), 1.0),
        (ModelCheckpoint("best.npz", monitor="val_loss", save_best_only=True), 1.0),
        # without save_best_only the checkpoint monitors nothing: it never has a best
        (ModelCheckpoint("ckpt-{val_loss:.2f}.npz"), None),
    ],
)
def test_monitored_callbacks_skip_an_epoch_cut_short(callback, best):
    stub = StubModel()
    callback.set_model(stub)
    callback.on_train_begin()
    callback.on_epoch_end(0, {"loss": 1.0, "val_loss": 1.0, "lr": 0.1})
    stub.stop_training = True  # e.g. NaNGuard: the epoch ended early, without validation
    callback.on_epoch_end(1, {"loss": 2.0, "lr": 0.1})
    assert stub.lr == 0.1 and callback.best == best
    assert getattr(callback, "wait", 0) == 0
    assert len(stub.saved) == (1 if isinstance(callback, ModelCheckpoint) else 0)


def test_nan_guard_with_monitored_callbacks_runs_to_the_end(tmp_path):
    x, y = data()
    bad = x.copy()
    m = model()
    callbacks = [
        NaNGuard(),
        Diverge(),
        EarlyStopping(monitor="val_loss", patience=0),
        ReduceLROnPlateau(monitor="val_loss", patience=0),
        ModelCheckpoint(tmp_path / "best-{epoch}.npz", monitor="val_loss", save_best_only=True),
    ]
    kwargs = {"batch_size": 1, "shuffle": False, "verbose": 0, "callbacks": callbacks}
    history = m.fit(bad, y, epochs=3, validation_data=(x, y), **kwargs)
    assert callbacks[0].stopped_step == 1 and history.epoch == [0]
    assert m.weights_finite()


# ------------------------------------------------------------------ 4. NaNGuard's state


def test_nan_guard_restores_the_optimizer_state_too():
    x, y = data()
    bad = x.copy()
    # a NaN weight after the first step: the second batch's gradients, and Adam's moments, are NaN
    m = model("adam", learning_rate=0.01)
    guard = NaNGuard()
    m.fit(x, y, epochs=1, batch_size=2, callbacks=[guard], verbose=0)
    m.fit(bad, y, epochs=2, batch_size=1, shuffle=False, callbacks=[guard, Diverge()], verbose=0)
    assert guard.stopped_step == 1 and m.weights_finite()
    # with the moments left NaN, the first update of the next run made every weight NaN
    history = m.fit(x, y, epochs=2, batch_size=1, verbose=0)
    assert all(math.isfinite(v) for v in history.history["loss"])
    assert m.weights_finite()


def test_nan_guard_snapshots_after_epochs_with_a_finite_loss():
    stub = StubModel()
    guard = NaNGuard()
    guard.set_model(stub)
    guard.on_train_begin()
    assert stub.states == 1
    guard.on_epoch_end(0, {"loss": 0.5})
    assert stub.states == 2 and guard.snapshot == 2
    guard.on_epoch_end(1, {"loss": float("nan")})
    guard.on_epoch_end(2, {})
    assert stub.states == 2
    guard.on_batch_end(7, {"loss": float("inf")})
    assert stub.restored == 2 and stub.stop_training and guard.stopped_step == 7


# ------------------------------------------------------------------ 5. CSVLogger


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_csv_logger_appends_under_the_existing_header(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("epoch,loss,accuracy,lr,val_loss,val_accuracy\n0,1.0,0.5,0.1,1.1,0.4")
    x, y = data()
    logger = CSVLogger(path, append=True)
    history = model().fit(x, y, epochs=2, callbacks=[logger], verbose=0)
    rows = read_csv(path)
    assert rows[0] == ["epoch", "loss", "accuracy", "lr", "val_loss", "val_accuracy"]
    assert rows[1] == ["0", "1.0", "0.5", "0.1", "1.1", "0.4"]  # unterminated line kept whole
    assert [r[0] for r in rows[2:]] == ["0", "1"] and [r[4:] for r in rows[2:]] == [["", ""]] * 2
    assert [float(r[1]) for r in rows[2:]] == pytest.approx(history.history["loss"])
    assert logger.file is None  # closed by on_train_end


def test_csv_logger_rejects_new_keys_when_appending(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("epoch,loss\n0,1.0\n")
    x, y = data()
    m = model()
    message = (
        r"CSVLogger: invalid value for `filename`. Expected a CSV file with a column for every "
        r"logged value, or append=False; received filename='.*log.csv' whose header "
        r"\['epoch', 'loss'\] lacks the new keys \['accuracy', 'lr'\]"
    )
    with pytest.raises(ConfigError, match=message):
        m.fit(x, y, callbacks=[CSVLogger(path, append=True)], verbose=0)
    assert "train" not in m._functions
    # the same check at run time, for logs that differ from what was announced
    logger = CSVLogger(path, append=True)
    logger.on_train_begin()
    with pytest.raises(ConfigError, match=r"lacks the new keys \['dice'\]"):
        logger.on_epoch_end(0, {"loss": 0.5, "dice": 0.9})
    logger.on_train_end()
    assert logger.file is None and read_csv(path) == [["epoch", "loss"], ["0", "1.0"]]
    CSVLogger(path).check_logs(["loss", "dice"])  # append=False starts a new file


def test_csv_logger_is_closed_when_training_fails(tmp_path):
    class Boom(Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise RuntimeError("boom")

    x, y = data()
    logger = CSVLogger(tmp_path / "log.csv")
    with pytest.raises(RuntimeError, match="boom"):
        model().fit(x, y, callbacks=[logger, Boom()], verbose=0)
    assert logger.file is None
    assert read_csv(tmp_path / "log.csv")[0] == ["epoch", "accuracy", "loss", "lr"]
    with pytest.raises(ConfigError, match=r"`separator`. Expected one character"):
        CSVLogger(tmp_path / "log.csv", separator=";;")


# ------------------------------------------------------------------ 6, 7. schedules


def test_schedules():
    cosine = cosine_decay(1.0, 4, final=0.2)
    assert [cosine(e, None) for e in (0, 2, 4, 9)] == pytest.approx([1.0, 0.6, 0.2, 0.2])
    step = step_decay(0.4, drop=0.5, every=2)
    assert [step(e, None) for e in range(5)] == pytest.approx([0.4, 0.4, 0.2, 0.2, 0.1])
    assert cosine_decay(np.float32(1), np.int64(2))(1, None) == pytest.approx(0.5)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: cosine_decay(0.1, 0), r"cosine_decay: invalid value for `epochs`. Expected a "
         r"finite number > 0; received epochs=0"),
        (lambda: cosine_decay(0.1, -3), r"`epochs`"),
        (lambda: cosine_decay(0.1, "10"), r"`epochs`"),
        (lambda: cosine_decay("0.1", 10), r"`initial`"),
        (lambda: cosine_decay(0.1, 10, final=float("nan")), r"`final`"),
        (lambda: step_decay(0.1, drop=0), r"step_decay: invalid value for `drop`"),
        (lambda: step_decay(0.1, drop="half"), r"`drop`"),
        (lambda: step_decay(0.1, every=0), r"`every`. Expected an int >= 1; received every=0"),
        (lambda: step_decay(0.1, every=2.5), r"`every`"),
        (lambda: step_decay(-0.1), r"`initial`"),
    ],
)  # fmt: skip
def test_schedules_validate_their_arguments(make, message):
    with pytest.raises(ConfigError, match=message):
        make()


@pytest.mark.parametrize("returned", ["0.1", None, float("nan"), -0.1, [0.1], True])
def test_learning_rate_scheduler_needs_a_number(returned):
    scheduler = LearningRateScheduler(lambda epoch, lr: returned)
    scheduler.set_model(StubModel())
    with pytest.raises(
        ConfigError,
        match=r"LearningRateScheduler: invalid value for `schedule`. Expected a callable "
        r"returning a finite learning rate >= 0; received a schedule that returned .* for "
        r"epoch=3, lr=0.1",
    ):
        scheduler.on_epoch_begin(3)


def test_learning_rate_scheduler_accepts_numpy_numbers():
    stub = StubModel()
    scheduler = LearningRateScheduler(lambda epoch, lr: np.float32(0.25) * (epoch + 1))
    scheduler.set_model(stub)
    scheduler.on_epoch_begin(1)
    assert stub.lr == 0.5 and type(stub.lr) is float
    with pytest.raises(ConfigError, match=r"`schedule`. Expected a callable"):
        LearningRateScheduler(0.1)


# ------------------------------------------------------------------ 8. optimizers


def test_optimizer_objects_as_documented():
    opt = Optimizer("adam", 1e-3, {"beta1": 0.9})
    assert (opt.name, opt.learning_rate, opt.options) == ("adam", 1e-3, {"beta1": 0.9})
    assert Optimizer("sgd").learning_rate == 0.01  # the rule's default
    opt = Optimizer("momentum", np.float32(0.5), {"momentum": 0.8})
    assert opt.learning_rate == 0.5 and type(opt.learning_rate) is float
    x, y = data()
    m = Model(spec(), mode=FAST, seed=0)
    m.compile(Optimizer("adam", 1e-2, {"beta1": 0.8}), "crossentropy")
    assert m.get_learning_rate() == pytest.approx(1e-2)
    assert math.isfinite(m.fit(x, y, epochs=1, verbose=0).history["loss"][0])


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: Optimizer("adamm", 1e-3), r"Optimizer: invalid value for `name`. Expected one of "
         r"'sgd', .* \(did you mean 'adam' or 'adamax'\?\); received name='adamm'"),
        (lambda: Optimizer(None), r"`name`"),
        (lambda: Optimizer("adam", 1e-3, {"beta3": 0.9}),
         r"Optimizer: invalid value for `beta3`. Expected an option of 'adam': beta1, beta2, "
         r"epsilon \(did you mean 'beta\d'"),
        (lambda: Optimizer("adam", 1e-3, [("beta1", 0.9)]), r"`options`. Expected a dict"),
        (lambda: Optimizer("adam", -1.0), r"`learning_rate`. Expected a finite number >= 0"),
        (lambda: Optimizer("adam", float("nan")), r"`learning_rate`"),
        (lambda: Optimizer("adam", "0.1"), r"`learning_rate`"),
        (lambda: Optimizer("adam", True), r"`learning_rate`"),
        (lambda: get_optimizer("adam", float("inf")),
         r"Model.compile: invalid value for `learning_rate`.*received learning_rate=inf"),
        (lambda: get_optimizer("adam", np.float64("nan")), r"`learning_rate`"),
        (lambda: get_optimizer("sgdd"), r"`optimizer`. Expected one of .* or an Optimizer"),
        (lambda: get_optimizer(Optimizer("adam"), 0.1), r"`learning_rate`. Expected None when"),
        (lambda: get_optimizer(Optimizer("adam"), beta1=0.5), r"`beta1`. Expected None when"),
    ],
)  # fmt: skip
def test_optimizer_errors(make, message):
    with pytest.raises(ConfigError, match=message):
        make()


def test_get_optimizer_accepts_numpy_learning_rates():
    opt = get_optimizer("adam", np.float32(0.01), beta1=0.8)
    assert opt.learning_rate == pytest.approx(0.01) and type(opt.learning_rate) is float
    assert get_optimizer("sgd", np.int64(1)).learning_rate == 1.0


# ------------------------------------------------------------------ 9. losses


@pytest.mark.parametrize(
    "weights", ["ab", 5, [], [0, 0], [1, float("nan")], [1, float("inf")], [-1, 1], [1, "a"],
                [[1, 2]], [True, 1], np.float64(1)],
)  # fmt: skip
def test_class_weights_are_validated(weights):
    for cls in (CrossEntropy, CrossEntropyDice):
        with pytest.raises(
            ConfigError,
            match=rf"{cls.__name__}: invalid value for `class_weights`. Expected None or a "
            r"sequence of finite numbers >= 0 \(one per class\), at least one > 0",
        ):
            cls(class_weights=weights)


def test_loss_fields_accept_numpy_values():
    loss = CrossEntropy(ignore_label=np.int64(255), class_weights=np.array([1, 2], "float32"))
    assert loss.ignore_label == 255 and type(loss.ignore_label) is int
    assert loss.class_weights == (1.0, 2.0)
    assert Dice(include_background=np.bool_(False)).include_background is False


@pytest.mark.parametrize(
    "make, message",
    [
        (
            lambda: CrossEntropy(ignore_label=1.5),
            r"CrossEntropy: .*`ignore_label`. Expected an int",
        ),
        (lambda: Dice(ignore_label="255"), r"Dice: .*`ignore_label`"),
        (lambda: CrossEntropyDice(ignore_label=True), r"`ignore_label`"),
        (
            lambda: Dice(include_background=1),
            r"Dice: .*`include_background`. Expected True or False",
        ),
        (lambda: Dice(smooth=-1), r"`smooth`. Expected a finite number >= 0"),
        (lambda: CrossEntropyDice(dice_weight=float("inf")), r"`dice_weight`"),
    ],
)
def test_loss_fields_are_validated(make, message):
    with pytest.raises(ConfigError, match=message):
        make()


def test_get_loss_combines_a_loss_object_with_compile_arguments():
    plain = CrossEntropy()
    merged = get_loss(plain, ignore_label=255, class_weights=[1, 3])
    assert (
        merged == CrossEntropy(ignore_label=255, class_weights=(1.0, 3.0))
        and plain.ignore_label is None
    )
    own = CrossEntropy(ignore_label=255, class_weights=(1, 2))
    assert get_loss(own, ignore_label=np.int64(255), class_weights=[1.0, 2.0]) is own
    assert get_loss(own) is own
    assert get_loss(Dice(), ignore_label=3) == Dice(ignore_label=3)
    assert loss_ignore_label(merged) == 255 and loss_ignore_label(Dice()) is None
    assert loss_ignore_label(get_loss("dice_ce", ignore_label=np.int32(4))) == 4


class Custom(Loss):
    def __call__(self, probabilities, labels):
        return probabilities.sum()


@pytest.mark.parametrize(
    "loss, kwargs, message",
    [
        (CrossEntropy(ignore_label=255), {"ignore_label": 0},
         r"Model.compile: invalid value for `ignore_label`. Expected None or the loss object's "
         r"own ignore_label=255; received ignore_label=0"),
        (CrossEntropy(class_weights=[1, 2]), {"class_weights": [2, 1]},
         r"`class_weights`. Expected None or the loss object's own class_weights=\(1.0, 2.0\)"),
        (Dice(), {"class_weights": [1, 2]},
         r"`class_weights`. Expected None for loss=Dice\(.*\), which has no `class_weights` field"),
        (Custom(), {"ignore_label": 255}, r"`ignore_label`. Expected None for loss=<.*Custom"),
        (CrossEntropy(), {"class_weights": "ab"}, r"CrossEntropy: .*`class_weights`"),
    ],
)  # fmt: skip
def test_get_loss_rejects_conflicts_with_a_loss_object(loss, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        get_loss(loss, **kwargs)


def test_compile_with_a_loss_object_and_an_ignore_label():
    x, y = data()
    y[0, 0, 0] = 255
    m = Model(spec(), mode=FAST)
    m.compile("sgd", CrossEntropy(), ignore_label=255, learning_rate=0.0)
    assert m.ignore_label == 255 and math.isfinite(m.evaluate(x, y)["loss"])
    with pytest.raises(ConfigError, match=r"own ignore_label=255; received ignore_label=3"):
        m.compile("sgd", CrossEntropy(ignore_label=255), ignore_label=3)
    assert attrs.evolve(CrossEntropy(), ignore_label=1).ignore_label == 1


# ------------------------------------------------------------------ 10. the patch sampler


def volumes(n=2, channels=(1, 1), size=8):
    rng = np.random.default_rng(0)
    return (
        [rng.random((c, size, size)) for c in channels[:n]],
        [rng.integers(0, 2, (size, size)) for _ in range(n)],
    )


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"volumes": volumes(channels=(1, 2))[0]}, ShapeError,
         r"PatchSampler: invalid value for `volumes`. Expected volumes \(C, \*spatial\) with one "
         r"channel count C; received volumes of shapes \[\(1, 8, 8\), \(2, 8, 8\)\]"),
        ({"volumes": 3}, ConfigError, r"`volumes`. Expected an array"),
        ({"volumes": []}, ConfigError, r"`volumes`. Expected at least one volume"),
        ({"strategy": "balanced", "class_probs": ["a", "b"]}, ConfigError,
         r"`class_probs`. Expected finite numbers >= 0, one per class; received "
         r"class_probs=\['a', 'b'\]"),
        ({"strategy": "balanced", "class_probs": [float("nan"), 1]}, ConfigError, r"`class_probs`"),
        ({"strategy": "balanced", "class_probs": [-1, 1]}, ConfigError, r"`class_probs`"),
        ({"strategy": "balanced", "class_probs": [[1, 1]]}, ConfigError, r"`class_probs`"),
        ({"strategy": "balanced", "class_probs": "ab"}, ConfigError, r"`class_probs`"),
        ({"strategy": "balanced", "class_probs": [0, 0]}, ConfigError,
         r"`class_probs`. Expected a positive probability for a class present in the labels"),
        ({"class_probs": [1, 1]}, ConfigError, r"`class_probs`. Expected None for strategy='random'"),
        # one probability for two classes used to zero-fill the other silently
        ({"strategy": "balanced", "class_probs": [1.0]}, ConfigError,
         r"`class_probs`. Expected one probability per class 0..1 \(the labels hold classes "
         r"\[0, 1\]\); received class_probs=\[1.0\]"),
        ({"steps_per_epoch": 0}, ConfigError,
         r"`steps_per_epoch`. Expected a positive int or None; received steps_per_epoch=0"),
        ({"steps_per_epoch": 2.5}, ConfigError, r"`steps_per_epoch`"),
        ({"ignore_label": 1.5}, ConfigError, r"`ignore_label`. Expected an int or None"),
        ({"seed": "x"}, ConfigError, r"`seed`"),
        ({"patch_size": np.array([4, 4])}, None, None),
    ],
)  # fmt: skip
def test_patch_sampler_validates_its_arguments(kwargs, error, message):
    vols, labels = volumes()
    kwargs = {"volumes": vols, "labels": labels, "patch_size": 4, **kwargs}
    if error is None:
        assert PatchSampler(**kwargs).sample()[0].shape == (2, 1, 4, 4)
        return
    with pytest.raises(error, match=message):
        PatchSampler(**kwargs)


def test_patch_sampler_blames_the_labels_when_only_ignore_label_is_present():
    vols, _ = volumes(n=1)
    labels = [np.full((8, 8), 255)]
    with pytest.raises(
        ConfigError,
        match=r"PatchSampler: invalid value for `labels`. Expected at least one voxel with a label "
        r"other than ignore_label=255 .*; received labels whose every voxel is 255",
    ):
        PatchSampler(vols, labels, 4, strategy="balanced", ignore_label=np.int64(255))


def test_patch_sampler_check_labels():
    vols, labels = volumes()
    labels[1][0, :2] = [3, 255]
    sampler = PatchSampler(vols, labels, 4, steps_per_epoch=np.int64(3))
    assert sampler.steps_per_epoch == 3
    sampler.check_labels(4, 255, "Model.fit")
    with pytest.raises(
        ConfigError,
        match=r"Model.fit: invalid value for `labels\[1\]`. Expected values 0..1 or "
        r"ignore_label=255; received labels\[1\]=\[3\]",
    ):
        sampler.check_labels(2, 255, "Model.fit")
    with pytest.raises(ConfigError, match=r"Expected values 0..1; received labels\[1\]=\[3, 255\]"):
        sampler.check_labels(2, None, "Model.fit")
    labels[0][0, 0] = -1
    sampler = PatchSampler(vols, labels, 4)
    with pytest.raises(ConfigError, match=r"`labels\[0\]`. Expected values 0..3 or .*=\[-1\]"):
        sampler.check_labels(4, 255, "Model.fit")


def test_fit_checks_sampler_labels_before_compiling():
    vols, labels = volumes()
    labels[0][0, 0] = 5
    m = model()
    with pytest.raises(ConfigError, match=r"`labels\[0\]`. Expected values 0..1; received"):
        m.fit(PatchSampler(vols, labels, 4), verbose=0)
    assert "train" not in m._functions


# ------------------------------------------------------------------ 11. metrics


@pytest.mark.parametrize("value", [1, 0, "yes", None])
def test_dice_metric_include_background_is_a_bool(value):
    with pytest.raises(
        ConfigError, match=r"metrics.Dice: invalid value for `include_background`. Expected True"
    ):
        DiceMetric(include_background=value)
    assert DiceMetric(include_background=np.bool_(False)).include_background is False


def test_dice_per_class_by_hand():
    from dilnet.model.metrics import dice_per_class

    prediction = np.array([[0, 1, 1], [2, 2, 0]])
    labels = np.array([[0, 1, 2], [2, 0, 0]])
    # class 0: P={0,5}, T={0,4,5}: 2*2/5; class 1: P={1,2}, T={1}: 2*1/3; class 2: P={3,4},
    # T={2,3}: 2*1/4; class 3 in neither map: NaN
    dice = dice_per_class(prediction, labels, 4)
    np.testing.assert_allclose(dice[:3], [0.8, 2 / 3, 0.5])
    assert np.isnan(dice[3])
