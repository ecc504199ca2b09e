"""Weights checkpoints: round trip, the file layout, corrupted and foreign files, fitting a model's
parameters, and atomic saves (an exception in the writer, and a writer killed mid-save)."""

import datetime
import hashlib
import io
import json
import os
import re
import struct
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

import dilnet
from dilnet.errors import ConfigError, DilnetError, WeightsError
from dilnet.io.weights import (
    FORMAT,
    FORMAT_VERSION,
    MANIFEST_KEY,
    atomic_write,
    read_checkpoint,
    save_checkpoint,
    verify_against,
)

REPO = Path(__file__).resolve().parents[2]


def make_arrays(seed=0):
    rng = np.random.default_rng(seed)
    return {
        "conv1.W": rng.standard_normal((8, 1, 3, 3, 3)).astype(np.float32),  # 5-d
        "conv1.b": rng.standard_normal(8).astype(np.float64),
        "step": np.array(7, dtype=np.int64),  # 0-d
        "scale": np.array(0.5),  # 0-d float64
        "counts": rng.integers(0, 255, (2, 3), dtype=np.uint8),
        "mask": rng.random((4,)) > 0.5,
        "int32": rng.integers(-5, 5, (3, 2, 1, 2, 2), dtype=np.int32),  # 5-d int
        "complex": (rng.standard_normal(3) + 1j).astype(np.complex64),
        "fortran": np.asfortranarray(rng.standard_normal((3, 4)).astype(np.float32)),
        "strided": np.arange(20, dtype=np.float32)[::3],
        "empty": np.zeros((0, 5), dtype=np.float32),
    }


def oracle_sha256(array):
    # tobytes() is C order by default: the documented hash input, computed independently.
    return hashlib.sha256(array.tobytes(order="C")).hexdigest()


def npy_bytes(array):
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def manifest_member(manifest):
    return npy_bytes(np.frombuffer(json.dumps(manifest).encode("utf-8"), dtype=np.uint8))


def rewrite_members(path, change):
    """Rebuild the zip at `path` (valid CRCs) with `change(members) -> members`, where members maps
    member names (``'w.npy'``) to their bytes."""
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    members = change(members)
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def replace_manifest(path, edit):
    with zipfile.ZipFile(path) as archive:
        raw = np.load(io.BytesIO(archive.read(f"{MANIFEST_KEY}.npy")), allow_pickle=False)
    manifest = json.loads(raw.tobytes())
    manifest = edit(manifest)
    rewrite_members(path, lambda m: {**m, f"{MANIFEST_KEY}.npy": manifest_member(manifest)})


def saved(tmp_path, arrays=None, name="ckpt.npz"):
    path = tmp_path / name
    save_checkpoint(path, make_arrays() if arrays is None else arrays, {"epoch": 3})
    return path


def file_error(path, *patterns):
    """pytest.raises for a WeightsError whose message starts with `path` and contains `patterns`."""
    return pytest.raises(
        WeightsError, match=re.escape(str(path)) + "(?s:.*)" + "(?s:.*)".join(patterns)
    )


# ---------------------------------------------------------------------------- round trip


def test_round_trip_values_dtypes_shapes_order_and_manifest(tmp_path):
    arrays = make_arrays()
    metadata = {"epoch": 3, "lr": 0.001, "config": {"blocks": [1, 2]}, "note": None, "ok": True}
    path = tmp_path / "ckpt.npz"
    before = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    returned = save_checkpoint(path, arrays, metadata)
    after = datetime.datetime.now(datetime.UTC)

    loaded, manifest = read_checkpoint(path)
    assert list(loaded) == list(arrays)
    for name, array in arrays.items():
        assert loaded[name].dtype == array.dtype, name
        assert loaded[name].shape == array.shape, name
        np.testing.assert_array_equal(loaded[name], array)

    assert manifest == returned
    assert set(manifest) == {
        "format",
        "format_version",
        "dilnet_version",
        "created",
        "params",
        "metadata",
    }
    assert manifest["format"] == "dilnet.weights" == FORMAT
    assert manifest["format_version"] == 1 == FORMAT_VERSION
    assert manifest["dilnet_version"] == dilnet.__version__
    created = datetime.datetime.fromisoformat(manifest["created"])
    assert created.utcoffset() == datetime.timedelta(0)
    assert before <= created <= after
    assert manifest["metadata"] == metadata
    assert manifest["params"] == [
        {
            "name": name,
            "shape": list(array.shape),
            "dtype": array.dtype.str,
            "sha256": oracle_sha256(array),
        }
        for name, array in arrays.items()
    ]


