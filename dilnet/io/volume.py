"""Volume files: NIfTI, NumPy (``.npy``/``.npz``) and TIFF, read into one channels-first layout.

dilnet works channels-first: a volume in memory is ``data`` of shape ``(C, *spatial)`` with
``C >= 1`` and ``len(spatial) == rank`` (3 for volumes, 2 for images). `read_volume` always
returns that layout, C-contiguous and in native byte order; `write_volume` takes it back and
writes each format's own convention.

Layouts, in memory and on disk, for ``rank=3`` (``rank=2`` drops ``Z``):

| format | file: one channel | file: C channels | in memory, `Volume.data` |
|---|---|---|---|
| ``nifti`` | ``(X, Y, Z)`` | ``(X, Y, Z, C)`` or ``(X, Y, Z, 1, C)`` | ``(C, X, Y, Z)`` |
| ``npy`` | ``(Z, Y, X)`` | ``(C, Z, Y, X)`` | ``(C, Z, Y, X)`` |
| ``npz`` | as ``npy``, member ``"volume"`` | as ``npy`` | ``(C, Z, Y, X)`` |
| ``tiff`` | series axes ``ZYX`` | series axes ``ZCYX`` | ``(C, Z, Y, X)`` |

In shapes, for a file array of shape ``S`` and ``r = rank``:

```text
len(S) == r                          ->  data.shape == (1, *S)
len(S) == r + 1, NIfTI               ->  data.shape == (S[r], *S[:r])
len(S) == 5, r == 3, S[3] == 1, NIfTI ->  data.shape == (S[4], *S[:3])
len(S) == r + 1, .npy/.npz           ->  data.shape == S
TIFF series axes ZCYX, shape S       ->  data.shape == (S[1], S[0], S[2], S[3])
```

and `write_volume` inverts each line (``(C, X, Y, Z) -> (X, Y, Z, C)`` for NIfTI).

So a file of ``rank`` dims is one channel (a new axis 0) and a file of ``rank + 1`` dims holds
channels: last in NIfTI (its convention; a 5-D file ``(X, Y, Z, 1, C)`` with a singleton time
axis is accepted too), first in ``.npy``/``.npz``, and for TIFF wherever tifffile's series axes
put ``C`` (an ImageJ hyperstack is ``ZCYX``; RGB samples ``S`` count as channels). Anything else
is a `VolumeError` naming the file, the expected shapes and the received shape.

Spatial axes keep the file's own array order: NIfTI's voxel axes ``(i, j, k)``, so the affine
still maps ``data[c, i, j, k]`` to world coordinates. Nothing is reoriented or resampled.

Notes
-----
Reading. NIfTI data is read with its scaling applied (``scl_slope``/``scl_inter``; scaled
integers come back as floats) and ``Volume.affine`` is nibabel's best affine (sform, else
qform). An ``.npz`` with one array uses it; with several, the member `key` names, else the member
``"volume"``; an ``"affine"`` member beside it (4x4) becomes ``Volume.affine``. TIFF drops
singleton axes (a one-slice ImageJ stack reads as ``YX``), so with ``rank=3`` a TIFF whose series
has no depth axis is a one-slice volume: ``(Y, X) -> (1, 1, Y, X)``, ``(C, Y, X) -> (C, 1, Y, X)``.
The depth axis is tifffile's ``Z``, ``I`` (a plain multi-page file) or ``Q`` (unknown).

Writing. ``write_volume(path, array, rank=3, like=vol)`` takes ``array`` of ``rank`` dims (a
label map) or ``rank + 1`` dims channels-first (class probabilities) and writes:

* NIfTI: channels moved last, ``(C, X, Y, Z) -> (X, Y, Z, C)``. With a NIfTI `like`, its header
  is copied (description, units, qform/sform and their codes, the spatial zooms; the channel
  axis gets zoom 1) and its affine kept; the data dtype and shape are the new array's, the
  scaling is reset (``scl_slope = scl_inter = nan``: stored values are exact) and so is the
  display range (``cal_min = cal_max = 0``). An explicit `affine` overrides `like`'s and sets
  the sform/qform with `like`'s codes and zooms from the affine. With neither, the affine is
  the identity and the codes are nibabel's defaults (sform 2 "aligned", qform 0). Channels are
  marked as a vector at each voxel, not a time series: intent ``"vector"`` (code 1007), the
  time unit "unknown" and ``toffset = 0`` (`like`'s spatial unit is kept); a one-channel output
  has no intent code. The file stays 4-D ``(X, Y, Z, C)``, the layout of multi-class
  probability maps such as SPM's ``TPM.nii``, rather than NIfTI-1's 5-D vector layout
  ``(X, Y, Z, 1, C)`` (which `read_volume` also accepts). ``.nii.gz`` is gzip level 1 with
  ``mtime=0``, so equal data gives equal bytes.
* ``.npy``: the array as is. ``.npz``: compressed, the array under ``"volume"``, plus
  ``"affine"`` when one is known (`affine`, else ``like.affine``).
* TIFF: ``(Z, Y, X)`` as a stack, ``(C, Z, Y, X)`` as a hyperstack with series axes ``ZCYX``
  (``YX`` and ``CYX`` for ``rank=2``). uint8, uint16, int16 and float32 are written as ImageJ
  files (Fiji opens them as hyperstacks); other dtypes, and planes 1 pixel high or wide (which
  ImageJ's singleton-dropping garbles), as tifffile "shaped" files whose metadata names the
  same axes and keeps every singleton. A TIFF `like`'s resolution, spacing and unit are kept.

Dtypes: bool is written as uint8. 64-bit integers (label maps) become the smallest of uint8,
int16, int32 that holds their values for NIfTI and TIFF (int64 stays only where none does);
NIfTI float16 becomes float32. Everything else, float64 included, is written as given.
Complex, string, object and structured data is a `VolumeError`, on reading and writing; nothing
is ever unpickled (``np.load(..., allow_pickle=False)``).

Writing is atomic (`dilnet.io.weights.atomic_write`): the file is streamed into a temporary
``.<name>.tmp-XXXXXXXX`` in the same directory and renamed over `path`, so a failed write leaves
no temporary file and an existing `path` untouched. No parent directory is created.

Every failure is one `VolumeError` whose message starts with the file, says what was expected and
what was received; a library's own error (a truncated gzip, a foreign TIFF) is wrapped on one
line, chained with ``raise ... from``.
"""

