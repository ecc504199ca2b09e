"""A run interrupted after an epoch, saved, loaded in a fresh model and resumed gives the same
weights, bit for bit, as the run that was never interrupted (the oracle), on the default C VM:
with Adam's accumulators, dropout streams, batch-norm averages, a learning-rate schedule, a
`PatchSampler` that augments, and shuffled arrays."""

import numpy as np
import pytest

from dilnet import Sequential
from dilnet import blocks as B
from dilnet.errors import WeightsError
from dilnet.model import LearningRateScheduler, Model, ModelCheckpoint, PatchSampler, load_model
from dilnet.model.data import augmentation


def spec():
    return Sequential(
        [
            B.Input(channels=1, spatial=(None, None, None)),
            B.Conv(filters=4, batch_norm=True),
            B.DilatedStack(filters=4, dilations=(1, 2), dropout=0.3),
            B.Classifier(num_classes=3),
        ]
    )


def volumes(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((1, 14, 15, 16)).astype(np.float32)
    y = np.digitize(x[0], [0.3, 0.7]).astype(np.int64)
    return x, y


def schedule(epoch, lr):
    return 0.02 * 0.5**epoch


def new_model():
    model = Model(spec(), seed=3)
    model.compile("adam", "crossentropy+dice", ["dice"], learning_rate=0.02)
    return model


def sampler():
    x, y = volumes()
    return PatchSampler([x], [y], (8, 8, 8), batch_size=2, strategy="balanced", seed=5,
                        steps_per_epoch=3, augment=augmentation(["intensity", "noise", "flip0"]))  # fmt: skip


def test_resumed_sampler_run_equals_the_uninterrupted_one(tmp_path):
    fit = {"epochs": 4, "verbose": 0, "seed": 1}
    whole = new_model()
    whole.fit(sampler(), callbacks=[LearningRateScheduler(schedule)], **fit)

    first = new_model()
    checkpoint = ModelCheckpoint(tmp_path / "ckpt-{epoch}.npz", save_weights_only=False)
    first.fit(sampler(), callbacks=[LearningRateScheduler(schedule), checkpoint],
              **{**fit, "epochs": 2})  # fmt: skip
    # the process ends here; a new one loads the checkpoint of epoch 2 with a new sampler
    resumed = load_model(tmp_path / "ckpt-2.npz")
    assert resumed.epochs_trained == 2
    assert resumed.get_learning_rate() == pytest.approx(schedule(1, None))
    resumed.fit(sampler(), callbacks=[LearningRateScheduler(schedule)],
                initial_epoch=resumed.epochs_trained, **fit)  # fmt: skip
    for a, b in zip(resumed.get_weights(), whole.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert resumed.epochs_trained == whole.epochs_trained == 4


def test_resumed_array_run_equals_the_uninterrupted_one(tmp_path):
    x, y = volumes(1)
    xs = np.stack([x[:, :8, :8, :8], x[:, 6:14, 7:15, 8:16], x[:, :8, 7:15, :8]])
    ys = np.stack([y[:8, :8, :8], y[6:14, 7:15, 8:16], y[:8, 7:15, :8]])
    whole = new_model()
    whole.fit(xs, ys, batch_size=2, epochs=3, verbose=0, seed=4)
    first = new_model()
    first.fit(xs, ys, batch_size=2, epochs=1, verbose=0, seed=4)
    first.save(tmp_path / "m.npz")
    resumed = load_model(tmp_path / "m.npz")
    resumed.fit(xs, ys, batch_size=2, epochs=3, verbose=0, seed=4, initial_epoch=1)
    for a, b in zip(resumed.get_weights(), whole.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    # without the optimizer's state the same resume differs: the state is what makes it exact
    first.save(tmp_path / "bare.npz", include_optimizer=False)
    bare = load_model(tmp_path / "bare.npz")
    assert bare.epochs_trained == 0
    bare.compile("adam", "crossentropy+dice", ["dice"], learning_rate=0.02)
    bare.fit(xs, ys, batch_size=2, epochs=3, verbose=0, seed=4, initial_epoch=1)
    assert not all(
        np.array_equal(a, b) for a, b in zip(bare.get_weights(), whole.get_weights(), strict=True)
    )


def test_weights_only_files_and_other_models_still_load(tmp_path):
    model = new_model()
    x, y = volumes(2)
    model.fit(x[None, :, :8, :8, :8], y[None, :8, :8, :8], epochs=1, verbose=0, seed=0)
    model.save_weights(tmp_path / "w.npz")  # weights only: no training state
    plain = load_model(tmp_path / "w.npz")
    assert plain.epochs_trained == 0
    model.save(tmp_path / "m.npz")
    other = Model(spec(), seed=9)
    other.load_weights(tmp_path / "m.npz")  # the optimizer's arrays are not parameters
    for a, b in zip(other.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_training_state_of_another_optimizer_is_refused_when_training(tmp_path):
    model = new_model()
    x, y = volumes(2)
    model.fit(x[None, :, :8, :8, :8], y[None, :8, :8, :8], epochs=1, verbose=0, seed=0)
    model.save(tmp_path / "m.npz")
    resumed = load_model(tmp_path / "m.npz")
    resumed._pending_state[1]["optimizer_variables"] += 1  # as if saved by another rule
    with pytest.raises(WeightsError, match="optimizer variables"):
        resumed.fit(x[None, :, :8, :8, :8], y[None, :8, :8, :8], epochs=2, verbose=0,
                    initial_epoch=1)  # fmt: skip
