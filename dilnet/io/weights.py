"""Weights checkpoints: named numpy arrays plus a JSON manifest in one ``.npz`` file.

A checkpoint is one uncompressed ``.npz`` (zip) archive. Each parameter is the member
``<name>.npy``; the member ``__manifest__.npy`` is a 1-d ``uint8`` array holding UTF-8 JSON:

    {"format": "dilnet.weights", "format_version": 1, "dilnet_version": "0.1.0",
     "created": "2025-01-31T12:00:00+00:00",
     "params": [{"name": "conv1.W", "shape": [8, 1, 3, 3, 3], "dtype": "<f4",
                 "sha256": "9f86d0..."}, ...],
     "metadata": {...}}

``params`` lists the arrays in the order they were given. ``dtype`` is numpy's byte-order
explicit type string (``np.dtype(...).str``: ``"<f4"``, ``"<i8"``, ``"|b1"``). ``sha256`` is the
hex digest of ``np.ascontiguousarray(a).tobytes()`` and nothing else: the raw C-order bytes in
the array's own byte order, without shape, dtype or name (those are checked separately).

Safety: nothing is unpickled or evaluated; every array is read with
``np.load(..., allow_pickle=False)``, so only numeric arrays can come back. Saving is atomic
(`atomic_write`): a reader sees the old file or the new one, never a half-written one, even if
the writer is killed. Reading verifies the whole file (manifest, names, shapes, dtypes, hashes)
before returning anything, and every problem is one `WeightsError` that names the file and the
parameter.
"""

import contextlib
import datetime
import hashlib
import json
import math
import os
import re
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Mapping

import numpy as np

from .._version import __version__
from ..errors import ConfigError, WeightsError, invalid
from .arrays import HEADER_ERRORS, KIND_NAMES, FileProblem, check_npy_member, kind_of

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "MANIFEST_KEY",
    "atomic_write",
    "read_checkpoint",
    "save_checkpoint",
    "verify_against",
]

FORMAT = "dilnet.weights"
FORMAT_VERSION = 1
MANIFEST_KEY = "__manifest__"

# Kinds of the arrays a checkpoint may hold: bool, signed/unsigned int, float, complex.
_NUMERIC_KINDS = "biufc"
_DTYPE_STR = re.compile(r"[<>|][biufc][0-9]+")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_MANIFEST_KEYS = ("format", "format_version", "dilnet_version", "created", "params", "metadata")
_PARAM_KEYS = ("name", "shape", "dtype", "sha256")
# What a truncated, corrupted or foreign file makes numpy and zipfile raise while reading.
# RuntimeError: zipfile's "File is encrypted" and unsupported compression methods (a flipped flag
# bit in the directory); HEADER_ERRORS: what numpy's .npy header parser raises on damage.
_READ_ERRORS = (zipfile.BadZipFile, zlib.error, RuntimeError, *HEADER_ERRORS)


# ---------------------------------------------------------------------------- atomic writes


def _fsync_directory(directory: str) -> None:
    """Make a rename in `directory` durable; best effort (no-op where directories can't be
    opened, e.g. Windows)."""
    flag = getattr(os, "O_DIRECTORY", None)
    if flag is None:
        return
    try:
        fd = os.open(directory, os.O_RDONLY | flag)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _new_file_mode(path: str) -> int | None:
    """The permission bits the file should get: those of the file it replaces, else the
    umask's default (``0o666 & ~umask``) where it can be read without changing it, else None
    (keep `mkstemp`'s private ``0o600``)."""
    with contextlib.suppress(OSError):
        return os.stat(path).st_mode & 0o777
    # Linux reports the umask here; os.umask() would have to set it, racing with other threads.
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status") as status:
        for line in status:
            if line.startswith("Umask:"):
                return 0o666 & ~int(line.split()[1], 8)
    return None