import gzip
import operator
import os
import pathlib
import zipfile
import zlib

import attrs
import nibabel as nib
import numpy as np
import tifffile
from nibabel.filebasedimages import ImageFileError
from nibabel.spatialimages import HeaderDataError

from ..errors import VolumeError, invalid
from ..utils import physical_memory
from .arrays import (
    HEADER_ERRORS,
    KIND_NAMES,
    FileProblem,
    check_npy_member,
    check_npy_stream,
    gzip_length,
    kind_of,
)
from .weights import atomic_write

__all__ = ["FORMATS", "SUFFIXES", "Volume", "read_volume", "volume_format", "write_volume"]

FORMATS = ("nifti", "npy", "npz", "tiff")
# Suffix (matched case-insensitively at the end of the name) -> format.
SUFFIXES = {
    ".nii.gz": "nifti",
    ".nii": "nifti",
    ".npy": "npy",
    ".npz": "npz",
    ".tiff": "tiff",
    ".tif": "tiff",
}
_SUFFIX_LIST = ", ".join(sorted(SUFFIXES))
# Spatial ranks each format can hold: NIfTI has 3 spatial dims, TIFF images are 2-D planes.
_RANKS = {"nifti": (2, 3), "tiff": (2, 3)}
_NPZ_KEY = "volume"
_AFFINE_KEY = "affine"
# bool, signed and unsigned integers, floats; complex has no meaning for a network's input.
_NUMERIC_KINDS = "biuf"
_LABEL_DTYPES = (np.uint8, np.int16, np.int32)
# The dtypes ImageJ opens: 8/16-bit grey (int16 via a calibration) and 32-bit float.
_IMAGEJ_CHARS = "BHhf"
# Depth axes in tifffile's series axes: Z, I (pages of a plain multi-page file), Q (unknown).
_TIFF_DEPTH = "ZIQ"
# nibabel's own default level: fast, and most of the gain on volumes.
_GZIP_LEVEL = 1
# What a truncated, corrupted or foreign file makes the libraries raise.
_READ_ERRORS = (
    ImageFileError,
    HeaderDataError,
    tifffile.TiffFileError,
    zipfile.BadZipFile,
    zlib.error,
    RuntimeError,  # zipfile: "File is encrypted", an unsupported compression method
    *HEADER_ERRORS,  # a damaged .npy header; OSError, EOFError, ValueError among them
)
_WRITE_ERRORS = (HeaderDataError, ImageFileError, zlib.error, OSError, ValueError)


