"""How long PyTensor's modes take to compile and first-run a small dilnet graph, in one process.

The graph: a 3D dilated conv, a ReLU, a squared-error cost and both gradients, on
x (2, 8, 16, 16, 16). Every new graph pays compile + first call, so a user building many small
models or a test suite compiling hundreds of graphs feels the sum; the steady call is what a
training loop feels. Run: ``.venv/bin/python bench/modes.py`` (a fresh compile cache;
``--warm`` reuses the usual one, as a second session would).
"""

import argparse
import importlib.util
import os
import statistics
import sys
import tempfile
import time
import warnings

import numpy as np

if __name__ == "__main__" and "--warm" not in sys.argv:
    # a fresh compile cache, so the figures are what a new graph costs the first time
    os.environ["PYTENSOR_FLAGS"] = f"base_compiledir={tempfile.mkdtemp(prefix='dilnet-modes-')}"

import pytensor
import pytensor.tensor as pt

from dilnet.ops import dilated_conv

MODES = ["FAST_COMPILE", "CVM", "NUMBA"] + (["JAX"] if importlib.util.find_spec("jax") else [])


def build(dilation):
    x = pt.tensor("x", dtype="float32", shape=(None, 8, None, None, None))
    W = pt.tensor("W", dtype="float32", shape=(8, 8, 3, 3, 3))
    t = pt.tensor("t", dtype="float32", shape=(None, 8, None, None, None))
    y = pt.maximum(dilated_conv(x, W, dilation=dilation), 0)
    cost = ((y - t) ** 2).mean()
    return [x, W, t], [cost, *pytensor.grad(cost, [x, W])]


def call(f, vals):
    # JAX returns before it has finished: materialise every output
    return [np.asarray(o) for o in f(*vals)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--warm", action="store_true", help="reuse the on-disk compile cache")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", "Skipping Assert", UserWarning)  # JAX linker's notice
    rng = np.random.default_rng(0)
    vals = [
        rng.standard_normal((2, 8, 16, 16, 16), dtype=np.float32),
        rng.standard_normal((8, 8, 3, 3, 3), dtype=np.float32) * 0.1,
        rng.standard_normal((2, 8, 16, 16, 16), dtype=np.float32),
    ]
    cache = "warm (existing)" if args.warm else "cold (fresh)"
    print(f"pytensor {pytensor.__version__}; {cache} compile cache; 3 graphs per mode, medians")
    print(f"{'mode':>13} {'compile s':>10} {'first call s':>13} {'steady ms':>10}")
    for mode in MODES:
        compile_s, first_s, steady_ms = [], [], []
        for dilation in (1, 2, 3):
            inputs, outputs = build(dilation)
            t0 = time.perf_counter()
            f = pytensor.function(inputs, outputs, mode=mode)
            t1 = time.perf_counter()
            call(f, vals)
            t2 = time.perf_counter()
            compile_s.append(t1 - t0)
            first_s.append(t2 - t1)
            runs = []
            for _ in range(5):
                t3 = time.perf_counter()
                call(f, vals)
                runs.append(time.perf_counter() - t3)
            steady_ms.append(1e3 * statistics.median(runs))
        print(
            f"{mode:>13} {statistics.median(compile_s):10.2f} {statistics.median(first_s):13.2f} "
            f"{statistics.median(steady_ms):10.1f}"
        )


if __name__ == "__main__":
    main()
