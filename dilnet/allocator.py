"""Let glibc's malloc reuse the memory of large arrays instead of mapping it afresh each time.

glibc serves every allocation above its mmap threshold (128 KiB at first, adapting up to
32 MiB) with fresh pages from the kernel and returns them on free, and it trims freed memory
at the top of its heap. A network's layer outputs are such arrays, allocated and freed on every
call, so every call pays the page faults of zeroing them again: on the 2-core machine of
``bench/malloc.py`` that was more than half of a whole-volume prediction of the MNI152 template.

`reuse_freed_memory` raises both thresholds (``mallopt``), so that freed arrays stay in the
heap for the next ones; `release_freed_memory` hands what is free back to the system
(``malloc_trim``). Both are process-wide and only act with glibc (Linux); elsewhere they return
False and change nothing. The ``dilnet`` command calls `reuse_freed_memory` for itself; from
Python, call it once, or set ``MALLOC_MMAP_THRESHOLD_=1073741824`` and
``MALLOC_TRIM_THRESHOLD_=2147483647`` in the environment before starting Python (the same
settings).
"""

import ctypes
import functools
import sys

from .errors import ConfigError, invalid
from .utils import is_int

__all__ = ["release_freed_memory", "reuse_freed_memory"]

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_INT_MAX = 2**31 - 1


@functools.cache
def _glibc():
    """The process's C library if it is glibc, else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return None
    if not hasattr(libc, "gnu_get_libc_version"):  # musl and others: mallopt is a stub
        return None
    return libc


def reuse_freed_memory(threshold=2**30) -> bool:
    """Serve allocations up to `threshold` bytes from malloc's heap and keep freed memory there.

    Parameters
    ----------
    threshold : int
        Largest allocation served from the heap (default 1 GiB); larger ones are still mapped
        and unmapped on their own. At most ``2**31 - 1``.

    Returns
    -------
    bool
        True if glibc accepted both settings; False where the C library is not glibc.

    Notes
    -----
    Process-wide and lasting: the process keeps its peak heap rather than returning freed
    memory to the system (``bench/malloc.py``: a whole-volume prediction in 0.45x the time for
    113 MiB more peak memory); `release_freed_memory` returns it on demand.
    """
    if not is_int(threshold) or not 0 < threshold <= _INT_MAX:
        raise ConfigError(
            invalid("reuse_freed_memory", "threshold", f"an int in 1..{_INT_MAX}", threshold)
        )
    libc = _glibc()
    if libc is None:
        return False
    mmap_ok = libc.mallopt(_M_MMAP_THRESHOLD, int(threshold)) == 1
    trim_ok = libc.mallopt(_M_TRIM_THRESHOLD, _INT_MAX) == 1
    return mmap_ok and trim_ok


def release_freed_memory() -> bool:
    """Return malloc's free memory to the system (``malloc_trim(0)``); False without glibc."""
    libc = _glibc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True
