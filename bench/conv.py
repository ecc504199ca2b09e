"""Benchmark the dilated 3D convolution Op against PyTorch, in one process.

x (1, 32, 48, 48, 48) * W (32, 32, 3, 3, 3), float32, pad 'same', dilation 1, 2, 4
(6.1 GFLOP per forward). Times compiled PyTensor functions (forward; forward + both gradients)
with each set of CPU kernels, and PyTorch eager ``conv3d`` (forward; forward + ``backward``) in
the same run, and prints medians and ratios. Run: ``.venv/bin/python bench/conv.py``
(``--rounds N``, ``--mode CVM|NUMBA|FAST_COMPILE``).
"""

import argparse
import importlib.util
import os
import platform
import statistics
import time

import numpy as np
import pytensor
import pytensor.tensor as pt

import dilnet
from dilnet.ops import dilated_conv

# Theano 1.0.5 Corr3dMM with filter_dilation, measured on this kind of 2-core machine
# (Python 3.8, see ../shared/NOTES.md); Theano cannot be installed beside PyTensor, so these are
# quoted, not measured in this run.
THEANO_MS = {"forward": (298, 344), "forward+backward": (964, 1224)}


def interleaved_medians(fns, rounds, per_round=3):
    """Median ms of each callable. Paths take turns in `rounds` blocks so that drift on a shared
    machine hits them alike; each block starts with an untimed call (caches, allocator)."""
    times = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            fn()
            for _ in range(per_round):
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
    return {name: 1e3 * statistics.median(ts) for name, ts in times.items()}


def with_kernels(name, fn):
    def run():
        dilnet.set_cpu_kernels(name)
        return fn()

    return run


def dilnet_fns(dilation, mode, gy_val):
    x = pt.tensor("x", dtype="float32", shape=(1, 32, 48, 48, 48))
    W = pt.tensor("W", dtype="float32", shape=(32, 32, 3, 3, 3))
    y = dilated_conv(x, W, dilation=dilation, pad="same")
    gx, gW = pytensor.grad(None, [x, W], known_grads={y: pt.constant(gy_val)})
    fwd = pytensor.function([x, W], y, mode=mode)
    both = pytensor.function([x, W], [y, gx, gW], mode=mode)
    return fwd, both


def torch_fns(dilation, x_val, W_val, gy_val):
    import torch

    x = torch.from_numpy(x_val).requires_grad_(True)
    W = torch.from_numpy(W_val).requires_grad_(True)
    gy = torch.from_numpy(gy_val)

    def fwd():
        with torch.no_grad():
            return torch.nn.functional.conv3d(x, W, padding=dilation, dilation=dilation)

    def both():
        x.grad = W.grad = None
        y = torch.nn.functional.conv3d(x, W, padding=dilation, dilation=dilation)
        y.backward(gy)
        return y, x.grad, W.grad

    return fwd, both


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="blocks of 3 timed calls per path")
    parser.add_argument("--mode", default="CVM", help="PyTensor mode for dilnet's functions")
    args = parser.parse_args()

    have_torch = importlib.util.find_spec("torch") is not None
    if have_torch:
        import torch

        torch_version = torch.__version__
    else:
        torch_version = "not installed"
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; python "
        f"{platform.python_version()}, numpy {np.__version__}, pytensor {pytensor.__version__}, "
        f"torch {torch_version}; mode {args.mode}; median of {3 * args.rounds} calls per path"
    )
    rng = np.random.default_rng(0)
    x_val = rng.standard_normal((1, 32, 48, 48, 48), dtype=np.float32)
    W_val = rng.standard_normal((32, 32, 3, 3, 3), dtype=np.float32) * 0.05
    gy_val = rng.standard_normal((1, 32, 48, 48, 48), dtype=np.float32)
    kernels = ["blas", "torch"] if have_torch else ["blas"]

    header = (
        f"{'dilation':>8} {'pass':>17} {'path':>14} {'ms':>8} {'vs torch':>9} {'Theano/this':>12}"
    )
    print(header)
    print("-" * len(header))
    for dilation in (1, 2, 4):
        fns = {}
        if have_torch:
            t_fwd, t_both = torch_fns(dilation, x_val, W_val, gy_val)
            fns["torch eager", 0], fns["torch eager", 1] = t_fwd, t_both
            reference = t_both()
        for name in kernels:
            fwd, both = dilnet_fns(dilation, args.mode, gy_val)
            fns[f"dilnet[{name}]", 0] = with_kernels(name, lambda f=fwd: f(x_val, W_val))
            fns[f"dilnet[{name}]", 1] = with_kernels(name, lambda f=both: f(x_val, W_val))
            if have_torch:  # same numbers as PyTorch, or the timing means nothing
                for ours, theirs in zip(fns[f"dilnet[{name}]", 1](), reference, strict=True):
                    theirs = theirs.detach().numpy()
                    # float32 sums over 10^5 terms: compare relative to the largest value
                    err = np.abs(ours - theirs).max() / np.abs(theirs).max()
                    assert err < 1e-4, f"dilnet[{name}] differs from PyTorch by {err:.1e}"
        # PyTorch's OpenMP threads and OpenBLAS's threads both spin after a call and slow the
        # other library on 2 cores, so the BLAS kernels are timed in a phase of their own.
        torch_paths = {k: v for k, v in fns.items() if "torch" in k[0]}
        ms = interleaved_medians(torch_paths, args.rounds)
        ms.update(
            interleaved_medians({k: v for k, v in fns.items() if k not in torch_paths}, args.rounds)
        )
        for i, pass_name in enumerate(("forward", "forward+backward")):
            lo, hi = THEANO_MS[pass_name]
            for path, j in fns:
                if j != i:
                    continue
                t = ms[path, i]
                vs = f"{t / ms['torch eager', i]:.2f}x" if have_torch else "-"
                print(
                    f"{dilation:>8} {pass_name:>17} {path:>14} {t:8.1f} {vs:>9} {lo / t:5.1f}-{hi / t:.1f}x"
                )
    dilnet.set_cpu_kernels("auto")
    print("vs torch: time / PyTorch eager time in this run (lower is better).")
    print(
        "Theano/this: Theano 1.0.5's quoted time / this time (higher is better; quoted, not run)."
    )


if __name__ == "__main__":
    main()
