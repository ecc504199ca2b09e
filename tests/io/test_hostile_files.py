"""Files that used to load wrong data or escape as a raw library error (issue 17): each is now
one `DilnetError` naming the file, or exactly the data that was written. The oracles are the
standard library's own readers (`gzip.decompress` checks the CRC) and the bytes as written."""

import gzip
import io
import json
import struct
import zipfile

import nibabel as nib
import numpy as np
import pytest
import tifffile

from dilnet import Sequential
from dilnet import blocks as B
from dilnet.errors import ConfigError, DilnetError, SpecError, VolumeError, WeightsError
from dilnet.io.train_config import read_train_config
from dilnet.io.volume import read_volume, write_volume
from dilnet.io.weights import read_checkpoint, save_checkpoint
from dilnet.model import Model, load_model
from dilnet.training import spec_from_ref


def npy_header(shape, descr="<f4"):
    buffer = io.BytesIO()
    header = {"descr": descr, "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue()


# ---------------------------------------------------------------------------- NIfTI


def test_every_flipped_bit_of_a_nii_gz_is_refused_or_harmless(tmp_path):
    data = np.random.default_rng(0).random((12, 13, 14)).astype(np.float32)
    path = tmp_path / "a.nii.gz"
    nib.save(nib.Nifti1Image(data, np.eye(4)), path)
    raw = path.read_bytes()
    refused = 0
    # the deflate data and the trailer (CRC-32, length): nibabel never read the trailer
    for i in range(len(raw) // 3, len(raw)):
        bad = bytearray(raw)
        bad[i] ^= 1 << (i % 8)
        path.write_bytes(bytes(bad))
        try:
            gzip.decompress(bytes(bad))
            gzip_ok = True
        except (OSError, EOFError, ValueError, gzip.zlib.error):
            gzip_ok = False
        try:
            volume = read_volume(path)
        except VolumeError as err:
            assert str(err).startswith(f"{path}: expected a NIfTI-1 or NIfTI-2 file")
            refused += 1
            continue
        # loaded: then the stream was intact, and the data is what was written
        assert gzip_ok, f"byte {i}: loaded a stream gzip refuses"
        np.testing.assert_array_equal(volume.data[0], data)
    assert refused > 0.9 * (len(raw) - len(raw) // 3)


def test_a_nii_whose_header_declares_more_than_the_file_holds(tmp_path):
    path = tmp_path / "a.nii"
    nib.save(nib.Nifti1Image(np.zeros((4, 5, 6), np.float32), np.eye(4)), path)
    raw = bytearray(path.read_bytes())
    # dim[1..3] at byte 42 (int16 each): declare 30000 x 30000 x 30000 float32 (108 TB)
    raw[42:48] = struct.pack("<3h", 30000, 30000, 30000)
    path.write_bytes(bytes(raw))
    with pytest.raises(VolumeError, match=r"declares shape \(30000, 30000, 30000\) of float32"):
        read_volume(path)


def test_key_is_refused_for_a_file_other_than_npz(tmp_path):
    path = write_volume(tmp_path / "a.nii.gz", np.zeros((4, 5, 6), np.float32))
    with pytest.raises(VolumeError, match=r"invalid value for `key`.*received key='t1'"):
        read_volume(path, key="t1")


# ---------------------------------------------------------------------------- .npy / .npz


def test_an_npy_header_declaring_terabytes_is_refused_before_allocating(tmp_path):
    path = tmp_path / "big.npy"
    path.write_bytes(npy_header((100000, 100000, 1000)) + b"\0" * 200)
    with pytest.raises(VolumeError) as info:
        read_volume(path)
    assert "declares shape (100000, 100000, 1000) of float32" in str(info.value)
    assert "40,000,000,000,000 bytes, over 200 bytes of data" in str(info.value)


def test_a_damaged_npy_header_is_named(tmp_path):
    path = tmp_path / "a.npy"
    header = npy_header((2, 2, 2))
    # cut the dict literal open: numpy's parser raised tokenize.TokenError
    path.write_bytes(header.replace(b"), }", b",   "))
    with pytest.raises(VolumeError, match=r"a.npy: expected a NumPy .npy array file.*damaged"):
        read_volume(path)


@pytest.mark.parametrize("name", ["a.npy", "a.npz"])
def test_a_pickle_is_named_and_never_suggests_allow_pickle(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00\x8c\x02os\x94.")
    with pytest.raises(VolumeError, match="a Python pickle, which is never loaded") as info:
        read_volume(path)
    assert "allow_pickle" not in str(info.value)


def _set_encrypted_flag(path):
    """Set bit 0 (encrypted) of every central directory entry's flags, as one flipped bit does."""
    raw = bytearray(path.read_bytes())
    at = raw.find(b"PK\x01\x02")
    while at != -1:
        raw[at + 8] |= 1
        at = raw.find(b"PK\x01\x02", at + 4)
    path.write_bytes(bytes(raw))


def test_an_npz_with_a_flipped_encryption_flag(tmp_path):
    path = write_volume(tmp_path / "a.npz", np.zeros((4, 5, 6), np.float32))
    _set_encrypted_flag(path)
    with pytest.raises(VolumeError, match=r"a.npz: expected .*(encrypted|corrupted)"):
        read_volume(path)


def test_an_npz_member_declaring_more_than_it_holds(tmp_path):
    path = tmp_path / "a.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("volume.npy", npy_header((4000, 4000, 4000)) + b"\0" * 64)
    with pytest.raises(VolumeError, match=r"declares shape \(4000, 4000, 4000\)"):
        read_volume(path)


# ---------------------------------------------------------------------------- TIFF


def test_flipped_bytes_in_a_tiff_header_are_refused_or_harmless(tmp_path):
    data = np.arange(2 * 6 * 7, dtype=np.uint16).reshape(2, 6, 7)
    path = tmp_path / "a.tif"
    tifffile.imwrite(path, data, imagej=True)
    raw = path.read_bytes()
    for i in range(min(len(raw), 400)):
        for bit in (0, 3, 7):
            bad = bytearray(raw)
            bad[i] ^= 1 << bit
            path.write_bytes(bytes(bad))
            try:
                read_volume(path)
            except VolumeError as err:
                assert str(err).startswith(f"{path}: ")


# ---------------------------------------------------------------------------- checkpoints


def test_a_file_that_is_not_a_zip_is_not_called_pickled(tmp_path):
    for content, kind in [
        (b"\x80\x04\x95\x10\x00\x00\x00.", "a Python pickle"),
        (b"hello, not weights", "a file of another kind"),
        (gzip.compress(b"x"), "a gzip file"),
    ]:
        path = tmp_path / "m.npz"
        path.write_bytes(content)
        with pytest.raises(WeightsError, match=kind) as info:
            read_checkpoint(path)
        assert "allow_pickle" not in str(info.value)


def test_a_300_byte_member_declaring_terabytes(tmp_path):
    path = tmp_path / "m.npz"
    save_checkpoint(path, {"w": np.ones(3, np.float32)})
    with zipfile.ZipFile(path) as archive:
        members = {n: archive.read(n) for n in archive.namelist()}
    members["w.npy"] = npy_header((100000, 100000, 100)) + b"\0" * 16
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    with pytest.raises(WeightsError, match=r"'w': cannot be read; its header declares"):
        read_checkpoint(path)


def test_a_checkpoint_with_a_flipped_encryption_flag(tmp_path):
    path = tmp_path / "m.npz"
    save_checkpoint(path, {"w": np.ones(3, np.float32)})
    _set_encrypted_flag(path)
    with pytest.raises(WeightsError, match=r"m.npz: "):
        read_checkpoint(path)


@pytest.fixture(scope="module")
def small_model():
    spec = Sequential(
        [B.Input(channels=1, spatial=(None, None)), B.Conv(filters=2), B.Classifier(num_classes=2)]
    )
    return Model(spec, seed=0)


def test_non_finite_weights_are_refused_at_load_unless_inspecting(tmp_path, small_model):
    weights = small_model.get_weights()
    poisoned = [w.copy() for w in weights]
    poisoned[0].flat[3] = np.nan
    poisoned[1].flat[0] = np.inf
    small_model.set_weights(poisoned)
    try:
        path = tmp_path / "diverged.npz"
        small_model.save(path)  # the checksums are valid: the file is what was written
    finally:
        small_model.set_weights(weights)
    names = [p.name for p in small_model.params]
    with pytest.raises(WeightsError) as info:
        load_model(path)
    text = str(info.value)
    assert text.startswith(f"{path}: expected finite weights")
    assert f"{names[0]!r} (1 of {weights[0].size} values)" in text
    assert f"{names[1]!r} (1 of {weights[1].size} values)" in text
    with pytest.raises(WeightsError, match="expected finite weights"):
        small_model.load_weights(path)
    np.testing.assert_array_equal(small_model.get_weights()[0], weights[0])  # unchanged
    inspected = load_model(path, allow_nonfinite=True)
    assert np.isnan(inspected.get_weights()[0].flat[3])


def test_a_manifest_with_a_bad_spec_or_dtype_names_the_file(tmp_path, small_model):
    from dilnet.io.weights import MANIFEST_KEY

    path = tmp_path / "m.npz"
    small_model.save(path)

    def edit(change):
        with zipfile.ZipFile(path) as archive:
            members = {n: archive.read(n) for n in archive.namelist()}
        manifest = json.loads(
            np.load(io.BytesIO(members[f"{MANIFEST_KEY}.npy"]), allow_pickle=False).tobytes()
        )
        change(manifest["metadata"])
        buffer = io.BytesIO()
        np.save(buffer, np.frombuffer(json.dumps(manifest).encode(), np.uint8))
        members[f"{MANIFEST_KEY}.npy"] = buffer.getvalue()
        bad = tmp_path / "bad.npz"
        with zipfile.ZipFile(bad, "w") as archive:
            for name, data in members.items():
                archive.writestr(name, data)
        return bad

    bad = edit(lambda m: m["spec"]["spec"]["blocks"][1].update(filters=-3))
    with pytest.raises(SpecError, match=rf"^{bad}: the model config in its manifest:.*filters"):
        load_model(bad)
    bad = edit(lambda m: m.update(dtype="complex128"))
    with pytest.raises(WeightsError, match=rf"^{bad}: invalid manifest.*'complex128'"):
        load_model(bad)


# ---------------------------------------------------------------------------- configs


def test_deeply_nested_json_is_one_error(tmp_path):
    deep = "[" * 200000 + "]" * 200000
    spec = tmp_path / "spec.json"
    spec.write_text(deep)
    with pytest.raises(ConfigError, match="nested too deeply"):
        spec_from_ref(str(spec))
    train = tmp_path / "train.json"
    train.write_text(deep)
    with pytest.raises(SpecError, match="nested too deeply"):
        read_train_config(train)


def test_parameters_that_cannot_fit_in_memory_are_refused_before_allocating():
    spec = Sequential([B.Input(channels=2**20, spatial=(None, None, None)), B.Conv(filters=2**20)])
    with pytest.raises(ConfigError, match=r"fits in this machine's .* bytes of RAM") as info:
        spec.build()
    assert isinstance(info.value, DilnetError)