def atomic_write(path, write_fn: Callable) -> None:
    """Write a file atomically: `path` holds either its old content or all of the new one.

    ``write_fn(fileobj)`` writes the content to a binary file object, which is a temporary file
    ``.<name>.tmp-XXXXXXXX`` in the directory of `path`. The temporary file is then flushed,
    ``fsync``-ed and renamed over `path` with `os.replace` (atomic on POSIX and Windows), and
    the directory is ``fsync``-ed so that the rename survives a power loss (best effort where
    the platform cannot open directories). The new file keeps the permission bits of the file it
    replaces, or gets the umask's default.

    Parameters
    ----------
    path : str or os.PathLike
        The file to create or replace.
    write_fn : callable
        ``write_fn(fileobj) -> None``; may raise.

    Notes
    -----
    If `write_fn` (or anything before the rename) raises, the temporary file is removed, `path`
    is untouched and the exception propagates. If the process is killed mid-write, `path` is
    still untouched but the temporary file stays behind, named ``.<name>.tmp-<pid>-XXXXXXXX``;
    the next successful write of `path` removes those whose process no longer runs (on this
    machine: a directory shared with other machines may hold their writers' files).
    """
    if not callable(write_fn):
        raise ConfigError(invalid("atomic_write", "write_fn", "a callable", write_fn))
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    mode = _new_file_mode(path)
    prefix = f".{os.path.basename(path)}.tmp-"
    fd, tmp = tempfile.mkstemp(prefix=f"{prefix}{os.getpid()}-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as fileobj:
            write_fn(fileobj)
            fileobj.flush()
            os.fsync(fileobj.fileno())
        if mode is not None:
            with contextlib.suppress(OSError):  # best effort: some filesystems have no modes
                os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_directory(directory)
    _remove_stale_temporaries(directory, prefix)


def _process_runs(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process: it runs
        return True
    return True


def _remove_stale_temporaries(directory: str, prefix: str) -> None:
    """Remove ``<prefix><pid>-*`` files of `directory` left by writers that were killed."""
    with contextlib.suppress(OSError):
        for name in os.listdir(directory):
            if not name.startswith(prefix):
                continue
            pid, dash, _ = name[len(prefix) :].partition("-")
            if dash and pid.isdigit() and not _process_runs(int(pid)):
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(directory, name))


# ---------------------------------------------------------------------------- saving


def _sha256(array: np.ndarray) -> str:
    """Hex sha256 of ``np.ascontiguousarray(array).tobytes()``, without copying contiguous
    arrays."""
    data = np.ascontiguousarray(array).reshape(-1).view(np.uint8)
    return hashlib.sha256(data).hexdigest()


def _json_problem(value, path: str) -> str | None:
    """The first reason `value` is not plain JSON (str-keyed dicts, lists, str, finite numbers,
    bool, None), as ``path: ...``; None if it is."""
    if value is None or isinstance(value, str | bool | int):
        return None
    if isinstance(value, float):
        return (
            None
            if math.isfinite(value)
            else f"{path}: expected a finite number; received {value!r}"
        )
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            if problem := _json_problem(item, f"{path}[{i}]"):
                return problem
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"{path}: expected string keys; received key {key!r}"
            if problem := _json_problem(item, f"{path}.{key}"):
                return problem
        return None
    return f"{path}: expected JSON values (dict, list, str, int, float, bool, None); received {value!r}"


def _check_arrays(arrays) -> None:
    where = "save_checkpoint"
    if not isinstance(arrays, Mapping):
        raise ConfigError(invalid(where, "arrays", "a dict of name -> numpy array", arrays))
    for name, array in arrays.items():
        if not isinstance(name, str) or not name:
            raise ConfigError(invalid(where, "name", "a non-empty string", name))
        if name == MANIFEST_KEY:
            raise ConfigError(
                invalid(
                    where, "name", f"any name but {MANIFEST_KEY!r} (it holds the manifest)", name
                )
            )
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            raise ConfigError(invalid(where, "name", "a string encodable as UTF-8", name)) from None
        if not isinstance(array, np.ndarray):
            raise ConfigError(
                invalid(where, f"arrays[{name!r}]", "a numpy array", type(array).__name__)
            )
        if array.dtype.kind not in _NUMERIC_KINDS:
            raise ConfigError(
                invalid(
                    where,
                    f"arrays[{name!r}].dtype",
                    "a numeric dtype (bool, int, uint, float or complex)",
                    str(array.dtype),
                )
            )


def save_checkpoint(path, arrays: Mapping[str, np.ndarray], metadata: dict | None = None) -> dict:
    """Save named arrays and a manifest to one ``.npz`` file, atomically.

    Parameters
    ----------
    path : str or os.PathLike
        The file to write (conventionally ``*.npz``); an existing file is replaced atomically
        (`atomic_write`).
    arrays : dict of str to numpy.ndarray
        The parameters, in order. Names are non-empty strings other than ``"__manifest__"``;
        arrays have a numeric dtype (bool, int, uint, float, complex; not object, string,
        structured or datetime) and any shape, 0-d included.
    metadata : dict, optional
        Plain JSON (str keys, lists, str, finite numbers, bool, None) stored in the manifest,
        e.g. the model config or the training epoch.

    Returns
    -------
    dict
        The manifest as stored, the same dict `read_checkpoint` returns: ``format``,
        ``format_version``, ``dilnet_version``, ``created`` (ISO 8601, UTC), ``params`` (one
        ``{"name", "shape", "dtype", "sha256"}`` per array, in order) and ``metadata`` (as JSON
        reads it back: tuples become lists).

    Raises
    ------
    ConfigError
        If a name, an array or the metadata is invalid (nothing is written).
    OSError
        If the file cannot be written (the old file, if any, is untouched).

    Notes
    -----
    The archive is uncompressed and written as `numpy.savez` writes it (zip64 members,
    ``numpy.lib.format.write_array`` with ``allow_pickle=False``), so ``np.load(path,
    allow_pickle=False)`` reads it. The members are written directly rather than through
    `numpy.savez`, whose keyword arguments would collide with parameters named ``file`` or
    ``allow_pickle``.
    """

    _check_arrays(arrays)
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        raise ConfigError(invalid("save_checkpoint", "metadata", "a dict or None", metadata))
    try:
        problem = _json_problem(metadata, "metadata")
    except RecursionError:
        problem = "metadata: expected plain JSON; received a structure that contains itself"
    if problem:
        raise ConfigError(f"save_checkpoint: invalid value for `metadata`. {problem}.")
    params = [
        {"name": name, "shape": list(a.shape), "dtype": a.dtype.str, "sha256": _sha256(a)}
        for name, a in arrays.items()
    ]
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "dilnet_version": __version__,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "params": params,
        "metadata": metadata,
    }
    text = json.dumps(manifest, allow_nan=False)
    members = {MANIFEST_KEY: np.frombuffer(text.encode("utf-8"), dtype=np.uint8), **arrays}

    def write(fileobj):
        # As numpy.savez: stored (uncompressed) zip64 members named <key>.npy.
        with zipfile.ZipFile(fileobj, mode="w", compression=zipfile.ZIP_STORED) as archive:
            for key, array in members.items():
                with archive.open(f"{key}.npy", mode="w", force_zip64=True) as member:
                    np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)

    atomic_write(path, write)
    return json.loads(text)


