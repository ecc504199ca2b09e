"""The main job (`make demo`): segment Colin27, a real brain no zoo network trains on
(`dilnet_zoo.data.colin27`), from its 1 mm NIfTI with the pretrained `dilnet_zoo.DEFAULT`
(``local3d``, the zoo's best on that brain) through its input contract
(`dilnet.preprocessing.predict_image`), print the Dice per tissue against the shipped reference
labels, and write a PNG montage (T1 | reference | prediction on axial, coronal and sagittal
slices).

    python -m dilnet_zoo.demo [--model local3d] [--out demo.png] [--force] [--quiet]
    dilnet demo [--model local3d] [--out demo.png] [--quiet]
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

import dilnet_zoo
from dilnet.errors import DilnetError
from dilnet.model.metrics import dice_per_class
from dilnet.preprocessing import predict_image
from dilnet_zoo.data.colin27 import CLASS_NAMES, load_colin27, t1_nifti_path

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


def segment_colin27(model, progress=False):
    """``(t1, reference, prediction)`` of Colin27 at 1 mm: the labels `model` gives its NIfTI
    through `dilnet.preprocessing.predict_image` (the model's input contract: reoriented,
    resampled to the model's grid, scaled; probabilities mapped back to 1 mm), and the shipped
    reference labels on the same grid."""
    reference = load_colin27(resolution=1)
    probabilities = predict_image(model, t1_nifti_path(), memory_limit="1GiB", progress=progress)
    return reference["t1"], reference["labels"], probabilities.argmax(axis=0)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=dilnet_zoo.DEFAULT, choices=dilnet_zoo.list_models())
    parser.add_argument("--out", default="demo.png", help="where to write the PNG montage")
    parser.add_argument("--force", action="store_true", help="replace an existing --out")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    out = Path(args.out)
    if not out.resolve().parent.is_dir():
        print(f"dilnet demo: error: {out}: its directory does not exist.", file=sys.stderr)
        return 1
    if out.exists() and not args.force:
        print(f"dilnet demo: error: {out}: exists; pass --force to replace it (--out).",
              file=sys.stderr)  # fmt: skip
        return 1
    try:
        model = dilnet_zoo.load(args.model, pretrained=True)
        # a progress bar only on a terminal (as the command line draws them)
        progress = not args.quiet and sys.stderr.isatty()
        t1, labels, prediction = segment_colin27(model, progress=progress)
    except DilnetError as err:
        print(f"dilnet demo: error: {err}", file=sys.stderr)
        return 1
    print(
        f"{args.model}: {model.network.count_params(trainable=True):,} parameters, receptive "
        f"field {model.network.receptive_field[0].size}³; Colin27 {t1.shape} at 1 mm, "
        "never trained on"
    )
    dice = dice_per_class(prediction, labels, len(CLASS_NAMES))
    print("\nDice on Colin27 against its reference labels (ANTs Atropos), at 1 mm:")
    for name, value in zip(CLASS_NAMES, dice, strict=True):
        print(f"  {name:13s} {value:.3f}")
    print(f"  {'mean CSF/GM/WM':13s} {np.mean(dice[1:]):.3f}")
    print(f"  {'mean GM/WM':13s} {np.mean(dice[2:]):.3f}")
    montage(t1, labels, prediction, out)
    print(f"\nwrote {out} (T1 | reference | prediction) in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":  # `make demo`: a process of its own, so malloc may keep large arrays
    from dilnet.allocator import reuse_freed_memory

    reuse_freed_memory()
    sys.exit(main())
