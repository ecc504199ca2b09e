"""The zoo's training recipe is a training config run by `dilnet.training.train_from_config`
(the code `dilnet train` runs): a tiny run writes the model, with the zoo's input contract, and
a record whose metrics are the training record's own; the model predicts the Dice it recorded.
Its data, the template's eight 2 mm grids, are checked against the 1 mm template by hand."""

import json

import numpy as np
import pytest

from dilnet.inference import predict_volume
from dilnet.io.train_config import train_config_from_dict
from dilnet.io.weights import read_checkpoint
from dilnet.model import load_model
from dilnet.model.augment import Augment
from dilnet.model.contract import normalize_intensities
from dilnet.model.metrics import dice_per_class
from dilnet.plugins import registry
from dilnet_zoo import _plugin as plugin
from dilnet_zoo._plugin import GRID_OFFSETS, mni152_grids
from dilnet_zoo.data.mni152 import load_mni152
from dilnet_zoo.families import BRAIN_T1_2MM
from dilnet_zoo.recipes import train as recipe


def test_the_recipe_is_a_training_config():
    config = train_config_from_dict(recipe.config("plain3d", steps=120))
    assert (config.model, config.builtin_data, config.sampling) == ("zoo:plain3d", "mni152-grids",
                                                                     "balanced")  # fmt: skip
    assert (config.epochs, config.steps_per_epoch, config.schedule) == (2, 50, "cosine")
    assert config.augment == {"synthseg": recipe.AUGMENT}
    assert train_config_from_dict(recipe.config("plain3d", use_augment=False)).augment == ()
    assert Augment(**recipe.AUGMENT).normalize is False  # the volumes are scaled whole instead
    assert config.normalize == BRAIN_T1_2MM.normalization and config.validation == ()
    assert recipe.config("plain3d", steps=3)["steps_per_epoch"] == 3  # a short run: one epoch


def test_the_recorded_command_reproduces_the_settings(monkeypatch):
    # the command the main entry point parses back into the same settings, --out left out
    prefix = "python -m dilnet_zoo.recipes.train"
    assert recipe.command_line("local3d", steps=1000, use_augment=False) == (
        f"{prefix} local3d --steps 1000 --no-augment"
    )
    line = recipe.command_line("plain3d", steps=9, batch_size=3, learning_rate=0.01, seed=2)
    assert line == f"{prefix} plain3d --steps 9 --batch-size 3 --learning-rate 0.01 --seed 2"
    seen = {}
    monkeypatch.setattr(recipe, "train", lambda name, **kwargs: seen.update(name=name, **kwargs))
    recipe.main([*line.split()[3:], "--out", "/nowhere"])
    assert seen == {"name": "plain3d", "steps": 9, "batch_size": 3, "learning_rate": 0.01,
                    "seed": 2, "out": "/nowhere", "use_augment": True}  # fmt: skip
    with pytest.raises(SystemExit):  # no abbreviations the record would not recognise
        recipe.main(["plain3d", "--ou", "/nowhere"])


@pytest.fixture(scope="module")
def grids():
    return mni152_grids()


