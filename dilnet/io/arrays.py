"""Checks made before numpy or nibabel allocate what a file declares: the kind of file (by its
first bytes), the size an ``.npy`` header or a zip member declares against what the file
holds, and a gzip stream read to its end so that its CRC and length are verified.

A header is a few bytes anyone can edit: a 300-byte file may declare a terabyte array. numpy
and nibabel allocate what the header says before reading; these checks compare the declared
size with the bytes that are really there first, so a bad file is an error naming it rather
than a `MemoryError` or a machine that starts swapping.
"""

import gzip
import tokenize
import zipfile
import zlib

import numpy as np

__all__ = [
    "HEADER_ERRORS",
    "KIND_NAMES",
    "NPY_MAGIC",
    "ZIP_MAGICS",
    "FileProblem",
    "check_npy_member",
    "check_npy_stream",
    "gzip_length",
    "kind_of",
]

#: the first bytes of an ``.npy`` file and of a zip archive (``.npz``; an empty archive starts
#: with its end record)
NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
#: what numpy's header parser raises on a damaged header (it evaluates a Python literal)
HEADER_ERRORS = (ValueError, SyntaxError, tokenize.TokenError, TypeError, KeyError, EOFError,
                 OSError, RecursionError, MemoryError, UnicodeDecodeError)  # fmt: skip
_CHUNK = 1 << 24
#: what a file of each `kind_of` is, in an error's "received ..." ("unknown" is the caller's)
KIND_NAMES = {"npy": "an .npy array file", "zip": "an .npz archive", "gzip": "a gzip file",
              "pickle": "a Python pickle, which is never loaded"}  # fmt: skip


class FileProblem(Exception):
    """What is wrong with a file, in words; the caller raises its own error naming the file."""


def kind_of(head: bytes) -> str:
    """``"npy"``, ``"zip"``, ``"gzip"``, ``"pickle"`` or ``"unknown"``, from a file's first bytes."""
    if head.startswith(NPY_MAGIC):
        return "npy"
    if head.startswith(ZIP_MAGICS):
        return "zip"
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "pickle"
    return "unknown"


def _declared(fileobj) -> tuple[tuple, np.dtype, int]:
    """``(shape, dtype, bytes)`` an ``.npy`` header declares; `fileobj` left after the header."""
    try:
        version = np.lib.format.read_magic(fileobj)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(fileobj)
        elif version in ((2, 0), (3, 0)):
            shape, _, dtype = np.lib.format.read_array_header_2_0(fileobj)
        else:
            raise ValueError(f"unknown .npy format version {version}")
    except HEADER_ERRORS as err:
        raise FileProblem(f"damaged .npy header: {type(err).__name__}: {err}") from None
    if dtype.hasobject:
        raise FileProblem(f"an array of Python objects, dtype {dtype}, never unpickled")
    count = 1
    for n in shape:
        count *= int(n)
    return tuple(shape), dtype, count * dtype.itemsize


def _too_big(shape, dtype, declared, available) -> FileProblem:
    return FileProblem(
        f"its header declares shape {shape} of {dtype}, {declared:,} bytes, over {available:,} "
        "bytes of data"
    )


def check_npy_stream(fileobj, size: int) -> None:
    """Check the ``.npy`` header at `fileobj`'s position against the `size` bytes from there to
    the end; `fileobj` is put back where it was. Raises `FileProblem`."""
    start = fileobj.tell()
    try:
        shape, dtype, declared = _declared(fileobj)
        available = size - (fileobj.tell() - start)
    finally:
        fileobj.seek(start)
    if declared > available:
        raise _too_big(shape, dtype, declared, available)


def check_npy_member(archive: zipfile.ZipFile, member: str) -> None:
    """Check the ``.npy`` header of zip `member` against the member's uncompressed size (from the
    archive's directory). Raises `FileProblem`."""
    try:
        info = archive.getinfo(member)
        with archive.open(info) as stream:
            head = stream.read(len(NPY_MAGIC))
            if head != NPY_MAGIC:
                return  # raw bytes, not an array: numpy returns them as such
            # re-open: a zip stream cannot seek back cheaply
        with archive.open(info) as stream:
            shape, dtype, declared = _declared(stream)
            header = stream.tell()
    except FileProblem:
        raise
    except (zipfile.BadZipFile, zlib.error, RuntimeError, NotImplementedError, *HEADER_ERRORS) as e:
        raise FileProblem(f"the data is corrupted ({type(e).__name__}: {e})") from None
    if declared > info.file_size - header:
        raise _too_big(shape, dtype, declared, info.file_size - header)


def gzip_length(path) -> int:
    """The length of the data gzip file `path` decompresses to, read to its end so that every
    member's CRC-32 and length are checked (a reader that stops at the data's end never reads
    the trailer). A damaged stream raises what `gzip` raises (`gzip.BadGzipFile`, an `OSError`;
    `EOFError`; `zlib.error`)."""
    total = 0
    with gzip.open(path, "rb") as stream:
        while chunk := stream.read(_CHUNK):
            total += len(chunk)
    return total
