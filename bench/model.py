"""Model benchmarks, each against a peer measured in the same run.

1. ``Model.fit`` step overhead against calling the compiled PyTensor training function directly
   on the same batches (target: at most 5 %).
2. ``Model.predict`` throughput in voxels/s, against the compiled function called directly.
3. ``predict_volume`` on a 256³ volume under a 2 GiB limit against whole-volume ``predict``:
   peak RSS and time, each in its own process (``--volume`` to change the size).
4. Compile latency: ``Sequential([...])`` of a context module to the first finished training
   step, per PyTensor mode, with a cold (fresh) and a warm compile cache, each in a fresh
   process (targets: at most 10 s cold and 2 s warm).

Run: ``.venv/bin/python bench/model.py [--quick]``; prints a table per part.
"""

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def context_spec(channels=16, classes=4, in_channels=1):
    from dilnet import Sequential
    from dilnet import blocks as B

    return Sequential(
        [
            B.Input(channels=in_channels),
            B.Conv(filters=channels),
            B.ContextModule(channels=channels),
            B.Classifier(num_classes=classes),
        ]
    )


def fit_overhead(size, steps, repeats):
    from dilnet.model import Model

    model = Model(context_spec(), seed=0)
    model.compile("adam", "crossentropy", ["dice"])
    rng = np.random.default_rng(0)
    x = rng.random((steps * 2, 1, size, size, size)).astype("float32")
    y = rng.integers(0, 4, (steps * 2, size, size, size))
    fn = model._function("train")
    fn(x[:2], y[:2])  # warm up both paths
    model.fit(x[:2], y[:2], batch_size=2, epochs=1, verbose=0)
    direct, fitted = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        for s in range(steps):
            fn(x[2 * s : 2 * s + 2], y[2 * s : 2 * s + 2])
        direct.append((time.perf_counter() - t) / steps)
        t = time.perf_counter()
        model.fit(x, y, batch_size=2, epochs=1, verbose=0, shuffle=False)
        fitted.append((time.perf_counter() - t) / steps)
    d, f = min(direct), min(fitted)
    return {"size": size, "steps": steps, "direct_ms": d * 1e3, "fit_ms": f * 1e3,
            "overhead": f / d - 1}  # fmt: skip


def predict_throughput(size, repeats):
    from dilnet.model import Model

    model = Model(context_spec(), seed=0)
    x = np.random.default_rng(0).random((1, 1, size, size, size)).astype("float32")
    fn = model._function("predict")
    fn(x)
    model.predict(x)
    direct, wrapped = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        fn(x)
        direct.append(time.perf_counter() - t)
        t = time.perf_counter()
        model.predict(x)
        wrapped.append(time.perf_counter() - t)
    voxels = size**3
    return {"size": size, "direct_voxels_per_s": voxels / min(direct),
            "predict_voxels_per_s": voxels / min(wrapped), "ratio": min(wrapped) / min(direct)}  # fmt: skip


def _volume_child(kind, size, limit):
    """Run in a fresh process: one prediction of a `size`³ volume; print time and peak RSS."""
    from dilnet.inference import predict_volume
    from dilnet.model import Model

    model = Model(context_spec(), seed=0)
    volume = np.random.default_rng(0).random((1, size, size, size)).astype("float32")
    small = volume[:, :24, :24, :24]
    model.predict(small[None])  # compile outside the timing
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    if kind == "whole":
        out = model.predict(volume[None])[0]
    else:
        out = predict_volume(model, volume, memory_limit=limit, progress=False)
    seconds = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"kind": kind, "seconds": seconds, "peak_rss_mib": peak / 1024,
                      "rss_before_mib": base / 1024, "checksum": float(out[:, ::7, ::7, ::7].sum())}))  # fmt: skip


