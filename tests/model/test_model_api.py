"""Model errors before anything compiles, callbacks, checkpoints, the patch sampler."""

import csv
import math

import numpy as np
import pytest
from oracles import Diverge

from dilnet import ConfigError, Sequential, ShapeError
from dilnet import blocks as B
from dilnet.errors import WeightsError
from dilnet.model import (
    CSVLogger,
    EarlyStopping,
    LearningRateScheduler,
    Model,
    ModelCheckpoint,
    NaNGuard,
    PatchSampler,
    ReduceLROnPlateau,
    load_model,
    step_decay,
)

FAST = "FAST_COMPILE"  # see test_model_training.py


def spec(rank=2, channels=1, classes=2, head=True):
    blocks = [B.Input(channels=channels, spatial=(None,) * rank), B.Conv(filters=2)]
    return Sequential([*blocks, B.Classifier(num_classes=classes) if head else B.Conv(filters=2)])


def model(**kwargs):
    kwargs.setdefault("mode", FAST)
    kwargs.setdefault("seed", 0)
    m = Model(spec(), **kwargs)
    m.compile("sgd", "crossentropy", ["accuracy"], learning_rate=0.1)
    return m


def data(seed=0, n=4, size=6):
    rng = np.random.default_rng(seed)
    return rng.random((n, 1, size, size)).astype("float32"), rng.integers(0, 2, (n, size, size))


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda m, x, y: m.fit(x[:, :, 0], y), ShapeError,
         r"Model.fit: invalid value for `x.shape`. Expected \(batch, channels, \*spatial\) like "
         r"\(None, 1, None, None\); received x.shape=\(4, 1, 6\)"),
        (lambda m, x, y: m.fit(np.concatenate([x, x], 1), y), ShapeError, r"`x.shape`"),
        (lambda m, x, y: m.fit(x, y[:, :5]), ShapeError,
         r"`y.shape`. Expected labels \(batch, \*spatial\) = \(4, 6, 6\)"),
        (lambda m, x, y: m.fit(x, y + 1), ConfigError,
         r"Model.fit: invalid value for `y values`. Expected 0..1; received y values=\[2\]"),
        (lambda m, x, y: m.fit(x, y.astype(float)), ConfigError, r"`y.dtype`. Expected an integer"),
        (lambda m, x, y: m.fit(x, y, epochs=0), ConfigError, r"`epochs`. Expected an int > initial_epoch=0"),
        (lambda m, x, y: m.fit(x, y, batch_size=1.5), ConfigError, r"`batch_size`"),
        (lambda m, x, y: m.fit(x, y, validation_data=(x, y[:1])), ShapeError,
         r"`validation_data\[1\].shape`"),
        (lambda m, x, y: m.fit(x, y, callbacks=[print]), ConfigError, r"`callbacks`"),
        (lambda m, x, y: m.predict(x[..., None]), ShapeError, r"Model.predict: .*`x.shape`"),
        (lambda m, x, y: m.compile("adamm"), ConfigError,
         r"`optimizer`. Expected one of 'sgd', .* \(did you mean 'adam' or 'adamax'"),
        (lambda m, x, y: m.compile("adam", "dise"), ConfigError,
         r"`loss`. Expected one of .* \(did you mean 'dice'"),
        (lambda m, x, y: m.compile("adam", metrics=["acuracy"]), ConfigError,
         r"`metrics`.*\(did you mean 'accuracy'"),
        (lambda m, x, y: m.compile("adam", learning_rate=-1), ConfigError, r"`learning_rate`"),
        (lambda m, x, y: m.compile("adam", beta3=0.5), ConfigError,
         r"`beta3`. Expected an option of 'adam': beta1, beta2, epsilon"),
        (lambda m, x, y: m.compile("adam", "dice", class_weights=[1, 2]), ConfigError,
         r"`class_weights`. Expected None for loss='dice'"),
    ],
)  # fmt: skip
def test_bad_input_is_rejected_before_compiling(call, error, message):
    m = model()
    x, y = data()
    with pytest.raises(error, match=message):
        call(m, x, y)
    assert "train" not in m._functions


def test_ignore_label_is_allowed_in_labels():
    m = Model(spec(), mode=FAST)
    m.compile("sgd", "crossentropy", ignore_label=255, learning_rate=0.0)
    x, y = data()
    y[0, 0, 0] = 255
    assert math.isfinite(m.evaluate(x, y)["loss"])
    with pytest.raises(ConfigError, match=r"Expected 0..1 or ignore_label=255; received y "):
        m.evaluate(x, y + 3)


