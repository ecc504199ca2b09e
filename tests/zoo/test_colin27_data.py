"""The shipped Colin27 evaluation data: integrity, grids, the 2 mm rule (re-derived here from world
coordinates), the labels' consistency with the T1, and that it is another brain than MNI152."""

import gzip
import hashlib
import re
import shutil

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from dilnet.errors import ConfigError, WeightsError
from dilnet_zoo.data import colin27, mni152
from dilnet_zoo.recipes import tissue

SHAPE_1MM = (181, 217, 181)
SHAPE_2MM = (99, 117, 95)


@pytest.fixture(scope="module")
def raw():
    with np.load(colin27._path(), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


@pytest.fixture(scope="module")
def nifti():
    img = nib.Nifti1Image.from_bytes(gzip.decompress(colin27.t1_nifti_path().read_bytes()))
    return img


@pytest.fixture(scope="module")
def t1_1mm(nifti):
    return np.asarray(nifti.dataobj)


def _dice(a, b):
    return 2 * (a & b).sum() / (a.sum() + b.sum())


def _gather_blocks(vol, affine_1mm, affine_2mm, shape_2mm):
    """The eight 1 mm values around each 2 mm voxel centre (at +-0.5 mm per axis), found through
    world coordinates; order (-, -, -), (-, -, +), ..., (+, +, +); outside ``vol`` is 0."""
    ijk = np.stack(np.meshgrid(*map(np.arange, shape_2mm), indexing="ij"), -1).reshape(-1, 3)
    centres = ijk @ affine_2mm[:3, :3].T + affine_2mm[:3, 3]
    inv = np.linalg.inv(affine_1mm)
    out = []
    for d in np.ndindex(2, 2, 2):
        world = centres + (np.array(d) - 0.5)
        idx = world @ inv[:3, :3].T + inv[:3, 3]
        assert np.allclose(idx, np.rint(idx))  # the corners are 1 mm voxel centres
        idx = np.rint(idx).astype(int)
        inside = np.all((idx >= 0) & (idx < vol.shape), axis=1)
        v = np.zeros(len(idx), vol.dtype)
        v[inside] = vol[tuple(idx[inside].T)]
        out.append(v.reshape(shape_2mm))
    return np.stack(out, -1)


def _plurality_first_tie(blocks):
    """Most frequent value of each block; ties to the tied value that comes first in the block."""
    counts = np.stack([(blocks == v[..., None]).sum(-1) for v in np.moveaxis(blocks, -1, 0)], -1)
    best = counts.max(-1, keepdims=True)
    first = (counts == best).argmax(-1)
    return np.take_along_axis(blocks, first[..., None], -1)[..., 0]


def test_files_match_the_pinned_digests():
    for name, pinned in ((colin27.FILENAME, colin27.SHA256),
                         (colin27.NIFTI_FILENAME, colin27.NIFTI_SHA256)):  # fmt: skip
        path = colin27._path(name)
        assert hashlib.sha256(path.read_bytes()).hexdigest() == pinned, name
        assert path.stat().st_size < 1.5 * 2**20, name
    # the NIfTI is mricron-data's ch2bet.nii.gz byte for byte (the recipe pins the same digest)
    from dilnet_zoo.recipes import make_colin27_data

    assert colin27.NIFTI_SHA256 == make_colin27_data.CH2BET_SHA256


def test_tampered_or_missing_files_raise(tmp_path, monkeypatch):
    good = {name: colin27._path(name) for name in (colin27.FILENAME, colin27.NIFTI_FILENAME)}
    pinned = {colin27.FILENAME: colin27.SHA256, colin27.NIFTI_FILENAME: colin27.NIFTI_SHA256}
    for name, path in good.items():
        bad = tmp_path / name
        shutil.copy(path, bad)
        buf = bytearray(bad.read_bytes())
        buf[len(buf) // 2] ^= 0x01
        bad.write_bytes(bytes(buf))
        with pytest.raises(WeightsError, match=re.escape(name) + ": sha256 mismatch"):
            colin27._verified_bytes(bad, pinned[name])
    with pytest.raises(WeightsError, match="sha256 mismatch"):
        colin27._load(tmp_path / colin27.FILENAME, colin27.SHA256)
    with pytest.raises(WeightsError, match=r"nothere\.npz: cannot read"):
        colin27._load(tmp_path / "nothere.npz", colin27.SHA256)
    # the loaders see the tampered copies through _path
    monkeypatch.setattr(colin27, "_path", lambda name=colin27.FILENAME: tmp_path / name)
    with pytest.raises(WeightsError, match=r"colin27\.npz: sha256 mismatch"):
        colin27.load_colin27()
    with pytest.raises(WeightsError, match=r"colin27_t1\.nii\.gz: sha256 mismatch"):
        colin27.t1_nifti_path()
    shutil.copy(good[colin27.FILENAME], tmp_path / colin27.FILENAME)
    assert colin27.load_colin27(resolution=2)["t1"].shape == SHAPE_2MM  # the npz is intact now
    with pytest.raises(WeightsError, match=r"colin27_t1\.nii\.gz: sha256 mismatch"):
        colin27.load_colin27(resolution=1)  # ... the NIfTI is not


def test_stored_arrays(raw):
    assert set(raw) == {"labels_1mm", "mask_1mm", "affine_1mm", "t1_2mm", "labels_2mm",
                        "affine_2mm", "rule_version"}  # fmt: skip
    assert not any(v.dtype.hasobject for v in raw.values())
    for key, shape, dtype in (("labels_1mm", SHAPE_1MM, np.uint8), ("mask_1mm", SHAPE_1MM, bool),
                              ("t1_2mm", SHAPE_2MM, np.uint8), ("labels_2mm", SHAPE_2MM, np.uint8),
                              ("affine_1mm", (4, 4), np.float64),
                              ("affine_2mm", (4, 4), np.float64)):  # fmt: skip
        assert raw[key].shape == shape and raw[key].dtype == dtype, key
    assert raw["rule_version"].shape == () and int(raw["rule_version"]) == 2
    assert int(raw["rule_version"]) == tissue.RULE_VERSION == mni152.RULE_VERSION


def test_native_nifti_header(nifti, t1_1mm, raw):
    assert t1_1mm.shape == SHAPE_1MM and t1_1mm.dtype == np.uint8
    assert nib.aff2axcodes(nifti.affine) == ("R", "A", "S")
    expected = np.eye(4)
    expected[:3, 3] = [-90, -125, -71]
    np.testing.assert_array_equal(nifti.affine, expected)
    np.testing.assert_array_equal(raw["affine_1mm"], expected)
    assert int(nifti.header["sform_code"]) == 4  # MNI
    assert t1_1mm.max() == 133 and t1_1mm.min() == 0


def test_2mm_grid_is_the_mni152_grid(raw):
    np.testing.assert_array_equal(raw["affine_2mm"], mni152.load_mni152()["affine"])
    assert raw["t1_2mm"].shape == mni152.load_mni152()["t1"].shape == SHAPE_2MM


def test_mask_is_the_cleaned_support_of_the_t1(raw, t1_1mm):
    mask, labels = raw["mask_1mm"], raw["labels_1mm"]
    np.testing.assert_array_equal(mask, labels > 0)  # labels exactly inside the mask
    assert set(np.unique(labels[mask])) == {1, 2, 3}
    assert not np.any(mask & (t1_1mm == 0))  # the mask is within ch2bet's nonzero voxels ...
    support = t1_1mm > 0
    assert 0 < support.sum() - mask.sum() < 1e-3 * support.sum()  # ... less a few specks
    _, n = ndimage.label(mask)  # 6-connected
    assert n == 1
    assert np.array_equal(ndimage.binary_fill_holes(mask), mask)
    _, n_support = ndimage.label(support)
    assert n_support > 1  # there were specks to drop


def test_2mm_arrays_follow_the_block_rule(raw, t1_1mm):
    a1, a2 = raw["affine_1mm"], raw["affine_2mm"]
    t1_blocks = _gather_blocks(t1_1mm, a1, a2, SHAPE_2MM).astype(np.int64)
    np.testing.assert_array_equal(raw["t1_2mm"], (t1_blocks.sum(-1) + 4) // 8)
    label_blocks = _gather_blocks(raw["labels_1mm"], a1, a2, SHAPE_2MM)
    np.testing.assert_array_equal(raw["labels_2mm"], _plurality_first_tie(label_blocks))
    # nothing of the brain falls outside the 2 mm grid
    assert (raw["labels_1mm"] > 0).sum() == (label_blocks > 0).sum()


def test_labels_are_ordered_by_t1_intensity(raw, t1_1mm):
    """CSF darkest, white matter brightest; the classes overlap only at their tails."""
    for t1, labels in ((t1_1mm, raw["labels_1mm"]), (raw["t1_2mm"], raw["labels_2mm"])):
        t1 = t1.astype(np.float64)
        means = [t1[labels == k].mean() for k in (1, 2, 3)]
        assert means[0] < means[1] < means[2]
    t1 = t1_1mm.astype(np.float64)
    labels = raw["labels_1mm"]
    csf, gm, wm = (t1[labels == k] for k in (1, 2, 3))
    assert np.percentile(csf, 95) < np.median(gm) < np.percentile(wm, 5)


def test_class_volumes_are_plausible(raw):
    """Colin27 is in MNI space (scaled up from native); measured at 1 mm: CSF 214, GM 823, WM 699
    ml; the 2 mm plurality keeps GM and WM and loses thin sulcal CSF (199 ml)."""
    for key, ml in (("labels_1mm", 1e-3), ("labels_2mm", 8e-3)):
        v = np.bincount(raw[key].ravel(), minlength=4) * ml
        assert 1600 < v[1:].sum() < 1900, key
        assert 0.08 < v[1] / v[1:].sum() < 0.16, key
        assert 1.0 < v[2] / v[3] < 1.4, key
    v1 = np.bincount(raw["labels_1mm"].ravel(), minlength=4) * 1e-3
    v2 = np.bincount(raw["labels_2mm"].ravel(), minlength=4) * 8e-3
    np.testing.assert_allclose(v2[2:], v1[2:], rtol=0.02)


def test_colin27_is_not_the_mni152_template(raw):
    """A held-out brain: farther from the template than the template is from its own mirror."""
    template = mni152.load_mni152()
    lab_mni, lab_col = template["labels"], raw["labels_2mm"]
    # T1 correlation over the voxels where either is brain (the shared background would inflate
    # it: over the whole grid 0.995 vs 0.948); observed 0.945 (mirror) vs 0.583 (Colin27)
    brain = (lab_mni > 0) | (lab_col > 0)
    t_mni = template["t1"].astype(np.float64)
    t_col = raw["t1_2mm"].astype(np.float64)
    corr_flip = np.corrcoef(t_mni[brain], t_mni[::-1][brain])[0, 1]
    corr_colin = np.corrcoef(t_mni[brain], t_col[brain])[0, 1]
    assert corr_flip > 0.9 and corr_colin < 0.75, (corr_flip, corr_colin)
    # label overlap, observed: mirror GM 0.905, WM 0.937; Colin27 GM 0.625, WM 0.708
    for k in (2, 3):
        flip = _dice(lab_mni == k, lab_mni[::-1] == k)
        other = _dice(lab_mni == k, lab_col == k)
        assert flip > 0.85 and other < 0.75, (k, flip, other)
    # yet both are brains in MNI space: they overlap far more than chance
    assert _dice(lab_mni > 0, lab_col > 0) > 0.85


def test_loader(raw, t1_1mm):
    d2 = colin27.load_colin27()
    assert set(d2) == {"t1", "labels", "mask", "affine"}
    assert d2["t1"].shape == d2["labels"].shape == d2["mask"].shape == SHAPE_2MM
    assert d2["t1"].dtype == np.float32 and d2["labels"].dtype == np.int64
    assert d2["mask"].dtype == bool and d2["affine"].dtype == np.float64
    assert d2["t1"].min() == 0 and d2["t1"].max() == 1
    np.testing.assert_allclose(d2["t1"], raw["t1_2mm"] / raw["t1_2mm"].max(), rtol=1e-6)
    np.testing.assert_array_equal(d2["labels"], raw["labels_2mm"])
    np.testing.assert_array_equal(d2["mask"], raw["labels_2mm"] > 0)
    d1 = colin27.load_colin27(resolution=1)
    assert d1["t1"].shape == SHAPE_1MM
    np.testing.assert_allclose(d1["t1"], t1_1mm / 133, rtol=1e-6)
    np.testing.assert_array_equal(d1["labels"], raw["labels_1mm"])
    np.testing.assert_array_equal(d1["mask"], raw["mask_1mm"])
    np.testing.assert_array_equal(d1["affine"], raw["affine_1mm"])
    assert colin27.CLASS_NAMES == mni152.CLASS_NAMES
    with pytest.raises(ConfigError, match=r"load_colin27: invalid value for `resolution`"):
        colin27.load_colin27(resolution=3)


def test_block_helpers_against_brute_force():
    rng = np.random.default_rng(7)
    # starts from affines: Colin27's 1 mm grid into the MNI152 2 mm grid
    a1 = np.eye(4)
    a1[:3, 3] = [-90, -125, -71]
    a2 = np.diag([2.0, 2.0, 2.0, 1.0])
    a2[:3, 3] = [-97.5, -133.5, -71.5]
    assert tissue.block_starts(a1, a2) == (-8, -9, -1)
    for bad in (a2 + np.pad([[0.5], [0], [0]], ((0, 1), (3, 0))),  # centres on a voxel centre
                np.diag([3.0, 3.0, 3.0, 1.0])):  # fmt: skip
        with pytest.raises(ValueError, match="not made of 2 x 2 x 2 blocks"):
            tissue.block_starts(a1, bad)
    # small volumes, some 2 mm voxels hanging over every edge
    a1 = np.eye(4)
    a2 = np.diag([2.0, 2.0, 2.0, 1.0])
    a2[:3, 3] = [-1.5, 0.5, -3.5]  # starts (-2, 0, -4)
    starts = tissue.block_starts(a1, a2)
    assert starts == (-2, 0, -4)
    vol = rng.integers(0, 256, size=(5, 6, 3), dtype=np.uint8)
    labels = rng.integers(0, 4, size=(5, 6, 3), dtype=np.uint8)
    shape2 = (4, 3, 4)
    got_mean = tissue.block_mean_2(vol, starts, shape2)
    got_mode = tissue.block_mode_2(labels, starts, shape2)
    for i, j, k in np.ndindex(shape2):
        vals, labs = [], []
        for d in np.ndindex(2, 2, 2):  # C order
            p = (starts[0] + 2 * i + d[0], starts[1] + 2 * j + d[1], starts[2] + 2 * k + d[2])
            ok = all(0 <= c < n for c, n in zip(p, vol.shape))
            vals.append(int(vol[p]) if ok else 0)
            labs.append(int(labels[p]) if ok else 0)
        assert got_mean[i, j, k] == int(np.floor(sum(vals) / 8 + 0.5))
        counts = {v: labs.count(v) for v in labs}
        best = max(counts.values())
        assert got_mode[i, j, k] == next(v for v in labs if counts[v] == best)
    # ties go to the first voxel's label, whichever class it is
    block = np.array([3, 3, 1, 1, 2, 2, 0, 0], np.uint8).reshape(2, 2, 2)
    assert tissue.block_mode_2(block)[0, 0, 0] == 3
    assert tissue.block_mode_2(block[::-1, ::-1, ::-1].copy())[0, 0, 0] == 0
