"""`dilnet.allocator`: with glibc, a large array, once freed, must stay in the process for
the next one (the oracles: the process's resident size after the free, and the page faults of
allocating it again), and releasing must hand it back. Each check runs in a fresh interpreter:
the settings are process-wide."""

import subprocess
import sys
import textwrap

import pytest

from dilnet import ConfigError
from dilnet.allocator import _glibc, reuse_freed_memory

PROBE = textwrap.dedent("""
    import os, resource, sys
    import numpy as np
    from dilnet.allocator import release_freed_memory, reuse_freed_memory

    def faults():
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

    def rss_mib():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    applied = reuse_freed_memory() if sys.argv[1] == "reuse" else None
    n = 64 * 2**20 // 8                       # 64 MiB: above glibc's largest mmap threshold
    start = rss_mib()
    np.ones(n).sum()                          # allocated, touched, freed
    before = faults()
    np.ones(n).sum()                          # again
    again = faults() - before
    kept = rss_mib() - start                  # what stayed resident after the free
    released = release_freed_memory()
    print(applied, again, round(kept), round(rss_mib() - start), released)
""")


def probe(mode):
    done = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True,
                          check=True)  # fmt: skip
    applied, again, kept, after, released = done.stdout.split()
    return applied, int(again), int(kept), int(after), released


@pytest.mark.skipif(_glibc() is None, reason="glibc's malloc only (Linux)")
def test_freed_large_arrays_are_reused_and_released():
    # by default glibc unmaps the freed 64 MiB at once (and maps it afresh for the next array)
    _, _, default_kept, _, _ = probe("default")
    assert default_kept < 16
    applied, faults, kept, after, released = probe("reuse")
    assert applied == "True" and released == "True"
    assert kept > 60 and after < 16  # kept for the next array, then handed back
    # the next array reuses those pages: no faults for its 16384 pages of 4 KiB (64 MiB)
    assert faults < 100


def test_invalid_threshold():
    for bad in (0, -1, 2**31, 1.5, "1GiB"):
        with pytest.raises(ConfigError, match=r"reuse_freed_memory: invalid value for `threshold`"):
            reuse_freed_memory(bad)