def test_training_needs_compile_and_a_softmax_head():
    x, y = data()
    with pytest.raises(ConfigError, match=r"Model.fit: call model.compile"):
        Model(spec(), mode=FAST).fit(x, y)
    with pytest.raises(ConfigError, match=r"needs class probabilities, but the model's last "
                       r"layer is 'blocks\[2\].relu'"):  # fmt: skip
        Model(spec(head=False), mode=FAST).compile("adam", "crossentropy")


def test_model_checkpoint_best_and_last(tmp_path):
    x, y = data()
    m = model()
    best = ModelCheckpoint(tmp_path / "best.npz", monitor="val_accuracy", save_best_only=True)
    last = ModelCheckpoint(tmp_path / "epoch{epoch}.npz")
    history = m.fit(x, y, epochs=4, validation_data=(x, y), callbacks=[best, last], verbose=0)
    assert last.saved == [str(tmp_path / f"epoch{e}.npz") for e in range(1, 5)]
    accuracies = history.history["val_accuracy"]
    improving = [e for e in range(4) if accuracies[e] > max(accuracies[:e], default=-1)]
    assert len(best.saved) == len(improving)
    # the best file holds the weights of the best epoch (= the per-epoch file of that epoch)
    best_epoch = improving[-1]
    a, b = model(), model()
    a.load_weights(tmp_path / "best.npz")
    b.load_weights(tmp_path / f"epoch{best_epoch + 1}.npz")
    for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_array_equal(wa, wb)


def test_early_stopping_stops_after_patience_and_restores_best():
    x, y = data()
    m = model()
    m.set_learning_rate(0.0)  # nothing improves after the first epoch
    stop = EarlyStopping(monitor="loss", patience=2, min_delta=1e-6, restore_best_weights=True)
    history = m.fit(x, y, epochs=10, callbacks=[stop], verbose=0)
    assert history.epoch == [0, 1, 2] and stop.stopped_epoch == 2


def test_csv_logger_writes_one_row_per_epoch(tmp_path):
    x, y = data()
    path = tmp_path / "log.csv"
    history = model().fit(x, y, epochs=3, callbacks=[CSVLogger(path)], verbose=0)
    with path.open() as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]
    assert [float(r["loss"]) for r in rows] == pytest.approx(history.history["loss"])
    assert set(rows[0]) == {"epoch", "loss", "accuracy", "lr"}


def test_learning_rate_schedules():
    x, y = data()
    m = model()
    history = m.fit(x, y, epochs=4, verbose=0,
                    callbacks=[LearningRateScheduler(step_decay(0.4, drop=0.5, every=2))])  # fmt: skip
    assert history.history["lr"] == pytest.approx([0.4, 0.4, 0.2, 0.2])
    m = model()
    m.set_learning_rate(0.0)
    history = m.fit(x, y, epochs=4, verbose=0,
                    callbacks=[ReduceLROnPlateau(monitor="loss", factor=0.5, patience=0)])  # fmt: skip
    assert history.history["lr"][-1] == 0.0  # 0 * 0.5 stays 0; the callback ran without error


def test_nan_guard_stops_and_keeps_the_last_good_weights_and_checkpoint(tmp_path):
    x, y = data()
    m = model()
    ckpt = ModelCheckpoint(tmp_path / "last.npz")
    guard = NaNGuard()
    m.fit(x, y, epochs=2, batch_size=2, callbacks=[guard, ckpt], verbose=0)
    good = m.get_weights()
    bad = x.copy()
    # the second batch of the next epoch makes every weight NaN
    m.fit(bad, y, epochs=3, batch_size=1, shuffle=False, callbacks=[guard, Diverge(), ckpt],
          verbose=0)  # fmt: skip
    assert guard.stopped_step == 1
    for w, g in zip(m.get_weights(), good, strict=True):
        np.testing.assert_allclose(w, g, rtol=1e-6, atol=1e-7)  # the first good batch undone
    assert m.weights_finite()
    restored = model()
    restored.load_weights(tmp_path / "last.npz")
    for w, g in zip(restored.get_weights(), good, strict=True):
        np.testing.assert_array_equal(w, g)


