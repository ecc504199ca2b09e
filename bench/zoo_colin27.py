"""The zoo on a real scan: ``dilnet predict --model zoo:NAME`` on Colin27, a brain no zoo network
trains on, stored six ways, scored against its shipped reference labels -- the shipped weights
against the weights of an earlier commit, in the same run.

The conditions, the reference and the scoring are `dilnet_zoo.recipes.evaluate`'s (its
docstring gives every formula); every prediction goes through the command line from a NIfTI
file, as a user runs it.

Row sets (models):

``shipped NAME``
    ``zoo:NAME`` for each network with weights in ``dilnet_zoo/weights``, as the command runs
    them (through their input contract when their file records one).
``REV, old CLI``
    the weights of ``context3d-basic`` at git revision ``--baseline`` (default ``5014733``, the
    last commit before the zoo's input contract and its retraining; skipped when git or the
    file is unavailable) as the command ran them then: ``--normalize minmax`` (each volume
    min-max scaled to [0, 1]), no reorientation, no resampling.
``REV + contract``
    the same weights re-saved with the zoo's contract (`BRAIN_T1_2MM`), so the command runs
    them through `dilnet.preprocessing.predict_image`: the effect of the preprocessing alone,
    without retraining.

Dice per class (CSF, GM, WM), their mean and the GM/WM mean, per condition, and for each
shipped set its GM/WM mean over the baseline's (old CLI) per condition. Prints the machine,
versions and date; writes ``bench/results/zoo-colin27-cpu-YYYY-MM-DD.json``.

Run: ``.venv/bin/python bench/zoo_colin27.py [--baseline REV] [--out-dir bench/results]``.
"""

import argparse
import datetime
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BASELINE = "5014733"
WEIGHTS = "dilnet_zoo/weights/context3d-basic.npz"


def baseline_weights(rev, d):
    """``context3d-basic``'s weights at `rev` as a file, or None (no git, or no such file)."""
    done = subprocess.run(["git", "show", f"{rev}:{WEIGHTS}"], cwd=ROOT, capture_output=True)
    if done.returncode != 0:
        return None
    path = d / "baseline.npz"
    path.write_bytes(done.stdout)
    return path


def with_contract(path, d):
    """The model at `path` re-saved with the zoo's input contract."""
    from dilnet.model import load_model
    from dilnet_zoo.families import BRAIN_T1_2MM

    model = load_model(path)
    model.input_contract = BRAIN_T1_2MM
    out = d / "baseline-contract.npz"
    model.save(out)
    return out


def machine():
    import nibabel
    import pytensor
    import scipy

    import dilnet

    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True,
                           text=True)  # fmt: skip
    weights = sorted((ROOT / "dilnet_zoo" / "weights").glob("*.npz"))
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}",
        "processor": platform.processor() or "unknown",
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "nibabel": nibabel.__version__,
        "pytensor": pytensor.__version__,
        "dilnet": dilnet.__version__,
        "git_head": head.stdout.strip() or "unknown",
        "working_tree_changed": bool(dirty.stdout.strip()),
        "shipped_weights_sha256": {
            p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in weights
        },
    }


def main(argv=None):
    import dilnet_zoo
    from dilnet_zoo.recipes.evaluate import CONDITIONS, evaluate, make_conditions, table

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default=BASELINE, help="git revision of the old weights")
    parser.add_argument("--out-dir", default=str(ROOT / "bench" / "results"))
    args = parser.parse_args(argv)
    info = machine()
    for key, value in info.items():
        print(f"{key}: {value}")
    results = {"machine": info, "conditions": list(CONDITIONS), "row_sets": {}}
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        conditions = make_conditions(d)
        sets = [
            (f"shipped {name}", f"zoo:{name}", ())
            for name in dilnet_zoo.list_models()
            if dilnet_zoo.weights_path(name) is not None
        ]
        old = baseline_weights(args.baseline, d)
        if old is not None:
            sets.append((f"{args.baseline} + contract", with_contract(old, d), ()))
            sets.append((f"{args.baseline}, old CLI", old, ("--normalize", "minmax")))
        else:
            print(f"(no weights at {args.baseline}: git or the file is unavailable)")
        for title, model, extra in sets:
            rows = evaluate(model, conditions, d, extra)
            results["row_sets"][title] = {
                "model": model if isinstance(model, str) else f"{WEIGHTS} at {args.baseline}",
                "options": list(extra),
                "rows": rows,
            }
            print(f"\n{title}: {rows['native 1 mm']['notes'][0]}")
            print(table(rows))
    base = results["row_sets"].get(f"{args.baseline}, old CLI")
    if base is not None:
        print(f"\nmean GM/WM over {args.baseline}'s (old CLI), per condition:")
        for title, entry in results["row_sets"].items():
            if title.startswith("shipped"):
                ratios = {c: entry["rows"][c]["mean GM/WM"] / base["rows"][c]["mean GM/WM"]
                          for c in CONDITIONS}  # fmt: skip
                entry["gm_wm_over_baseline"] = ratios
                print(f"  {title}: " + ", ".join(f"{c} {r:.3f}" for c, r in ratios.items()))
    day = info["date"][:10]
    out = Path(args.out_dir) / f"zoo-colin27-cpu-{day}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
