"""`make demo`: the dilated 3D convolution Op on a real-sized volume.

Builds a stack of dilated 3D convolutions (dilations 1, 2, 4, 8, 'same' padding) on a
(1, 16, 96, 96, 96) float32 volume, compiles forward and backward with PyTensor, prints shapes,
receptive fields and timings, and checks sampled output voxels against a direct sum over the
kernel taps. Until the zoo lands, the volume is a synthetic phantom (nested spheres with noise).
Run: ``python -m dilnet.demo [--size N] [--kernels auto|blas|torch]``.
"""

import argparse
import time

import numpy as np
import pytensor
import pytensor.tensor as pt

from . import get_cpu_kernels, set_cpu_kernels
from .ops import dilated_conv
from .shapes import receptive_field

DILATIONS = (1, 2, 4, 8)
CHANNELS = 16


def phantom(size, channels, rng):
    """Nested spheres of different intensity per channel, plus noise: shape (1, C, n, n, n)."""
    grid = np.indices((size,) * 3, dtype=np.float32) - (size - 1) / 2
    radius = np.sqrt((grid**2).sum(axis=0)) / (size / 2)
    shells = np.stack([np.cos((c + 1) * np.pi * radius) * (radius < 1) for c in range(channels)])
    noise = rng.standard_normal(shells.shape, dtype=np.float32) * 0.1
    return (shells + noise)[None].astype(np.float32)


def spot_check(W, layer_input, d, y, rng, samples=32):
    """Largest relative error of `y` at random voxels against an explicit sum over taps."""
    k = W.shape[2]
    pad = (k - 1) * d // 2
    padded = np.pad(layer_input[0], ((0, 0), (pad, pad), (pad, pad), (pad, pad)))
    worst = 0.0
    for _ in range(samples):
        o = rng.integers(W.shape[0])
        z, yy, xx = rng.integers(0, y.shape[2], size=3)
        window = padded[
            :,
            z : z + (k - 1) * d + 1 : d,
            yy : yy + (k - 1) * d + 1 : d,
            xx : xx + (k - 1) * d + 1 : d,
        ]
        expected = float((W[o].astype(np.float64) * window).sum())
        worst = max(worst, abs(float(y[0, o, z, yy, xx]) - expected) / (abs(expected) + 1e-3))
    return worst


def main(argv=None):
    parser = argparse.ArgumentParser(description="dilnet demo: dilated 3D convolutions on a volume")
    parser.add_argument("--size", type=int, default=96, help="edge length of the cubic volume")
    parser.add_argument("--kernels", default="auto", choices=["auto", "blas", "torch"])
    args = parser.parse_args(argv)
    set_cpu_kernels(args.kernels)
    rng = np.random.default_rng(0)
    volume = phantom(args.size, CHANNELS, rng)
    print(
        f"dilnet demo: volume {volume.shape} float32 ({volume.nbytes / 2**20:.0f} MB), CPU kernels: {get_cpu_kernels()}"
    )

    x = pt.tensor("x", dtype="float32", shape=(None, CHANNELS, None, None, None))
    weights = [
        (rng.standard_normal((CHANNELS, CHANNELS, 3, 3, 3)) / np.sqrt(27 * CHANNELS)).astype(
            np.float32
        )
        for _ in DILATIONS
    ]
    W_vars = [
        pt.tensor(f"W{d}", dtype="float32", shape=w.shape)
        for d, w in zip(DILATIONS, weights, strict=True)
    ]
    h, pre_activations = x, []
    for d, W in zip(DILATIONS, W_vars, strict=True):
        pre = dilated_conv(h, W, dilation=d, pad="same")
        pre_activations.append(pre)
        h = pt.maximum(pre, 0)
    cost = (h**2).mean()
    grads = pytensor.grad(cost, W_vars)

    t0 = time.perf_counter()
    forward = pytensor.function([x, *W_vars], pre_activations, mode="CVM")
    train = pytensor.function([x, *W_vars], [cost, *grads], mode="CVM")
    print(f"compiled forward and forward+backward in {time.perf_counter() - t0:.2f} s (mode CVM)")

    forward(volume, *weights)  # warm-up: first-touch of output memory, library start-up
    train(volume, *weights)
    t0 = time.perf_counter()
    outs = forward(volume, *weights)
    t_fwd = time.perf_counter() - t0
    t0 = time.perf_counter()
    cost_val, *grad_vals = train(volume, *weights)
    t_train = time.perf_counter() - t0

    print(
        f"{'layer':>5} {'dilation':>8} {'output shape':>24} {'receptive field':>16} {'spot check':>11}"
    )
    layer_input = volume
    for i, (d, W, y) in enumerate(zip(DILATIONS, weights, outs, strict=True)):
        rf = receptive_field([(3, 1, dd, dd) for dd in DILATIONS[: i + 1]])
        err = spot_check(W, layer_input, d, y, rng)
        print(
            f"{i + 1:>5} {d:>8} {y.shape!s:>24} {rf.size:>13}^3 {'ok' if err <= 1e-4 else 'FAIL':>11}"
        )
        if err > 1e-4:
            raise SystemExit(
                f"layer {i + 1}: output differs from the direct sum (relative error {err:.2e})"
            )
        layer_input = np.maximum(y, 0)
    gflop = 2 * 27 * CHANNELS * CHANNELS * args.size**3 * len(DILATIONS) / 1e9
    print(
        f"forward: {t_fwd * 1e3:.0f} ms ({gflop / t_fwd:.0f} GFLOP/s); forward+backward: {t_train * 1e3:.0f} ms"
    )
    print(
        f"cost {float(cost_val):.4f}; gradient norms "
        + ", ".join(f"{np.linalg.norm(g):.3g}" for g in grad_vals)
    )


if __name__ == "__main__":
    main()
