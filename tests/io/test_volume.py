"""Volume files: the format from the suffix, channels-first reading of NIfTI, NumPy and TIFF, the
on-disk conventions of writing (checked with nibabel, tifffile and numpy themselves), NIfTI
headers carried from `like`, dtype rules, npz keys, atomic writes, and every error's wording."""

import errno
import gzip
import os
import re
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import tifffile

from dilnet.errors import VolumeError
from dilnet.io.volume import Volume, read_volume, volume_format, write_volume
from dilnet_zoo.data.mni152 import load_mni152

SHAPE = (99, 117, 95)  # the MNI152 2 mm template, (X, Y, Z) voxel axes
SUFFIX_LIST = ".nii, .nii.gz, .npy, .npz, .tif, .tiff"
CORRUPT = "received a file that is truncated, corrupted or of another kind"


@pytest.fixture(scope="module")
def mni():
    return load_mni152()


@pytest.fixture(scope="module")
def probs(mni):
    """Two channels of float32 "class probabilities", channels first: (2, X, Y, Z)."""
    return np.stack([mni["t1"], 1 - mni["t1"]])


def scanner_nifti(path, data, affine):
    """A NIfTI as a scanner pipeline writes it: distinct qform/sform codes, a description, units.
    Written by nibabel itself, independently of dilnet."""
    image = nib.Nifti1Image(data, affine)
    image.set_qform(affine, code=1)  # scanner
    image.set_sform(affine, code=4)  # MNI152
    image.header["descrip"] = b"MNI152 2mm T1"
    image.header.set_xyzt_units("mm", "sec")
    nib.save(image, path)
    return path


@pytest.fixture
def t1_path(tmp_path, mni):
    return scanner_nifti(tmp_path / "t1.nii.gz", mni["t1"], mni["affine"])


def message(text):
    """A regex matching `text` exactly, from the start of the message."""
    return "^" + re.escape(text) + "$"


def listing(directory):
    return sorted(os.listdir(directory))


# ---------------------------------------------------------------------------- volume_format


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("scan.nii", "nifti"),
        ("scan.nii.gz", "nifti"),
        ("SCAN.NII.GZ", "nifti"),
        (Path("dir.v2/scan.nii.gz"), "nifti"),
        ("a.b.npy", "npy"),
        ("x.npz", "npz"),
        ("x.tif", "tiff"),
        ("x.TIFF", "tiff"),
    ],
)
def test_volume_format(path, expected):
    assert volume_format(path) == expected


@pytest.mark.parametrize(
    ("path", "received"),
    [
        ("scan.mha", "'.mha'"),
        ("scan.nii.bz2", "'.bz2'"),
        ("scan", "(no suffix)"),
        ("dir/.npy", "(no suffix)"),  # a hidden file named ".npy", not a volume
    ],
)
def test_volume_format_unknown(path, received):
    expected = f"{path}: unknown volume type {received}; expected one of {SUFFIX_LIST}."
    with pytest.raises(VolumeError, match=message(expected)):
        volume_format(path)
    with pytest.raises(VolumeError, match=message(expected)):
        read_volume(path)
    with pytest.raises(VolumeError, match=message(expected)):
        write_volume(path, np.zeros((2, 3, 4)))


def test_path_must_be_a_path():
    with pytest.raises(
        VolumeError,
        match=message(
            "read_volume: invalid value for `path`. Expected a str or os.PathLike; received path=3."
        ),
    ):
        read_volume(3)


# ---------------------------------------------------------------------------- NIfTI


def test_read_nifti_one_channel(t1_path, mni):
    vol = read_volume(t1_path)
    assert vol.format == "nifti"
    assert vol.path == t1_path
    assert vol.data.shape == (1, *SHAPE)
    assert (vol.channels, vol.spatial) == (1, SHAPE)
    assert vol.data.dtype == np.float32
    assert vol.data.flags.c_contiguous
    np.testing.assert_array_equal(vol.data[0], mni["t1"])
    assert vol.affine.dtype == np.float64
    np.testing.assert_allclose(vol.affine, mni["affine"])
    assert isinstance(vol.header, nib.Nifti1Header)
    assert vol.header["descrip"] == b"MNI152 2mm T1"


def test_read_nifti_channels_last_moves_them_first(tmp_path, mni, probs):
    path = tmp_path / "probs.nii.gz"
    nib.save(nib.Nifti1Image(np.stack(list(probs), axis=-1), mni["affine"]), path)
    assert nib.load(path).shape == (*SHAPE, 2)  # (X, Y, Z, C) on disk
    vol = read_volume(path)
    assert vol.data.shape == (2, *SHAPE)
    np.testing.assert_array_equal(vol.data, probs)


def test_read_nifti_5d_with_singleton_time(tmp_path, mni, probs):
    path = tmp_path / "vector.nii"
    on_disk = np.stack(list(probs), axis=-1)[:, :, :, np.newaxis, :]
    nib.save(nib.Nifti1Image(on_disk, mni["affine"]), path)
    assert nib.load(path).shape == (*SHAPE, 1, 2)
    vol = read_volume(path)
    assert vol.data.shape == (2, *SHAPE)
    np.testing.assert_array_equal(vol.data, probs)