def test_metadata_defaults_to_empty_and_tuples_come_back_as_lists(tmp_path):
    path = tmp_path / "a.npz"
    assert save_checkpoint(path, {"w": np.ones(2)})["metadata"] == {}
    manifest = save_checkpoint(path, {"w": np.ones(2)}, {"kernel": (3, 3)})
    assert manifest["metadata"] == {"kernel": [3, 3]} == read_checkpoint(path)[1]["metadata"]


def test_names_numpy_savez_would_confuse_are_plain_parameters(tmp_path):
    arrays = {
        "file": np.ones(2),
        "allow_pickle": np.zeros(3),
        "a/b.c": np.arange(2),
        "λ": np.ones(1),
    }
    loaded, _ = read_checkpoint(saved(tmp_path, arrays))
    assert list(loaded) == list(arrays)
    for name in arrays:
        np.testing.assert_array_equal(loaded[name], arrays[name])


def test_big_endian_arrays_keep_their_bytes_and_dtype(tmp_path):
    array = np.arange(6, dtype=">f4").reshape(2, 3)
    loaded, manifest = read_checkpoint(saved(tmp_path, {"be": array}))
    assert loaded["be"].dtype == np.dtype(">f4")
    np.testing.assert_array_equal(loaded["be"], array)
    assert manifest["params"][0]["dtype"] == ">f4"
    assert manifest["params"][0]["sha256"] == oracle_sha256(array)


def test_the_file_is_a_plain_npz_holding_only_the_arrays_and_the_manifest(tmp_path):
    arrays = make_arrays()
    path = saved(tmp_path, arrays)
    assert os.listdir(tmp_path) == ["ckpt.npz"]  # no temporary files left
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None
        assert sorted(archive.namelist()) == sorted(
            [f"{name}.npy" for name in arrays] + [f"{MANIFEST_KEY}.npy"]
        )
        assert {info.compress_type for info in archive.infolist()} == {zipfile.ZIP_STORED}
    with np.load(path, allow_pickle=False) as npz:
        assert sorted(npz.files) == sorted([*arrays, MANIFEST_KEY])
        for name, array in arrays.items():
            np.testing.assert_array_equal(npz[name], array)
        raw = npz[MANIFEST_KEY]
        assert raw.dtype == np.uint8 and raw.ndim == 1
        assert json.loads(raw.tobytes().decode("utf-8")) == read_checkpoint(path)[1]


@pytest.mark.parametrize(
    ("arrays", "match"),
    [
        ({"": np.ones(1)}, "`name`. Expected a non-empty string; received name=''"),
        ({3: np.ones(1)}, "`name`. Expected a non-empty string; received name=3"),
        ({MANIFEST_KEY: np.ones(1)}, "any name but '__manifest__'"),
        (
            {"w": np.array([1, "a"], dtype=object)},
            r"arrays\['w'\].dtype`. Expected a numeric dtype",
        ),
        ({"w": np.array(["abc"])}, r"received arrays\['w'\].dtype='<U3'"),
        ({"w": np.zeros(2, dtype="i4,f4")}, r"arrays\['w'\].dtype"),
        ({"w": [1.0, 2.0]}, r"arrays\['w'\]`. Expected a numpy array; received .*'list'"),
        ([("w", np.ones(1))], "`arrays`. Expected a dict"),
    ],
)
def test_save_rejects_bad_names_and_arrays_and_writes_nothing(tmp_path, arrays, match):
    with pytest.raises(ConfigError, match=match):
        save_checkpoint(tmp_path / "a.npz", arrays)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    ("metadata", "match"),
    [
        ([1, 2], "`metadata`. Expected a dict or None"),
        ({"lr": float("nan")}, "metadata.lr: expected a finite number"),
        ({"a": {1: "x"}}, "metadata.a: expected string keys; received key 1"),
        ({"a": [1, np.int64(2)]}, r"metadata.a\[1\]: expected JSON values"),
    ],
)
def test_save_rejects_metadata_that_is_not_plain_json(tmp_path, metadata, match):
    with pytest.raises(ConfigError, match=match):
        save_checkpoint(tmp_path / "a.npz", {"w": np.ones(1)}, metadata)
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------------------- bad files


