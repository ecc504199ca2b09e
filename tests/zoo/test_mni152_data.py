"""The shipped MNI152 data (1 mm and 2 mm): integrity, grids, the 2 mm rule (re-derived here by
other means), the labels' consistency with the T1, the hemisphere split and the template's
left-right symmetry."""

import hashlib
import shutil

import numpy as np
import pytest
from scipy import ndimage

from dilnet.errors import ConfigError, WeightsError
from dilnet_zoo.data import mni152
from dilnet_zoo.recipes import make_mni152_data as recipe

SHAPE = (99, 117, 95)
SHAPE_1MM = (197, 233, 189)
KEYS = {"t1", "labels", "affine", "split_index", "rule_version"}


@pytest.fixture(scope="module")
def data():
    return mni152.load_mni152()


def _raw(resolution):
    with np.load(mni152._path(resolution), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


@pytest.fixture(scope="module")
def raw():
    return _raw(2)


@pytest.fixture(scope="module")
def raw1():
    return _raw(1)


def _x_centres(affine, n):
    return affine[0, 0] * np.arange(n) + affine[0, 3]


def _dice(a, b):
    return 2 * (a & b).sum() / (a.sum() + b.sum())


def _eight(vol):
    """The eight 1 mm voxels of each 2 mm block, odd axes padded with 0 at the end, by strided
    slicing; order (0,0,0), (0,0,1), ..., (1,1,1)."""
    p = np.zeros(tuple(n + n % 2 for n in vol.shape), vol.dtype)
    p[: vol.shape[0], : vol.shape[1], : vol.shape[2]] = vol
    return [p[i::2, j::2, k::2] for i in (0, 1) for j in (0, 1) for k in (0, 1)]


def test_files_match_the_pinned_digests():
    for res, pinned, limit in ((2, mni152.SHA256, 0.5), (1, mni152.SHA256_1MM, 2.5)):
        path = mni152._path(res)
        assert hashlib.sha256(path.read_bytes()).hexdigest() == pinned, res
        assert path.stat().st_size < limit * 2**20, res


def test_corrupted_or_missing_file_raises(tmp_path, monkeypatch):
    good, bad = mni152._path(), tmp_path / mni152.FILENAME
    shutil.copy(good, bad)
    buf = bytearray(bad.read_bytes())
    buf[len(buf) // 2] ^= 0x01
    bad.write_bytes(bytes(buf))
    with pytest.raises(WeightsError, match=r"mni152_2mm\.npz: sha256 mismatch"):
        mni152._load(bad, mni152.SHA256)
    with pytest.raises(WeightsError, match="sha256 mismatch"):
        mni152._load(mni152._path(1), mni152.SHA256)  # the other resolution's digest
    monkeypatch.setattr(mni152, "_path", lambda resolution=2: bad)
    with pytest.raises(WeightsError, match="sha256 mismatch"):
        mni152.load_mni152()
    with pytest.raises(WeightsError, match="sha256 mismatch"):
        mni152.load_mni152(resolution=1)
    with pytest.raises(WeightsError, match=r"nothere\.npz: cannot read"):
        mni152._load(tmp_path / "nothere.npz", mni152.SHA256)
    # the intact copy passes with the same digest
    shutil.copy(good, bad)
    assert set(mni152._load(bad, mni152.SHA256)) == KEYS
    with pytest.raises(ConfigError, match=r"load_mni152: invalid value for `resolution`"):
        mni152.load_mni152(resolution=4)


def test_stored_arrays(raw, raw1):
    for r, shape in ((raw, SHAPE), (raw1, SHAPE_1MM)):
        assert set(r) == KEYS
        for k in ("t1", "labels"):
            assert r[k].shape == shape and r[k].dtype == np.uint8, k
        assert r["affine"].shape == (4, 4) and r["affine"].dtype == np.float64
        assert r["split_index"].shape == () and int(r["rule_version"]) == 2
        assert not any(v.dtype.hasobject for v in r.values())
    assert mni152.RULE_VERSION == recipe.RULE_VERSION == 2


def test_loaded_shapes_dtypes_and_affine(data):
    assert set(data) == {"t1", "labels", "affine", "split_index"}
    t1, labels = data["t1"], data["labels"]
    assert t1.shape == labels.shape == SHAPE
    assert t1.dtype == np.float32 and labels.dtype == np.int64
    assert 0.0 <= t1.min() and t1.max() <= 1.0 and t1.max() > 0.9
    assert set(np.unique(labels)) == {0, 1, 2, 3}
    assert mni152.CLASS_NAMES == ("background", "csf", "grey matter", "white matter")
    # 2 mm voxels centred on the 1 mm blocks: 1 mm origin (-98, -134, -72) + 0.5 mm
    expected = np.diag([2.0, 2.0, 2.0, 1.0])
    expected[:3, 3] = [-97.5, -133.5, -71.5]
    np.testing.assert_array_equal(data["affine"], expected)
    d1 = mni152.load_mni152(resolution=1)
    assert d1["t1"].shape == d1["labels"].shape == SHAPE_1MM
    expected = np.eye(4)
    expected[:3, 3] = [-98, -134, -72]
    np.testing.assert_array_equal(d1["affine"], expected)
    assert d1["split_index"] == 99


def test_2mm_is_the_block_rule_on_the_1mm_arrays(raw, raw1):
    t1 = np.stack(_eight(raw1["t1"]), -1).astype(np.int64)
    np.testing.assert_array_equal(raw["t1"], (t1.sum(-1) + 4) // 8)
    blocks = _eight(raw1["labels"])
    counts = np.stack([sum((b == c).astype(np.int64) for b in blocks) for c in range(4)], -1)
    best = counts.max(-1)
    expected = np.full(SHAPE, 255, np.uint8)
    for b in blocks:  # first voxel (C order) holding a most frequent label
        held = np.take_along_axis(counts, b[..., None].astype(np.intp), -1)[..., 0] == best
        take = held & (expected == 255)
        expected[take] = b[take]
    np.testing.assert_array_equal(raw["labels"], expected)


def test_labels_fill_exactly_the_skull_stripped_template(raw1):
    """Rule 2's mask is the T1's nonzero voxels: one 6-connected piece without holes."""
    t1, labels = raw1["t1"], raw1["labels"]
    np.testing.assert_array_equal(labels > 0, t1 > 0)
    _, n = ndimage.label(t1 > 0)
    assert n == 1 and np.array_equal(ndimage.binary_fill_holes(t1 > 0), t1 > 0)


def test_labels_are_ordered_by_t1_intensity(raw, raw1):
    for r in (raw1, raw):
        t1, labels = r["t1"].astype(np.float64), r["labels"]
        means = [t1[labels == k].mean() for k in (1, 2, 3)]
        assert means[0] < means[1] < means[2]
    t1, labels = raw1["t1"].astype(np.float64), raw1["labels"]
    csf, gm, wm = (t1[labels == k] for k in (1, 2, 3))
    assert np.percentile(csf, 95) < np.median(gm) < np.percentile(wm, 5)


def test_class_volumes_are_plausible(raw, raw1):
    """Measured at 1 mm: CSF 312, GM 872, WM 702 ml (the template is MNI-sized: larger than a
    native adult brain); the 2 mm plurality: 303, 877, 702 ml."""
    for r, ml in ((raw1, 1e-3), (raw, 8e-3)):
        v = np.bincount(r["labels"].ravel(), minlength=4) * ml
        assert 1800 < v[1:].sum() < 2000
        assert 0.12 < v[1] / v[1:].sum() < 0.2
        assert 1.0 < v[2] / v[3] < 1.5


def test_hemispheres_split_at_x_zero(data):
    s = data["split_index"]
    x = _x_centres(data["affine"], SHAPE[0])
    assert s == 49 and x[s - 1] < 0 < x[s]
    (t1_l, lab_l), (t1_r, lab_r) = mni152.hemispheres(data)
    assert t1_l.shape == lab_l.shape == (s, *SHAPE[1:])
    assert t1_r.shape == lab_r.shape == (SHAPE[0] - s, *SHAPE[1:])
    np.testing.assert_array_equal(lab_l, data["labels"][:s])
    np.testing.assert_array_equal(t1_r, data["t1"][s:])
    assert np.all(x[:s] < 0) and np.all(x[s:] > 0)
    # both hemispheres hold each class, in similar amounts
    for k in (1, 2, 3):
        nl, nr = (lab_l == k).sum(), (lab_r == k).sum()
        assert nl > 0 and abs(nl - nr) / max(nl, nr) < 0.25, (k, nl, nr)


def test_the_template_is_its_own_mirror_image(raw1, data):
    """Why the hemispheres are not a held-out test: at 1 mm the T1 is exactly symmetric and the
    labels nearly so (Atropos's MRF updates break ties in voxel order; observed Dice >= 0.998);
    the 2 mm grid's mirror is 1 mm off, so there Dice is lower (observed GM 0.905, WM 0.937)."""
    np.testing.assert_array_equal(raw1["t1"], raw1["t1"][::-1])
    labels = raw1["labels"]
    for k in (1, 2, 3):
        assert _dice(labels == k, labels[::-1] == k) > 0.995, mni152.CLASS_NAMES[k]
    labels = data["labels"]
    for k in (2, 3):
        assert _dice(labels == k, labels[::-1] == k) > 0.88, mni152.CLASS_NAMES[k]
    # a control that must fail the same bar: the labels shifted by 4 voxels along x
    assert _dice(labels == 2, np.roll(labels, 4, axis=0) == 2) < 0.8


def test_recipe_helpers_against_brute_force():
    rng = np.random.default_rng(0)
    vol = rng.integers(0, 256, size=(5, 4, 3), dtype=np.uint8)
    got = recipe.block_mean_2(vol)
    padded = np.zeros((6, 4, 4), np.int64)
    padded[:5, :4, :3] = vol
    for i, j, k in np.ndindex(got.shape):
        s = padded[2 * i : 2 * i + 2, 2 * j : 2 * j + 2, 2 * k : 2 * k + 2].sum()
        assert got[i, j, k] == int(np.floor(s / 8 + 0.5))
    labels = rng.integers(0, 4, size=(5, 4, 3), dtype=np.uint8)
    got = recipe.block_mode_2(labels)
    padded[:5, :4, :3] = labels
    for i, j, k in np.ndindex(got.shape):
        block = list(padded[2 * i : 2 * i + 2, 2 * j : 2 * j + 2, 2 * k : 2 * k + 2].ravel())
        best = max(block.count(v) for v in block)
        assert got[i, j, k] == next(v for v in block if block.count(v) == best)
    # 2 mm voxel centres are the means of their 1 mm blocks' centres
    a1 = np.array([[1.0, 0, 0, -98], [0, 1, 0, -134], [0, 0, 1, -72], [0, 0, 0, 1]])
    a2 = recipe.affine_2mm(a1)
    block = np.array([[2 * 3 + di, 2 * 5 + dj, 2 * 7 + dk, 1] for di in (0, 1) for dj in (0, 1)
                      for dk in (0, 1)], dtype=np.float64)  # fmt: skip
    np.testing.assert_allclose(a2 @ [3, 5, 7, 1], (a1 @ block.T).mean(axis=1))
    assert recipe.split_index(a2, 99) == 49
    assert recipe.split_index(a1, 197) == 99
    assert recipe.tissue.block_starts(a1, a2) == (0, 0, 0)
