"""The zoo's training recipe is a training config run by `dilnet.training.train_from_config`
(the code `dilnet train` runs): a tiny run writes the model and a record whose metrics are the
training record's own, and the model predicts the Dice it recorded."""

import json

import numpy as np

from dilnet.inference import predict_volume
from dilnet.io.train_config import train_config_from_dict
from dilnet.io.weights import read_checkpoint
from dilnet.model import load_model
from dilnet.model.metrics import dice_per_class
from dilnet_zoo.data.mni152 import hemispheres, load_mni152
from dilnet_zoo.recipes import train as recipe


def test_the_recipe_is_a_training_config():
    config = train_config_from_dict(recipe.config("plain3d", steps=120))
    assert (config.model, config.builtin_data, config.sampling) == ("zoo:plain3d", "mni152",
                                                                     "balanced")  # fmt: skip
    assert (config.epochs, config.steps_per_epoch, config.schedule) == (2, 50, "cosine")
    assert config.augment == ("intensity", "subvoxel_shift", "noise", "flip0")
    assert train_config_from_dict(recipe.config("plain3d", use_augment=False)).augment == ()
    assert recipe.config("plain3d", steps=3)["steps_per_epoch"] == 3  # a short run: one epoch


def test_a_tiny_recipe_run_writes_model_and_record(tmp_path):
    notes = []
    record = recipe.train("plain3d", steps=2, patch=(16, 16, 16), out=tmp_path,
                          log=notes.append, verbose=0)  # fmt: skip
    assert json.loads((tmp_path / "plain3d.json").read_text()) == record
    _, manifest = read_checkpoint(tmp_path / "plain3d.npz")
    training = manifest["metadata"]["training"]
    assert training["config"] == record["config"]
    dice = list(record["metrics"]["dice_held_out"].values())
    assert dice == training["validation_dice_whole_volumes"]
    assert record["settings"]["steps"] == 2 and len(training["history"]["loss"]) == 1
    assert record["metrics"]["final_train_loss"] == training["history"]["loss"][-1]
    # the recorded Dice is the saved model's on the held-out hemisphere
    _, (t1, labels) = hemispheres(load_mni152())
    prediction = predict_volume(load_model(tmp_path / "plain3d.npz"), t1[None], progress=False)
    np.testing.assert_allclose(dice_per_class(prediction.argmax(axis=0), labels, 4), dice,
                               rtol=1e-6)  # fmt: skip
    assert json.loads(notes[-1]) == record["metrics"]