@attrs.frozen(kw_only=True, eq=False)
class Volume:
    """A volume read from a file: channels-first data plus what the file says about space.

    Attributes
    ----------
    data : numpy.ndarray
        ``(C, *spatial)``, ``C >= 1``; the spatial axes in the file's array order (see the module
        docstring).
    affine : numpy.ndarray or None
        4x4 float64 voxel -> world (NIfTI's best affine, or an ``.npz`` ``"affine"`` member);
        None where the file stores none.
    header : object or None
        What to carry to an output of the same format: the nibabel header for NIfTI; for TIFF a
        dict with ``"axes"`` (the file's series axes) and, where stored, ``"resolution"``,
        ``"spacing"``, ``"unit"``; None otherwise.
    format : str
        One of `FORMATS`: ``"nifti"``, ``"npy"``, ``"npz"``, ``"tiff"``.
    path : pathlib.Path
        The file it was read from.
    """

    data: np.ndarray
    affine: np.ndarray | None = None
    header: object | None = None
    format: str
    path: pathlib.Path = attrs.field(converter=pathlib.Path)

    def __attrs_post_init__(self):
        where = str(self.path)
        if not (isinstance(self.data, np.ndarray) and self.data.ndim >= 2 and len(self.data)):
            received = getattr(self.data, "shape", type(self.data).__name__)
            raise VolumeError(
                invalid(where, "data", "an array (C, *spatial) with C >= 1", received)
            )
        if self.format not in FORMATS:
            raise VolumeError(invalid(where, "format", f"one of {FORMATS}", self.format))
        if self.affine is not None and np.shape(self.affine) != (4, 4):
            raise VolumeError(invalid(where, "affine", "a 4x4 array or None", self.affine))

    @property
    def spatial(self) -> tuple[int, ...]:
        """The spatial shape, ``data.shape[1:]``."""
        return self.data.shape[1:]

    @property
    def channels(self) -> int:
        """The number of channels, ``data.shape[0]``."""
        return self.data.shape[0]


# ---------------------------------------------------------------------------- arguments


def _where(path, function: str) -> str:
    try:
        return os.fspath(path)
    except TypeError:
        raise VolumeError(invalid(function, "path", "a str or os.PathLike", path)) from None


def volume_format(path) -> str:
    """The volume format of `path`, from its suffix (case-insensitive).

    ``.nii`` and ``.nii.gz`` -> ``"nifti"``, ``.npy`` -> ``"npy"``, ``.npz`` -> ``"npz"``,
    ``.tif`` and ``.tiff`` -> ``"tiff"``.

    Raises
    ------
    VolumeError
        For any other suffix, listing the supported ones.
    """
    where = _where(path, "volume_format")
    name = os.path.basename(where).lower()
    for suffix, fmt in SUFFIXES.items():
        if name.endswith(suffix) and len(name) > len(suffix):
            return fmt
    suffix = pathlib.PurePath(name).suffix
    received = repr(suffix) if suffix else "(no suffix)"
    raise VolumeError(f"{where}: unknown volume type {received}; expected one of {_SUFFIX_LIST}.")


def _rank(where: str, rank, fmt: str) -> int:
    allowed = _RANKS.get(fmt)
    expected = f"{allowed[0]} or {allowed[1]} for a {fmt} file" if allowed else "an integer >= 1"
    try:
        value = operator.index(rank)
    except TypeError:
        value = None
    if value is None or isinstance(rank, bool) or value < 1 or (allowed and value not in allowed):
        raise VolumeError(invalid(where, "rank", expected, rank))
    return value


def _spatial_names(fmt: str, rank: int) -> str:
    """``X, Y, Z`` for NIfTI (voxel axes i, j, k); ``Z, Y, X`` (array order) for the others."""
    if rank > 3:
        return f"{rank} spatial axes"
    return ", ".join("XYZ"[:rank] if fmt == "nifti" else "ZYX"[-rank:])


def _one_line(err: BaseException) -> str:
    return f"{type(err).__name__}: {' '.join(str(err).split())}"


def _check_dtype(where: str, dtype: np.dtype, member: str = "") -> None:
    if dtype.kind not in _NUMERIC_KINDS or dtype.fields is not None:
        inside = f" in {member!r}" if member else ""
        raise VolumeError(
            f"{where}: expected numeric data (bool, integer or float){inside}; received dtype "
            f"{dtype}."
        )


