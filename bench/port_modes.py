"""Compile modes for a ported Lasagne training function (docs/layers.md, "Porting").

A Lasagne-MNIST-style network (conv 3x3, max-pool, dropout, two dense layers, Nesterov
momentum) is compiled in a fresh subprocess per mode, with a fresh (cold) PyTensor/Numba compile
cache unless ``--warm``; prints compile time, first-call time and the median per-call time, and
the ratios against the C VM (CVM), Theano's default.

    python bench/port_modes.py [--modes CVM NUMBA FAST_COMPILE] [--calls 20] [--warm]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

#: the ported network and its training graph (also timed by bench/cold_start.py): needs
#: ``np``, ``T`` (pytensor.tensor) and ``lasagne`` (dilnet); defines ``x``, ``y``, ``loss`` and
#: ``updates``
PORT_GRAPH = r"""
lasagne.random.set_rng(np.random.RandomState(0))
net = lasagne.layers.InputLayer((None, 1, 12, 12))
x = net.input_var
net = lasagne.layers.Conv2DLayer(net, 8, (3, 3))
net = lasagne.layers.MaxPool2DLayer(net, pool_size=(2, 2))
net = lasagne.layers.DenseLayer(lasagne.layers.dropout(net, p=0.2), num_units=16)
net = lasagne.layers.DenseLayer(net, num_units=2, nonlinearity=lasagne.nonlinearities.softmax)
y = T.ivector()
loss = lasagne.objectives.categorical_crossentropy(lasagne.layers.get_output(net), y).mean()
params = lasagne.layers.get_all_params(net, trainable=True)
updates = lasagne.updates.nesterov_momentum(loss, params, 0.05)
"""

CHILD = (
    r"""
import json, sys, time
import numpy as np
import pytensor
pytensor.config.blas__ldflags = ""  # pip numpy: no linkable BLAS; say so instead of searching
import pytensor.tensor as T
import dilnet as lasagne

mode, calls = sys.argv[1], int(sys.argv[2])
"""
    + PORT_GRAPH
    + r"""
t = time.perf_counter()
f = pytensor.function([x, y], loss, updates=updates, mode=mode)
compile_s = time.perf_counter() - t
xv = np.random.default_rng(0).random((32, 1, 12, 12))
yv = np.random.default_rng(1).integers(0, 2, 32).astype("int32")
t = time.perf_counter(); f(xv, yv); first_s = time.perf_counter() - t
times = []
for _ in range(calls):
    t = time.perf_counter(); f(xv, yv); times.append(time.perf_counter() - t)
print(json.dumps({"compile_s": compile_s, "first_s": first_s, "call_s": sorted(times)[len(times) // 2]}))
"""
)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--modes", nargs="+", default=["CVM", "NUMBA", "FAST_COMPILE"])
    ap.add_argument("--calls", type=int, default=20)
    ap.add_argument("--warm", action="store_true", help="reuse the on-disk compile caches")
    args = ap.parse_args()
    results = {}
    for mode in args.modes:
        env = dict(os.environ)
        if not args.warm:
            # PyTensor keeps its C modules and Numba's cache under base_compiledir
            fresh = tempfile.mkdtemp(prefix="dilnet-port-")
            env["PYTENSOR_FLAGS"] = f"base_compiledir={fresh}"
        out = subprocess.run(
            [sys.executable, "-W", "ignore", "-c", CHILD, mode, str(args.calls)],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        )
        results[mode] = json.loads(out.stdout.strip().splitlines()[-1])
    base = results.get("CVM")
    print(f"{'warm' if args.warm else 'cold (fresh)'} compile caches; median of {args.calls} calls")
    print("| mode | compile s | first call s | per call ms | per call vs CVM |")
    print("|---|---|---|---|---|")
    for mode, r in results.items():
        ratio = f"{r['call_s'] / base['call_s']:.1f}x" if base else "-"
        print(
            f"| {mode} | {r['compile_s']:.2f} | {r['first_s']:.2f} | {1e3 * r['call_s']:.2f} | {ratio} |"
        )


if __name__ == "__main__":
    main()
