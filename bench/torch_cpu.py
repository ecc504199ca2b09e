"""dilnet's torch CPU kernels against PyTorch's own CPU convolution calls, in one process.

    python bench/torch_cpu.py [--rounds 3] [--json bench/results/torch-cpu-DATE.json]

For each problem (float32, 3x3x3 kernel, 'same' padding), the median time of: PyTorch's public
calls (``F.conv3d``, ``torch.nn.grad.conv3d_input``, ``torch.nn.grad.conv3d_weight``: what
dilnet's torch kernels called before) and dilnet's ``torch_backend.corr_forward`` /
``corr_grad_input`` / ``corr_grad_weights`` (oneDNN called directly; the input gradient as a
forward correlation; the weight gradient as the backward-wrt-weights trick run forwards), plus
dilnet's BLAS kernels for reference. Ratios are dilnet / PyTorch; results are checked to agree.

The problems include the cases PyTorch sends to its native ``slow_conv3d`` (batch 1 with
``N * C * D * H <= 20480``: thin tiles, small crops, a one-channel first layer) and cases it
sends to oneDNN itself.

Then end to end: the ``context3d-basic`` zoo network predicting the whole MNI152 template (C VM,
batch 1) with each set of kernels: torch as now, torch with ``DIRECT_ONEDNN = False`` (PyTorch's
public calls, as before), BLAS with stacked taps for few channels (as now) and BLAS per tap
(``STACK_CHANNELS = 0``, as before).
"""

import argparse
import json
import platform

import numpy as np
import torch
import torch.nn.functional as F
from conv import interleaved_medians as medians  # bench/conv.py: paths take turns

import dilnet
from dilnet.backends import blas, torch_backend

# (batch, in, out, spatial, dilation)
PROBLEMS = [
    (1, 16, 16, (16, 48, 48), 2),  # a thin tile
    (1, 16, 16, (30, 30, 30), 1),  # a small crop
    (1, 4, 4, (64, 64, 64), 1),  # few channels
    (1, 1, 16, (99, 117, 95), 1),  # the first layer on the MNI152 template
    (2, 16, 16, (40, 48, 48), 4),  # a training batch (oneDNN in PyTorch too)
    (1, 32, 32, (64, 64, 64), 4),  # a large crop (oneDNN in PyTorch too)
    (1, 32, 32, (48, 48, 48), 1),  # undilated, oneDNN in PyTorch: its weight gradient is kept
]


def rel_diff(a, b):
    return float(np.abs(np.asarray(a) - np.asarray(b)).max() / (np.abs(np.asarray(b)).max()))


def problem(N, C, O, spatial, d, rounds):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, C, *spatial), dtype=np.float32)
    W = (rng.standard_normal((O, C, 3, 3, 3), dtype=np.float32) / np.sqrt(27 * C)).astype(
        np.float32
    )
    gy = rng.standard_normal((N, O, *spatial), dtype=np.float32)
    tx, tW, tgy = map(torch.from_numpy, (x, W, gy))
    pads, one, dil = ((d, d),) * 3, (1, 1, 1), (d, d, d)
    torch_fns = {
        "forward": lambda: F.conv3d(tx, tW, None, 1, d, d).numpy(),
        "grad_input": lambda: torch.nn.grad.conv3d_input(tx.shape, tW, tgy, 1, d, d).numpy(),
        "grad_weights": lambda: torch.nn.grad.conv3d_weight(tx, tW.shape, tgy, 1, d, d).numpy(),
    }
    dilnet_fns = {
        "forward": lambda: torch_backend.corr_forward(x, W, one, dil, pads),
        "grad_input": lambda: torch_backend.corr_grad_input(W, gy, spatial, one, dil, pads),
        "grad_weights": lambda: torch_backend.corr_grad_weights(x, gy, (3, 3, 3), one, dil, pads),
    }
    blas_fns = {
        "forward": lambda: blas.corr_forward(x, W, one, dil, pads),
        "grad_input": lambda: blas.corr_grad_input(W, gy, spatial, one, dil, pads),
        "grad_weights": lambda: blas.corr_grad_weights(x, gy, (3, 3, 3), one, dil, pads),
    }
    out = {
        "problem": {"batch": N, "in": C, "out": O, "spatial": list(spatial), "dilation": d},
        "pytorch_native_path": N == 1 and N * C * spatial[0] * spatial[1] <= 20480,
    }
    with torch.no_grad():
        for key in torch_fns:
            # BLAS in a phase of its own: OpenBLAS's threads spin after a call and slow the
            # next OpenMP (torch) call on two cores, which would bias whichever torch path
            # follows a BLAS call
            t = medians({"pytorch": torch_fns[key], "dilnet": dilnet_fns[key]}, rounds, 2)
            t |= medians({"blas": blas_fns[key]}, rounds, 2)
            out[key] = {
                "pytorch_ms": t["pytorch"],
                "dilnet_torch_ms": t["dilnet"],
                "dilnet_blas_ms": t["blas"],
                "dilnet_over_pytorch": t["dilnet"] / t["pytorch"],
                "rel_diff": rel_diff(dilnet_fns[key](), torch_fns[key]()),
            }
    return out


