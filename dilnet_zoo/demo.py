"""The main job (`make demo`): segment the held-out hemisphere of the MNI152 template with the
pretrained ``context3d-basic``, print the Dice table against the reference labels, and write a
PNG montage (T1 | reference | prediction on axial, coronal and sagittal slices).

    python -m dilnet_zoo.demo [--model context3d-basic] [--out demo.png] [--quiet]
    dilnet demo [--model context3d-basic] [--out demo.png] [--quiet]
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

import dilnet_zoo
from dilnet.errors import DilnetError
from dilnet.inference import predict_volume
from dilnet.model.metrics import dice_per_class
from dilnet_zoo.data.mni152 import CLASS_NAMES, hemispheres, load_mni152

#: label colours: background, CSF, grey matter, white matter
COLOURS = np.array([[0, 0, 0], [0.2, 0.5, 1.0], [0.55, 0.55, 0.55], [1.0, 1.0, 0.85]])


def montage(t1, reference, prediction, path):
    """T1 | reference | prediction, one row per view through the volume's centre."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    views = [("axial", 2), ("coronal", 1), ("sagittal", 0)]
    fig, axes = plt.subplots(3, 3, figsize=(9, 9))
    for row, (view, axis) in enumerate(views):
        index = t1.shape[axis] // 2
        for col, (title, image) in enumerate(
            [("T1", t1), ("reference", reference), ("prediction", prediction)]
        ):
            plane = np.take(image, index, axis=axis)
            ax = axes[row, col]
            if title == "T1":
                ax.imshow(plane.T, origin="lower", cmap="gray")
            else:
                ax.imshow(COLOURS[plane.T], origin="lower")
            ax.set_axis_off()
            ax.set_title(f"{title}, {view}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="context3d-basic", choices=dilnet_zoo.list_models())
    parser.add_argument("--out", default="demo.png", help="where to write the PNG montage")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    if not Path(args.out).resolve().parent.is_dir():
        print(f"dilnet demo: error: {args.out}: its directory does not exist.", file=sys.stderr)
        return 1
    try:
        model = dilnet_zoo.load(args.model, pretrained=True)
    except DilnetError as err:
        print(f"dilnet demo: error: {err}", file=sys.stderr)
        return 1
    _, (t1, labels) = hemispheres(load_mni152())
    print(
        f"{args.model}: {model.network.count_params(trainable=True):,} parameters, receptive "
        f"field {model.network.receptive_field[0].size}³; held-out hemisphere {t1.shape}"
    )
    probabilities = predict_volume(model, t1, memory_limit="1GiB", progress=not args.quiet)
    prediction = probabilities.argmax(axis=0)
    dice = dice_per_class(prediction, labels, len(CLASS_NAMES))
    print("\nDice on the held-out (right) hemisphere:")
    for name, value in zip(CLASS_NAMES, dice, strict=True):
        print(f"  {name:13s} {value:.3f}")
    print(f"  {'mean CSF/GM/WM':13s} {np.mean(dice[1:]):.3f}")
    montage(t1, labels, prediction, args.out)
    print(
        f"\nwrote {args.out} (T1 | reference | prediction) in {time.perf_counter() - start:.1f} s"
    )
    return 0


if __name__ == "__main__":  # `make demo`: a process of its own, so malloc may keep large arrays
    from dilnet.allocator import reuse_freed_memory

    reuse_freed_memory()
    sys.exit(main())
