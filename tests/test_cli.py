"""The ``dilnet`` command, driven as a user drives it: a subprocess on real files (the embedded
MNI152 template written as NIfTI, TIFF and numpy files by nibabel, tifffile and numpy
themselves). Oracles: the reference tissue labels (Dice), the same prediction made in-process,
the files as their own libraries read them, and hand-made bad inputs."""

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytensor
import pytest
import tifffile

import dilnet
import dilnet_zoo
from dilnet.inference import predict_volume
from dilnet.model import Model, load_model
from dilnet.model.metrics import dice_per_class
from dilnet.training import model_manifest
from dilnet_zoo._plugin import mni152_grids
from dilnet_zoo.data.mni152 import hemispheres, load_mni152

DILNET = Path(sys.executable).parent / "dilnet"  # the console script `pip install` made


def run(*args, cwd=None):
    """(returncode, stdout, stderr) of ``dilnet *args``."""
    done = subprocess.run(
        [str(DILNET), *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=600
    )
    return done.returncode, done.stdout, done.stderr


@pytest.fixture(scope="module")
def mni(tmp_path_factory):
    """The right hemisphere of the template as files: T1 and labels (NIfTI with the template's
    affine and a description in the header), the T1 as .npy, .npz and a TIFF stack."""
    d = tmp_path_factory.mktemp("mni")
    data = load_mni152()
    _, (t1, labels) = hemispheres(data)
    affine = data["affine"].copy()
    affine[:3, 3] += affine[:3, 0] * data["split_index"]  # the hemisphere starts there
    image = nib.Nifti1Image(t1, affine)
    image.header["descrip"] = b"mni152 right hemisphere"
    image.header.set_xyzt_units("mm")
    nib.save(image, d / "t1.nii.gz")
    nib.save(nib.Nifti1Image(labels.astype(np.uint8), affine), d / "labels.nii.gz")
    np.save(d / "t1.npy", t1)
    np.savez(d / "t1.npz", t1=t1, other=np.zeros(3))
    tifffile.imwrite(d / "t1.tif", t1)
    return {"dir": d, "t1": t1, "labels": labels, "affine": affine}


@pytest.fixture(scope="module")
def zoo_model():
    return dilnet_zoo.load("context3d-basic", pretrained=True)  # with the zoo's input contract


def minmax(volume):
    """Scaled to [0, 1] by hand: what the CLI does to the input of a model without an input
    contract trained on min-max scaled volumes."""
    volume = volume.astype(np.float64)
    return ((volume - volume.min()) / (volume.max() - volume.min())).astype(np.float32)


def zoo_weights_contract():
    """The input contract the shipped context3d-basic weights record (None for weights saved
    before contracts: the CLI then min-max scales, as the zoo's plugin says)."""
    manifest = model_manifest(dilnet_zoo.weights_path("context3d-basic"))
    return manifest["metadata"].get("input_contract")


@pytest.fixture(scope="module")
def zoo_prediction(mni, zoo_model):
    """The in-process prediction of the right hemisphere (the oracle for the CLI's files): the
    hemisphere is RAS at 2 mm, the contract's grid, so only the intensity scaling applies."""
    if zoo_weights_contract() is None:
        return predict_volume(zoo_model, minmax(mni["t1"]), normalize=False, progress=False)
    return predict_volume(zoo_model, mni["t1"], progress=False)


@pytest.fixture(scope="module")
def model_files(tmp_path_factory, zoo_model):
    """The zoo's weights saved as model files: with the zoo's input contract, and without one
    (trained with min-max scaling, as its metadata says)."""
    d = tmp_path_factory.mktemp("models")
    zoo_model.save(d / "contract.npz")
    bare = Model(dilnet_zoo.get_spec("context3d-basic"))
    bare.set_weights(zoo_model.get_weights())
    bare.save(d / "bare.npz", metadata={"preprocessing": {"normalize": "minmax"}})
    return {"contract": d / "contract.npz", "bare": d / "bare.npz"}


def test_version_and_help():
    code, out, _ = run("--version")
    assert (code, out.strip()) == (0, f"dilnet {dilnet.__version__}")
    code, out, _ = run("predict", "--help")
    assert code == 0 and "--memory-limit" in out and "--model zoo:NAME|MODEL.npz" in out
    # the zoo's commands and model source come from its plugin (dilnet.plugins), in place
    code, out, _ = run("--help")
    listed = [line.split()[0] for line in out.splitlines() if line.startswith("    ")]
    assert (code, listed) == (0, ["zoo", "summary", "predict", "train", "export", "demo"])
    code, out, _ = run("summary", "--help")
    assert code == 0 and "SPEC.json|MODEL.npz|zoo:NAME" in out
    done = subprocess.run([sys.executable, "-m", "dilnet", "--version"], capture_output=True,
                          text=True)  # fmt: skip
    assert done.returncode == 0 and done.stdout.strip() == f"dilnet {dilnet.__version__}"


def test_zoo_list_matches_the_zoo():
    code, out, err = run("zoo", "list")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["name", "pretrained", "parameters"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert sorted(rows) == dilnet_zoo.list_models()
    for name, row in rows.items():
        network = dilnet_zoo.get_spec(name).build()
        assert row[1] == ("yes" if dilnet_zoo.weights_path(name) else "no")
        assert int(row[2].replace(",", "")) == network.count_params(trainable=True)
    record = json.loads(dilnet_zoo.weights_path("context3d-basic").with_suffix(".json").read_text())
    colin27 = record["metrics"]["colin27"]["native 1 mm"]
    assert rows["context3d-basic"][4] == f"{colin27['mean CSF/GM/WM']:.3f}"
    assert rows["context3d-basic"][3] == "69x69x69"  # 1 + 2 * (1 + 1 + 2 + 4 + 8 + 16 + 1 + 1)


def test_zoo_info_prints_the_card():
    code, out, err = run("zoo", "info", "plain3d")
    assert code == 0, err
    card = dilnet_zoo.card("plain3d")
    assert "<!--" in card  # the recipe's markers, which the command leaves out
    kept = "\n".join(line for line in card.splitlines() if not line.startswith("<!--"))
    assert out.rstrip("\n") == kept.rstrip("\n")
    assert "weights:" in err and "plain3d.npz" in err


def test_summary_of_zoo_spec_and_model_file(tmp_path):
    spec = dilnet_zoo.get_spec("plain3d")
    with pytensor.config.change_flags(floatX="float32"):  # a Model's dtype
        expected = spec.summary(input_size=(24, 24, 24), print_fn=None)
    assert "float32" in expected
    code, out, err = run("summary", "zoo:plain3d", "--input-size", "24")
    assert (code, out.rstrip("\n")) == (0, expected), err
    (tmp_path / "spec.json").write_text(json.dumps(dilnet.to_config(spec)))
    code, out, _ = run("summary", "--input-size", "24x24x24", tmp_path / "spec.json")
    assert (code, out.rstrip("\n")) == (0, expected)
    code, out, _ = run("summary", dilnet_zoo.weights_path("plain3d"), "--input-size", "24")
    assert (code, out.rstrip("\n")) == (0, expected)
    code, _, err = run("summary", "zoo:plain3d", "--input-size", "24x24")
    assert code == 1 and "--input-size: expected one length or 3" in err
    (tmp_path / "binary.json").write_bytes(b"\x00\xff\xfe")
    code, _, err = run("summary", tmp_path / "binary.json")
    assert code == 1 and err.endswith("binary.json: not a spec (not UTF-8 JSON text).\n")


def test_predict_nifti_keeps_affine_and_header(mni, zoo_prediction):
    out = mni["dir"] / "seg.nii.gz"
    code, _, err = run("predict", "--model", "zoo:context3d-basic", "--input",
                       mni["dir"] / "t1.nii.gz", "--output", out)  # fmt: skip
    assert code == 0, err
    assert "wrote" in err
    image = nib.load(out)
    labels = np.asarray(image.dataobj)
    assert image.get_data_dtype() == np.uint8
    np.testing.assert_allclose(image.affine, mni["affine"])
    assert image.header["descrip"].tobytes().rstrip(b"\0") == b"mni152 right hemisphere"
    assert image.header.get_zooms() == (2.0, 2.0, 2.0)
    np.testing.assert_array_equal(labels, zoo_prediction.argmax(axis=0))
    dice = dice_per_class(labels, mni["labels"], 4)
    assert np.mean(dice[1:]) > 0.7  # a sanity floor (the zoo's scores: docs/zoo.md)


def test_predict_tiled_quiet_is_identical_and_silent(mni):
    out = mni["dir"] / "seg-tiled.nii"
    code, out_text, err = run("predict", "--model", "zoo:context3d-basic", "--input",
                              mni["dir"] / "t1.nii.gz", "--output", out, "--tile", "24x32x40",
                              "--quiet")  # fmt: skip
    assert (code, out_text, err) == (0, "", "")
    whole = np.asarray(nib.load(mni["dir"] / "seg.nii.gz").dataobj)
    np.testing.assert_array_equal(np.asarray(nib.load(out).dataobj), whole)


def test_predict_probabilities_npy_and_other_inputs(mni, zoo_prediction):
    d = mni["dir"]
    code, _, err = run("predict", "--model", "zoo:context3d-basic", "--input", d / "t1.npy",
                       "--output", d / "p.npy", "--probabilities", "-q")  # fmt: skip
    assert code == 0, err
    probabilities = np.load(d / "p.npy")
    assert probabilities.shape == (4, *mni["t1"].shape)
    np.testing.assert_allclose(probabilities, zoo_prediction, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(probabilities.sum(axis=0), 1, rtol=1e-5)
    expected = zoo_prediction.argmax(axis=0)
    code, _, err = run("predict", "--model", "zoo:context3d-basic", "--input", d / "t1.tif",
                       "--output", d / "seg.tif", "-q")  # fmt: skip
    assert code == 0, err
    np.testing.assert_array_equal(tifffile.imread(d / "seg.tif"), expected)
    code, _, err = run("predict", "--model", "zoo:context3d-basic", "--input", d / "t1.npz",
                       "--key", "t1", "--output", d / "seg.npz", "-q")  # fmt: skip
    assert code == 0, err
    with np.load(d / "seg.npz") as npz:
        np.testing.assert_array_equal(npz["volume"], expected)


def test_predict_normalisation_without_a_contract(mni, model_files, zoo_model, tmp_path):
    # scanner-like int16 units: min-max scaling (what the model records) gives the template's
    bare = model_files["bare"]
    raw = np.round(mni["t1"] * 1000 + 50).astype(np.int16)
    np.save(tmp_path / "raw.npy", raw)
    code, _, err = run("predict", "--model", bare, "--input", tmp_path / "raw.npy",
                       "--output", tmp_path / "seg.npy")  # fmt: skip
    assert code == 0, err
    assert "intensities: minmax" in err and "contract" not in err
    expected = predict_volume(zoo_model, minmax(raw), normalize=False, progress=False)
    labels = np.load(tmp_path / "seg.npy")
    np.testing.assert_array_equal(labels, expected.argmax(axis=0))
    # --normalize none passes the intensities as they are
    code, _, err = run("predict", "--model", bare, "--input", mni["dir"] / "t1.npy",
                       "--output", tmp_path / "none.npy", "--normalize", "none", "-q")  # fmt: skip
    assert code == 0, err
    expected = predict_volume(zoo_model, mni["t1"], normalize=False, progress=False)
    np.testing.assert_array_equal(np.load(tmp_path / "none.npy"), expected.argmax(axis=0))


def test_predict_with_a_contract_maps_lps_and_scanner_units_back(mni, model_files, zoo_model,
                                                                  tmp_path):  # fmt: skip
    model = ("predict", "--model", model_files["contract"])
    # the hemisphere stored LPS (axes 0 and 1 reversed, the affine says so) and in scanner units
    flip = np.diag([-1.0, -1.0, 1.0, 1.0])
    flip[:2, 3] = [n - 1 for n in mni["t1"].shape[:2]]
    lps_affine = mni["affine"] @ flip
    lps = nib.Nifti1Image(mni["t1"][::-1, ::-1] * 1.7 + 3 * (mni["t1"][::-1, ::-1] > 0),
                          lps_affine)  # fmt: skip
    lps.header["descrip"] = b"stored LPS"
    nib.save(lps, tmp_path / "lps.nii.gz")
    assert nib.aff2axcodes(lps_affine) == ("L", "P", "S")
    code, _, err = run(*model, "--input", mni["dir"] / "t1.nii.gz", "--output",
                       tmp_path / "ras-seg.nii.gz", "--normalize", "minmax")  # fmt: skip
    assert code == 0, err
    assert "input contract: RAS, 2x2x2 mm, intensities: percentile 0.5-99.5" in err
    assert "--normalize minmax ignored: the model's input contract sets" in err
    code, _, err = run(*model, "--input", tmp_path / "lps.nii.gz", "--output",
                       tmp_path / "lps-seg.nii.gz", "-q")  # fmt: skip
    assert (code, err) == (0, "")
    ras_seg, lps_seg = nib.load(tmp_path / "ras-seg.nii.gz"), nib.load(tmp_path / "lps-seg.nii.gz")
    expected = predict_volume(zoo_model, mni["t1"], progress=False).argmax(axis=0)
    np.testing.assert_array_equal(np.asarray(ras_seg.dataobj), expected)
    # the LPS file's labels, in its own order, with its affine and header
    np.testing.assert_allclose(lps_seg.affine, lps_affine)
    assert lps_seg.header["descrip"].tobytes().rstrip(b"\0") == b"stored LPS"
    labels = np.asarray(lps_seg.dataobj)
    assert np.mean(labels == expected[::-1, ::-1]) > 0.999  # float32 rounding of 1.7x + 3 aside
    assert np.mean(dice_per_class(labels[::-1, ::-1], mni["labels"], 4)[1:]) > 0.7
    # an array has no affine: scaled only, and a note says what was not checked
    code, _, err = run(*model, "--input", mni["dir"] / "t1.npy", "--output",
                       tmp_path / "seg.npy")  # fmt: skip
    assert code == 0, err
    assert "t1.npy has no affine: its orientation and voxel size were not checked" in err
    np.testing.assert_array_equal(np.load(tmp_path / "seg.npy"), expected)
    # a blank image fails in the contract's scaling: one line naming the file, nothing written
    nib.save(nib.Nifti1Image(np.zeros((20, 20, 20), np.float32), lps_affine), tmp_path / "0.nii")
    code, _, err = run(*model, "--input", tmp_path / "0.nii", "--output", tmp_path / "0-seg.nii",
                       "-q")  # fmt: skip
    assert code == 1 and err.count("\n") == 1
    assert err.startswith(f"dilnet predict: error: {tmp_path / '0.nii'}: ")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(("0-", ".0-"))) == []


def test_errors_are_one_line_with_exit_codes(mni, tmp_path):
    d = mni["dir"]
    model = ("--model", "zoo:context3d-basic")
    # the work fails: exit 1, one line, no traceback
    code, out, err = run("predict", *model, "--input", tmp_path / "missing.nii.gz",
                         "--output", tmp_path / "o.nii.gz")  # fmt: skip
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and err.startswith("dilnet predict: error: ")
    assert "missing.nii.gz" in err and "Traceback" not in err
    code, _, err = run("predict", *model, "--input", tmp_path / "missing.nii.gz",
                       "--output", tmp_path / "o.nii.gz", "--debug")  # fmt: skip
    assert code == 1 and "Traceback (most recent call last)" in err
    # an existing output is kept unless --force
    (tmp_path / "keep.npy").write_bytes(b"precious")
    code, _, err = run("predict", *model, "--input", d / "t1.npy", "--output",
                       tmp_path / "keep.npy")  # fmt: skip
    assert code == 1 and "pass --force" in err
    assert (tmp_path / "keep.npy").read_bytes() == b"precious"
    # an output type no writer knows fails before any work
    code, _, err = run("predict", *model, "--input", d / "t1.npy", "--output", tmp_path / "o.mha")
    assert code == 1 and ".mha" in err and err.count("\n") == 1
    # a volume with the wrong number of channels
    np.save(tmp_path / "two.npy", np.zeros((2, 20, 20, 20), np.float32))
    code, _, err = run("predict", *model, "--input", tmp_path / "two.npy", "--output",
                       tmp_path / "o.npy")  # fmt: skip
    assert code == 1 and "channel" in err and err.count("\n") == 1
    # NaN voxels would spread through every field they touch
    t1 = mni["t1"].copy()
    t1[10, 20, 30] = np.nan
    np.save(tmp_path / "nan.npy", t1)
    code, _, err = run("predict", *model, "--input", tmp_path / "nan.npy", "--output",
                       tmp_path / "o.npy")  # fmt: skip
    assert code == 1 and "received 1 NaN or infinite voxel(s)" in err and err.count("\n") == 1
    assert not (tmp_path / "o.npy").exists()
    # the reader of the output goes away: not an error
    done = subprocess.run(f"'{DILNET}' zoo list | head -c 10", shell=True, capture_output=True,
                          text=True)  # fmt: skip
    assert done.stdout == "name      " and done.stderr == ""
    # the command line is wrong: exit 2, one line
    code, _, err = run("predict", *model, "--input", d / "t1.npy", "--output", tmp_path / "o.npy",
                       "--memory-limit", "lots")  # fmt: skip
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("dilnet predict: error: argument --memory-limit:")
    code, _, err = run("predict", *model, "--input", d / "t1.npy", "--output", tmp_path / "o.npy",
                       "--memory-limit", "1GiB", "--tile", "32")  # fmt: skip
    assert code == 2 and "not allowed with" in err and err.count("\n") == 1
    code, _, err = run("predict", *model, "--input", d / "t1.npy", "--output", tmp_path / "o.npy",
                       "--tile", "16x16")  # fmt: skip
    assert code == 1 and "--tile: expected one length or 3" in err
    assert run("predict", "--input", d / "t1.npy")[0] == 2
    assert run("segment")[0] == 2
    assert run()[0] == 2
    code, _, err = run("zoo", "info", "context3d")
    assert code == 1 and "context3d-basic" in err and err.count("\n") == 1


def _tiny_spec():
    B = dilnet.blocks
    return dilnet.Sequential([
        B.Input(channels=1, spatial=(None, None, None)),
        B.Conv(filters=4, kernel=3),
        B.DilatedStack(filters=4, dilations=(1, 2)),
        B.Classifier(num_classes=4),
    ])  # fmt: skip


def test_train_on_builtin_data_then_predict(mni, tmp_path):
    config = {
        "format": "dilnet.train",
        "format_version": 1,
        "model": dilnet.to_config(_tiny_spec()),
        "builtin_data": "mni152",
        "patch_size": [16],
        "epochs": 2,
        "steps_per_epoch": 3,
        "validation_steps": 1,
        "learning_rate": 0.01,
        "schedule": "cosine",
        "output": "out/tiny.npz",
    }
    (tmp_path / "out").mkdir()
    (tmp_path / "train.json").write_text(json.dumps(config))
    code, out, err = run("train", tmp_path / "train.json", "--quiet")
    assert code == 0, err
    assert err == ""
    result = json.loads(out)
    assert Path(result["output"]) == tmp_path / "out" / "tiny.npz"
    assert set(result["final"]) >= {"loss", "dice", "val_loss", "val_dice", "lr"}
    assert len(result["validation_dice_whole_volumes"]) == 4
    # the saved model predicts through the CLI as it does in-process
    model = load_model(tmp_path / "out" / "tiny.npz")
    code, _, err = run("predict", "--model", tmp_path / "out" / "tiny.npz", "--input",
                       mni["dir"] / "t1.npy", "--output", tmp_path / "seg.npy", "-q")  # fmt: skip
    assert code == 0, err
    expected = predict_volume(model, mni["t1"], progress=False).argmax(axis=0)
    np.testing.assert_array_equal(np.load(tmp_path / "seg.npy"), expected)
    # and the whole-volume Dice it reported is that of its prediction of the validation volume
    # ("mni152": the template on the 2 mm grid of 1 mm offset (1, 1, 1)), computed here
    (image,), (labels,) = mni152_grids([(1, 1, 1)])
    predicted = predict_volume(model, image, progress=False).argmax(axis=0)
    dice = dice_per_class(predicted, labels, 4)
    np.testing.assert_allclose(result["validation_dice_whole_volumes"], dice, rtol=1e-6)
    # a second run does not replace the model without --force
    code, _, err = run("train", tmp_path / "train.json", "-q")
    assert code == 1 and "pass --force" in err


def test_train_on_files_with_minmax(mni, tmp_path):
    d = mni["dir"]
    config = {
        "format": "dilnet.train",
        "format_version": 1,
        "model": "zoo:plain3d",
        "overrides": {"channels": 4},
        "train": [{"image": str(d / "t1.nii.gz"), "labels": str(d / "labels.nii.gz")}],
        "patch_size": [12, 16, 16],
        "epochs": 1,
        "steps_per_epoch": 2,
        "normalize": "minmax",
        "output": "m.npz",
    }
    (tmp_path / "train.json").write_text(json.dumps(config))
    code, out, err = run("train", tmp_path / "train.json")
    assert code == 0, err
    assert "training zoo:plain3d" in err
    assert "validation_dice_whole_volumes" not in json.loads(out)
    from dilnet.io.weights import read_checkpoint

    _, manifest = read_checkpoint(tmp_path / "m.npz")
    assert manifest["metadata"]["preprocessing"] == {"normalize": "minmax"}
    assert manifest["metadata"]["training"]["config"]["train"][0]["image"].endswith("t1.nii.gz")


def test_train_config_errors_name_their_paths(tmp_path):
    bad = {"format": "dilnet.train", "format_version": 1, "model": "zoo:plain3d",
           "builtin_data": "mni152", "patch_size": [16, "x", 16], "epoch": 3}  # fmt: skip
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    code, _, err = run("train", tmp_path / "bad.json")
    assert code == 1
    assert "$.patch_size[1]: expected an int; received 'x'" in err
    assert "$.epoch: unknown field of TrainConfig" in err
    assert "Traceback" not in err and err.count("\n") == 1  # both problems on one line
    (tmp_path / "broken.json").write_text('{"format": "dilnet.train",')
    code, _, err = run("train", tmp_path / "broken.json")
    assert code == 1 and "not valid JSON" in err and err.count("\n") == 1
    labels_only = {**bad, "patch_size": [16], "epoch": None}
    del labels_only["epoch"], labels_only["builtin_data"]
    labels_only["train"] = [{"image": "nowhere.nii.gz", "labels": "nowhere.nii.gz"}]
    (tmp_path / "missing.json").write_text(json.dumps(labels_only))
    code, _, err = run("train", tmp_path / "missing.json")
    assert code == 1 and "nowhere.nii.gz" in err and err.count("\n") == 1
    # names Model.compile would reject are reported with their paths, all at once
    names = {**labels_only, "optimizer": "adamw", "loss": "dice+ce", "metrics": ["dise"],
             "schedule": "cosin"}  # fmt: skip
    (tmp_path / "names.json").write_text(json.dumps(names))
    code, _, err = run("train", tmp_path / "names.json")
    assert code == 1 and "invalid config (4 problems)" in err
    for where in ("$.optimizer", "$.loss", "$.metrics[0]", "$.schedule: expected one of "
                  "constant, cosine (did you mean 'cosine'?)"):  # fmt: skip
        assert where in err


def test_train_data_errors_name_their_files(mni, tmp_path):
    d = mni["dir"]
    labels = mni["labels"].copy()
    labels[0, 0, 0] = 7
    nib.save(nib.Nifti1Image(labels.astype(np.uint8), mni["affine"]), tmp_path / "bad.nii.gz")
    config = {"format": "dilnet.train", "format_version": 1, "model": "zoo:plain3d",
              "train": [{"image": str(d / "t1.nii.gz"), "labels": "bad.nii.gz"}],
              "patch_size": [16], "epochs": 1, "steps_per_epoch": 1}  # fmt: skip
    (tmp_path / "c.json").write_text(json.dumps(config))
    code, _, err = run("train", tmp_path / "c.json")
    assert code == 1 and err.count("\n") == 1
    assert (
        "bad.nii.gz: invalid value for `labels`. Expected values 0..3; received labels=[7]. The "
        "model has 4 classes: set num_classes in the model" in err
    )
    # fine-tuning the pretrained network to 2 classes (brain vs background): the body loads,
    # the classifier starts from its initial values
    brain = (mni["labels"] > 0).astype(np.uint8)
    nib.save(nib.Nifti1Image(brain, mni["affine"]), tmp_path / "brain.nii.gz")
    tuned = {
        **config,
        "train": [{"image": str(d / "t1.nii.gz"), "labels": "brain.nii.gz"}],
        "model": "zoo:context3d-basic",
        "pretrained": True,
        "normalize": "minmax",
        "overrides": {"num_classes": 2},
        "output": "tuned.npz",
        "learning_rate": 0.0,
    }  # fmt: skip  (rate 0: the loaded weights stay as loaded)
    (tmp_path / "tuned.json").write_text(json.dumps(tuned))
    code, _, err = run("train", tmp_path / "tuned.json")
    assert code == 0, err
    model = load_model(tmp_path / "tuned.npz")
    head = [p.name for p in model.params if p.name.startswith(model.network.layers[-1].path)]
    assert model.network.output_shape[1] == 2 and len(head) == 2
    assert (
        f"2 parameter(s) of the classifier start from their initial values: {', '.join(head)}"
        in err
    )
    from dilnet.io.weights import read_checkpoint

    _, manifest = read_checkpoint(tmp_path / "tuned.npz")
    assert manifest["metadata"]["training"]["pretrained_skipped"] == head
    pretrained, _ = read_checkpoint(dilnet_zoo.weights_path("context3d-basic"))
    from dilnet.model import Model

    fresh = Model(
        dilnet_zoo.get_spec("context3d-basic", num_classes=2), seed=0
    )  # seed 0, as trained
    fresh = dict(zip([p.name for p in fresh.params], fresh.get_weights(), strict=True))
    for p, value in zip(model.params, model.get_weights(), strict=True):
        if p in model.network.get_params(trainable=True):
            expected = fresh[p.name] if p.name in head else pretrained[p.name]
            np.testing.assert_allclose(value, expected, rtol=1e-6, err_msg=p.name)
    # other shape overrides leave too little of the weights: refused
    wide = {**tuned, "overrides": {"channels": 8}, "output": "wide.npz"}
    (tmp_path / "wide.json").write_text(json.dumps(wide))
    code, _, err = run("train", tmp_path / "wide.json")
    assert code == 1 and "$.overrides.channels: expected 16 with pretrained=true" in err
    # a demo montage into a directory that does not exist fails before any work
    code, _, err = run("demo", "--out", tmp_path / "nowhere" / "demo.png")
    assert code == 1 and err.startswith("dilnet demo: error:") and err.count("\n") == 1


def test_demo_command(tmp_path):
    # not --quiet, but stderr is a pipe: no progress bar is drawn into it
    code, out, err = run("demo", "--out", tmp_path / "demo.png")
    assert code == 0, err
    assert "it/s" not in err and "%|" not in err, err
    assert "Dice on Colin27 against its reference labels" in out
    assert (tmp_path / "demo.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # an existing montage is kept unless --force
    (tmp_path / "demo.png").write_bytes(b"mine")
    code, _, err = run("demo", "--out", tmp_path / "demo.png", "--quiet")
    assert code == 1 and "pass --force" in err
    assert (tmp_path / "demo.png").read_bytes() == b"mine"
    code, _, err = run("demo", "--out", tmp_path / "demo.png", "--quiet", "--force")
    assert code == 0, err
    assert (tmp_path / "demo.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_output_is_never_the_input_even_with_force(mni, tmp_path):
    t1 = tmp_path / "t1.nii.gz"
    t1.write_bytes((mni["dir"] / "t1.nii.gz").read_bytes())
    before = t1.read_bytes()
    for output in (t1, tmp_path / "." / "t1.nii.gz"):
        code, _, err = run("predict", "--model", "zoo:plain3d", "--input", t1, "--output",
                           output, "--force")  # fmt: skip
        assert code == 1
        assert f"is also the input {t1}" in err and "--force never replaces an input" in err
    (tmp_path / "link.nii.gz").symlink_to(t1)
    code, _, err = run("predict", "--model", "zoo:plain3d", "--input", tmp_path / "link.nii.gz",
                       "--output", t1, "--force")  # fmt: skip
    assert code == 1 and "is also the input" in err
    assert t1.read_bytes() == before


def _run_config(epochs, **extra):
    return {
        "format": "dilnet.train",
        "format_version": 1,
        "model": dilnet.to_config(_tiny_spec()),
        "builtin_data": "mni152",
        "patch_size": 16,
        "epochs": epochs,
        "steps_per_epoch": 2,
        "validation_steps": 1,
        "learning_rate": 0.01,
        "schedule": "cosine",
        "augment": ["intensity", "flip0"],
        "class_weights": [0.5, 2.0, 1.0, 1.0],
        "output": "out/tiny.npz",
        **extra,
    }


def _train_in(directory, config, *args):
    (directory / "out").mkdir(parents=True, exist_ok=True)
    (directory / "train.json").write_text(json.dumps(config))
    return run("train", directory / "train.json", "-q", *args)


def test_a_run_resumed_from_its_checkpoint_equals_the_uninterrupted_one(tmp_path):
    code, _, err = _train_in(tmp_path / "whole", _run_config(3, checkpoint_every=2))
    assert code == 0, err
    runs = tmp_path / "whole" / "out" / "tiny.run"
    assert sorted(p.name for p in runs.iterdir()) == ["epoch-0002.npz", "last.npz"]
    assert load_model(runs / "last.npz").epochs_trained == 3
    # the same run stopped after one epoch, then resumed with the epochs it was meant to have
    code, _, err = _train_in(tmp_path / "part", _run_config(1))
    assert code == 0, err
    part_runs = tmp_path / "part" / "out" / "tiny.run"
    assert load_model(part_runs / "last.npz").epochs_trained == 1
    (tmp_path / "part" / "train.json").write_text(json.dumps(_run_config(3)))
    code, _, err = run("train", tmp_path / "part" / "train.json", "-q", "--force",
                       "--resume", part_runs)  # fmt: skip
    assert code == 0, err
    whole = load_model(tmp_path / "whole" / "out" / "tiny.npz").get_weights()
    resumed = load_model(tmp_path / "part" / "out" / "tiny.npz").get_weights()
    for a, b in zip(resumed, whole, strict=True):
        np.testing.assert_array_equal(a, b)
    # another config is refused, naming what differs
    (tmp_path / "part" / "train.json").write_text(json.dumps(_run_config(4, learning_rate=0.1)))
    code, _, err = run("train", tmp_path / "part" / "train.json", "-q", "--force",
                       "--resume", part_runs)  # fmt: skip
    assert code == 1 and "differs in $.learning_rate" in err


def test_sigint_saves_and_exits_then_the_run_resumes(tmp_path):
    import signal

    directory = tmp_path / "run"
    (directory / "out").mkdir(parents=True)
    (directory / "train.json").write_text(json.dumps(_run_config(400)))
    runs = directory / "out" / "tiny.run"
    proc = subprocess.Popen([str(DILNET), "train", str(directory / "train.json"), "-q"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        for _ in range(1200):  # until the first epoch's checkpoint is there
            if (runs / "last.npz").exists() or proc.poll() is not None:
                break
            time.sleep(0.1)
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "SIGINT: stopped after" in err and "--resume" in err
    assert not (directory / "out" / "tiny.npz").exists()  # no output from a stopped run
    done = load_model(runs / "last.npz").epochs_trained
    assert done >= 1
    assert (runs / "interrupted.npz").exists()
    (directory / "train.json").write_text(json.dumps(_run_config(done + 1)))
    code, _, err = run("train", directory / "train.json", "-q", "--resume", runs)
    assert code == 0, err
    assert load_model(directory / "out" / "tiny.npz").epochs_trained == done + 1


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("checkpoint_every", 0, r"\$.checkpoint_every: expected an int >= 1 or null"),
        ("class_weights", [1, -1], r"\$.class_weights: expected finite numbers >= 0"),
        ("early_stopping", {"monitr": "loss"}, r"\$.early_stopping.monitr: unknown field"),
    ],
)
def test_new_training_fields_are_checked(field, value, message, tmp_path):
    code, _, err = _train_in(tmp_path, _run_config(2, **{field: value}))
    assert code == 1 and re.search(message, err), err


def test_early_stopping_from_the_config(tmp_path):
    config = _run_config(50, early_stopping={"monitor": "loss", "patience": 0, "min_delta": 10.0})
    code, _, err = _train_in(tmp_path, config)
    assert code == 0, err
    # no epoch improves the loss by 10: training stops after the first two
    assert load_model(tmp_path / "out" / "tiny.npz").epochs_trained == 2