def test_read_nifti_applies_scaling(tmp_path, mni):
    path = tmp_path / "scaled.nii.gz"
    # nibabel stores the floats as uint8 with a slope of about 1/255
    nib.save(nib.Nifti1Image(mni["t1"], mni["affine"], dtype=np.uint8), path)
    # nibabel moves the file's scaling from the header to the data proxy
    assert nib.load(path).dataobj.slope == pytest.approx(mni["t1"].max() / 255, rel=1e-3)
    vol = read_volume(path)
    assert vol.data.dtype.kind == "f"
    np.testing.assert_allclose(vol.data[0], mni["t1"], atol=1 / 255)


def test_write_nifti_like_keeps_header_and_affine(tmp_path, t1_path, mni):
    like = read_volume(t1_path)
    out = write_volume(tmp_path / "labels.nii.gz", mni["labels"], like=like)
    assert out == tmp_path / "labels.nii.gz"
    image = nib.load(out)
    header = image.header
    assert image.shape == SHAPE
    # int64 labels in [0, 3] are stored as uint8, exactly and without scaling
    assert header.get_data_dtype() == np.uint8
    stored = np.asanyarray(image.dataobj)
    assert stored.dtype == np.uint8
    np.testing.assert_array_equal(stored, mni["labels"])
    assert header.get_slope_inter() == (None, None)
    np.testing.assert_allclose(image.affine, mni["affine"])
    assert (int(header["sform_code"]), int(header["qform_code"])) == (4, 1)
    np.testing.assert_allclose(header.get_sform(), mni["affine"])
    np.testing.assert_allclose(header.get_qform(), mni["affine"])
    assert header["descrip"] == b"MNI152 2mm T1"
    assert header.get_zooms() == (2.0, 2.0, 2.0)
    assert header.get_xyzt_units() == ("mm", "sec")
    assert (float(header["cal_min"]), float(header["cal_max"])) == (0.0, 0.0)


def test_write_nifti_resets_scaling_of_like(tmp_path, t1_path, mni):
    read = read_volume(t1_path)
    header = read.header.copy()
    header.set_slope_inter(2.0, 10.0)  # a header as a caller might build it
    like = Volume(data=read.data, affine=read.affine, header=header, format="nifti", path=t1_path)
    image = nib.load(write_volume(tmp_path / "labels.nii", mni["labels"], like=like))
    assert (image.dataobj.slope, image.dataobj.inter) == (1.0, 0.0)
    assert image.get_data_dtype() == np.uint8
    np.testing.assert_array_equal(np.asanyarray(image.dataobj), mni["labels"])


def test_write_nifti_channels_last_on_disk(tmp_path, t1_path, probs):
    like = read_volume(t1_path)
    out = write_volume(tmp_path / "probs.nii.gz", probs, like=like)
    image = nib.load(out)
    assert image.shape == (*SHAPE, 2)  # channels last in the file
    assert image.get_data_dtype() == np.float32
    on_disk = np.asanyarray(image.dataobj)
    for c in range(2):
        np.testing.assert_array_equal(on_disk[..., c], probs[c])
    assert image.header.get_zooms() == (2.0, 2.0, 2.0, 1.0)
    assert (int(image.header["sform_code"]), int(image.header["qform_code"])) == (4, 1)
    # a vector per voxel, not a time series: intent "vector", `like`'s "mm" but no "sec"
    assert int(image.header["intent_code"]) == 1007
    assert image.header.get_intent() == ("vector", (), "")
    assert image.header.get_xyzt_units() == ("mm", "unknown")
    assert float(image.header["toffset"]) == 0.0
    back = read_volume(out)  # channels first in memory
    assert back.data.shape == (2, *SHAPE)
    np.testing.assert_array_equal(back.data, probs)


def test_write_nifti_intent(tmp_path, t1_path, mni, probs):
    """Channels get intent "vector" with or without `like`; one channel gets none, even when
    `like` has one (it describes `like`'s data, not the output's)."""
    image = nib.load(write_volume(tmp_path / "plain.nii", probs))
    assert int(image.header["intent_code"]) == 1007
    assert image.header.get_xyzt_units() == ("unknown", "unknown")
    vector_path = tmp_path / "vector.nii.gz"
    write_volume(vector_path, probs, like=read_volume(t1_path))
    like = read_volume(vector_path)  # a "vector" input, e.g. several modalities
    assert like.data.shape == (2, *SHAPE)
    labels = nib.load(write_volume(tmp_path / "labels.nii.gz", mni["labels"], like=like))
    assert int(labels.header["intent_code"]) == 0
    assert labels.header.get_xyzt_units() == ("mm", "unknown")
    np.testing.assert_array_equal(np.asanyarray(labels.dataobj), mni["labels"])
    again = nib.load(write_volume(tmp_path / "again.nii.gz", probs, like=like))
    assert int(again.header["intent_code"]) == 1007
    np.testing.assert_array_equal(read_volume(tmp_path / "again.nii.gz").data, probs)
    # rank 2: (X, Y, C) on disk, a vector too
    sliced = probs[:, :, :, 40]
    flat = nib.load(write_volume(tmp_path / "slice.nii", sliced, rank=2))
    assert flat.shape == (*SHAPE[:2], 2)
    assert int(flat.header["intent_code"]) == 1007
    np.testing.assert_array_equal(read_volume(tmp_path / "slice.nii", rank=2).data, sliced)