# ---------------------------------------------------------------------------- reading


def _is_dtype_str(value) -> bool:
    """True for a numeric dtype in numpy's canonical form (``"<f4"``, ``"|b1"``)."""
    if not (isinstance(value, str) and _DTYPE_STR.fullmatch(value)):
        return False
    try:
        return np.dtype(value).str == value
    except TypeError:  # well-formed but not a type: "<i3"
        return False


def _manifest_problems(manifest) -> list[str]:
    """Everything wrong with a decoded manifest, each as ``$.path: ...``."""
    if not isinstance(manifest, dict):
        return [f"$: expected a JSON object; received {type(manifest).__name__}"]
    if manifest.get("format") != FORMAT:
        return [f"$.format: expected {FORMAT!r}; received {manifest.get('format')!r}"]
    version = manifest.get("format_version")
    if type(version) is not int or version != FORMAT_VERSION:
        newer = type(version) is int and version > FORMAT_VERSION
        return [
            f"$.format_version: expected {FORMAT_VERSION}; received {version!r}"
            + (" (written by a newer dilnet; upgrade dilnet to read it)" if newer else "")
        ]
    problems = [f"$: missing key {k!r}" for k in _MANIFEST_KEYS if k not in manifest]
    problems += [f"$: unexpected key {k!r}" for k in manifest if k not in _MANIFEST_KEYS]
    for key, kind in (("dilnet_version", str), ("created", str), ("metadata", dict)):
        if key in manifest and not isinstance(manifest[key], kind):
            problems.append(f"$.{key}: expected a {kind.__name__}; received {manifest[key]!r}")
    params = manifest.get("params", [])
    if not isinstance(params, list):
        return [*problems, f"$.params: expected a list; received {params!r}"]
    names = set()
    for i, entry in enumerate(params):
        at = f"$.params[{i}]"
        if not isinstance(entry, dict):
            problems.append(f"{at}: expected an object; received {entry!r}")
            continue
        problems += [f"{at}: missing key {k!r}" for k in _PARAM_KEYS if k not in entry]
        problems += [f"{at}: unexpected key {k!r}" for k in entry if k not in _PARAM_KEYS]
        name, shape = entry.get("name"), entry.get("shape")
        dtype, sha = entry.get("dtype"), entry.get("sha256")
        if "name" in entry:
            if not isinstance(name, str) or not name or name == MANIFEST_KEY:
                problems.append(f"{at}.name: expected a parameter name; received {name!r}")
            elif name in names:
                problems.append(f"{at}.name: duplicate parameter name {name!r}")
            else:
                names.add(name)
        if "shape" in entry and not (
            isinstance(shape, list) and all(type(s) is int and s >= 0 for s in shape)
        ):
            problems.append(f"{at}.shape: expected a list of ints >= 0; received {shape!r}")
        if "dtype" in entry and not _is_dtype_str(dtype):
            problems.append(f"{at}.dtype: expected a numeric dtype like '<f4'; received {dtype!r}")
        if "sha256" in entry and not (isinstance(sha, str) and _SHA256.fullmatch(sha)):
            problems.append(f"{at}.sha256: expected 64 lowercase hex digits; received {sha!r}")
    return problems


