"""The Colin27 evaluation recipe: its conditions are what its docstring says (checked against
plain loops and nibabel), and the figures the shipped weights' record holds are what
``dilnet predict`` gives now."""

import json

import nibabel as nib
import numpy as np
import pytest

import dilnet_zoo
from dilnet_zoo.data.colin27 import load_colin27, t1_nifti_path
from dilnet_zoo.recipes import evaluate


def test_block_mean_and_plurality_against_loops():
    rng = np.random.default_rng(0)
    x = rng.random((5, 6, 9))
    labels = rng.integers(0, 4, (5, 6, 9))
    block = (2, 3, 4)
    mean, plural = evaluate.block_mean(x, block), evaluate.block_plurality(labels, block)
    assert mean.shape == plural.shape == (2, 2, 2)
    for i, j, k in np.ndindex(2, 2, 2):
        sl = np.s_[2 * i : 2 * i + 2, 3 * j : 3 * j + 3, 4 * k : 4 * k + 4]
        assert mean[i, j, k] == pytest.approx(x[sl].mean())
        counts = [np.count_nonzero(labels[sl] == c) for c in range(4)]
        assert plural[i, j, k] == counts.index(max(counts))  # ties to the lower label


def test_bias_field_is_smooth_seeded_and_within_25_percent():
    field = evaluate.bias_field((20, 24, 18))
    assert field.min() >= 0.75 - 1e-12 and field.max() <= 1.25 + 1e-12
    assert max(abs(field.min() - 1), abs(field.max() - 1)) == pytest.approx(0.25)
    np.testing.assert_array_equal(field, evaluate.bias_field((20, 24, 18)))
    assert not np.array_equal(field, evaluate.bias_field((20, 24, 18), seed=1))
    # three cosines per axis over the volume: neighbours differ by little
    assert np.abs(np.diff(field, axis=0)).max() < 0.1


@pytest.fixture(scope="module")
def conditions(tmp_path_factory):
    d = tmp_path_factory.mktemp("colin27")
    return evaluate.make_conditions(d)


def test_conditions_are_the_documented_files(conditions):
    assert list(conditions) == list(evaluate.CONDITIONS)
    native = nib.load(t1_nifti_path())
    t1, a1 = np.asarray(native.dataobj).astype(np.float32), native.affine
    ref1 = load_colin27(1)["labels"]

    lps = nib.load(conditions["stored LPS"][0])
    assert nib.aff2axcodes(lps.affine) == ("L", "P", "S")
    # the same voxel is at the same place in the world
    data = np.asarray(lps.dataobj)
    for ijk in [(0, 0, 0), (10, 40, 90), (180, 216, 180)]:
        world = lps.affine @ [*ijk, 1]
        native_ijk = np.rint(np.linalg.inv(a1) @ world)[:3].astype(int)
        assert data[ijk] == t1[tuple(native_ijk)]
    np.testing.assert_array_equal(conditions["stored LPS"][2](ref1[::-1, ::-1]), ref1)

    thick = nib.load(conditions["2x2x4 mm slices"][0])
    assert thick.shape == (90, 108, 45)
    np.testing.assert_allclose(nib.affines.voxel_sizes(thick.affine), [2, 2, 4])
    # voxel (i, j, k) is the mean of its 2 x 2 x 4 block and sits at the block's centre
    i, j, k = 30, 50, 20
    block = t1[2 * i : 2 * i + 2, 2 * j : 2 * j + 2, 4 * k : 4 * k + 4]
    assert np.asarray(thick.dataobj)[i, j, k] == pytest.approx(block.mean(), rel=1e-6)
    centre = a1 @ [2 * i + 0.5, 2 * j + 0.5, 4 * k + 1.5, 1]
    np.testing.assert_allclose(thick.affine @ [i, j, k, 1], centre)

    scanner = np.asarray(nib.load(conditions["scanner units"][0]).dataobj)
    assert scanner.dtype == np.int16
    np.testing.assert_array_equal(scanner[t1 > 0], np.round(20 * t1[t1 > 0] + 300))
    assert not scanner[t1 == 0].any()

    biased = np.asarray(nib.load(conditions["bias field +-25%"][0]).dataobj)
    inside = t1 > 0
    ratio = biased[inside] / t1[inside]
    assert 0.75 - 1e-5 <= ratio.min() and ratio.max() <= 1.25 + 1e-5

    two = load_colin27(2)
    np.testing.assert_array_equal(conditions["2 mm"][1], two["labels"])
    np.testing.assert_array_equal(nib.load(conditions["2 mm"][0]).affine, two["affine"])


def test_the_recorded_figures_are_what_dilnet_predict_gives(conditions, tmp_path):
    record = json.loads(dilnet_zoo.weights_path("context3d-basic").with_suffix(".json").read_text())
    recorded = record["metrics"]["colin27"]["2 mm"]
    path, reference, to_reference = conditions["2 mm"]
    labels, notes = evaluate.predict("zoo:context3d-basic", path, tmp_path / "seg.nii.gz")
    labels = to_reference(labels)
    assert "input contract" in notes
    for k, name in enumerate(evaluate.CLASSES, start=1):
        p, r = labels == k, reference == k
        dice = 2 * np.count_nonzero(p & r) / (np.count_nonzero(p) + np.count_nonzero(r))
        assert dice == pytest.approx(recorded[name], abs=1e-9), name
