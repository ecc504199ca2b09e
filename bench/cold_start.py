"""Cold and warm start: dilnet's default mode (``"NUMPY"``, `dilnet.modes`) against the C VM.

Every figure comes from a fresh process. *Cold*: a new, empty PyTensor compile directory (and
Numba cache), as on a fresh machine or for a graph never compiled before; *warm*: the same
directory again right after. Cold and warm runs alternate, modes alternate, ``--repeats``
rounds; the table gives medians.

* ``readme``: the README's Python example, run verbatim (taken from README.md), end to end
  (imports, data, ``fit`` of 5 steps, ``predict_volume``);
* ``first_step``: ``Sequential([...])`` (bench/model.py's context module) to the first finished
  training step, then one more step;
* ``port``: the Lasagne-style training function of ``bench/port_modes.py``: compile and first
  call;
* ``steady``: warm only: the median training step (2 x 32^3 patches) and ``predict`` (1 x 64^3)
  of the bench/model.py model, bench/conv.py's layer (32 channels, 48^3, dilation 2) forward,
  and a new graph in the same process (a second, different model's first ``predict``, and a
  second input shape for the first one).

    python bench/cold_start.py [--repeats 3] [--modes NUMPY CVM] [--json FILE]
"""

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from port_modes import PORT_GRAPH  # noqa: E402  (the same ported network)

PRELUDE = """
import sys, time
t0 = time.perf_counter()
import dilnet.model.model as _m
_m.DEFAULT_MODE = sys.argv[1]
"""

CHILDREN = {
    "first_step": """
import numpy as np
sys.path.insert(0, {bench!r})
from model import first_steps
from dilnet.model import Model
t1 = time.perf_counter()
first, step = first_steps(Model)
print({{"import_s": t1 - t0, "first_step_s": first, "next_step_s": step}})
""",
    "port": """
import numpy as np
import pytensor
import pytensor.tensor as T
import dilnet as lasagne
{port_graph}t1 = time.perf_counter()
f = pytensor.function([x, y], loss, updates=updates, mode=sys.argv[1])
rng = np.random.default_rng(0)
f(rng.random((16, 1, 12, 12)).astype(pytensor.config.floatX), rng.integers(0, 2, 16).astype("int32"))
t2 = time.perf_counter()
print({{"import_s": t1 - t0, "compile_and_first_call_s": t2 - t1}})
""",
    "steady": """
import statistics
import numpy as np
sys.path.insert(0, {bench!r})
from model import context_spec
from dilnet.model import Model
from dilnet.ops import dilated_conv
import pytensor, pytensor.tensor as pt

def median(fn, repeats=7):
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter(); fn(); times.append(time.perf_counter() - t)
    return statistics.median(times)

rng = np.random.default_rng(0)
model = Model(context_spec(), seed=0)
model.compile("adam", "crossentropy")
x = rng.random((2, 1, 32, 32, 32)).astype("float32")
y = rng.integers(0, 4, (2, 32, 32, 32))
big = rng.random((1, 1, 64, 64, 64)).astype("float32")
out = {{"train_step_s": median(lambda: model.train_on_batch(x, y)),
        "predict_s": median(lambda: model.predict(big))}}
xs = pt.tensor5("x", dtype="float32"); ws = pt.tensor5("w", dtype="float32")
conv = pytensor.function([xs, ws], dilated_conv(xs, ws, dilation=2, pad="same"),
                         mode=sys.argv[1])
xc = rng.random((1, 32, 48, 48, 48)).astype("float32")
wc = rng.random((32, 32, 3, 3, 3)).astype("float32")
out["conv_forward_s"] = median(lambda: conv(xc, wc))
t = time.perf_counter()
model.predict(rng.random((1, 1, 40, 24, 56)).astype("float32"))
out["new_shape_s"] = time.perf_counter() - t
other = Model(context_spec(channels=8, classes=3), seed=1)
t = time.perf_counter()
other.predict(rng.random((1, 1, 24, 24, 24)).astype("float32"))
out["new_model_first_predict_s"] = time.perf_counter() - t
print(out)
""",
}


def readme_code():
    """The README's Python example, verbatim."""
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    return block + (
        "\nt_end = time.perf_counter()\n"
        "print({'total_s': t_end - t0, 'voxels': int(segmentation.size)})\n"
    )


def run(kind, mode, cache):
    code = PRELUDE + (readme_code() if kind == "readme" else CHILDREN[kind].format(
        bench=str(ROOT / "bench"), port_graph=PORT_GRAPH))  # fmt: skip
    env = dict(os.environ, PYTENSOR_FLAGS=f"compiledir={cache}", NUMBA_CACHE_DIR=cache)
    done = subprocess.run([sys.executable, "-c", code, mode], env=env, capture_output=True,
                          text=True, cwd=ROOT, timeout=1200)  # fmt: skip
    if done.returncode:
        raise SystemExit(f"{kind} {mode}: {done.stderr[-2000:]}")
    import ast

    return ast.literal_eval(done.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--modes", nargs="+", default=["NUMPY", "CVM"])
    parser.add_argument("--kinds", nargs="+", default=["readme", "first_step", "port", "steady"])
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    import numpy
    import pytensor

    info = {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}",
            "python": platform.python_version(), "numpy": numpy.__version__,
            "pytensor": pytensor.__version__}  # fmt: skip
    print(json.dumps(info))
    samples = {}
    for _ in range(args.repeats):
        for kind in args.kinds:
            for mode in args.modes:
                with tempfile.TemporaryDirectory() as cache:
                    states = ["warm"] if kind == "steady" else ["cold", "warm"]
                    if kind == "steady":
                        run("first_step", mode, cache)  # fill the cache
                    for state in states:
                        for key, value in run(kind, mode, cache).items():
                            samples.setdefault((kind, mode, state, key), []).append(value)
    rows = []
    for (kind, mode, state, key), values in samples.items():
        rows.append({"kind": kind, "mode": mode, "cache": state, "figure": key,
                     "median": statistics.median(values), "samples": values})  # fmt: skip
    peer = args.modes[-1]
    print(f"\n{'kind':11s} {'cache':5s} {'figure':27s}" + "".join(f"{m:>9s}" for m in args.modes)
          + f"  ratio vs {peer}")  # fmt: skip
    keys = sorted({(r["kind"], r["cache"], r["figure"]) for r in rows}, key=str)
    table = {(r["kind"], r["mode"], r["cache"], r["figure"]): r["median"] for r in rows}
    for kind, state, key in keys:
        values = [table.get((kind, m, state, key)) for m in args.modes]
        ratio = values[0] / values[-1] if values[-1] else float("nan")
        print(f"{kind:11s} {state:5s} {key:27s}"
              + "".join(f"{v:9.3f}" if v is not None else f"{'-':>9s}" for v in values)
              + f"  {ratio:.2f}x")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": info, "rows": rows}, indent=1) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
