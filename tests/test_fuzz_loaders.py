"""Fuzzing every loader of user data with at least 1000 generated cases each (seeded: the same
cases on every run): volumes, model configs, training configs and weight files. Whatever the
input, a loader returns or raises a `DilnetError` subclass (never a library's exception), and
writes nothing: the directory holds the same files before and after."""

import copy
import io
import json
import zipfile

import nibabel as nib
import numpy as np
import pytest
import tifffile

from dilnet import Sequential
from dilnet import blocks as B
from dilnet.blocks.config import from_config
from dilnet.errors import DilnetError
from dilnet.io.train_config import train_config_from_dict
from dilnet.io.volume import read_volume
from dilnet.io.weights import read_checkpoint
from dilnet.model import Model, load_model

CASES = 1000


def mutate_bytes(raw: bytes, rng) -> bytes:
    """One of: flipped bits, a truncation, inserted or deleted bytes, a run of random bytes, in
    the first 512 bytes (headers) half of the time."""
    data = bytearray(raw)
    limit = len(data) if rng.random() < 0.5 else min(len(data), 512)
    kind = rng.integers(5)
    at = int(rng.integers(max(limit, 1)))
    if kind == 0:
        for _ in range(int(rng.integers(1, 4))):
            i = int(rng.integers(max(limit, 1)))
            data[i] ^= 1 << int(rng.integers(8))
    elif kind == 1:
        del data[at:]
    elif kind == 2:
        data[at:at] = rng.integers(0, 256, int(rng.integers(1, 16)), dtype=np.uint8).tobytes()
    elif kind == 3:
        del data[at : at + int(rng.integers(1, 16))]
    else:
        run = rng.integers(0, 256, int(rng.integers(1, 32)), dtype=np.uint8).tobytes()
        data[at : at + len(run)] = run
    return bytes(data)


def assert_loader_is_safe(load, path, seed_bytes, rng, cases):
    outcomes = {"loaded": 0, "refused": 0}
    path.write_bytes(seed_bytes)
    before = sorted(p.name for p in path.parent.iterdir())
    for case in range(cases):
        path.write_bytes(mutate_bytes(seed_bytes, rng))
        try:
            load(path)
            outcomes["loaded"] += 1
        except DilnetError as err:
            assert str(err), case
            outcomes["refused"] += 1
        except Exception as err:  # the property under test: nothing else escapes
            raise AssertionError(f"case {case}: {type(err).__name__}: {err}") from err
        assert sorted(p.name for p in path.parent.iterdir()) == before, case
    assert outcomes["refused"] > 0
    return outcomes


def _seed_volume(tmp_path, name):
    rng = np.random.default_rng(0)
    data = rng.random((6, 7, 8)).astype(np.float32)
    path = tmp_path / name
    if name.endswith((".nii", ".nii.gz")):
        nib.save(nib.Nifti1Image(data, np.diag([2.0, 2.0, 2.0, 1.0])), path)
    elif name.endswith(".npy"):
        np.save(path, data)
    elif name.endswith(".npz"):
        np.savez_compressed(path, volume=data, affine=np.eye(4))
    else:
        tifffile.imwrite(path, (data * 1000).astype(np.uint16), imagej=True)
    return path


@pytest.mark.parametrize("name", ["v.nii.gz", "v.nii", "v.npy", "v.npz", "v.tif"])
def test_volumes(tmp_path, name):
    path = _seed_volume(tmp_path, name)
    seed = path.read_bytes()
    rng = np.random.default_rng(sum(map(ord, name)))
    # 5 formats x 200 = 1000 cases for the volume loader
    assert_loader_is_safe(read_volume, path, seed, rng, CASES // 5)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    spec = Sequential(
        [
            B.Input(channels=1, spatial=(None, None)),
            B.Conv(filters=2),
            B.DilatedStack(filters=2, dilations=(1, 2)),
            B.Classifier(num_classes=2),
        ]
    )
    path = tmp_path_factory.mktemp("model") / "m.npz"
    Model(spec, seed=0).save(path, metadata={"note": "fuzz"})
    return path


def test_weight_files(tmp_path, model_file):
    seed = model_file.read_bytes()
    rng = np.random.default_rng(1)
    assert_loader_is_safe(read_checkpoint, tmp_path / "w.npz", seed, rng, CASES)


# ---------------------------------------------------------------------------- JSON structures

POOL = [None, True, False, 0, -1, 1, 2, 3, 1.5, -0.5, float("nan"), float("inf"), 10**30, 2**20 + 1,
        "", "x", "same", "relu", "adam", [], [1], [0, 0, 0], [3, 3, 3], {}, {"a": 1},
        [[[[[[]]]]]], "zoo:context3d-basic", "synthseg", {"synthseg": {"p_flip": 2}}]  # fmt: skip


