"""How far ``predict_volume(memory_limit=...)`` bounds memory: the growth of the process's peak
RSS during the call (the output array excluded: it is allocated before), against the limit.

Each limit runs in a fresh process: the pretrained ``zoo:context3d-basic`` (with its input
contract) on a random 100 x 234 x 190 float32 volume (the size issue 17 measured; ``--small``
adds a 50 x 117 x 95 one at the smallest limit, to show the overhead does not grow with the
volume), the prediction function compiled first on a 20^3 crop, then the peak RSS reset
(``/proc/self/clear_refs``, Linux) and ``predict_volume`` timed. Both CPU kernels are
measured: dilnet's own (``blas``) and PyTorch's (``torch``), when installed. Each row is
checked against the documented bound, 1.25 x the limit + ``dilnet.tiling.FIXED_OVERHEAD``.

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
shape = tuple(int(n) for n in sys.argv[3].split("x"))
vol = np.random.default_rng(0).random(shape).astype(np.float32)
out = np.empty((4, *vol.shape), np.float32)
predict_volume(model, vol[:20, :20, :20], progress=False)
base = status("VmRSS")
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
start = time.perf_counter()
predict_volume(model, vol, memory_limit=sys.argv[1], progress=False, out=out)
seconds = time.perf_counter() - start
growth = status("VmHWM") - base
from dilnet.inference import plan_tiles
plan = plan_tiles(model, vol.shape, memory_limit=sys.argv[1])
print(growth, parse_memory(sys.argv[1]), seconds, len(plan.tiles))
"""


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limits", nargs="+", default=["256MiB", "1GiB", "4GiB"])
    parser.add_argument("--small", action="store_true", help="also a 50x117x95 volume")
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
    from dilnet.tiling import FIXED_OVERHEAD

    info["fixed_overhead"] = FIXED_OVERHEAD
    runs = [(limit, "100x234x190") for limit in args.limits]
    if args.small:
        runs.append((args.limits[0], "50x117x95"))
    rows = []
    for kernel in kernels:
        for limit, shape in runs:
            done = subprocess.run([sys.executable, "-c", CHILD, limit, kernel, shape],
                                  capture_output=True, text=True, check=True)  # fmt: skip
            growth, limit_bytes, seconds, tiles = done.stdout.split()
            bound = 1.25 * int(limit_bytes) + FIXED_OVERHEAD
            row = {"kernels": kernel, "limit": limit, "volume": shape,
                   "peak_rss_growth": int(growth), "ratio": int(growth) / int(limit_bytes),
                   "bound": bound, "within_bound": int(growth) <= bound, "tiles": int(tiles),
                   "seconds": float(seconds)}  # fmt: skip
            rows.append(row)
            print(f"{kernel:6s} {limit:>7s} {shape:>12s}: peak RSS +{int(growth) / 2**20:5.0f} "
                  f"MiB ({row['ratio']:.2f}x the limit; bound {bound / 2**20:.0f} MiB: "
                  f"{'within' if row['within_bound'] else 'OVER'}), {tiles} tiles, "
                  f"{row['seconds']:.1f} s")  # fmt: skip
    out = Path(args.out_dir) / f"memory-limit-cpu-{info['date'][:10]}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"machine": info, "rows": rows}, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