def test_write_nifti_affine_overrides_like(tmp_path, t1_path, mni):
    like = read_volume(t1_path)
    affine = np.diag([1.5, 1.5, 1.5, 1.0])
    affine[:3, 3] = (-70.0, -90.0, -50.0)
    out = write_volume(tmp_path / "moved.nii.gz", mni["labels"], like=like, affine=affine)
    image = nib.load(out)
    np.testing.assert_allclose(image.affine, affine)
    np.testing.assert_allclose(image.header.get_qform(), affine)
    assert (int(image.header["sform_code"]), int(image.header["qform_code"])) == (4, 1)
    assert image.header.get_zooms() == (1.5, 1.5, 1.5)
    assert image.header["descrip"] == b"MNI152 2mm T1"


def test_write_nifti_without_like(tmp_path, mni):
    image = nib.load(write_volume(tmp_path / "plain.nii.gz", mni["t1"]))
    np.testing.assert_array_equal(image.affine, np.eye(4))
    # nibabel's defaults for a new image: sform "aligned", qform unknown
    assert (int(image.header["sform_code"]), int(image.header["qform_code"])) == (2, 0)
    np.testing.assert_array_equal(np.asanyarray(image.dataobj), mni["t1"])
    image = nib.load(write_volume(tmp_path / "placed.nii", mni["t1"], affine=mni["affine"]))
    np.testing.assert_allclose(image.affine, mni["affine"])
    assert image.header.get_zooms() == (2.0, 2.0, 2.0)


def test_write_nifti_like_from_npz_uses_its_affine(tmp_path, mni):
    np.savez(tmp_path / "in.npz", volume=mni["t1"], affine=mni["affine"])
    like = read_volume(tmp_path / "in.npz")
    np.testing.assert_array_equal(like.affine, mni["affine"])
    image = nib.load(write_volume(tmp_path / "out.nii.gz", mni["labels"], like=like))
    np.testing.assert_allclose(image.affine, mni["affine"])


def test_write_nifti_gz_is_gzip_and_deterministic(tmp_path, mni):
    first = write_volume(tmp_path / "a.nii.gz", mni["labels"]).read_bytes()
    second = write_volume(tmp_path / "a.nii.gz", mni["labels"]).read_bytes()
    assert first == second  # mtime=0 in the gzip header
    assert first[:2] == b"\x1f\x8b"
    raw = gzip.decompress(first)
    assert raw[344:348] == b"n+1\x00"  # NIfTI-1 single-file magic
    assert write_volume(tmp_path / "a.nii", mni["labels"]).read_bytes()[:2] != b"\x1f\x8b"


@pytest.mark.parametrize(
    ("shape", "rank", "expected"),
    [
        (
            (4, 5, 6, 7, 8),
            3,
            "expected a 3-D volume or 4-D with channels last (X, Y, Z, C) or 5-D "
            "(X, Y, Z, 1, C); received shape (4, 5, 6, 7, 8).",
        ),
        (
            (4, 5),
            3,
            "expected a 3-D volume or 4-D with channels last (X, Y, Z, C) or 5-D "
            "(X, Y, Z, 1, C); received shape (4, 5).",
        ),
        (
            (4, 5, 6, 7),
            2,
            "expected a 2-D volume or 3-D with channels last (X, Y, C); received shape "
            "(4, 5, 6, 7).",
        ),
    ],
)
def test_read_nifti_wrong_rank(tmp_path, shape, rank, expected):
    path = tmp_path / "scan.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros(shape, np.float32), np.eye(4)), path)
    with pytest.raises(VolumeError, match=message(f"{path}: {expected}")):
        read_volume(path, rank=rank)


# ---------------------------------------------------------------------------- TIFF


def test_write_tiff_stack(tmp_path, mni):
    out = write_volume(tmp_path / "labels.tif", mni["labels"])
    with tifffile.TiffFile(out) as tif:
        assert tif.is_imagej
        assert tif.series[0].axes == "ZYX"
        stored = tif.asarray()
    assert stored.dtype == np.uint8
    np.testing.assert_array_equal(stored, mni["labels"])
    vol = read_volume(out)
    assert vol.data.shape == (1, *SHAPE)
    np.testing.assert_array_equal(vol.data[0], mni["labels"])


@pytest.mark.parametrize(("dtype", "imagej"), [(np.float32, True), (np.float64, False)])
def test_write_tiff_hyperstack_zcyx(tmp_path, probs, dtype, imagej):
    data = probs.astype(dtype)
    out = write_volume(tmp_path / "probs.tiff", data)
    with tifffile.TiffFile(out) as tif:
        assert tif.is_imagej == imagej  # float64 is not an ImageJ type: a tifffile "shaped" file
        series = tif.series[0]
        assert series.axes == "ZCYX"
        assert series.shape == (SHAPE[0], 2, *SHAPE[1:])
        stored = series.asarray()
    assert stored.dtype == dtype
    np.testing.assert_array_equal(stored, np.moveaxis(data, 0, 1))
    vol = read_volume(out)
    assert vol.data.shape == (2, *SHAPE)
    np.testing.assert_array_equal(vol.data, data)