def _paths(value, prefix=()):
    """Every (path, value) of a JSON structure, containers included."""
    yield prefix, value
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, (*prefix, i))


def mutate_json(config, rng):
    """A deep copy of `config` with 1-3 edits: a value replaced from `POOL`, a key deleted or
    renamed, a key added, or a list element duplicated."""
    config = copy.deepcopy(config)
    for _ in range(int(rng.integers(1, 4))):
        paths = [p for p, _ in _paths(config) if p]
        path = paths[int(rng.integers(len(paths)))]
        parent = config
        for key in path[:-1]:
            parent = parent[key]
        key = path[-1]
        kind = rng.integers(4)
        if kind == 0:
            parent[key] = copy.deepcopy(POOL[int(rng.integers(len(POOL)))])
        elif kind == 1 and isinstance(parent, dict):
            value = parent.pop(key)
            if rng.random() < 0.5:
                parent[f"{key}_"] = value
        elif kind == 2 and isinstance(parent, dict):
            parent[f"extra{int(rng.integers(10))}"] = copy.deepcopy(
                POOL[int(rng.integers(len(POOL)))]
            )
        elif isinstance(parent, list):
            parent.insert(key, copy.deepcopy(parent[key]))
    return config


def assert_structure_loader_is_safe(load, valid, rng, cases):
    refused = 0
    for case in range(cases):
        config = mutate_json(valid, rng)
        # through JSON text, as a file gives it (NaN and inf as JSON's extensions)
        config = json.loads(json.dumps(config))
        try:
            load(config)
        except DilnetError:
            refused += 1
        except Exception as err:
            raise AssertionError(
                f"case {case}: {type(err).__name__}: {err}\n{json.dumps(config)[:2000]}"
            ) from err
    assert refused > cases // 4


def test_model_configs():
    spec = Sequential(
        [
            B.Input(channels=1, spatial=(None, None, None)),
            B.Conv(filters=4, batch_norm=True),
            B.ContextModule(channels=4, dilations=(1, 2, 4, 1)),
            B.Residual(body=[B.Conv(filters=4), B.Conv(filters=4, activation="linear")]),
            B.Parallel(branches=[[B.Conv(filters=2)], [B.Conv(filters=2, dilation=2)]]),
            B.Pool(size=2),
            B.Upsample(factor=2),
            B.Classifier(num_classes=3),
        ]
    )
    valid = spec.to_config()
    from_config(valid)  # the seed itself loads
    assert_structure_loader_is_safe(from_config, valid, np.random.default_rng(2), CASES)


def test_training_configs():
    valid = {
        "format": "dilnet.train",
        "format_version": 1,
        "model": "zoo:plain3d",
        "train": [{"image": "t1.nii.gz", "labels": "seg.nii.gz"}],
        "validation": [],
        "patch_size": [16, 16, 16],
        "batch_size": 2,
        "epochs": 2,
        "steps_per_epoch": 5,
        "sampling": "balanced",
        "augment": ["intensity", "flip0"],
        "optimizer": "adam",
        "learning_rate": 0.001,
        "schedule": "cosine",
        "loss": "crossentropy+dice",
        "metrics": ["dice"],
        "normalize": "minmax",
        "seed": 0,
        "output": "m.npz",
    }
    train_config_from_dict(valid)
    assert_structure_loader_is_safe(train_config_from_dict, valid, np.random.default_rng(3), CASES)


def test_model_files_with_edited_manifests(tmp_path, model_file):
    """`load_model` on valid archives whose manifest JSON is mutated (checksums of the arrays
    kept valid): the spec, dtype, contract and parameter list all come from it."""
    with zipfile.ZipFile(model_file) as archive:
        members = {n: archive.read(n) for n in archive.namelist()}
    manifest = json.loads(
        np.load(io.BytesIO(members["__manifest__.npy"]), allow_pickle=False).tobytes()
    )
    rng = np.random.default_rng(4)
    path = tmp_path / "m.npz"
    refused = 0
    for case in range(CASES // 4):
        edited = json.loads(json.dumps(mutate_json(manifest, rng)))
        buffer = io.BytesIO()
        np.save(buffer, np.frombuffer(json.dumps(edited).encode(), np.uint8))
        with zipfile.ZipFile(path, "w") as archive:
            for name, data in {**members, "__manifest__.npy": buffer.getvalue()}.items():
                archive.writestr(name, data)
        try:
            load_model(path, mode="FAST_COMPILE")
        except DilnetError:
            refused += 1
        except Exception as err:
            raise AssertionError(f"case {case}: {type(err).__name__}: {err}") from err
    assert refused > CASES // 16


def test_mutations_are_seeded():
    a = [mutate_bytes(b"0123456789" * 10, np.random.default_rng(5)) for _ in range(3)]
    b = [mutate_bytes(b"0123456789" * 10, np.random.default_rng(5)) for _ in range(3)]
    assert a == b