def _open_for_reading(where: str):
    try:
        return open(where, "rb")
    except FileNotFoundError as err:
        raise VolumeError(f"{where}: no such file.") from err
    except IsADirectoryError as err:
        raise VolumeError(f"{where}: expected a file; received a directory.") from err
    except OSError as err:
        raise VolumeError(f"{where}: cannot be read ({err.strerror or err}).") from err


def _corrupt(where: str, expected: str, err: BaseException) -> VolumeError:
    return VolumeError(
        f"{where}: expected {expected}; received a file that is truncated, corrupted or of "
        f"another kind ({_one_line(err)})."
    )


def _damaged(where: str, expected: str, problem: FileProblem) -> VolumeError:
    return VolumeError(
        f"{where}: expected {expected}; received a file that is truncated, corrupted or of "
        f"another kind ({problem})."
    )


def _check_fits_in_memory(where: str, declared: int, what: str) -> None:
    memory = physical_memory()
    if memory is not None and declared > memory:
        raise VolumeError(
            f"{where}: expected {what} that fits in memory; received one declaring "
            f"{declared:,} bytes, more than this machine's {memory:,} bytes of RAM."
        )


# ---------------------------------------------------------------------------- reading


def _read_nifti(where: str, rank: int):
    # Opened here first for the file errors; nibabel reopens it by name (it needs the suffix).
    with _open_for_reading(where) as fileobj:
        compressed = kind_of(fileobj.read(2)) == "gzip"
    expected = "a NIfTI-1 or NIfTI-2 file"
    if compressed:
        # nibabel stops reading at the data's end, before the gzip trailer: without this pass a
        # flipped bit would load as different voxels, the CRC never checked
        try:
            length = gzip_length(where)
        except (OSError, EOFError, zlib.error) as err:
            raise _corrupt(where, expected, err) from err
    else:
        length = os.path.getsize(where)
    try:
        # mmap=False: read the data now (a truncated file fails here, not later) and keep no map.
        image = nib.load(where, mmap=False)
        if not isinstance(image, nib.Nifti1Image):
            raise ImageFileError(f"nibabel reads it as {type(image).__name__}")
        _check_dtype(where, image.get_data_dtype())
        header = image.header
        count = 1
        for n in header.get_data_shape():
            count *= int(n)
        declared = count * header.get_data_dtype().itemsize
        offset = int(header.get_data_offset())
        if declared > length - offset:
            raise VolumeError(
                f"{where}: expected {expected}; received a file that is truncated, corrupted or "
                f"of another kind (its header declares shape {header.get_data_shape()} of "
                f"{header.get_data_dtype()}, {declared:,} bytes, over "
                f"{max(length - offset, 0):,} bytes of data)."
            )
        array = np.asanyarray(image.dataobj)
    except VolumeError:
        raise
    except _READ_ERRORS as err:
        raise _corrupt(where, "a NIfTI-1 or NIfTI-2 file", err) from err
    shape = array.shape
    if array.ndim == rank:
        data = array[np.newaxis]
    elif array.ndim == rank + 1:
        data = np.moveaxis(array, -1, 0)
    elif rank == 3 and array.ndim == 5 and shape[3] == 1:
        data = np.moveaxis(array[:, :, :, 0, :], -1, 0)
    else:
        names = _spatial_names("nifti", rank)
        five = " or 5-D (X, Y, Z, 1, C)" if rank == 3 else ""
        raise VolumeError(
            f"{where}: expected a {rank}-D volume or {rank + 1}-D with channels last "
            f"({names}, C){five}; received shape {shape}."
        )
    affine = np.array(image.affine, dtype=np.float64)
    return data, affine, image.header


def _numpy_shape_error(where: str, rank: int, shape: tuple, member: str = "") -> VolumeError:
    return VolumeError(
        f"{where}: expected {member}a {rank}-D volume or {rank + 1}-D with channels first "
        f"(C, {_spatial_names('npy', rank)}); received shape {shape}."
    )


def _numpy_channels(where: str, array: np.ndarray, rank: int, member: str = "") -> np.ndarray:
    if array.ndim == rank:
        return array[np.newaxis]
    if array.ndim == rank + 1:
        return array
    raise _numpy_shape_error(where, rank, array.shape, member)


