"""The main job and the shipped weights: the demo runs end to end on the embedded data, and the
pretrained context3d-basic reproduces the Dice its recipe recorded."""

import json

import numpy as np
import pytest

import dilnet_zoo
from dilnet.inference import predict_volume
from dilnet.model.metrics import dice_per_class
from dilnet_zoo import demo
from dilnet_zoo.data.mni152 import hemispheres, load_mni152


def test_shipped_weights_reproduce_the_recorded_held_out_dice():
    path = dilnet_zoo.weights_path("context3d-basic")
    record = json.loads(path.with_suffix(".json").read_text())
    model = dilnet_zoo.load("context3d-basic", pretrained=True)
    _, (t1, labels) = hemispheres(load_mni152())
    prediction = predict_volume(model, t1, progress=False).argmax(axis=0)
    dice = dice_per_class(prediction, labels, 4)
    recorded = record["metrics"]["dice_held_out"]
    np.testing.assert_allclose(dice, list(recorded.values()), atol=1e-6)
    # the quality bar of the issue: mean Dice over CSF, GM and WM on the held-out hemisphere
    assert record["metrics"]["mean_dice_csf_gm_wm"] == pytest.approx(np.mean(dice[1:]))


def test_demo_prints_the_dice_table_and_writes_the_montage(tmp_path, capsys):
    out = tmp_path / "demo.png"
    assert demo.main(["--out", str(out)]) == 0
    text = capsys.readouterr().out
    for name in ("background", "csf", "grey matter", "white matter", "mean CSF/GM/WM"):
        assert name in text
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_demo_without_weights_fails_with_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(dilnet_zoo, "weights_path", lambda name, weights_dir=None: None)
    assert demo.main(["--model", "plain3d", "--out", str(tmp_path / "x.png")]) == 1
    assert "no pretrained weights for 'plain3d'" in capsys.readouterr().err