def _problems_message(where: str, what: str, problems: list[str]) -> str:
    return f"{where}: {what}:\n" + "\n".join(f"  - {p}" for p in problems)


def _read_manifest(npz, where: str) -> dict:
    if MANIFEST_KEY not in npz.files:
        raise WeightsError(
            f"{where}: not a dilnet weights checkpoint. Expected a {MANIFEST_KEY!r} member "
            f"holding the manifest; received an .npz archive with members {npz.files[:10]!r}."
        )
    member = f"{MANIFEST_KEY}.npy" if f"{MANIFEST_KEY}.npy" in npz.zip.namelist() else MANIFEST_KEY
    try:
        check_npy_member(npz.zip, member)
    except FileProblem as problem:
        raise WeightsError(f"{where}: the manifest cannot be read: {problem}.") from None
    try:
        raw = npz[MANIFEST_KEY]
    except _READ_ERRORS as err:
        raise WeightsError(
            f"{where}: the manifest cannot be read; the file is corrupted ({err})."
        ) from err
    if not (isinstance(raw, np.ndarray) and raw.dtype == np.uint8 and raw.ndim == 1):
        raise WeightsError(
            f"{where}: invalid manifest. Expected a 1-d uint8 array of UTF-8 JSON; received "
            f"{type(raw).__name__} {getattr(raw, 'dtype', '')}{getattr(raw, 'shape', '')}."
        )
    try:
        manifest = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise WeightsError(
            f"{where}: invalid manifest. Expected UTF-8 JSON; received bytes that are not ({err})."
        ) from err
    if problems := _manifest_problems(manifest):
        raise WeightsError(_problems_message(where, "invalid manifest", problems))
    return manifest