def _load_numpy(where: str, fmt: str, fileobj):
    expected = "a NumPy .npy array file" if fmt == "npy" else "a NumPy .npz archive"
    try:
        loaded = np.load(fileobj, allow_pickle=False)
    except _READ_ERRORS as err:
        raise _corrupt(where, expected, err) from err
    if fmt == "npy" and not isinstance(loaded, np.ndarray):
        loaded.close()
        raise VolumeError(f"{where}: expected a NumPy .npy array file; received an .npz archive.")
    if fmt == "npz" and not isinstance(loaded, np.lib.npyio.NpzFile):
        raise VolumeError(f"{where}: expected a NumPy .npz archive; received an .npy array file.")
    return loaded


def _npz_member(where: str, npz, key) -> str:
    keys = list(npz.files)
    if key is not None:
        if key not in keys:
            raise VolumeError(f"{where}: expected an array named {key!r}; received arrays {keys}.")
        return key
    if len(keys) == 1:
        return keys[0]
    if _NPZ_KEY in keys:
        return _NPZ_KEY
    if not keys:
        raise VolumeError(f"{where}: expected an array; received an empty archive.")
    raise VolumeError(
        f"{where}: expected one array or one named {_NPZ_KEY!r}; received arrays {keys}. "
        f"Pass key= (--key on the command line) to choose one."
    )


def _npz_get(where: str, npz, name: str) -> np.ndarray:
    member = f"{name}.npy" if f"{name}.npy" in npz.zip.namelist() else name
    try:
        check_npy_member(npz.zip, member)
    except FileProblem as problem:
        raise _damaged(where, f"a readable array {name!r}", problem) from problem
    try:
        return npz[name]
    except _READ_ERRORS as err:
        raise _corrupt(where, f"a readable array {name!r}", err) from err


def _read_numpy(where: str, fmt: str, rank: int, key):
    if key is not None and not isinstance(key, str):
        raise VolumeError(invalid(where, "key", "a str or None", key))
    # np.load gets an open file: given a path, it leaks the file it opened when the zip is bad.
    with _open_for_reading(where) as fileobj:
        expected = "a NumPy .npy array file" if fmt == "npy" else "a NumPy .npz archive"
        kind = kind_of(fileobj.read(8))
        fileobj.seek(0)
        if kind != ("npy" if fmt == "npy" else "zip"):
            # numpy would try to unpickle it and say "use allow_pickle": never the fix
            received = KIND_NAMES.get(
                kind,
                "a file that is truncated, corrupted or of another kind: it does not "
                "start as one does",
            )
            raise VolumeError(f"{where}: expected {expected}; received {received}.")
        if fmt == "npy":
            try:
                check_npy_stream(fileobj, os.fstat(fileobj.fileno()).st_size)
            except FileProblem as problem:
                raise _damaged(where, expected, problem) from problem
        loaded = _load_numpy(where, fmt, fileobj)
        if fmt == "npy":
            _check_dtype(where, loaded.dtype)
            return _numpy_channels(where, loaded, rank), None, None
        with loaded as npz:
            name = _npz_member(where, npz, key)
            array = _npz_get(where, npz, name)
            member = f"{name!r} to be "
            _check_dtype(where, array.dtype, name)
            data = _numpy_channels(where, array, rank, member)
            affine = None
            if name != _AFFINE_KEY and _AFFINE_KEY in npz.files:
                stored = _npz_get(where, npz, _AFFINE_KEY)
                if stored.shape != (4, 4) or stored.dtype.kind not in "iuf":
                    raise VolumeError(
                        f"{where}: expected {_AFFINE_KEY!r} to be a 4x4 matrix of numbers; "
                        f"received shape {stored.shape} dtype {stored.dtype}."
                    )
                affine = stored.astype(np.float64)
    return data, affine, None


def _tiff_layout(axes: str, rank: int) -> tuple[list[int], bool, bool] | None:
    """How a TIFF series with `axes` becomes ``(C, *spatial)``: the transpose to
    ``([C,] [depth,] Y, X)``, whether it has a channel axis (``C``, else samples ``S``) and
    whether a depth axis must be added (``rank=3`` and none in the file); None if it does not
    fit `rank`."""
    channel = "C" if "C" in axes else "S" if "S" in axes else ""
    rest = axes.replace(channel, "") if channel else axes
    if rank == 2:
        fits = rest == "YX"
    else:
        fits = rest == "YX" or (len(rest) == 3 and rest[0] in _TIFF_DEPTH and rest[1:] == "YX")
    if not fits:
        return None
    order = ([axes.index(channel)] if channel else []) + [axes.index(a) for a in rest]
    return order, bool(channel), rank == 3 and rest == "YX"


