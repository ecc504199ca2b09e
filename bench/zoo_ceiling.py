"""What the zoo's reference labels are made of, and what that means for a network: intensity
thresholds against Atropos on Colin27, next to the shipped ``context3d-basic``, in one run.

The zoo's labels (MNI152 training data and Colin27 reference alike) come from ANTs Atropos:
k-means on the intensities plus a weak MRF. This script measures how much of them a *pointwise
intensity rule* explains -- two thresholds on the contract-scaled T1 (0.5th/99.5th percentiles
of the nonzero voxels to 0/1), CSF below the first, WM above the second, GM between, inside the
reference's brain mask -- and compares the shipped network with it:

* ``own``: the best thresholds for each volume itself (an upper bound for such a rule);
* ``MNI152 -> Colin27``: thresholds chosen on the training template at the same resolution,
  applied to the held-out brain (what a network that learnt only thresholds would score);
* ``1 mm rule on 2 mm data``: the 1 mm thresholds applied to Colin27's 2 mm volume resampled to
  1 mm (linear), then averaged back over each 2 x 2 x 2 block (a 1 mm network fed 2 mm data);
* the contract's scaling end points at 1 mm and 2 mm (its low percentile moves with the
  resolution: block means at the brain's edge mix in the zero background);
* the shipped network's confusion matrix on Colin27 at 2 mm (`predict_volume`, its contract).

Thresholds are searched on a grid of 0.01 through per-class intensity histograms (exact Dice
for every pair from cumulative counts). Prints the machine, versions and date; writes
``bench/results/zoo-ceiling-cpu-YYYY-MM-DD.json``.

Run: ``.venv/bin/python bench/zoo_ceiling.py [--out-dir bench/results]``.
"""

import argparse
import datetime
import json
import platform
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage

BINS = 101  # thresholds on a grid of 0.01 over [0, 1]


def contract_scale(t1, low=0.5, high=99.5):
    """The zoo contract's scaling (percentiles of the nonzero voxels to 0/1, clipped; zeros
    stay 0), in float64, and its end points."""
    t1 = np.asarray(t1, np.float64)
    fg = t1 > 0
    lo, hi = np.percentile(t1[fg], [low, high])
    return np.clip((t1 - lo) / (hi - lo), 0, 1) * fg, (float(lo), float(hi))


def histograms(scaled, labels):
    """Per tissue class 1..3: counts of the scaled intensities in bins ``[k/100, (k+1)/100)``."""
    mask = labels > 0
    index = np.minimum((scaled[mask] * (BINS - 1)).astype(int), BINS - 1)
    return np.stack([np.bincount(index[labels[mask] == k], minlength=BINS) for k in (1, 2, 3)])


def dice_for(hist, a, b):
    """Dice of CSF/GM/WM for the rule ``< a`` CSF, ``[a, b)`` GM, ``>= b`` WM (bin indices)."""
    pred = [hist[:, :a].sum(1), hist[:, a:b].sum(1), hist[:, b:].sum(1)]  # [rule class][ref]
    out = []
    for k in range(3):
        inter = pred[k][k]
        out.append(2 * inter / (pred[k].sum() + hist[k].sum()))
    return out


def best_thresholds(hist):
    best = (-1.0, 0, 0)
    for a in range(1, BINS):
        for b in range(a + 1, BINS):
            d = dice_for(hist, a, b)
            if (d[1] + d[2]) / 2 > best[0]:
                best = ((d[1] + d[2]) / 2, a, b)
    return best[1], best[2]


def row(d):
    return {"csf": d[0], "grey matter": d[1], "white matter": d[2], "mean GM/WM": (d[1] + d[2]) / 2}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args(argv)

    import nibabel as nib

    import dilnet
    import dilnet_zoo
    from dilnet.inference import predict_volume
    from dilnet.model.metrics import dice_per_class
    from dilnet_zoo.data import colin27

    mni1 = np.load(Path(dilnet_zoo.__file__).parent / "data" / "mni152_1mm.npz")
    mni2 = np.load(Path(dilnet_zoo.__file__).parent / "data" / "mni152_2mm.npz")
    col = np.load(Path(dilnet_zoo.__file__).parent / "data" / colin27.FILENAME)
    col1_t1 = np.asarray(nib.load(colin27.t1_nifti_path()).dataobj)
    volumes = {
        "MNI152 1 mm": (mni1["t1"], mni1["labels"]),
        "MNI152 2 mm": (mni2["t1"], mni2["labels"]),
        "Colin27 1 mm": (col1_t1, col["labels_1mm"]),
        "Colin27 2 mm": (col["t1_2mm"], col["labels_2mm"]),
    }
    result = {"date": datetime.date.today().isoformat(), "machine": platform.machine(),
              "python": platform.python_version(), "numpy": np.__version__,
              "dilnet": dilnet.__version__, "scaling end points": {}, "own": {},
              "MNI152 -> Colin27": {}}  # fmt: skip
    hists, rules = {}, {}
    for name, (t1, labels) in volumes.items():
        scaled, ends = contract_scale(t1)
        result["scaling end points"][name] = ends
        hists[name] = histograms(scaled, labels)
        rules[name] = best_thresholds(hists[name])
        result["own"][name] = {"thresholds": [r / (BINS - 1) for r in rules[name]],
                               **row(dice_for(hists[name], *rules[name]))}  # fmt: skip
    for res in ("1 mm", "2 mm"):
        a, b = rules[f"MNI152 {res}"]
        result["MNI152 -> Colin27"][res] = row(dice_for(hists[f"Colin27 {res}"], a, b))

    # a 1 mm rule on Colin27's 2 mm volume: resampled to 1 mm, thresholded, averaged back
    t2, l2 = col["t1_2mm"].astype(np.float64), col["labels_2mm"]
    n = t2.shape
    points = np.meshgrid(*[np.repeat(np.arange(k), 2) + np.tile([-0.25, 0.25], k) for k in n],
                         indexing="ij")  # fmt: skip
    up = ndimage.map_coordinates(t2, points, order=1, mode="nearest")
    scaled, _ = contract_scale(up)
    inside = ndimage.map_coordinates((l2 > 0).astype(float), points, order=1) > 0.5
    a, b = (r / (BINS - 1) for r in rules["MNI152 1 mm"])
    onehot = np.stack([~inside, inside & (scaled < a), inside & (scaled >= a) & (scaled < b),
                       inside & (scaled >= b)]).astype(np.float32)  # fmt: skip
    back = onehot.reshape(4, n[0], 2, n[1], 2, n[2], 2).mean(axis=(2, 4, 6)).argmax(0)
    result["1 mm rule on 2 mm data"] = row(list(dice_per_class(back, l2, 4)[1:]))

    model = dilnet_zoo.load("context3d-basic", pretrained=True)
    data = colin27.load_colin27()
    predicted = predict_volume(model, data["t1"][None], progress=False).argmax(0)
    confusion = np.zeros((4, 4), np.int64)
    np.add.at(confusion, (data["labels"].ravel(), predicted.ravel()), 1)
    result["context3d-basic on Colin27 2 mm"] = {
        **row(list(dice_per_class(predicted, data["labels"], 4)[1:])),
        "confusion (rows reference, columns predicted; background, CSF, GM, WM)":
            confusion.tolist(),
    }  # fmt: skip

    print(json.dumps(result, indent=1))
    out = Path(args.out_dir) / f"zoo-ceiling-cpu-{result['date']}.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
