"""Model: training learns, its steps equal hand-built PyTensor steps, its loss and metrics equal
independent computations, and runs are reproducible."""

import numpy as np
import pytensor
import pytest

from dilnet import Sequential, objectives, updates
from dilnet import blocks as B
from dilnet.model import DEFAULT_MODE, CrossEntropy, Dice, PatchSampler
from dilnet.model import Model as _Model

# The default C VM compiles C code for every new graph on a machine with a cold cache (20-30 s
# each on CI's clean machine); the Python VM compiles in about a second and runs these tiny
# batches fast enough. test_fit_learns_a_local_rule_and_generalises uses the default mode.
FAST = "FAST_COMPILE"


def Model(*args, **kwargs):
    kwargs.setdefault("mode", FAST)
    return _Model(*args, **kwargs)


def small_spec(rank=3, channels=1, classes=2):
    return Sequential(
        [
            B.Input(channels=channels, spatial=(None,) * rank),
            B.Conv(filters=4),
            B.DilatedStack(filters=4, dilations=(1, 2), batch_norm=True),
            B.Classifier(num_classes=classes),
        ]
    )


def toy(seed=0, n=6, size=10, rank=3):
    """x uniform; label 1 where the 3-voxel box mean (zeros outside the volume, like 'same'
    padding) exceeds 0.45: a local linear rule a 3-wide convolution can learn exactly."""
    rng = np.random.default_rng(seed)
    x = rng.random((n, 1, *(size,) * rank)).astype("float32")
    padded = np.pad(x[:, 0], [(0, 0)] + [(1, 1)] * rank)
    box = np.zeros_like(x[:, 0])
    for offset in np.ndindex(*(3,) * rank):
        box += padded[(slice(None), *(slice(o, o + size) for o in offset))]
    return x, (box / 3**rank > 0.45).astype("int64")


def test_fit_learns_a_local_rule_and_generalises():
    # in the default mode (the C VM): 120 steps, too slow for the Python VM
    x, y = toy(0, n=8, size=12)
    xv, yv = toy(1, n=2, size=12)
    model = _Model(small_spec(), seed=0)
    assert model.mode == DEFAULT_MODE
    model.compile("adam", "crossentropy", ["accuracy", "dice"], learning_rate=0.05)
    history = model.fit(x, y, batch_size=4, epochs=60, validation_data=(xv, yv), verbose=0, seed=0)
    losses = history.history["loss"]
    assert losses[-1] < 0.3 * losses[0]
    # far above chance (about 0.5); the run's own shuffle draws decide the rest
    assert history.history["val_accuracy"][-1] > 0.9
    assert history.epoch == list(range(60))
    assert set(history.history) == {
        "loss", "accuracy", "dice_0", "dice_1", "dice", "val_loss", "val_accuracy",
        "val_dice_0", "val_dice_1", "val_dice", "lr",
    }  # fmt: skip


def test_train_step_equals_a_hand_built_pytensor_step():
    # Two models with the same seed: one steps through Model, the other through a function
    # built from the layer graph, objectives and updates by hand.
    x, y = toy(2, n=2, size=8)
    a = Model(small_spec(), seed=3)
    a.compile("momentum", "crossentropy", learning_rate=0.05, momentum=0.8)
    b = Model(small_spec(), seed=3)
    for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_array_equal(wa, wb)
    net = b.network
    p = net.get_output()
    labels = pytensor.tensor.tensor(dtype="int64", shape=(None,) * 4)
    loss = objectives.categorical_crossentropy(p, labels).mean()
    ups = updates.momentum(loss, net.get_params(trainable=True), 0.05, momentum=0.8)
    step = pytensor.function([net.input_layer.input_var, labels], loss, updates=ups, mode=FAST)
    for _ in range(3):
        la = a.train_on_batch(x, y)["loss"]
        lb = step(x, y)
        np.testing.assert_allclose(la, lb, rtol=1e-6)
    for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_allclose(wa, wb, rtol=1e-5, atol=1e-7)


@pytest.mark.torch
def test_crossentropy_loss_equals_torch_with_ignore_index_and_weights():
    import torch

    rng = np.random.default_rng(4)
    model = Model(small_spec(rank=2, classes=3), dtype="float64", seed=0)
    weights = (0.5, 2.0, 1.0)
    model.compile("sgd", CrossEntropy(ignore_label=255, class_weights=weights), learning_rate=0.0)
    x = rng.random((3, 1, 6, 7))
    y = rng.integers(0, 3, (3, 6, 7))
    y[0, :2] = 255
    got = model.evaluate(x, y, batch_size=3)["loss"]
    probs = model.predict(x)
    expected = torch.nn.functional.nll_loss(
        torch.log(torch.from_numpy(probs)), torch.from_numpy(y),
        weight=torch.tensor(weights, dtype=torch.float64), ignore_index=255,
    ).item()  # fmt: skip
    np.testing.assert_allclose(got, expected, rtol=1e-10)