def _tiff_header(tif: tifffile.TiffFile, axes: str) -> dict:
    header = {"axes": axes}
    page = tif.pages.first
    if "XResolution" in page.tags and "YResolution" in page.tags:
        header["resolution"] = tuple(float(r) for r in page.resolution)
    metadata = tif.imagej_metadata or (tif.shaped_metadata or [{}])[0] or {}
    for name in ("spacing", "unit"):
        if name in metadata:
            header[name] = metadata[name]
    return header


def _read_tiff(where: str, rank: int):
    with _open_for_reading(where) as fileobj:
        try:
            with tifffile.TiffFile(fileobj) as tif:
                if not tif.series:
                    raise ValueError("no image series")
                series = tif.series[0]
                # tifffile falls back to the pages it can read when the ImageJ or shaped
                # metadata does not match them (a truncated file): never return part of one.
                for kind, flag in (("imagej", tif.is_imagej), ("shaped", tif.is_shaped)):
                    if flag and series.kind != kind:
                        raise ValueError(f"its {kind} metadata does not match its pages")
                axes = series.axes
                _check_dtype(where, np.dtype(series.dtype))
                _check_fits_in_memory(where, int(series.nbytes), "a TIFF series")
                array = series.asarray()
                header = _tiff_header(tif, axes)
        except VolumeError:
            raise
        except Exception as err:  # tifffile parses foreign bytes: any exception may come
            raise _corrupt(where, "a TIFF file", err) from err
    layout = _tiff_layout(axes, rank)
    if layout is None:
        expected = (
            "YX (an image) or CYX, YXS (with channels)"
            if rank == 2
            else "ZYX (a stack) or ZCYX, CZYX (a hyperstack with channels)"
        )
        raise VolumeError(
            f"{where}: expected TIFF series axes {expected}; received axes {axes!r} with shape "
            f"{array.shape}."
        )
    order, has_channels, add_depth = layout
    data = np.transpose(array, order)
    if not has_channels:
        data = data[np.newaxis]
    if add_depth:
        data = data[:, np.newaxis]
    return data, None, header


def read_volume(path, *, rank: int = 3, key: str | None = None) -> Volume:
    """Read a volume file into channels-first data ``(C, *spatial)``.

    Parameters
    ----------
    path : str or os.PathLike
        A ``.nii``, ``.nii.gz``, ``.npy``, ``.npz``, ``.tif`` or ``.tiff`` file (`volume_format`).
    rank : int, optional
        The number of spatial axes: 3 (default) for volumes, 2 for images (any ``>= 1`` for
        ``.npy``/``.npz``).
    key : str, optional
        The ``.npz`` member to read; needed only when the archive holds several arrays and none
        is named ``"volume"``.

    Returns
    -------
    Volume
        ``data`` of shape ``(C, *spatial)``, C-contiguous, native byte order. A file of `rank`
        dims gives ``C = 1``; one of ``rank + 1`` dims holds the channels (module docstring).

    Raises
    ------
    VolumeError
        If the suffix is unknown, the file is missing, unreadable, truncated or not the format
        its name says, its data is not numeric, its shape does not fit `rank`, or an ``.npz``
        holds several arrays and `key` is not given.
    """
    where = _where(path, "read_volume")
    fmt = volume_format(where)
    rank = _rank(where, rank, fmt)
    if key is not None and fmt != "npz":
        raise VolumeError(invalid(where, "key", "None for a file other than .npz", key))
    if fmt == "nifti":
        data, affine, header = _read_nifti(where, rank)
    elif fmt == "tiff":
        data, affine, header = _read_tiff(where, rank)
    else:
        data, affine, header = _read_numpy(where, fmt, rank, key)
    if data.size == 0:
        raise VolumeError(
            f"{where}: expected a non-empty volume; received {len(data)} channel(s) of spatial "
            f"shape {data.shape[1:]}."
        )
    data = np.ascontiguousarray(data, dtype=data.dtype.newbyteorder("="))
    return Volume(data=data, affine=affine, header=header, format=fmt, path=pathlib.Path(where))


# ---------------------------------------------------------------------------- writing