def test_write_tiff_rank2_channels_cyx(tmp_path, probs):
    image = probs[:, :, :, 40]
    out = write_volume(tmp_path / "slice.tif", image, rank=2)
    with tifffile.TiffFile(out) as tif:
        assert tif.series[0].axes == "CYX"
        np.testing.assert_array_equal(tif.asarray(), image)
    np.testing.assert_array_equal(read_volume(out, rank=2).data, image)


def test_read_tiff_foreign_layouts(tmp_path, mni):
    rng = np.random.default_rng(0)
    stack = (mni["t1"] * 255).astype(np.uint8)
    # a plain multi-page file without metadata: tifffile calls its pages axis I
    tifffile.imwrite(tmp_path / "pages.tif", stack, metadata=None, photometric="minisblack")
    with tifffile.TiffFile(tmp_path / "pages.tif") as tif:
        assert tif.series[0].axes == "IYX"
    np.testing.assert_array_equal(read_volume(tmp_path / "pages.tif").data, stack[np.newaxis])
    # channels first, as another tool might label them
    cz = rng.random((2, 3, 4, 5), dtype=np.float32)
    tifffile.imwrite(tmp_path / "cz.tif", cz, metadata={"axes": "CZYX"}, photometric="minisblack")
    np.testing.assert_array_equal(read_volume(tmp_path / "cz.tif").data, cz)
    # an RGB image: samples are channels
    rgb = rng.integers(0, 255, (6, 7, 3), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb")
    with tifffile.TiffFile(tmp_path / "rgb.tif") as tif:
        assert tif.series[0].axes == "YXS"
    np.testing.assert_array_equal(
        read_volume(tmp_path / "rgb.tif", rank=2).data, np.moveaxis(rgb, -1, 0)
    )
    # a single 2-D image read as a volume: one slice
    plane = rng.random((6, 7), dtype=np.float32)
    tifffile.imwrite(tmp_path / "plane.tif", plane)
    vol = read_volume(tmp_path / "plane.tif")
    assert vol.data.shape == (1, 1, 6, 7)
    np.testing.assert_array_equal(vol.data[0, 0], plane)


def test_tiff_one_slice_round_trips(tmp_path, probs):
    one_slice = probs[:, :1]  # (C, 1, Y, X): ImageJ drops the singleton Z
    out = write_volume(tmp_path / "slice.tif", one_slice)
    with tifffile.TiffFile(out) as tif:
        assert tif.series[0].axes == "CYX"
    np.testing.assert_array_equal(read_volume(out).data, one_slice)


@pytest.mark.parametrize(
    ("data", "metadata", "rank", "expected"),
    [
        (
            np.zeros((2, 3, 4, 5), np.float32),
            {"axes": "TZYX"},
            3,
            "expected TIFF series axes ZYX (a stack) or ZCYX, CZYX (a hyperstack with "
            "channels); received axes 'TZYX' with shape (2, 3, 4, 5).",
        ),
        (
            np.zeros((3, 4, 5), np.float32),
            {"axes": "ZYX"},
            2,
            "expected TIFF series axes YX (an image) or CYX, YXS (with channels); received axes "
            "'ZYX' with shape (3, 4, 5).",
        ),
    ],
)
def test_read_tiff_wrong_rank(tmp_path, data, metadata, rank, expected):
    path = tmp_path / "scan.tif"
    tifffile.imwrite(path, data, imagej=True, metadata=metadata)
    with pytest.raises(VolumeError, match=message(f"{path}: {expected}")):
        read_volume(path, rank=rank)


@pytest.mark.parametrize("dtype", [np.uint8, np.float64])  # ImageJ and shaped outputs
def test_write_tiff_like_keeps_resolution_and_spacing(tmp_path, mni, dtype):
    source = tmp_path / "scan.tif"
    tifffile.imwrite(
        source,
        (mni["t1"] * 255).astype(np.uint8),
        imagej=True,
        resolution=(0.5, 0.25),
        metadata={"axes": "ZYX", "spacing": 2.5, "unit": "um"},
    )
    like = read_volume(source)
    assert like.header == {
        "axes": "ZYX",
        "resolution": (0.5, 0.25),
        "spacing": 2.5,
        "unit": "um",
    }
    out = write_volume(tmp_path / "out.tif", mni["labels"].astype(dtype), like=like)
    with tifffile.TiffFile(out) as tif:
        assert tif.pages.first.resolution == pytest.approx((0.5, 0.25))
        metadata = tif.imagej_metadata or tif.shaped_metadata[0]
        assert (metadata["spacing"], metadata["unit"]) == (2.5, "um")
    assert read_volume(out).header == like.header


# ---------------------------------------------------------------------------- NumPy


def test_npy_round_trip_as_is(tmp_path, mni, probs):
    out = write_volume(tmp_path / "labels.npy", mni["labels"])
    stored = np.load(out, allow_pickle=False)
    assert stored.dtype == np.int64  # no narrowing for NumPy files
    np.testing.assert_array_equal(stored, mni["labels"])
    vol = read_volume(out)
    assert (vol.format, vol.affine, vol.header) == ("npy", None, None)
    np.testing.assert_array_equal(vol.data, mni["labels"][np.newaxis])
    out = write_volume(tmp_path / "probs.npy", probs)
    np.testing.assert_array_equal(np.load(out, allow_pickle=False), probs)
    np.testing.assert_array_equal(read_volume(out).data, probs)


def test_npy_any_rank(tmp_path):
    rng = np.random.default_rng(1)
    line = rng.random((3, 8))  # rank 1: three channels of 8 samples
    np.save(tmp_path / "line.npy", line)
    assert read_volume(tmp_path / "line.npy", rank=1).data.shape == (3, 8)
    hyper = rng.random((2, 3, 4, 5))
    np.save(tmp_path / "hyper.npy", hyper)
    assert read_volume(tmp_path / "hyper.npy", rank=4).data.shape == (1, 2, 3, 4, 5)


def test_npy_big_endian_read_as_native(tmp_path, mni):
    np.save(tmp_path / "be.npy", mni["t1"].astype(">f4"))
    vol = read_volume(tmp_path / "be.npy")
    assert vol.data.dtype == np.float32
    assert vol.data.dtype.isnative
    np.testing.assert_array_equal(vol.data[0], mni["t1"])


@pytest.mark.parametrize(
    ("shape", "rank", "expected"),
    [
        (
            (4, 5),
            3,
            "expected a 3-D volume or 4-D with channels first (C, Z, Y, X); received shape (4, 5).",
        ),
        (
            (2, 3, 4, 5, 6),
            3,
            "expected a 3-D volume or 4-D with channels first (C, Z, Y, X); received shape "
            "(2, 3, 4, 5, 6).",
        ),
        (
            (2, 3, 4, 5),
            2,
            "expected a 2-D volume or 3-D with channels first (C, Y, X); received shape "
            "(2, 3, 4, 5).",
        ),
        (
            (5,),
            2,
            "expected a 2-D volume or 3-D with channels first (C, Y, X); received shape (5,).",
        ),
    ],
)
def test_read_npy_wrong_rank(tmp_path, shape, rank, expected):
    path = tmp_path / "scan.npy"
    np.save(path, np.zeros(shape, np.float32))
    with pytest.raises(VolumeError, match=message(f"{path}: {expected}")):
        read_volume(path, rank=rank)


def test_npz_written_under_volume_with_affine(tmp_path, t1_path, mni, probs):
    like = read_volume(t1_path)
    out = write_volume(tmp_path / "probs.npz", probs, like=like)
    with np.load(out, allow_pickle=False) as npz:
        assert sorted(npz.files) == ["affine", "volume"]
        np.testing.assert_array_equal(npz["volume"], probs)
        np.testing.assert_allclose(npz["affine"], mni["affine"])
    with zipfile.ZipFile(out) as archive:
        assert {info.compress_type for info in archive.infolist()} == {zipfile.ZIP_DEFLATED}
    vol = read_volume(out)
    np.testing.assert_array_equal(vol.data, probs)
    np.testing.assert_allclose(vol.affine, mni["affine"])
    out = write_volume(tmp_path / "labels.npz", mni["labels"])
    with np.load(out, allow_pickle=False) as npz:
        assert npz.files == ["volume"]
        assert npz["volume"].dtype == np.int64
    assert read_volume(out).affine is None


def test_npz_key_rules(tmp_path):
    rng = np.random.default_rng(2)
    a, b = rng.random((3, 4, 5)), rng.random((2, 3, 4, 5))
    np.savez(tmp_path / "one.npz", image=a)
    np.testing.assert_array_equal(read_volume(tmp_path / "one.npz").data, a[np.newaxis])
    np.savez(tmp_path / "named.npz", a=a, volume=b)
    np.testing.assert_array_equal(read_volume(tmp_path / "named.npz").data, b)
    np.testing.assert_array_equal(read_volume(tmp_path / "named.npz", key="a").data[0], a)
    path = tmp_path / "two.npz"
    np.savez(path, a=a, b=b)
    np.testing.assert_array_equal(read_volume(path, key="b").data, b)
    with pytest.raises(
        VolumeError,
        match=message(
            f"{path}: expected one array or one named 'volume'; received arrays ['a', 'b']. "
            "Pass key= (--key on the command line) to choose one."
        ),
    ):
        read_volume(path)
    with pytest.raises(
        VolumeError,
        match=message(f"{path}: expected an array named 'c'; received arrays ['a', 'b']."),
    ):
        read_volume(path, key="c")
    with pytest.raises(
        VolumeError,
        match=message(
            f"{tmp_path / 'x.npy'}: invalid value for `key`. Expected None for a file other "
            "than .npz; "
            "received key='a'."
        ),
    ):
        read_volume(tmp_path / "x.npy", key="a")
    np.savez(tmp_path / "empty.npz")
    with pytest.raises(
        VolumeError,
        match=message(f"{tmp_path / 'empty.npz'}: expected an array; received an empty archive."),
    ):
        read_volume(tmp_path / "empty.npz")
    np.savez(tmp_path / "bad_affine.npz", volume=a, affine=np.zeros(3))
    with pytest.raises(
        VolumeError,
        match=message(
            f"{tmp_path / 'bad_affine.npz'}: expected 'affine' to be a 4x4 matrix of numbers; "
            "received shape (3,) dtype float64."
        ),
    ):
        read_volume(tmp_path / "bad_affine.npz")


def test_npz_member_wrong_rank_names_it(tmp_path):
    path = tmp_path / "flat.npz"
    np.savez(path, volume=np.zeros((4, 5)))
    with pytest.raises(
        VolumeError,
        match=message(
            f"{path}: expected 'volume' to be a 3-D volume or 4-D with channels first "
            "(C, Z, Y, X); received shape (4, 5)."
        ),
    ):
        read_volume(path)


# ---------------------------------------------------------------------------- all formats


@pytest.mark.parametrize("name", ["v.nii", "v.nii.gz", "v.npy", "v.npz", "v.tif"])
@pytest.mark.parametrize("rank", [2, 3])
def test_round_trip_every_format(tmp_path, mni, probs, name, rank):
    labels, floats = mni["labels"], probs.astype(np.float64)
    if rank == 2:
        labels, floats = labels[:, :, 40], floats[:, :, :, 40]
    for array in (labels, labels[np.newaxis], floats, floats[:1]):
        vol = read_volume(write_volume(tmp_path / name, array, rank=rank), rank=rank)
        expected = array if array.ndim == rank + 1 else array[np.newaxis]
        assert vol.data.shape == expected.shape
        assert vol.data.flags.c_contiguous
        np.testing.assert_array_equal(vol.data, expected)
    assert listing(tmp_path) == [name]


def read_stored(path):
    """The array and dtype as the format's own library reads the file."""
    fmt = volume_format(path)
    if fmt == "nifti":
        return np.asanyarray(nib.load(path).dataobj)
    if fmt == "tiff":
        return tifffile.imread(path)
    if fmt == "npz":
        with np.load(path, allow_pickle=False) as npz:
            return npz["volume"]
    return np.load(path, allow_pickle=False)


@pytest.mark.parametrize("name", ["v.nii.gz", "v.tif"])
@pytest.mark.parametrize(
    ("low", "high", "dtype"),
    [
        (0, 3, np.uint8),
        (0, 255, np.uint8),
        (-1, 3, np.int16),
        (0, 256, np.int16),
        (0, 40_000, np.int32),
        (-(2**31), 2**31 - 1, np.int32),
        (0, 2**40, np.int64),  # fits no smaller type: kept
    ],
)
def test_int64_labels_narrowed_exactly(tmp_path, name, low, high, dtype):
    rng = np.random.default_rng(3)
    labels = rng.integers(low, high, (6, 7, 8), endpoint=True, dtype=np.int64)
    labels[0, 0, :2] = (low, high)
    stored = read_stored(write_volume(tmp_path / name, labels))
    assert stored.dtype == dtype
    np.testing.assert_array_equal(stored, labels)


@pytest.mark.parametrize("name", ["v.nii.gz", "v.tif", "v.npy", "v.npz"])
def test_bool_written_as_uint8_float64_kept(tmp_path, mni, name):
    mask = mni["labels"] > 0
    stored = read_stored(write_volume(tmp_path / name, mask))
    assert stored.dtype == np.uint8
    np.testing.assert_array_equal(stored, mask)
    t1 = mni["t1"].astype(np.float64)
    stored = read_stored(write_volume(tmp_path / name, t1))
    assert stored.dtype == np.float64
    np.testing.assert_array_equal(stored, t1)


# ---------------------------------------------------------------------------- atomic writes


def fail_midway(fileobj, *args, **kwargs):
    """Write part of a file, then fail as a full disk would."""
    if not hasattr(fileobj, "write"):  # nibabel's to_stream(self, stream): self comes first
        fileobj = args[0]
    fileobj.write(b"\0" * 4096)
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize(
    ("name", "target", "attribute"),
    [
        ("v.nii.gz", nib.Nifti1Image, "to_stream"),
        ("v.nii", nib.Nifti1Image, "to_stream"),
        ("v.tif", tifffile, "imwrite"),
        ("v.npy", np, "save"),
        ("v.npz", np, "savez_compressed"),
    ],
)
def test_failed_write_keeps_existing_file(tmp_path, monkeypatch, name, target, attribute):
    path = tmp_path / name
    write_volume(path, np.arange(60, dtype=np.uint8).reshape(3, 4, 5))
    before = path.read_bytes()
    monkeypatch.setattr(target, attribute, fail_midway)
    with pytest.raises(
        VolumeError,
        match=message(f"{path}: cannot be written (OSError: [Errno 28] No space left on device)."),
    ) as info:
        write_volume(path, np.ones((2, 3, 4, 5), np.float32))
    assert isinstance(info.value.__cause__, OSError)
    assert path.read_bytes() == before
    assert listing(tmp_path) == [name]  # no temporary file left behind


def test_interrupted_write_leaves_nothing(tmp_path, monkeypatch):
    def interrupt(*args, **kwargs):
        args[0].write(b"II*\0")
        raise KeyboardInterrupt

    monkeypatch.setattr(tifffile, "imwrite", interrupt)
    with pytest.raises(KeyboardInterrupt):
        write_volume(tmp_path / "v.tif", np.zeros((3, 4, 5), np.float32))
    assert listing(tmp_path) == []


# ---------------------------------------------------------------------------- errors


def write_bytes(path, data):
    path.write_bytes(data)
    return path


def truncated(path):
    data = path.read_bytes()
    return write_bytes(path, data[: len(data) // 2])


@pytest.mark.parametrize(
    ("name", "make", "expected"),
    [
        ("scan.nii.gz", None, "no such file."),
        ("scan.tif", None, "no such file."),
        ("scan.npz", None, "no such file."),
        (
            "scan.nii.gz",
            lambda p: write_bytes(p, b"hello, not a volume"),
            f"expected a NIfTI-1 or NIfTI-2 file; {CORRUPT} (ImageFileError: File {{path}} is not "
            "a gzip file).",
        ),
        (
            "scan.nii",
            lambda p: write_bytes(p, b"hello, not a volume"),
            f"expected a NIfTI-1 or NIfTI-2 file; {CORRUPT} (ImageFileError: Cannot work out file "
            f'type of "{{path}}").',
        ),
        (
            "scan.nii.gz",
            lambda p: truncated(write_volume(p, np.random.default_rng(4).random((20, 30, 40)))),
            f"expected a NIfTI-1 or NIfTI-2 file; {CORRUPT} (EOFError: Compressed file ended "
            "before the end-of-stream marker was reached).",
        ),
        (
            "scan.tif",
            lambda p: write_bytes(p, b"hello, not a volume"),
            f"expected a TIFF file; {CORRUPT} (TiffFileError: not a TIFF file: header=b'hell').",
        ),
        (
            "scan.npy",
            lambda p: write_bytes(p, b"hello, not a volume"),
            f"expected a NumPy .npy array file; {CORRUPT}: it does not start as one does.",
        ),
        (
            "scan.npz",
            lambda p: truncated(write_volume(p, np.zeros((3, 4, 5)))),
            f"expected a NumPy .npz archive; {CORRUPT} (BadZipFile: File is not a zip file).",
        ),
        (
            "scan.npy",
            lambda p: np.save(p, np.array([1, "a", None], dtype=object), allow_pickle=True),
            f"expected a NumPy .npy array file; {CORRUPT} (an array of Python objects, dtype "
            "object, never unpickled).",
        ),
        (
            "scan.npy",
            lambda p: (
                np.savez(p.with_suffix(".tmp"), a=np.zeros(3))
                or os.replace(p.with_suffix(".tmp.npz"), p)
            ),
            "expected a NumPy .npy array file; received an .npz archive.",
        ),
        (
            "scan.npz",
            lambda p: (
                np.save(p.with_suffix(".npy"), np.zeros(3)) or os.replace(p.with_suffix(".npy"), p)
            ),
            "expected a NumPy .npz archive; received an .npy array file.",
        ),
        (
            "scan.npy",
            lambda p: np.save(p, np.zeros((3, 4, 5), complex)),
            "expected numeric data (bool, integer or float); received dtype complex128.",
        ),
        (
            "scan.npy",
            lambda p: np.save(p, np.array([["a", "b"]] * 3)),
            "expected numeric data (bool, integer or float); received dtype <U1.",
        ),
        (
            "scan.npz",
            lambda p: np.savez(p, volume=np.zeros((3, 4, 5), complex)),
            "expected numeric data (bool, integer or float) in 'volume'; received dtype "
            "complex128.",
        ),
        (
            "scan.nii.gz",
            lambda p: nib.save(nib.Nifti1Image(np.zeros((3, 4, 5), np.complex64), np.eye(4)), p),
            "expected numeric data (bool, integer or float); received dtype complex64.",
        ),
        (
            "scan.npy",
            lambda p: np.save(p, np.zeros((0, 4, 5))),
            "expected a non-empty volume; received 1 channel(s) of spatial shape (0, 4, 5).",
        ),
        ("scan.npy", lambda p: p.mkdir(), "expected a file; received a directory."),
    ],
)
def test_read_errors(tmp_path, name, make, expected):
    path = tmp_path / name
    if make is not None:
        make(path)
    text = f"{path}: " + expected.replace("{path}", str(path))
    # "..." ends a prefix: the rest is the library's own wording
    pattern = "^" + re.escape(text[:-3]) if text.endswith("...") else message(text)
    with pytest.raises(VolumeError, match=pattern) as info:
        read_volume(path)
    assert "\n" not in str(info.value)
    if "(" in expected and CORRUPT in expected:
        assert info.value.__cause__ is not None


@pytest.mark.parametrize("name", ["a.nii", "a.nii.gz", "a.tif", "a.tiff", "a.npy", "a.npz"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])  # TIFF: ImageJ and shaped files
def test_truncated_files_of_every_format(tmp_path, mni, name, dtype):
    data = mni["t1"][::2, ::2].astype(dtype)
    for fraction in (0.1, 0.5, 0.9):
        path = write_volume(tmp_path / name, data)
        whole = path.read_bytes()
        path.write_bytes(whole[: int(len(whole) * fraction)])
        with pytest.raises(VolumeError, match=f"^{re.escape(str(path))}: expected .*{CORRUPT}"):
            read_volume(path)


@pytest.mark.parametrize(
    ("name", "rank", "expected"),
    [
        ("v.npy", 0, "Expected an integer >= 1; received rank=0."),
        ("v.npy", "3", "Expected an integer >= 1; received rank='3'."),
        ("v.npy", True, "Expected an integer >= 1; received rank=True."),
        ("v.nii.gz", 4, "Expected 2 or 3 for a nifti file; received rank=4."),
        ("v.tif", 1, "Expected 2 or 3 for a tiff file; received rank=1."),
    ],
)
def test_invalid_rank(tmp_path, name, rank, expected):
    path = tmp_path / name
    text = f"{path}: invalid value for `rank`. {expected}"
    with pytest.raises(VolumeError, match=message(text)):
        read_volume(path, rank=rank)
    with pytest.raises(VolumeError, match=message(text)):
        write_volume(path, np.zeros((2, 3, 4)), rank=rank)


@pytest.mark.parametrize(
    ("name", "array", "rank", "expected"),
    [
        (
            "out.nii.gz",
            np.zeros((4, 5)),
            3,
            "expected a non-empty 3-D array or 4-D with channels first (C, X, Y, Z); received "
            "shape (4, 5).",
        ),
        (
            "out.npy",
            np.zeros((2, 3, 4, 5, 6)),
            3,
            "expected a non-empty 3-D array or 4-D with channels first (C, Z, Y, X); received "
            "shape (2, 3, 4, 5, 6).",
        ),
        (
            "out.tif",
            np.zeros((2, 3, 4, 5)),
            2,
            "expected a non-empty 2-D array or 3-D with channels first (C, Y, X); received shape "
            "(2, 3, 4, 5).",
        ),
        (
            "out.npz",
            np.zeros((0, 3, 4, 5)),
            3,
            "expected a non-empty 3-D array or 4-D with channels first (C, Z, Y, X); received "
            "shape (0, 3, 4, 5).",
        ),
        (
            "out.nii",
            np.zeros((3, 4, 5), complex),
            3,
            "expected numeric data (bool, integer or float); received dtype complex128.",
        ),
        (
            "out.npy",
            np.array([[["a"]]]),
            3,
            "expected numeric data (bool, integer or float); received dtype <U1.",
        ),
        (
            "out.npy",
            np.empty((2, 3, 4), dtype=object),
            3,
            "expected numeric data (bool, integer or float); received dtype object.",
        ),
    ],
)
def test_write_invalid_array(tmp_path, name, array, rank, expected):
    path = tmp_path / name
    with pytest.raises(VolumeError, match=message(f"{path}: {expected}")):
        write_volume(path, array, rank=rank)
    assert listing(tmp_path) == []


def test_write_ragged_list(tmp_path):
    path = tmp_path / "out.npy"
    with pytest.raises(
        VolumeError, match="^" + re.escape(f"{path}: expected numeric data; received list that")
    ):
        write_volume(path, [[1, 2], [3]])


def test_write_needs_existing_directory(tmp_path):
    path = tmp_path / "missing" / "out.nii.gz"
    with pytest.raises(
        VolumeError,
        match=message(
            f"{path}: cannot be written; the directory {tmp_path / 'missing'} does not exist."
        ),
    ):
        write_volume(path, np.zeros((3, 4, 5)))
    assert listing(tmp_path) == []
    (tmp_path / "d.npy").mkdir()
    with pytest.raises(
        VolumeError,
        match=message(
            f"{tmp_path / 'd.npy'}: cannot be written; expected a file path; received a directory."
        ),
    ):
        write_volume(tmp_path / "d.npy", np.zeros((3, 4, 5)))


@pytest.mark.parametrize(
    ("affine", "received"),
    [(np.eye(3), "(3, 3)"), (np.full((4, 4), np.nan), "(4, 4)"), ("abc", "'abc'")],
)
def test_write_invalid_affine(tmp_path, affine, received):
    path = tmp_path / "out.nii.gz"
    with pytest.raises(
        VolumeError,
        match=message(
            f"{path}: invalid value for `affine`. Expected a 4x4 matrix of finite numbers; "
            f"received affine={received}."
        ),
    ):
        write_volume(path, np.zeros((3, 4, 5)), affine=affine)


def test_write_invalid_like(tmp_path):
    path = tmp_path / "out.nii.gz"
    with pytest.raises(
        VolumeError,
        match=message(
            f"{path}: invalid value for `like`. Expected a Volume or None; received like='dict'."
        ),
    ):
        write_volume(path, np.zeros((3, 4, 5)), like={})


def test_volume_validates_its_fields():
    vol = Volume(data=np.zeros((2, 3, 4, 5)), format="npy", path="v.npy")
    assert (vol.channels, vol.spatial, vol.path) == (2, (3, 4, 5), Path("v.npy"))
    with pytest.raises(VolumeError, match=r"^v\.npy: invalid value for `data`\. Expected an array"):
        Volume(data=np.zeros(5), format="npy", path="v.npy")
    with pytest.raises(VolumeError, match=r"^v\.mha: invalid value for `format`\. Expected one of"):
        Volume(data=np.zeros((1, 5)), format="mha", path="v.mha")
    with pytest.raises(VolumeError, match=r"^v\.npy: invalid value for `affine`\. Expected a 4x4"):
        Volume(data=np.zeros((1, 5)), format="npy", path="v.npy", affine=np.eye(3))