def test_errors_are_dilnet_and_value_errors():
    assert issubclass(WeightsError, DilnetError) and issubclass(WeightsError, ValueError)


def test_missing_file(tmp_path):
    path = tmp_path / "nope.npz"
    with file_error(path, "no such file"):
        read_checkpoint(path)


def test_directory(tmp_path):
    with file_error(tmp_path, "cannot be read"):
        read_checkpoint(tmp_path)


def test_array_data_changed_behind_the_manifest_is_named(tmp_path):
    path = saved(tmp_path)

    def flip_last_data_byte(members):
        data = bytearray(members["conv1.W.npy"])
        data[-1] ^= 0x01  # the last byte of the array's data (the header comes first)
        return {**members, "conv1.W.npy": bytes(data)}

    rewrite_members(path, flip_last_data_byte)
    with np.load(path, allow_pickle=False) as npz:  # a valid npz, only the values differ
        assert not np.array_equal(npz["conv1.W"], make_arrays()["conv1.W"])
    with file_error(path, r"'conv1.W': sha256 differs \(the data was modified or corrupted\)"):
        read_checkpoint(path)


def test_a_byte_flipped_in_place_fails_the_zip_crc_and_is_named(tmp_path):
    path = saved(tmp_path)
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("conv1.b.npy")
    # local file header: 30 bytes, then the file name and the extra field, then the data
    name_len, extra_len = struct.unpack(
        "<HH", data[info.header_offset + 26 : info.header_offset + 30]
    )
    end = info.header_offset + 30 + name_len + extra_len + info.compress_size
    data[end - 1] ^= 0x80
    path.write_bytes(bytes(data))
    with file_error(path, "'conv1.b': cannot be read; the data is corrupted"):
        read_checkpoint(path)