def _narrow_labels(array: np.ndarray) -> np.ndarray:
    """64-bit integers as the smallest of uint8, int16, int32 that holds their values."""
    if array.dtype.kind not in "iu" or array.dtype.itemsize < 8:
        return array
    low, high = (int(array.min()), int(array.max())) if array.size else (0, 0)
    for dtype in _LABEL_DTYPES:
        info = np.iinfo(dtype)
        if info.min <= low and high <= info.max:
            return array.astype(dtype)
    return array


def _nifti_image(array: np.ndarray, rank: int, like, affine) -> nib.Nifti1Image:
    """The NIfTI image of `array` (file layout, channels last)."""
    if array.dtype == np.float16:
        array = array.astype(np.float32)
    like_header = like.header if like is not None and like.format == "nifti" else None
    if not isinstance(like_header, nib.Nifti1Header):
        if affine is None:
            affine = like.affine if like is not None and like.affine is not None else np.eye(4)
        return _mark_channels(nib.Nifti1Image(array, affine, dtype=array.dtype), rank)
    header = like_header.copy()
    # Read now: nibabel resets the codes when the image's affine differs from the header's.
    sform_code, qform_code = int(header["sform_code"]), int(header["qform_code"])
    image_class = nib.Nifti2Image if isinstance(header, nib.Nifti2Header) else nib.Nifti1Image
    if affine is None:
        affine = like.affine if like.affine is not None else header.get_best_affine()
        zooms = header.get_zooms()[:rank]
    else:
        zooms = tuple(nib.affines.voxel_sizes(affine)[:rank])
    moved = not np.allclose(affine, header.get_best_affine())
    image = image_class(array, affine, header=header, dtype=array.dtype)
    header = image.header
    header.set_data_shape(array.shape)
    zooms = (*zooms, *(1.0,) * (rank - len(zooms)))
    header.set_zooms((*zooms, *(1.0,) * (array.ndim - rank)))
    header.set_slope_inter(None, None)
    header["cal_min"] = header["cal_max"] = 0
    if moved:
        # A new affine: set both forms with `like`'s codes.
        if qform_code:
            image.set_qform(affine, code=qform_code)
        image.set_sform(affine, code=sform_code or "aligned")
    return _mark_channels(image, rank)


def _mark_channels(image: nib.Nifti1Image, rank: int) -> nib.Nifti1Image:
    """The intent and units of `image`'s new data: a channel axis (``rank + 1`` dims) is a
    vector at each voxel (intent ``"vector"``, 1007) without a time unit or offset; otherwise
    no intent (`like`'s, a statistic or a vector, does not describe the new data)."""
    header = image.header
    if len(header.get_data_shape()) == rank + 1:
        header.set_intent("vector")
        header.set_xyzt_units(xyz=header.get_xyzt_units()[0], t="unknown")
        header["toffset"] = 0
    else:
        header.set_intent("none")
    return image


def _write_nifti(fileobj, where: str, image: nib.Nifti1Image) -> None:
    if where.lower().endswith(".gz"):
        with gzip.GzipFile(
            filename="", mode="wb", fileobj=fileobj, compresslevel=_GZIP_LEVEL, mtime=0
        ) as stream:
            image.to_stream(stream)
    else:
        image.to_stream(fileobj)


def _tiff_writer(array: np.ndarray, rank: int, like):
    """``write(fileobj)`` for `array` (channels-first or one channel) as a TIFF."""
    channels = array.ndim == rank + 1
    if channels and rank == 3:
        array, axes = np.moveaxis(array, 0, 1), "ZCYX"
    else:
        axes = ("C" if channels else "") + "ZYX"[-rank:]
    metadata: dict = {"axes": axes}
    options: dict = {}
    carried = like.header if like is not None and isinstance(like.header, dict) else {}
    for name in ("spacing", "unit"):
        if name in carried:
            metadata[name] = carried[name]
    if "resolution" in carried:
        options["resolution"] = tuple(carried["resolution"])
    # ImageJ drops singleton axes on reading; a plane of height or width 1 comes back garbled.
    if array.dtype.char in _IMAGEJ_CHARS and min(array.shape[-2:]) > 1:
        options["imagej"] = True
    else:
        options["photometric"] = "minisblack"

    def write(fileobj):
        # Named: tifffile wants a file name, and `atomic_write`'s file object has only an fd.
        handle = tifffile.FileHandle(fileobj, mode="wb", name="volume.tif")
        tifffile.imwrite(handle, array, metadata=metadata, **options)

    return write


