"""Tiled inference with clipped crops vs crops of one shape (``predict_volume(same_shape=)``).

    python bench/tiles.py [--model plain3d] [--tile 32] [--batch-size 1] [--device cpu|cuda]
                          [--json bench/results/tiles-cpu-DATE.json]

On the MNI152 template (99 x 117 x 95, min-max scaled) with a pretrained zoo network, for the C
VM and for the JAX linker (``mode="JAX"`` on the CPU, or ``device="cuda"``): a fresh model per
run, timing the first tiled prediction (which pays every compile: one per crop shape on the JAX
linker) and a second one (warm). The peer is the clipped plan in the same process; ratios are
same-shape / clipped. Both must equal the whole-volume prediction of the C VM (max abs diff).
"""

import argparse
import json
import platform
import sys
import time

import numpy as np
import pytensor

import dilnet
import dilnet_zoo
from dilnet.cli import normalize
from dilnet.inference import plan_tiles, predict_volume
from dilnet_zoo.data.mni152 import load_mni152


def run(load, volume, tile, batch_size, same_shape, reference):
    model = load()
    plan = plan_tiles(model, volume.shape[1:], tile=tile, batch_size=batch_size,
                      same_shape=same_shape)  # fmt: skip
    times = []
    for _ in range(2):
        start = time.perf_counter()
        out = predict_volume(model, volume, tile=tile, batch_size=batch_size,
                             same_shape=same_shape, progress=False)  # fmt: skip
        times.append(time.perf_counter() - start)
    crop_voxels = sum(int(np.prod(t.crop_shape)) for t in plan.tiles)
    return {
        "tiles": len(plan.tiles),
        "crop_shapes": len({t.crop_shape for t in plan.tiles}),
        "tile": list(plan.tile),
        "crop_voxels": crop_voxels,
        "first_s": times[0],
        "warm_s": times[1],
        "max_abs_diff_vs_whole": float(np.abs(out - reference).max()),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="plain3d")
    parser.add_argument("--tile", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args(argv)

    data = load_mni152()
    volume = normalize(data["t1"][None].astype("float32"), "minmax")
    reference = dilnet_zoo.load(args.model, pretrained=True).predict(volume[None])[0]
    jax_kwargs = {"mode": "JAX"} if args.device == "cpu" else {"device": args.device}
    backends = {
        "cvm": lambda: dilnet_zoo.load(args.model, pretrained=True),
        "jax": lambda: dilnet_zoo.load(args.model, pretrained=True, **jax_kwargs),
    }
    import jax

    results = {
        "config": vars(args) | {"volume": list(volume.shape)},
        "environment": {
            "python": platform.python_version(),
            "machine": platform.processor() or platform.machine(),
            "pytensor": pytensor.__version__,
            "jax": jax.__version__,
            "dilnet": dilnet.__version__,
            "jax_device": str(jax.devices()[0]),
        },
    }
    print(f"{args.model} on {volume.shape[1:]}, tile {args.tile}, batch {args.batch_size}; "
          f"jax device {jax.devices()[0]}", file=sys.stderr)  # fmt: skip
    for name, load in backends.items():
        clipped = run(load, volume, args.tile, args.batch_size, False, reference)
        same = run(load, volume, args.tile, args.batch_size, True, reference)
        results[name] = {
            "clipped": clipped,
            "same_shape": same,
            "first_ratio": same["first_s"] / clipped["first_s"],
            "warm_ratio": same["warm_s"] / clipped["warm_s"],
            "crop_voxel_ratio": same["crop_voxels"] / clipped["crop_voxels"],
        }
        for label, r in (("clipped", clipped), ("same_shape", same)):
            print(f"{name:4} {label:10}: {r['tiles']:3} tiles, {r['crop_shapes']:3} crop shapes, "
                  f"first {r['first_s']:6.2f} s, warm {r['warm_s']:6.2f} s, "
                  f"max diff {r['max_abs_diff_vs_whole']:.1e}")  # fmt: skip
        print(f"{name:4} same_shape / clipped: first {results[name]['first_ratio']:.2f}x, warm "
              f"{results[name]['warm_ratio']:.2f}x, crop voxels "
              f"{results[name]['crop_voxel_ratio']:.2f}x")  # fmt: skip
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return results


if __name__ == "__main__":
    main()