def _verified_arrays(npz, where: str) -> tuple[dict, dict, list[str]]:
    """The arrays the manifest lists that match it, the manifest, and every mismatch."""
    manifest = _read_manifest(npz, where)
    entries = manifest["params"]
    listed = [entry["name"] for entry in entries]
    members = [m for m in npz.files if m != MANIFEST_KEY]
    problems = [
        f"{n!r}: listed in the manifest but not in the file" for n in listed if n not in members
    ]
    problems += [
        f"{n!r}: in the file but not listed in the manifest" for n in members if n not in listed
    ]
    if len(set(members)) != len(members):
        problems.append("the archive holds duplicate members")
    arrays = {}
    for entry in entries:
        name = entry["name"]
        if name not in members:
            continue
        member = f"{name}.npy" if f"{name}.npy" in npz.zip.namelist() else name
        try:
            check_npy_member(npz.zip, member)
        except FileProblem as problem:
            problems.append(f"{name!r}: cannot be read; {problem}")
            continue
        try:
            array = npz[name]
        except _READ_ERRORS as err:
            problems.append(f"{name!r}: cannot be read; the data is corrupted ({err})")
            continue
        if not isinstance(array, np.ndarray):
            problems.append(f"{name!r}: expected a .npy array member; received raw bytes")
            continue
        expected_shape, expected_dtype = tuple(entry["shape"]), np.dtype(entry["dtype"])
        if array.shape != expected_shape:
            problems.append(
                f"{name!r}: shape differs. Expected {expected_shape}; received {array.shape}"
            )
        elif array.dtype != expected_dtype:
            problems.append(
                f"{name!r}: dtype differs. Expected {entry['dtype']}; received {array.dtype.str}"
            )
        elif (digest := _sha256(array)) != entry["sha256"]:
            problems.append(
                f"{name!r}: sha256 differs (the data was modified or corrupted). "
                f"Expected {entry['sha256']}; received {digest}"
            )
        else:
            arrays[name] = array
    return arrays, manifest, problems


def read_checkpoint(path) -> tuple[dict[str, np.ndarray], dict]:
    """Read and verify a checkpoint written by `save_checkpoint`.

    Everything is checked before anything is returned: the file is a ``.npz`` archive with a
    valid manifest (format ``"dilnet.weights"``, version 1), its arrays are exactly those the
    manifest lists, each with the listed shape, dtype and sha256.

    Parameters
    ----------
    path : str or os.PathLike
        The checkpoint file.

    Returns
    -------
    arrays : dict of str to numpy.ndarray
        The parameters, in the manifest's order.
    manifest : dict
        The manifest (see the module docstring), as `save_checkpoint` returned it.

    Raises
    ------
    WeightsError
        If the file is missing or unreadable, is not an ``.npz`` archive or is truncated, has
        no manifest or an invalid one (not JSON, another format, another version), or its
        arrays differ from the manifest (missing, extra, shape, dtype, sha256). The message
        starts with `path` and lists every parameter concerned.
    """
    where = os.fspath(path)
    try:
        fileobj = open(where, "rb")
    except FileNotFoundError as err:
        raise WeightsError(f"{where}: no such file.") from err
    except OSError as err:
        raise WeightsError(f"{where}: cannot be read ({err.strerror or err}).") from err
    # np.load gets an open file: given a path, it leaks the file it opened when the zip is bad.
    with fileobj:
        kind = kind_of(fileobj.read(8))
        fileobj.seek(0)
        if kind != "zip":
            # numpy would answer a pickle with "use allow_pickle": never the fix
            received = KIND_NAMES.get(kind, "a file of another kind")
            raise WeightsError(
                f"{where}: not a dilnet weights checkpoint. Expected an .npz (zip) archive written "
                f"by Model.save or save_checkpoint; received {received}."
            )
        try:
            npz = np.load(fileobj, allow_pickle=False)
        except _READ_ERRORS as err:
            raise WeightsError(
                f"{where}: not a dilnet weights checkpoint. Expected an .npz (zip) archive; "
                f"received a file that is truncated, corrupted or of another kind "
                f"({type(err).__name__}: {err})."
            ) from err
        if not isinstance(npz, np.lib.npyio.NpzFile):
            raise WeightsError(
                f"{where}: not a dilnet weights checkpoint. Expected an .npz archive; received an "
                f".npy array file."
            )
        with npz:
            arrays, manifest, problems = _verified_arrays(npz, where)
    if problems:
        raise WeightsError(
            _problems_message(where, "the checkpoint's arrays do not match its manifest", problems)
        )
    return arrays, manifest