def test_the_grids_are_the_1mm_template_in_2mm_blocks(grids):
    images, labels = grids
    one = load_mni152(resolution=1)
    two = load_mni152()
    assert len(images) == len(labels) == len(GRID_OFFSETS) == 8
    # offset 0 is the shipped 2 mm template; offset 1 drops the first 1 mm slice of the axis
    for (i, j, k), image, label in zip(GRID_OFFSETS, images, labels, strict=True):
        expected = tuple((n - 1) // 2 if o else (n + 1) // 2
                         for n, o in zip((197, 233, 189), (i, j, k), strict=True))  # fmt: skip
        assert image.shape == (1, *expected) and label.shape == expected
        assert image.dtype == np.float32 and label.dtype == np.int64
        assert 0 <= image.min() and image.max() <= 1 and set(np.unique(label)) == {0, 1, 2, 3}
    np.testing.assert_array_equal(images[0][0], two["t1"])
    np.testing.assert_array_equal(labels[0], two["labels"])
    # grid (1, 1, 1) at a few voxels: the block mean rounded half up, the plurality label
    rng = np.random.default_rng(0)
    t1 = np.rint(one["t1"] * 255).astype(int)
    last = GRID_OFFSETS.index((1, 1, 1))
    for _ in range(50):
        v = [int(rng.integers(n)) for n in labels[last].shape]
        block = tuple(slice(1 + 2 * a, 3 + 2 * a) for a in v)
        assert images[last][(0, *v)] == np.float32((t1[block].sum() + 4) // 8) / np.float32(255)
        counts = np.bincount(one["labels"][block].ravel(), minlength=4)
        assert counts[labels[last][tuple(v)]] == counts.max()


@pytest.fixture
def cached(grids, monkeypatch):
    """`mni152_grids` answered from the module's `grids` (seconds each time otherwise); the
    offsets asked for are recorded."""
    asked = []

    def from_cache(offsets=GRID_OFFSETS):
        asked.append(tuple(offsets))
        index = [GRID_OFFSETS.index(tuple(o)) for o in offsets]
        return [grids[0][i] for i in index], [grids[1][i] for i in index]

    monkeypatch.setattr(plugin, "mni152_grids", from_cache)
    return asked


def test_the_builtin_data_names_have_no_held_out_brain(grids, cached):
    data = registry().training_data
    (images, labels), validation = data["mni152-grids"].load()
    assert validation == ([], []) and len(images) == len(labels) == 8
    assert cached == [GRID_OFFSETS]
    (images, labels), (val_images, val_labels) = data["mni152"].load()
    assert cached[-1] == ((1, 1, 1),)
    template = load_mni152()
    np.testing.assert_array_equal(images[0][0], template["t1"])  # the whole template
    np.testing.assert_array_equal(labels[0], template["labels"])
    # validation: the same brain on grid (1, 1, 1), not a held-out one
    np.testing.assert_array_equal(val_images[0], grids[0][-1])
    np.testing.assert_array_equal(val_labels[0], grids[1][-1])


def test_a_tiny_recipe_run_writes_model_and_record(tmp_path, cached):
    notes = []
    record = recipe.train("plain3d", steps=2, patch=(16, 16, 16), out=tmp_path,
                          log=notes.append, verbose=0)  # fmt: skip
    assert json.loads((tmp_path / "plain3d.json").read_text()) == record
    _, manifest = read_checkpoint(tmp_path / "plain3d.npz")
    training = manifest["metadata"]["training"]
    assert training["config"] == record["config"]
    assert manifest["metadata"]["input_contract"] == BRAIN_T1_2MM.to_dict()
    assert record["input_contract"] == BRAIN_T1_2MM.to_dict()
    assert "validation_dice_whole_volumes" not in training  # nothing held out to validate on
    assert cached == [GRID_OFFSETS]  # trained on the eight grids
    assert record["settings"]["steps"] == 2 and len(training["history"]["loss"]) == 1
    metrics = record["metrics"]
    assert metrics["final_train_loss"] == training["history"]["loss"][-1]
    assert metrics["loss_per_epoch"] == training["history"]["loss"]
    # the recorded Dice is the saved model's on the training template scaled by the contract
    model = load_model(tmp_path / "plain3d.npz")
    assert model.input_contract == BRAIN_T1_2MM
    template = load_mni152()
    scaled = normalize_intensities(template["t1"][None], BRAIN_T1_2MM, rank=3)
    prediction = predict_volume(model, scaled, normalize=False, progress=False).argmax(axis=0)
    dice = list(metrics["dice_train_mni152_2mm"].values())
    np.testing.assert_allclose(dice_per_class(prediction, template["labels"], 4), dice,
                               rtol=1e-6)  # fmt: skip
    assert metrics["mean_dice_csf_gm_wm_train_mni152_2mm"] == pytest.approx(np.mean(dice[1:]))
    assert json.loads(notes[-1]) == metrics