def test_save_load_round_trip_and_verified_loads(tmp_path):
    x, y = data()
    m = model()
    m.fit(x, y, epochs=1, verbose=0)
    m.save(tmp_path / "model.npz")
    again = load_model(tmp_path / "model.npz", mode=FAST)
    assert again.spec == m.spec
    np.testing.assert_array_equal(again.predict(x), m.predict(x))
    # a tampered file changes nothing
    raw = bytearray((tmp_path / "model.npz").read_bytes())
    raw[len(raw) // 3] ^= 0xFF
    (tmp_path / "bad.npz").write_bytes(bytes(raw))
    other = model(seed=5)
    before = other.get_weights()
    with pytest.raises(WeightsError, match=r"bad\.npz"):
        other.load_weights(tmp_path / "bad.npz")
    for a, b in zip(other.get_weights(), before, strict=True):
        np.testing.assert_array_equal(a, b)
    # weights of another architecture are refused, naming the mismatch
    wide = Model(Sequential([B.Input(channels=1, spatial=(None, None)), B.Conv(filters=3),
                             B.Classifier(num_classes=2)]), mode=FAST)  # fmt: skip
    with pytest.raises(WeightsError, match=r"'blocks\[1\].conv.W': shape differs"):
        wide.load_weights(tmp_path / "model.npz")
    # weight files carry the spec too, so they also load as models
    m.save_weights(tmp_path / "weights.npz")
    assert load_model(tmp_path / "weights.npz", mode=FAST).spec == m.spec
    np.savez(tmp_path / "plain.npz", a=np.zeros(2))
    with pytest.raises(WeightsError, match=r"plain\.npz"):
        load_model(tmp_path / "plain.npz")


def test_patch_sampler_patches_and_balance():
    rng = np.random.default_rng(0)
    volume = rng.random((1, 20, 20, 20))
    labels = np.zeros((20, 20, 20), dtype=int)
    labels[2:4, 2:4, 2:4] = 1  # 8 voxels of class 1 among 8000
    sampler = PatchSampler([volume], [labels], (6, 6, 6), batch_size=4, strategy="balanced",
                           seed=1)  # fmt: skip
    hits = 0
    for _ in range(50):
        x, y = sampler.sample()
        assert x.shape == (4, 1, 6, 6, 6) and y.shape == (4, 6, 6, 6)
        hits += int((y == 1).any(axis=(1, 2, 3)).sum())
        # every patch is a window of the volume at the position of its labels
    assert 60 < hits < 140  # about half the patches are centred on the rare class
    plain = PatchSampler([volume], [labels], 6, batch_size=4, seed=1)
    hits = sum(int((plain.sample()[1] == 1).any(axis=(1, 2, 3)).sum()) for _ in range(50))
    assert hits < 40  # uniform positions rarely see the 2^3 box
    x, y = PatchSampler(volume[None], labels[None], 5, seed=3).sample()
    corner = np.argwhere(volume[0] == x[0, 0, 0, 0, 0])[0]
    window = tuple(slice(c, c + 5) for c in corner)
    np.testing.assert_array_equal(x[0, 0], volume[0][window])
    np.testing.assert_array_equal(y[0], labels[window])


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"patch_size": 30}, ShapeError, r"`patch_size`. Expected at most the spatial size "
         r"\(20, 20, 20\) of volume 0"),
        ({"patch_size": (4, 4)}, ConfigError, r"`patch_size`. Expected a positive int or 3"),
        ({"strategy": "uniform"}, ConfigError, r"`strategy`"),
        ({"batch_size": 0}, ConfigError, r"`batch_size`"),
    ],
)  # fmt: skip
def test_patch_sampler_errors(kwargs, error, message):
    volume = np.zeros((1, 20, 20, 20))
    labels = np.zeros((20, 20, 20), dtype=int)
    kwargs = {"patch_size": 4, **kwargs}
    with pytest.raises(error, match=message):
        PatchSampler([volume], [labels], **kwargs)


def test_fit_on_a_sampler_checks_channels():
    m = model()
    sampler = PatchSampler([np.zeros((2, 8, 8))], [np.zeros((8, 8), dtype=int)], 4)
    with pytest.raises(ShapeError, match=r"Expected a PatchSampler of 2D volumes with 1 channels"):
        m.fit(sampler)


def test_progress_bar_shows_live_loss_and_metrics(capsys):
    x, y = data()
    history = model().fit(x, y, epochs=1, batch_size=2, verbose=1)
    err = capsys.readouterr().err + capsys.readouterr().out
    assert "epoch 1/1" in err and "loss=" in err and "accuracy=" in err
    assert f"accuracy={history.history['accuracy'][0]:.4g}" in err


def test_verbose_2_prints_one_line_per_epoch_and_no_bar(capsys):
    x, y = data()
    history = model().fit(x, y, epochs=2, batch_size=2, verbose=2)
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["epoch 1", "epoch 2"]
    assert f"loss={history.history['loss'][1]:.4g}" in lines[1]
    assert "epoch 1/2" not in captured.err + captured.out  # no progress bar


