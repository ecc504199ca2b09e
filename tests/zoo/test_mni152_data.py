"""The shipped MNI152 2 mm data: integrity, the label rule (re-derived here by other means),
the hemisphere split and the template's left-right symmetry."""

import hashlib
import shutil

import numpy as np
import pytest

from dilnet.errors import WeightsError
from dilnet_zoo.data import mni152
from dilnet_zoo.recipes import make_mni152_data as recipe

SHAPE = (99, 117, 95)
RADIUS = 2


@pytest.fixture(scope="module")
def data():
    return mni152.load_mni152()


@pytest.fixture(scope="module")
def raw():
    with np.load(mni152._path(), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _x_centres(affine, n):
    return affine[0, 0] * np.arange(n) + affine[0, 3]


def _ball(radius):
    r = np.arange(-radius, radius + 1)
    gx, gy, gz = np.meshgrid(r, r, r, indexing="ij")
    return (gx**2 + gy**2 + gz**2 <= radius**2).astype(np.float64)


def _fft_count(mask, kernel):
    """How many voxels of ``kernel`` (centred) hit ``mask`` at each voxel: circular FFT convolution
    (the caller pads so that nothing wraps)."""
    k = np.zeros(mask.shape)
    r = kernel.shape[0] // 2
    k[: 2 * r + 1, : 2 * r + 1, : 2 * r + 1] = kernel
    k = np.roll(k, (-r, -r, -r), axis=(0, 1, 2))
    return np.fft.irfftn(
        np.fft.rfftn(mask.astype(np.float64)) * np.fft.rfftn(k), s=mask.shape, axes=(0, 1, 2)
    )


def _outside(free):
    """Voxels of ``free`` 6-connected to the border of the volume through ``free``."""
    p = np.pad(free, 1, constant_values=True)  # a free shell around the volume joins all faces
    reached = np.zeros_like(p)
    reached[0] = True
    while True:
        grown = reached.copy()
        for axis in range(3):  # wrap-around only joins shell to shell
            grown |= np.roll(reached, 1, axis) | np.roll(reached, -1, axis)
        grown &= p
        if np.array_equal(grown, reached):
            return reached[1:-1, 1:-1, 1:-1]
        reached = grown


def test_file_sha256_matches_the_pinned_digest():
    digest = hashlib.sha256(mni152._path().read_bytes()).hexdigest()
    assert digest == mni152.SHA256
    assert mni152._path().stat().st_size < 2 * 2**20


def test_corrupted_or_missing_file_raises(tmp_path, monkeypatch):
    good, bad = mni152._path(), tmp_path / mni152.FILENAME
    shutil.copy(good, bad)
    buf = bytearray(bad.read_bytes())
    buf[len(buf) // 2] ^= 0x01
    bad.write_bytes(bytes(buf))
    with pytest.raises(WeightsError, match=r"mni152_2mm\.npz: sha256 mismatch"):
        mni152._load(bad, mni152.SHA256)
    monkeypatch.setattr(mni152, "_path", lambda: bad)
    with pytest.raises(WeightsError, match="sha256 mismatch"):
        mni152.load_mni152()
    with pytest.raises(WeightsError, match=r"nothere\.npz: cannot read"):
        mni152._load(tmp_path / "nothere.npz", mni152.SHA256)
    # the intact copy passes with the same digest
    shutil.copy(good, bad)
    assert set(mni152._load(bad, mni152.SHA256)) >= {"t1", "labels"}


def test_stored_arrays(raw):
    assert set(raw) == {"t1", "labels", "affine", "p_gm", "p_wm", "split_index", "rule_version"}
    for k in ("t1", "labels", "p_gm", "p_wm"):
        assert raw[k].shape == SHAPE and raw[k].dtype == np.uint8, k
    assert raw["affine"].shape == (4, 4) and raw["affine"].dtype == np.float64
    assert raw["split_index"].shape == () and int(raw["rule_version"]) == 1
    assert not any(v.dtype.hasobject for v in raw.values())


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
    # brain in the middle, T1 bright in white matter, dark outside the head
    assert t1[labels == 3].mean() > t1[labels == 2].mean() > t1[labels == 1].mean()


def test_tissue_part_of_labels_follows_the_rule(raw):
    p_gm = raw["p_gm"].astype(np.float64) / 255
    p_wm = raw["p_wm"].astype(np.float64) / 255
    labels = raw["labels"]
    tissue = p_gm + p_wm >= 0.5
    np.testing.assert_array_equal(labels == 3, tissue & (p_wm >= p_gm))
    np.testing.assert_array_equal(labels == 2, tissue & (p_gm > p_wm))
    assert not np.any(tissue & (labels < 2))  # CSF and background only where p_brain < 0.5


def test_csf_is_the_filled_closing_of_the_tissue(raw):
    """Re-derive labels 0/1 by FFT convolution for the closing and a separate flood fill."""
    labels = raw["labels"]
    tissue = labels >= 2
    # outside the volume is background; 2r of padding holds the dilation and the erosion's reach
    pad = 2 * RADIUS
    ball = _ball(RADIUS)
    dilated = _fft_count(np.pad(tissue, pad), ball) > 0.5
    closed = _fft_count(~dilated, ball) < 0.5
    closed = closed[pad:-pad, pad:-pad, pad:-pad]
    assert np.all(closed >= tissue)
    intracranial = ~_outside(~closed)
    np.testing.assert_array_equal(labels == 1, intracranial & ~tissue)
    np.testing.assert_array_equal(labels == 0, ~intracranial)
    # and the background is all one piece touching the border: no holes left
    assert np.array_equal(_outside(labels == 0), labels == 0)


def test_class_volumes_are_plausible(raw):
    counts = np.bincount(raw["labels"].ravel(), minlength=4)
    ml = counts * 8 / 1000  # 2 mm voxels
    intracranial = counts[1:].sum()
    assert 1500 < ml[1:].sum() < 2100  # an (MNI-sized) adult intracranial volume in ml
    assert 0.02 < counts[1] / intracranial < 0.08  # ventricles + sulcal CSF reached by r = 2
    assert 1.3 < counts[2] / counts[3] < 2.2  # more grey than white matter


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


def test_hemispheres_are_near_mirror_images(data):
    """The template is symmetric at 1 mm; the 2 mm grid's mirror is 1 mm off, so Dice < 1.
    Observed: grey matter 0.920, white matter 0.918."""
    labels = data["labels"]
    mirrored = labels[::-1]
    for k in (2, 3):
        a, b = labels == k, mirrored == k
        dice = 2 * (a & b).sum() / (a.sum() + b.sum())
        assert dice > 0.9, (mni152.CLASS_NAMES[k], dice)
    # a control that must fail the same bar: the labels shifted by 4 voxels along x
    a, b = labels == 2, np.roll(labels, 4, axis=0) == 2
    assert 2 * (a & b).sum() / (a.sum() + b.sum()) < 0.8


def test_recipe_helpers_against_brute_force():
    rng = np.random.default_rng(0)
    vol = rng.integers(0, 256, size=(5, 4, 3), dtype=np.uint8)
    got = recipe.block_mean_2(vol)
    padded = np.zeros((6, 4, 4), np.int64)
    padded[:5, :4, :3] = vol
    for i, j, k in np.ndindex(got.shape):
        s = padded[2 * i : 2 * i + 2, 2 * j : 2 * j + 2, 2 * k : 2 * k + 2].sum()
        assert got[i, j, k] == int(np.floor(s / 8 + 0.5))
    # 2 mm voxel centres are the means of their 1 mm blocks' centres
    a1 = np.array([[1.0, 0, 0, -98], [0, 1, 0, -134], [0, 0, 1, -72], [0, 0, 0, 1]])
    a2 = recipe.affine_2mm(a1)
    block = np.array([[2 * 3 + di, 2 * 5 + dj, 2 * 7 + dk, 1] for di in (0, 1) for dj in (0, 1)
                      for dk in (0, 1)], dtype=np.float64)  # fmt: skip
    np.testing.assert_allclose(a2 @ [3, 5, 7, 1], (a1 @ block.T).mean(axis=1))
    assert recipe.split_index(a2, 99) == 49
    # dilation / erosion by the ball against the definition
    mask = rng.random((7, 6, 8)) < 0.3
    offs = recipe.ball_offsets(RADIUS)
    assert len(offs) == 33
    dil, ero = recipe.dilate(mask, offs), recipe.erode(mask, offs)
    for p in np.ndindex(mask.shape):
        nb = [tuple(np.add(p, o)) for o in offs]
        inside = [q for q in nb if all(0 <= c < n for c, n in zip(q, mask.shape))]
        assert dil[p] == any(mask[q] for q in inside)
        assert ero[p] == all(mask[q] for q in inside)  # outside counts as foreground
    # hole filling: a hollow cube's inside is filled, an open one's is not
    cube = np.zeros((7, 7, 7), bool)
    cube[1:6, 1:6, 1:6] = True
    cube[2:5, 2:5, 2:5] = False
    assert recipe.fill_holes(cube)[1:6, 1:6, 1:6].all()
    cube[3, 3, 1] = False  # a tunnel to the outside
    assert not recipe.fill_holes(cube)[3, 3, 3]