def test_truncated_files(tmp_path):
    path = saved(tmp_path)
    full = path.read_bytes()
    for length in (0, 1, 3, 10, 100, 1000, len(full) // 2, len(full) - 100, len(full) - 1):
        cut = tmp_path / f"cut{length}.npz"
        cut.write_bytes(full[:length])
        with file_error(cut, "not a dilnet weights checkpoint"):
            read_checkpoint(cut)


def test_random_bytes_and_a_zip_of_other_things(tmp_path):
    rng = np.random.default_rng(1)
    noise = tmp_path / "noise.npz"
    noise.write_bytes(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with file_error(noise, "not a dilnet weights checkpoint"):
        read_checkpoint(noise)
    fake_zip = tmp_path / "fake.npz"
    fake_zip.write_bytes(b"PK\x03\x04" + rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with file_error(fake_zip, "not a dilnet weights checkpoint"):
        read_checkpoint(fake_zip)


def test_pickled_data_is_refused_without_unpickling(tmp_path):
    path = tmp_path / "pickle.npz"
    path.write_bytes(
        b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00\x8c\x02os\x94\x8c\x06system\x94\x93\x94."
    )
    with file_error(path, "not a dilnet weights checkpoint"):
        read_checkpoint(path)


def test_an_npy_file_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "w.npy"
    np.save(path, np.ones(3))
    with file_error(path, "received an .npy array file"):
        read_checkpoint(path)


def test_an_npz_without_manifest(tmp_path):
    path = tmp_path / "plain.npz"
    np.savez(path, w=np.ones(3))
    with file_error(path, "Expected a '__manifest__' member", r"\['w'\]"):
        read_checkpoint(path)


def test_an_object_array_member_is_refused_without_unpickling(tmp_path):
    path = saved(tmp_path, {"w": np.ones(2)})
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    rewrite_members(path, lambda m: {**m, "w.npy": buffer.getvalue()})
    with file_error(path, "'w': cannot be read"):
        read_checkpoint(path)


@pytest.mark.parametrize(
    ("edit", "patterns"),
    [
        (
            lambda m: {**m, "format_version": 2},
            [r"\$.format_version: expected 1; received 2", "newer"],
        ),
        (lambda m: {**m, "format_version": "1"}, [r"\$.format_version: expected 1; received '1'"]),
        (
            lambda m: {**m, "format": "keras"},
            [r"\$.format: expected 'dilnet.weights'; received 'keras'"],
        ),
        (lambda m: [m], [r"\$: expected a JSON object; received list"]),
        (
            lambda m: {k: v for k, v in m.items() if k != "created"} | {"extra": 1},
            [r"\$: missing key 'created'", r"\$: unexpected key 'extra'"],
        ),
        (
            lambda m: {
                **m,
                "params": [
                    {**m["params"][0], "shape": [-1]},
                    {**m["params"][1], "dtype": "<O8"},
                    {**m["params"][2], "sha256": "xyz"},
                    {**m["params"][3], "name": m["params"][0]["name"]},
                    {"name": "x"},
                ],
            },
            [
                r"\$.params\[0\].shape: expected a list of ints >= 0; received \[-1\]",
                r"\$.params\[1\].dtype: expected a numeric dtype",
                r"\$.params\[2\].sha256: expected 64 lowercase hex digits",
                r"\$.params\[3\].name: duplicate parameter name 'conv1.W'",
                r"\$.params\[4\]: missing key 'shape'",
            ],
        ),
    ],
)
def test_invalid_manifests(tmp_path, edit, patterns):
    path = saved(tmp_path)
    replace_manifest(path, edit)
    with file_error(path, "invalid manifest", *patterns):
        read_checkpoint(path)


def test_a_manifest_that_is_not_json(tmp_path):
    path = saved(tmp_path)
    bad = npy_bytes(np.frombuffer(b"\xff{not json", dtype=np.uint8))
    rewrite_members(path, lambda m: {**m, f"{MANIFEST_KEY}.npy": bad})
    with file_error(path, "invalid manifest. Expected UTF-8 JSON"):
        read_checkpoint(path)


def test_a_manifest_of_the_wrong_type(tmp_path):
    path = saved(tmp_path)
    bad = npy_bytes(np.zeros(3, dtype=np.float32))
    rewrite_members(path, lambda m: {**m, f"{MANIFEST_KEY}.npy": bad})
    with file_error(path, "invalid manifest. Expected a 1-d uint8 array"):
        read_checkpoint(path)


def test_arrays_not_matching_the_manifest_are_all_listed(tmp_path):
    arrays = make_arrays()
    path = saved(tmp_path, arrays)

    def change(members):
        members = dict(members)
        del members["step.npy"]
        members["intruder.npy"] = npy_bytes(np.ones(2))
        members["conv1.b.npy"] = npy_bytes(np.ones(9, dtype=np.float64))
        members["counts.npy"] = npy_bytes(arrays["counts"].astype(np.int16))
        return members

    rewrite_members(path, change)
    with pytest.raises(WeightsError) as info:
        read_checkpoint(path)
    message = str(info.value)
    assert message.startswith(f"{path}: the checkpoint's arrays do not match its manifest:")
    for part in [
        "'step': listed in the manifest but not in the file",
        "'intruder': in the file but not listed in the manifest",
        "'conv1.b': shape differs. Expected (8,); received (9,)",
        "'counts': dtype differs. Expected |u1; received <i2",
    ]:
        assert part in message


# ---------------------------------------------------------------------------- verify_against


def test_verify_against_accepts_a_match_from_manifest_or_arrays(tmp_path):
    arrays = make_arrays()
    manifest = save_checkpoint(tmp_path / "a.npz", arrays)
    expected = [(name, a.shape, a.dtype.name) for name, a in arrays.items()]
    verify_against(manifest, expected, "here")
    verify_against(arrays, expected, "here")
    verify_against(read_checkpoint(tmp_path / "a.npz")[0], expected, "here")


def test_verify_against_lists_every_mismatch_in_one_error():
    found = {
        "a": np.zeros((2, 3), np.float32),
        "b": np.zeros(3, np.float64),
        "c": np.zeros(4, np.int64),
        "d": np.zeros(1, np.float32),
    }
    expected = [
        ("b", (3,), "float32"),  # float64 stored
        ("a", (3, 2), "float32"),  # shape differs
        ("c", (4,), "float32"),  # int stored
        ("e", (5,), "float32"),  # missing; "d" is unexpected; b and a swapped
    ]
    for source in (found, {"format": FORMAT, "params": _params(found)}):
        with pytest.raises(WeightsError) as info:
            verify_against(source, expected, "Model.load_weights(w.npz)")
        message = str(info.value)
        assert message.startswith(
            "Model.load_weights(w.npz): the checkpoint does not fit the model:"
        )
        for part in [
            "missing parameters: 'e'",
            "unexpected parameters: 'd'",
            "parameters in another order. Expected ['b', 'a', 'c']; received ['a', 'b', 'c']",
            "'a': shape differs. Expected (3, 2); received (2, 3)",
            "'b': dtype differs. Expected float32; received float64",
            "'c': dtype differs. Expected float32; received int64",
        ]:
            assert part in message
        assert message.count("\n  - ") == 6


def _params(arrays):
    return [
        {"name": n, "shape": list(a.shape), "dtype": a.dtype.str, "sha256": "0" * 64}
        for n, a in arrays.items()
    ]


def test_verify_against_cast_allows_only_float_to_float():
    found = {"w": np.zeros(2, np.float64), "n": np.zeros(2, np.int32), "h": np.zeros(1, np.float16)}
    expected = [("w", (2,), "float32"), ("n", (2,), "int64"), ("h", (1,), np.float32)]
    with pytest.raises(WeightsError) as info:
        verify_against(found, expected, "load", cast=True)
    message = str(info.value)
    assert (
        "'n': dtype differs. Expected int64; received int32 (cast=True converts only float to float)"
        in message
    )
    assert "'w'" not in message and "'h'" not in message
    verify_against(found, [expected[0], ("n", (2,), "int32"), expected[2]], "load", cast=True)
    with pytest.raises(
        WeightsError, match=r"'w': dtype differs. Expected float32; received float64$"
    ):
        verify_against(found, [expected[0], ("n", (2,), "int32"), ("h", (1,), "float16")], "load")


def test_verify_against_rejects_bad_arguments():
    with pytest.raises(ConfigError, match="`expected`"):
        verify_against({"w": np.zeros(1)}, [("w", (1,))], "here")
    with pytest.raises(ConfigError, match="`manifest_or_arrays`"):
        verify_against([np.zeros(1)], [("w", (1,), "f4")], "here")


# ---------------------------------------------------------------------------- atomicity


@pytest.mark.parametrize("error", [RuntimeError("disk on fire"), KeyboardInterrupt()])
def test_a_failing_writer_leaves_the_old_file_and_no_temporary_files(tmp_path, error):
    path = saved(tmp_path)
    before = path.read_bytes()

    def write(fileobj):
        fileobj.write(b"half a checkpoint")
        raise error

    with pytest.raises(type(error)):
        atomic_write(path, write)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["ckpt.npz"]
    read_checkpoint(path)


def test_a_failing_first_write_creates_nothing(tmp_path):
    def write(fileobj):
        raise OSError("no space left")

    with pytest.raises(OSError, match="no space left"):
        atomic_write(tmp_path / "new.bin", write)
    assert os.listdir(tmp_path) == []


def test_atomic_write_replaces_and_keeps_permissions(tmp_path):
    umask = os.umask(0o022)
    os.umask(umask)
    path = tmp_path / "f.bin"
    atomic_write(path, lambda f: f.write(b"one"))
    assert path.read_bytes() == b"one"
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0o600
    path.chmod(0o640)
    atomic_write(str(path), lambda f: f.write(b"two"))
    assert path.read_bytes() == b"two"
    assert path.stat().st_mode & 0o777 == 0o640
    assert os.listdir(tmp_path) == ["f.bin"]


# A writer saving 64 MB versions over one path, printing "<version> <seconds>" after each save.
WRITER = """
import sys, time
import numpy as np
from dilnet.io.weights import save_checkpoint

path, size, version = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
big = np.empty(size, np.float32)
while True:
    big.fill(version)
    start = time.perf_counter()
    save_checkpoint(path, {"big": big, "tag": np.full((3, 4), version)}, {"version": version})
    print(version, time.perf_counter() - start, flush=True)
    version += 1
"""


def test_a_writer_killed_mid_save_leaves_a_complete_checkpoint(tmp_path):
    path = tmp_path / "ckpt.npz"
    rng = np.random.default_rng(7)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    version, killed_at = 1, []
    for _ in range(3):
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), str(16 * 2**20), str(version)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        try:
            line = writer.stdout.readline()
            assert line, f"the writer died before its first save:\n{writer.stderr.read()}"
            seconds = float(line.split()[1])
            delay = rng.uniform(0.0, 1.5) * seconds  # somewhere in the next save
            time.sleep(delay)
        finally:
            writer.kill()  # SIGKILL: no cleanup, no finally blocks in the writer
            out, _ = writer.communicate()
        completed = [int(line.split()[0]) for line in [line, *out.splitlines()]]
        killed_at.append(delay)

        arrays, manifest = read_checkpoint(path)
        saved_version = manifest["metadata"]["version"]
        # the last announced version, or the next one if it was renamed into place unannounced
        assert saved_version in (completed[-1], completed[-1] + 1)
        assert arrays["big"].shape == (16 * 2**20,)
        assert (arrays["big"] == saved_version).all()
        assert (arrays["tag"] == saved_version).all()
        # temporary files of interrupted saves may remain, under their recognisable prefix only
        leftovers = sorted(set(os.listdir(tmp_path)) - {"ckpt.npz"})
        assert all(name.startswith(".ckpt.npz.tmp-") for name in leftovers), leftovers
        version = saved_version + 2

    # a later save is unaffected by leftovers, and removes them: their writers were killed
    save_checkpoint(path, {"w": np.ones(2)})
    assert list(read_checkpoint(path)[0]) == ["w"]
    assert sorted(os.listdir(tmp_path)) == ["ckpt.npz"]
    assert len(set(np.round(killed_at, 6))) == len(killed_at)  # different kill points


def test_a_later_save_removes_temporaries_of_killed_writers_only(tmp_path):
    path = tmp_path / "ckpt.npz"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    stale = tmp_path / f".ckpt.npz.tmp-{int(dead.stdout)}-abcd1234"
    running = tmp_path / f".ckpt.npz.tmp-{os.getpid()}-efgh5678"  # a save in progress
    other = tmp_path / f".other.npz.tmp-{int(dead.stdout)}-abcd1234"  # another file's
    for leftover in (stale, running, other):
        leftover.write_bytes(b"half a checkpoint")
    save_checkpoint(path, {"w": np.ones(2)})
    assert not stale.exists()
    assert running.exists() and other.exists()
    assert list(read_checkpoint(path)[0]) == ["w"]
