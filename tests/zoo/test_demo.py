"""The main job and the shipped weights: the demo segments Colin27 (held out) end to end on the
embedded data, its Dice table is that of the prediction it draws, and every pretrained network
reproduces the Dice its recipe recorded."""

import json

import numpy as np
import pytest

import dilnet_zoo
from dilnet.inference import predict_volume
from dilnet.model.metrics import dice_per_class
from dilnet_zoo import demo
from dilnet_zoo.data.colin27 import load_colin27
from dilnet_zoo.data.mni152 import load_mni152

PRETRAINED = [n for n in dilnet_zoo.list_models() if dilnet_zoo.weights_path(n) is not None]


def test_the_demo_s_network_is_pretrained():
    assert dilnet_zoo.DEFAULT in PRETRAINED and "context3d-basic" in PRETRAINED


@pytest.mark.parametrize("name", PRETRAINED)
def test_shipped_weights_reproduce_the_recorded_training_dice(name):
    path = dilnet_zoo.weights_path(name)
    record = json.loads(path.with_suffix(".json").read_text())
    recorded = record["metrics"]["dice_train_mni152_2mm"]
    model = dilnet_zoo.load(name, pretrained=True)
    template = load_mni152()
    # predict_volume applies the model's contract (percentile scaling), as the recipe did
    prediction = predict_volume(model, template["t1"], progress=False).argmax(axis=0)
    dice = dice_per_class(prediction, template["labels"], 4)
    np.testing.assert_allclose(dice, list(recorded.values()), atol=1e-6)
    assert record["input_contract"] == model.input_contract.to_dict()


def test_demo_prints_the_dice_of_the_prediction_it_draws(tmp_path, capsys, monkeypatch):
    saved = {}

    def keep(t1, reference, prediction, path):
        saved.update(t1=t1, reference=reference, prediction=prediction)
        real_montage(t1, reference, prediction, path)

    real_montage = demo.montage
    monkeypatch.setattr(demo, "montage", keep)
    out = tmp_path / "demo.png"
    assert demo.main(["--out", str(out), "--quiet"]) == 0
    text = capsys.readouterr().out
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the held-out brain at 1 mm, its reference the shipped labels
    colin = load_colin27(resolution=1)
    assert saved["prediction"].shape == colin["labels"].shape == (181, 217, 181)
    np.testing.assert_array_equal(saved["reference"], colin["labels"])
    # each printed Dice is that of the drawn prediction, computed here by its definition
    rows = dict(line.strip().rsplit(maxsplit=1) for line in text.splitlines()[3:9])
    dice = []
    for k in range(4):
        p, r = saved["prediction"] == k, colin["labels"] == k
        dice.append(2 * np.count_nonzero(p & r) / (np.count_nonzero(p) + np.count_nonzero(r)))
    for name, value in zip(demo.CLASS_NAMES, dice, strict=True):
        assert float(rows[name]) == pytest.approx(value, abs=5e-4)
    assert float(rows["mean CSF/GM/WM"]) == pytest.approx(np.mean(dice[1:]), abs=5e-4)
    assert float(rows["mean GM/WM"]) == pytest.approx(np.mean(dice[2:]), abs=5e-4)
    # and they are the figures the weights' record (the card, the zoo page) gives
    record = json.loads(
        dilnet_zoo.weights_path(dilnet_zoo.DEFAULT).with_suffix(".json").read_text()
    )
    recorded = record["metrics"]["colin27"]["native 1 mm"]
    for name in demo.CLASS_NAMES[1:]:
        assert float(rows[name]) == pytest.approx(recorded[name], abs=5e-4)
    # an existing montage is kept unless --force
    out.write_bytes(b"precious")
    assert demo.main(["--out", str(out), "--quiet"]) == 1
    assert "exists; pass --force to replace it" in capsys.readouterr().err
    assert out.read_bytes() == b"precious"


def test_demo_without_weights_fails_with_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(dilnet_zoo, "weights_path", lambda name, weights_dir=None: None)
    assert demo.main(["--model", "plain3d", "--out", str(tmp_path / "x.png")]) == 1
    assert "no pretrained weights for 'plain3d'" in capsys.readouterr().err
