"""What the command line costs over the same work in Python.

    python bench/cli.py [--repeats 3] [--json bench/results/cli-cpu-DATE.json]

Times, on the whole MNI152 template written as NIfTI (99 x 117 x 95, 2 mm):

* ``dilnet --version``: interpreter start and ``import dilnet`` (what every command pays);
* ``dilnet predict --model zoo:context3d-basic --input t1.nii.gz --output seg.nii.gz``
  (a fresh process: imports, loading and verifying the weights, compiling from PyTensor's
  warm cache, reading, predicting, writing);
* the peer: the same in this process, already warm: ``read_volume`` + min-max scaling (the
  CLI's default for zoo networks) + ``predict_volume`` + ``write_volume``, the model loaded once,
  with malloc set as the command sets it for itself (``dilnet.allocator.reuse_freed_memory``).

Prints the medians and the ratio CLI / in-process, and checks that both wrote the same labels.
"""

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytensor

import dilnet
import dilnet_zoo
from dilnet.allocator import reuse_freed_memory
from dilnet.cli import normalize
from dilnet.inference import predict_volume
from dilnet.io.volume import read_volume, write_volume
from dilnet_zoo.data.mni152 import load_mni152

DILNET = Path(sys.executable).parent / "dilnet"


def wall(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args(argv)

    data = load_mni152()
    tmp = Path(tempfile.mkdtemp())
    nib.save(nib.Nifti1Image(data["t1"], data["affine"]), tmp / "t1.nii.gz")

    def version():
        subprocess.run([DILNET, "--version"], check=True, capture_output=True)

    def cli():
        subprocess.run([DILNET, "predict", "--model", "zoo:context3d-basic", "--input",
                        tmp / "t1.nii.gz", "--output", tmp / "cli.nii.gz", "--force", "-q"],
                       check=True, capture_output=True)  # fmt: skip

    model = dilnet_zoo.load("context3d-basic", pretrained=True)
    reuse_freed_memory()  # as the dilnet command does for its own process

    def in_process():
        volume = read_volume(tmp / "t1.nii.gz")
        x = normalize(volume.data, "minmax")
        labels = predict_volume(model, x, progress=False).argmax(axis=0)
        write_volume(tmp / "py.nii.gz", labels, like=volume)

    in_process()  # compile once: the peer is a warm Python session
    cli()  # and PyTensor's compile cache is warm for the CLI too
    t_version, v_all = wall(version, args.repeats)
    t_cli, c_all = wall(cli, args.repeats)
    t_py, p_all = wall(in_process, args.repeats)
    same = np.array_equal(
        np.asarray(nib.load(tmp / "cli.nii.gz").dataobj),
        np.asarray(nib.load(tmp / "py.nii.gz").dataobj),
    )
    record = {
        "machine": f"{platform.machine()}, {len(__import__('os').sched_getaffinity(0))} cores",
        "python": platform.python_version(),
        "dilnet": dilnet.__version__,
        "pytensor": pytensor.__version__,
        "date": time.strftime("%Y-%m-%d"),
        "volume": list(data["t1"].shape),
        "version_s": t_version,
        "cli_predict_s": t_cli,
        "in_process_s": t_py,
        "ratio": t_cli / t_py,
        "overhead_s": t_cli - t_py,
        "same_labels": same,
        "runs": {"version": v_all, "cli": c_all, "in_process": p_all},
    }
    print(f"{record['machine']}, Python {record['python']}, pytensor {record['pytensor']}")
    print(f"dilnet --version                     {t_version:6.2f} s")
    print(f"dilnet predict (fresh process)       {t_cli:6.2f} s")
    print(f"read + predict_volume + write, warm  {t_py:6.2f} s")
    print(f"ratio CLI / in-process               {t_cli / t_py:6.2f}x  (+{t_cli - t_py:.2f} s)")
    print(f"same labels: {same}")
    if args.json:
        Path(args.json).write_text(json.dumps(record, indent=1) + "\n")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