# ---------------------------------------------------------------------------- verification


def _entries(manifest_or_arrays) -> list[tuple[str, tuple, np.dtype]]:
    """(name, shape, dtype) of each parameter of a manifest or of a dict of arrays."""
    where = "verify_against"
    if not isinstance(manifest_or_arrays, Mapping):
        raise ConfigError(
            invalid(
                where, "manifest_or_arrays", "a manifest or a dict of arrays", manifest_or_arrays
            )
        )
    params = manifest_or_arrays.get("params")
    if isinstance(params, list) and "format" in manifest_or_arrays:
        return [(p["name"], tuple(p["shape"]), np.dtype(p["dtype"])) for p in params]
    entries = []
    for name, array in manifest_or_arrays.items():
        if not isinstance(array, np.ndarray):
            raise ConfigError(
                invalid(where, f"arrays[{name!r}]", "a numpy array", type(array).__name__)
            )
        entries.append((name, array.shape, array.dtype))
    return entries


def _dtype_name(dtype: np.dtype) -> str:
    """``float32``, with the byte order only when it is not the machine's (``>f4``)."""
    return dtype.name if dtype.isnative else dtype.str


def verify_against(manifest_or_arrays, expected, where: str, *, cast: bool = False) -> None:
    """Check that a checkpoint's parameters are the ones a model expects.

    Parameters
    ----------
    manifest_or_arrays : dict
        A manifest (`read_checkpoint`, `save_checkpoint`) or a dict of name -> array.
    expected : list of (str, tuple of int, dtype_like)
        The model's parameters in order: ``(name, shape, dtype)``, e.g.
        ``("conv1.W", (8, 1, 3, 3, 3), "float32")``.
    where : str
        Where the check happens, the start of the message (e.g. ``"Model.load_weights(w.npz)"``).
    cast : bool, optional
        If False (default) dtypes must be equal. If True a float parameter may be stored as
        another float dtype (the caller casts it); every other dtype difference is an error.

    Raises
    ------
    WeightsError
        Listing every mismatch at once: missing parameters, unexpected ones, names in another
        order, and each shape or dtype difference with both values.
    """
    found = _entries(manifest_or_arrays)
    try:
        wanted = [(str(n), tuple(int(s) for s in shape), np.dtype(d)) for n, shape, d in expected]
    except (TypeError, ValueError) as err:
        raise ConfigError(
            invalid("verify_against", "expected", "a list of (name, shape, dtype)", expected)
        ) from err
    found_by_name = {name: (shape, dtype) for name, shape, dtype in found}
    wanted_names = [name for name, _, _ in wanted]
    problems = []
    if missing := [n for n in wanted_names if n not in found_by_name]:
        problems.append(f"missing parameters: {', '.join(map(repr, missing))}")
    if unexpected := [name for name, _, _ in found if name not in set(wanted_names)]:
        problems.append(f"unexpected parameters: {', '.join(map(repr, unexpected))}")
    common_wanted = [n for n in wanted_names if n in found_by_name]
    common_found = [name for name, _, _ in found if name in set(common_wanted)]
    if common_found != common_wanted:
        problems.append(
            f"parameters in another order. Expected {common_wanted}; received {common_found}"
        )
    for name, shape, dtype in wanted:
        if name not in found_by_name:
            continue
        got_shape, got_dtype = found_by_name[name]
        if got_shape != shape:
            problems.append(f"{name!r}: shape differs. Expected {shape}; received {got_shape}")
        if got_dtype != dtype and not (cast and got_dtype.kind == dtype.kind == "f"):
            hint = " (cast=True converts only float to float)" if cast else ""
            problems.append(
                f"{name!r}: dtype differs. Expected {_dtype_name(dtype)}; received "
                f"{_dtype_name(got_dtype)}{hint}"
            )
    if problems:
        raise WeightsError(
            _problems_message(where, "the checkpoint does not fit the model", problems)
        )