def test_save_puts_metadata_in_the_manifest(tmp_path):
    m = model()
    manifest = m.save(tmp_path / "m.npz", metadata={"training": {"steps": 3}})
    assert manifest["metadata"]["training"] == {"steps": 3}
    assert manifest["metadata"]["kind"] == "model"
    with pytest.raises(ConfigError, match=r"Model.save: invalid value for `metadata`"):
        m.save(tmp_path / "n.npz", metadata={"spec": 1})


def test_patch_sampler_augment_is_applied_reproducibly_and_checked():
    volume = np.arange(2 * 8 * 8, dtype=float).reshape(2, 8, 8)
    labels = np.zeros((8, 8), dtype=int)

    def negate(x, y, rng):
        return -x + rng.uniform(0, 1e-3), y

    # one patch per batch: augment draws from the sampler's generator after the position
    a = PatchSampler([volume], [labels], 4, batch_size=1, seed=3, augment=negate).sample()[0]
    b = PatchSampler([volume], [labels], 4, batch_size=1, seed=3, augment=negate).sample()[0]
    plain = PatchSampler([volume], [labels], 4, batch_size=1, seed=3).sample()[0]
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(a, -plain, atol=1e-3)
    assert not np.array_equal(a, -plain)
    with pytest.raises(ShapeError, match=r"augment returned shapes"):
        PatchSampler([volume], [labels], 4, augment=lambda x, y, rng: (x[:, :2], y)).sample()
    with pytest.raises(ConfigError, match=r"`augment`. Expected a callable"):
        PatchSampler([volume], [labels], 4, augment=3)


def test_load_weights_skip_mismatch_keeps_what_does_not_fit(tmp_path):
    """Fine-tuning to other classes: the body comes from the file, the new classifier keeps its
    initial values (oracle: each model's own values before loading)."""
    source = Model(spec(classes=4), mode=FAST, seed=1)
    source.save(tmp_path / "four.npz")
    target = Model(spec(classes=3), mode=FAST, seed=2)
    initial = dict(zip([p.name for p in target.params], target.get_weights(), strict=True))
    stored = dict(zip([p.name for p in source.params], source.get_weights(), strict=True))
    manifest = target.load_weights(tmp_path / "four.npz", skip_mismatch=True)
    head = [p.name for p in target.params if p.name.startswith("blocks[2].")]
    assert manifest["skipped"] == head and head  # the classifier's W and b
    for p, value in zip(target.params, target.get_weights(), strict=True):
        expected = initial[p.name] if p.name in head else stored[p.name]
        np.testing.assert_array_equal(value, expected)
    # without it, the mismatch is an error and nothing changes
    with pytest.raises(WeightsError, match=r"'blocks\[2\].conv.W': shape differs"):
        Model(spec(classes=3), mode=FAST).load_weights(tmp_path / "four.npz")
    # checksums are still verified (a parameter changed behind the manifest's back), and a file
    # of which nothing fits is refused
    with np.load(tmp_path / "four.npz", allow_pickle=False) as npz:
        members = {k: npz[k] for k in npz.files}
    members["blocks[1].conv.W"] = members["blocks[1].conv.W"] + 1
    np.savez(tmp_path / "bad.npz", **members)
    with pytest.raises(WeightsError, match=r"(?s)bad\.npz.*'blocks\[1\].conv.W': sha256 differs"):
        target.load_weights(tmp_path / "bad.npz", skip_mismatch=True)
    other = Model(Sequential([B.Input(channels=2, spatial=(None, None)),
                              B.Conv(filters=5, kernel=1)]), mode=FAST)  # fmt: skip
    with pytest.raises(WeightsError, match=r"no parameter fits this model"):
        other.load_weights(tmp_path / "four.npz", skip_mismatch=True)


def test_load_model_reads_the_file_once_and_keeps_the_contract(tmp_path, monkeypatch):
    from dilnet.model import InputContract, saving

    m = model()
    m.input_contract = InputContract(orientation="RA", voxel_size=(2.0, 2.0))
    m.save(tmp_path / "model.npz")
    reads = []
    real = saving.read_checkpoint
    monkeypatch.setattr(saving, "read_checkpoint", lambda p: reads.append(p) or real(p))
    again = load_model(tmp_path / "model.npz", mode=FAST)
    assert len(reads) == 1
    assert again.input_contract == m.input_contract
    for a, b in zip(again.get_weights(), m.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
