"""The zoo's networks in onnxruntime (CPU) against dilnet's own `predict` / `predict_volume`.

    python bench/onnx_cpu.py [--models context3d-basic plain3d] [--tile 32] [--repeats 3]
                         [--json bench/results/onnx-cpu-DATE.json] [--note TEXT]

On the held-out Colin27 brain at 2 mm (99 x 117 x 95, scaled by the zoo's input contract), in
one process, for each pretrained zoo network:

- whole volume: ``model.predict`` (dilnet's default NUMPY mode) against the exported graph run
  by an onnxruntime session (CPU execution provider) on the same scaled array;
- tiled: ``predict_volume(model, volume, tile=...)`` against ``predict_volume`` of
  `dilnet.io.onnx.OnnxRuntimeModel` (the same tiles, halo and scaling).

"first" is the first call of a fresh model or session (dilnet compiles its function there;
onnxruntime builds its session before, timed apart as "session_s"); "warm" the median of
`--repeats` more. Ratios are dilnet / onnxruntime (> 1: onnxruntime is faster). Both outputs
are compared (max abs difference, voxels whose label differs). (Not named ``onnx.py``: a script
of that name would shadow the `onnx` package it imports.)
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytensor

import dilnet
import dilnet_zoo
from dilnet.backends.select import get_cpu_kernels
from dilnet.inference import predict_volume
from dilnet.io.onnx import OPSET, OnnxRuntimeModel, to_onnx
from dilnet.model.contract import normalize_intensities
from dilnet_zoo.data.colin27 import load_colin27


def timed(fn, repeats):
    start = time.perf_counter()
    out = fn()
    first = time.perf_counter() - start
    warm = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        warm.append(time.perf_counter() - start)
    return out, first, statistics.median(warm)


def compare(ours, theirs):
    return {
        "max_abs_diff": float(np.abs(ours - theirs).max()),
        "labels_differing": int((ours.argmax(axis=0) != theirs.argmax(axis=0)).sum()),
    }


def bench(name, t1, tile, repeats):
    model = dilnet_zoo.load(name, pretrained=True)
    scaled = normalize_intensities(t1, model.input_contract, rank=3)[None, None]
    scaled = scaled.astype(np.float32)
    start = time.perf_counter()
    session = ort.InferenceSession(
        to_onnx(model.network).SerializeToString(), providers=["CPUExecutionProvider"]
    )
    session_s = time.perf_counter() - start
    row = {"session_s": session_s}

    ours, first, warm = timed(lambda: model.predict(scaled)[0], repeats)
    theirs, o_first, o_warm = timed(lambda: session.run(None, {"input": scaled})[0][0], repeats)
    row["whole"] = {"dilnet_first_s": first, "dilnet_warm_s": warm, "ort_first_s": o_first,
                    "ort_warm_s": o_warm, "ratio_warm": warm / o_warm,
                    "ratio_first": first / (session_s + o_first), **compare(ours, theirs)}  # fmt: skip

    fresh = dilnet_zoo.load(name, pretrained=True)  # tiled: a model that has compiled nothing
    runtime = OnnxRuntimeModel(fresh)

    def tiled(m):
        return predict_volume(m, t1, tile=tile, progress=False)

    ours_t, first, warm = timed(lambda: tiled(fresh), repeats)
    theirs_t, o_first, o_warm = timed(lambda: tiled(runtime), repeats)
    row["tiled"] = {"tile": tile, "dilnet_first_s": first, "dilnet_warm_s": warm,
                    "ort_first_s": o_first, "ort_warm_s": o_warm, "ratio_warm": warm / o_warm,
                    **compare(ours_t, theirs_t),
                    "dilnet_tiled_vs_whole_max_abs_diff": float(np.abs(ours_t - ours).max())}  # fmt: skip
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["context3d-basic", "plain3d"])
    parser.add_argument("--tile", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", help="also write the figures here")
    parser.add_argument("--note", default="", help="conditions worth recording")
    args = parser.parse_args(argv)

    t1 = load_colin27()["t1"]
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True)
    machine = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}",
        "python": platform.python_version(),
        "numpy": np.__version__,
        "pytensor": pytensor.__version__,
        "onnxruntime": ort.__version__,
        "onnx_opset": OPSET,
        "dilnet": dilnet.__version__,
        "dilnet_cpu_kernels": get_cpu_kernels(),
        "git_head": head.stdout.strip(),
    }
    print(", ".join(f"{k} {v}" for k, v in machine.items()))
    print(f"Colin27 2 mm {t1.shape}, tile {args.tile}, warm = median of {args.repeats}")
    rows = {}
    for name in args.models:
        row = rows[name] = bench(name, t1, args.tile, args.repeats)
        for kind in ("whole", "tiled"):
            r = row[kind]
            print(
                f"{name:16s} {kind:5s} dilnet {r['dilnet_warm_s']:6.2f} s (first "
                f"{r['dilnet_first_s']:6.2f})  onnxruntime {r['ort_warm_s']:6.2f} s (first "
                f"{r['ort_first_s']:6.2f})  dilnet/ort {r['ratio_warm']:.2f}x  max|diff| "
                f"{r['max_abs_diff']:.1e}, labels differing {r['labels_differing']}"
            )
        print(f"{name:16s} onnxruntime session {row['session_s']:.2f} s")
    if args.json:
        record = {"machine": machine, "note": args.note, "config": vars(args), "rows": rows}
        Path(args.json).write_text(json.dumps(record, indent=1) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
