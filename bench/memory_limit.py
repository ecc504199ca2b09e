"""How far ``predict_volume(memory_limit=...)`` bounds memory: the growth of the process's peak
RSS during the call (the output array excluded: it is allocated before), against the limit.

Each limit runs in a fresh process: the pretrained ``zoo:context3d-basic`` (with its input
contract) on a random 100 x 234 x 190 float32 volume (the size issue 17 measured), the
prediction function compiled first on a 20^3 crop, then the peak RSS reset
(``/proc/self/clear_refs``, Linux) and ``predict_volume`` timed. Both CPU kernels are
measured: dilnet's own (``blas``) and PyTorch's (``torch``), when installed.

Run: ``.venv/bin/python bench/memory_limit.py [--limits 256MiB 1GiB 4GiB]``; writes
``bench/results/memory-limit-cpu-YYYY-MM-DD.json``.
"""

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import sys, time
import numpy as np
from dilnet.backends.select import set_cpu_kernels
set_cpu_kernels(sys.argv[2])
import dilnet_zoo
from dilnet.inference import parse_memory, predict_volume

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024

model = dilnet_zoo.load("context3d-basic", pretrained=True)
vol = np.random.default_rng(0).random((100, 234, 190)).astype(np.float32)
out = np.empty((4, *vol.shape), np.float32)
predict_volume(model, vol[:20, :20, :20], progress=False)
base = status("VmRSS")
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
start = time.perf_counter()
predict_volume(model, vol, memory_limit=sys.argv[1], progress=False, out=out)
seconds = time.perf_counter() - start
growth = status("VmHWM") - base
print(growth, parse_memory(sys.argv[1]), seconds)
"""


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limits", nargs="+", default=["256MiB", "1GiB", "4GiB"])
    parser.add_argument("--out-dir", default=str(ROOT / "bench" / "results"))
    args = parser.parse_args(argv)
    try:
        import torch  # noqa: F401

        kernels = ["blas", "torch"]
    except ImportError:
        kernels = ["blas"]
    import numpy
    import pytensor

    info = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}",
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "pytensor": pytensor.__version__,
    }
    print(json.dumps(info))
    rows = []
    for kernel in kernels:
        for limit in args.limits:
            done = subprocess.run([sys.executable, "-c", CHILD, limit, kernel],
                                  capture_output=True, text=True, check=True)  # fmt: skip
            growth, limit_bytes, seconds = done.stdout.split()
            row = {"kernels": kernel, "limit": limit, "peak_rss_growth": int(growth),
                   "ratio": int(growth) / int(limit_bytes), "seconds": float(seconds)}  # fmt: skip
            rows.append(row)
            print(f"{kernel:6s} {limit:>7s}: peak RSS +{int(growth) / 2**20:7.0f} MiB "
                  f"({row['ratio']:.2f}x the limit), {row['seconds']:.1f} s")  # fmt: skip
    out = Path(args.out_dir) / f"memory-limit-cpu-{info['date'][:10]}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": info, "rows": rows}, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