def test_dice_loss_and_metrics_equal_numpy_over_all_voxels():
    rng = np.random.default_rng(5)
    model = Model(small_spec(rank=2, classes=3), dtype="float64", seed=1)
    model.compile("sgd", Dice(smooth=1e-5), ["dice", "accuracy"], learning_rate=0.0)
    x = rng.random((4, 1, 5, 6))
    y = rng.integers(0, 3, (4, 5, 6))
    result = model.evaluate(x, y, batch_size=3)  # batches of 3 and 1: counts summed over both
    probs = model.predict(x)
    onehot = np.eye(3)[y].transpose(0, 3, 1, 2)
    inter = (probs * onehot).sum(axis=(2, 3))
    soft = 1 - (2 * inter + 1e-5) / (probs.sum(axis=(2, 3)) + onehot.sum(axis=(2, 3)) + 1e-5)
    batch_losses = [soft[:3].mean(), soft[3:].mean()]
    np.testing.assert_allclose(result["loss"], np.average(batch_losses, weights=[3, 1]))
    pred = probs.argmax(axis=1)
    for c in range(3):
        tp = np.sum((pred == c) & (y == c))
        expected = 2 * tp / (np.sum(pred == c) + np.sum(y == c))
        np.testing.assert_allclose(result[f"dice_{c}"], expected)
    np.testing.assert_allclose(result["dice"], np.mean([result[f"dice_{c}"] for c in range(3)]))
    np.testing.assert_allclose(result["accuracy"], np.mean(pred == y))


def test_ignored_voxels_count_in_no_metric():
    rng = np.random.default_rng(6)
    model = Model(small_spec(rank=1, classes=2), dtype="float64", seed=2)
    model.compile("sgd", "crossentropy", ["accuracy"], ignore_label=9, learning_rate=0.0)
    x = rng.random((2, 1, 16))
    y = rng.integers(0, 2, (2, 16))
    y[:, ::2] = 9
    pred = model.predict(x).argmax(axis=1)
    keep = y != 9
    assert model.evaluate(x, y)["accuracy"] == pytest.approx(np.mean(pred[keep] == y[keep]))


def _train(seed, strategy):
    x, y = toy(7, n=3, size=12)
    sampler = PatchSampler(x, y, 8, batch_size=2, strategy=strategy, seed=seed, steps_per_epoch=3)
    model = Model(Sequential([B.Input(channels=1), B.Conv(filters=2), B.Dropout(rate=0.3),
                              B.Classifier(num_classes=2)]), seed=seed)  # fmt: skip
    model.compile("adam", "crossentropy", learning_rate=0.01)
    model.fit(sampler, epochs=2, verbose=0)
    return model.get_weights()


@pytest.mark.parametrize("strategy", ["random", "balanced"])
def test_fixed_seeds_make_runs_reproducible(strategy):
    first, again, other = _train(0, strategy), _train(0, strategy), _train(1, strategy)
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(first, other, strict=True))


def test_float64_models_and_predict_batches():
    x, _ = toy(8, n=3, size=6, rank=2)
    model = Model(small_spec(rank=2), dtype="float64", seed=0)
    whole = model.predict(x.astype("float64"), batch_size=3)
    assert whole.dtype == np.float64 and whole.shape == (3, 2, 6, 6)
    np.testing.assert_allclose(model.predict(x, batch_size=2), whole, rtol=1e-12)
    np.testing.assert_allclose(whole.sum(axis=1), 1.0, rtol=1e-12)  # softmax over classes


def test_non_finite_inputs_are_refused_before_they_reach_the_weights():
    x, y = toy(0, n=4, size=8)
    model = Model(small_spec(), seed=0)
    model.compile("adam", "crossentropy", learning_rate=0.01)
    before = model.get_weights()
    bad = x.copy()
    bad[2, 0, 1, 2, 3] = np.nan
    with pytest.raises(ValueError, match=r"Model.fit: invalid value for `x`. Expected finite "
                       r"values \(as float32\); received 1 NaN or infinite value\(s\) in "
                       r"sample\(s\) 2 of the batch"):  # fmt: skip
        model.fit(bad, y, batch_size=2, epochs=1, verbose=0)
    for w, b in zip(model.get_weights(), before, strict=True):
        np.testing.assert_array_equal(w, b)  # nothing moved
    # finite float64 values beyond float32's range become inf in the cast: refused too
    huge = x.astype(np.float64)
    huge[0, 0, 0, 0, 0] = 1e300
    with pytest.raises(ValueError, match=r"Model.predict: .*1 NaN or infinite value\(s\) in "
                       r"sample\(s\) 0"):  # fmt: skip
        model.predict(huge)
    with pytest.raises(ValueError, match=r"Model.evaluate: .*sample\(s\) 2"):
        model.evaluate(bad, y)


@pytest.mark.parametrize("verbose", [7, -1, 1.0, "1", None])
def test_verbose_is_0_1_or_2(verbose):
    x, y = toy(0, n=2, size=8)
    model = Model(small_spec(), seed=0)
    model.compile("adam", "crossentropy")
    for call in (
        lambda: model.fit(x, y, epochs=1, verbose=verbose),
        lambda: model.evaluate(x, y, verbose=verbose),
        lambda: model.predict(x, verbose=verbose),
    ):
        with pytest.raises(ValueError, match=r"invalid value for `verbose`. Expected 0, 1 or 2"):
            call()
