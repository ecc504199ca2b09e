"""How long ``import dilnet`` takes in a fresh process, against ``import pytensor.tensor``.

Each measurement is a new Python process that times one import (``time.perf_counter`` around
the import statement, so interpreter start-up is left out). Runs alternate between the
statements so that a machine that slows down hurts both alike; the figures are medians.
``import pytensor.tensor`` is the floor: dilnet cannot import faster than PyTensor.

Run: ``.venv/bin/python bench/import_time.py [--runs 15] [--checkout DIR]``. ``--checkout`` adds
a third row for another dilnet source tree (e.g. ``git worktree add /tmp/before HEAD~1``), timed
in the same runs, for before/after figures. The last lines say which of numba, jax and torch
each import loaded.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys

CODE = """
import sys, time, json
t = time.perf_counter()
{statement}
dt = time.perf_counter() - t
print(json.dumps([dt, [m for m in ("numba", "jax", "torch") if m in sys.modules]]))
"""


def once(statement, pythonpath=None):
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = pythonpath
    done = subprocess.run(
        [sys.executable, "-c", CODE.format(statement=statement)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        cwd=pythonpath or None,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--checkout", help="another dilnet source tree to time alongside")
    args = parser.parse_args(argv)

    rows = {"import pytensor.tensor": ("import pytensor.tensor", None)}
    rows["import dilnet"] = ("import dilnet", None)
    if args.checkout:
        rows[f"import dilnet ({args.checkout})"] = ("import dilnet", args.checkout)
    times = {name: [] for name in rows}
    loaded = {}
    for statement, path in rows.values():  # warm the OS file cache once
        once(statement, path)
    for _ in range(args.runs):
        for name, (statement, path) in rows.items():
            seconds, modules = once(statement, path)
            times[name].append(seconds)
            loaded[name] = modules
    import pytensor

    print(
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"pytensor {pytensor.__version__}; {args.runs} fresh processes per row, medians"
    )
    floor = statistics.median(times["import pytensor.tensor"])
    for name, values in times.items():
        median = statistics.median(values)
        print(
            f"{name:<45} {median:6.3f} s  {median / floor:5.2f}x pytensor.tensor   "
            f"loads: {', '.join(loaded[name]) or 'none of numba/jax/torch'}"
        )


if __name__ == "__main__":
    main()