def volume_comparison(size, limit):
    results = {}
    for kind in ("tiled", "whole"):
        proc = subprocess.run(
            [sys.executable, __file__, "--child", kind, "--volume", str(size), "--limit", limit],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if proc.returncode != 0:
            results[kind] = {"error": proc.stderr.strip().splitlines()[-1:]}
        else:
            results[kind] = json.loads(proc.stdout.strip().splitlines()[-1])
    return results


_LATENCY_CHILD = """
import time, sys
t0 = time.perf_counter()
import numpy as np, pytensor
from pytensor.compile.mode import Mode
sys.path.insert(0, {here!r})
from model import first_steps
from dilnet.model import Model
mode = {mode!r}
if mode == "CVM_fast_compile":
    mode = Mode(linker="cvm", optimizer="fast_compile")
t1 = time.perf_counter()
first, step = first_steps(Model, mode)
print(t1 - t0, first, step)
"""


def first_steps(model_class, mode=None):
    """Seconds from ``Sequential([...])`` (`context_spec`) to the first finished training step
    on a 24^3 patch, and of the next step (``mode=None``: `Model`'s default). Also timed by
    bench/cold_start.py."""
    t = time.perf_counter()
    kwargs = {} if mode is None else {"mode": mode}
    model = model_class(context_spec(), seed=0, **kwargs)
    model.compile("adam", "crossentropy")
    x = np.random.default_rng(0).random((1, 1, 24, 24, 24)).astype("float32")
    y = np.zeros((1, 24, 24, 24), dtype="int64")
    model.train_on_batch(x, y)
    first = time.perf_counter() - t
    t = time.perf_counter()
    model.train_on_batch(x, y)
    return first, time.perf_counter() - t


def compile_latency(modes):
    rows = []
    for mode in modes:
        with tempfile.TemporaryDirectory() as cache:
            env = dict(os.environ, PYTENSOR_FLAGS=f"compiledir={cache},blas__ldflags=")
            for state in ("cold", "warm"):
                code = _LATENCY_CHILD.format(here=HERE, mode=mode)
                proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                                      text=True, check=False, timeout=900)  # fmt: skip
                if proc.returncode != 0:
                    rows.append({"mode": mode, "cache": state, "error": proc.stderr[-300:]})
                    continue
                imports, first, step = map(float, proc.stdout.split())
                rows.append({"mode": mode, "cache": state, "import_s": imports,
                             "spec_to_first_step_s": first, "next_step_s": step})  # fmt: skip
    return rows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="smaller sizes, fewer repeats")
    parser.add_argument("--volume", type=int, default=256)
    parser.add_argument("--limit", default="2GiB")
    parser.add_argument("--child", choices=("whole", "tiled"))
    parser.add_argument("--parts", default="fit,predict,volume,latency")
    parser.add_argument("--modes", default="CVM,CVM_fast_compile,FAST_COMPILE,NUMBA")
    parser.add_argument("--out")
    args = parser.parse_args()
    import pytensor

    pytensor.config.blas__ldflags = ""
    if args.child:
        _volume_child(args.child, args.volume, args.limit)
        return
    import dilnet

    report = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
              "python": platform.python_version(), "dilnet": dilnet.__version__,
              "pytensor": pytensor.__version__, "date": time.strftime("%Y-%m-%d")}  # fmt: skip
    parts = args.parts.split(",")
    print(json.dumps(report))
    if "fit" in parts:
        r = fit_overhead(16 if args.quick else 32, 5 if args.quick else 10, 3)
        report["fit"] = r
        print(f"fit step: direct {r['direct_ms']:.1f} ms, Model.fit {r['fit_ms']:.1f} ms, "
              f"overhead {100 * r['overhead']:+.1f} % (target <= 5 %)")  # fmt: skip
    if "predict" in parts:
        r = predict_throughput(32 if args.quick else 64, 3)
        report["predict"] = r
        print(f"predict {r['size']}^3: {r['predict_voxels_per_s'] / 1e6:.2f} Mvoxel/s "
              f"(direct call {r['direct_voxels_per_s'] / 1e6:.2f}; ratio {r['ratio']:.3f})")  # fmt: skip
    if "volume" in parts:
        size = 96 if args.quick else args.volume
        r = volume_comparison(size, args.limit)
        report["volume"] = r
        for kind, v in r.items():
            print(f"{kind} {size}^3: {v}")
        if all("seconds" in v for v in r.values()):
            t, w = r["tiled"], r["whole"]
            print(f"predict_volume / whole predict: time {t['seconds'] / w['seconds']:.2f}x, "
                  f"peak RSS {t['peak_rss_mib'] / w['peak_rss_mib']:.2f}x "
                  f"({t['peak_rss_mib']:.0f} vs {w['peak_rss_mib']:.0f} MiB)")  # fmt: skip
    if "latency" in parts:
        rows = compile_latency(args.modes.split(","))
        report["latency"] = rows
        for row in rows:
            print(row)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