def end_to_end(rounds):
    """Whole-volume prediction of a zoo network with each kernel variant, in this process."""
    import dilnet_zoo
    from dilnet.cli import normalize
    from dilnet_zoo.data.mni152 import load_mni152

    t1 = normalize(load_mni152()["t1"][None].astype("float32"), "minmax")[None]
    model = dilnet_zoo.load("context3d-basic", pretrained=True)
    variants = {
        "torch (direct oneDNN)": ("torch", True, blas.STACK_CHANNELS),
        "torch (PyTorch's calls)": ("torch", False, blas.STACK_CHANNELS),
        "BLAS (stacked taps)": ("blas", True, blas.STACK_CHANNELS),
        "BLAS (per tap)": ("blas", True, 0),
    }
    stack = blas.STACK_CHANNELS

    def run(kernels, direct, channels):
        def call():
            dilnet.set_cpu_kernels(kernels)
            torch_backend.DIRECT_ONEDNN, blas.STACK_CHANNELS = direct, channels
            try:
                return model.predict_on_batch(t1)
            finally:
                torch_backend.DIRECT_ONEDNN, blas.STACK_CHANNELS = True, stack
                dilnet.set_cpu_kernels("auto")

        return call

    fns = {name: run(*v) for name, v in variants.items()}
    reference = fns["torch (PyTorch's calls)"]()
    out = {}
    names = list(variants)
    times = medians({n: fns[n] for n in names[:2]}, rounds, per_round=1)  # torch, then BLAS
    times |= medians({n: fns[n] for n in names[2:]}, rounds, per_round=1)
    print(f"\ncontext3d-basic, whole MNI152 template {t1.shape[2:]}, batch 1 (C VM):")
    for name in variants:
        out[name] = {"ms": times[name], "rel_diff": rel_diff(fns[name](), reference)}
        print(f"  {name:24} {times[name]:8.1f} ms  max rel diff {out[name]['rel_diff']:.1e}")
    for new, old in (("torch (direct oneDNN)", "torch (PyTorch's calls)"),
                     ("BLAS (stacked taps)", "BLAS (per tap)")):  # fmt: skip
        out[f"{new} / {old}"] = times[new] / times[old]
        print(f"  {new} / {old}: {times[new] / times[old]:.2f}x")
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args(argv)
    results = {
        "environment": {
            "python": platform.python_version(),
            "machine": platform.processor() or platform.machine(),
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "numpy": np.__version__,
            "dilnet": dilnet.__version__,
        },
        "problems": [],
    }
    print("| problem | PyTorch path | pass | PyTorch ms | dilnet ms | dilnet / PyTorch | BLAS ms |")
    print("|---|---|---|---|---|---|---|")
    for N, C, O, spatial, d in PROBLEMS:
        r = problem(N, C, O, spatial, d, args.rounds)
        results["problems"].append(r)
        name = f"{N}x{C}->{O}, {'x'.join(map(str, spatial))}, d={d}"
        path = "native" if r["pytorch_native_path"] else "oneDNN"
        for key in ("forward", "grad_input", "grad_weights"):
            m = r[key]
            print(
                f"| {name} | {path} | {key} | {m['pytorch_ms']:.1f} | {m['dilnet_torch_ms']:.1f} "
                f"| {m['dilnet_over_pytorch']:.2f}x | {m['dilnet_blas_ms']:.1f} |",
                flush=True,
            )
            assert m["rel_diff"] < 1e-4, (name, key, m["rel_diff"])
    results["end_to_end"] = end_to_end(args.rounds)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return results


if __name__ == "__main__":
    main()