def _check_affine(where: str, affine) -> np.ndarray | None:
    if affine is None:
        return None
    try:
        matrix = np.array(affine, dtype=np.float64)
    except (TypeError, ValueError):
        matrix = None
    if matrix is None or matrix.shape != (4, 4) or not np.isfinite(matrix).all():
        received = getattr(matrix, "shape", affine)
        raise VolumeError(invalid(where, "affine", "a 4x4 matrix of finite numbers", received))
    return matrix


def _check_target(where: str) -> None:
    parent = os.path.dirname(os.path.abspath(where))
    if not os.path.isdir(parent):
        raise VolumeError(f"{where}: cannot be written; the directory {parent} does not exist.")
    if os.path.isdir(where):
        raise VolumeError(
            f"{where}: cannot be written; expected a file path; received a directory."
        )


def write_volume(path, array, *, rank: int = 3, like: Volume | None = None, affine=None):
    """Write channels-first data in the convention of `path`'s format, atomically.

    Parameters
    ----------
    path : str or os.PathLike
        The file to create or replace; its suffix picks the format (`volume_format`). Its
        directory must exist.
    array : array_like
        ``rank`` dims (one volume, e.g. a label map) or ``rank + 1`` dims channels-first
        ``(C, *spatial)`` (e.g. class probabilities). Numeric (bool, integer or float).
    rank : int, optional
        The number of spatial axes: 3 (default) or 2 (any ``>= 1`` for ``.npy``/``.npz``).
    like : Volume, optional
        The volume the data belongs to: a NIfTI output keeps its header and affine, a TIFF
        output its resolution and spacing, an ``.npz`` output its affine.
    affine : array_like, optional
        4x4 voxel -> world; overrides ``like.affine`` (used by NIfTI and ``.npz``).

    Returns
    -------
    pathlib.Path
        `path`.

    Raises
    ------
    VolumeError
        If the suffix is unknown, the directory is missing, `array` is not numeric or its rank is
        neither `rank` nor ``rank + 1``, `affine` is not 4x4, or the library or the file system
        fails (then `path` is untouched and no temporary file is left).

    Notes
    -----
    The layouts and dtype conversions are in the module docstring: NIfTI gets
    ``(C, X, Y, Z) -> (X, Y, Z, C)``, TIFF ``(C, Z, Y, X) -> ZCYX``, NumPy the array as is; bool
    becomes uint8 and, for NIfTI and TIFF, int64 the smallest of uint8/int16/int32 that fits.
    """
    where = _where(path, "write_volume")
    fmt = volume_format(where)
    rank = _rank(where, rank, fmt)
    if like is not None and not isinstance(like, Volume):
        raise VolumeError(invalid(where, "like", "a Volume or None", type(like).__name__))
    affine = _check_affine(where, affine)
    try:
        data = np.asarray(array)
    except (TypeError, ValueError) as err:
        raise VolumeError(
            f"{where}: expected numeric data; received {type(array).__name__} that numpy "
            f"cannot convert ({_one_line(err)})."
        ) from err
    _check_dtype(where, data.dtype)
    if data.ndim not in (rank, rank + 1) or data.size == 0:
        raise VolumeError(
            f"{where}: expected a non-empty {rank}-D array or {rank + 1}-D with channels first "
            f"(C, {_spatial_names(fmt, rank)}); received shape {data.shape}."
        )
    if data.dtype == np.bool_:
        data = data.astype(np.uint8)
    _check_target(where)
    channels = data.ndim == rank + 1
    try:
        if fmt == "nifti":
            image = _nifti_image(
                np.moveaxis(_narrow_labels(data), 0, -1) if channels else _narrow_labels(data),
                rank,
                like,
                affine,
            )

            def write(fileobj):
                _write_nifti(fileobj, where, image)

        elif fmt == "tiff":
            write = _tiff_writer(_narrow_labels(data), rank, like)
        elif fmt == "npy":

            def write(fileobj):
                np.save(fileobj, data, allow_pickle=False)

        else:
            if affine is None and like is not None:
                affine = like.affine
            members = {_NPZ_KEY: data}
            if affine is not None:
                members[_AFFINE_KEY] = np.asarray(affine, dtype=np.float64)

            def write(fileobj):
                np.savez_compressed(fileobj, **members)

        atomic_write(where, write)
    except VolumeError:
        raise
    except _WRITE_ERRORS as err:
        raise VolumeError(f"{where}: cannot be written ({_one_line(err)}).") from err
    return pathlib.Path(where)
