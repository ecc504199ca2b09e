"""Short training pilots for the zoo (issue 16): what makes a network fit the Atropos labels,
measured on the training template and on the held-out brain in one run.

Every pilot trains with `dilnet.training.train_from_config` on the recipe's data and settings
(`dilnet_zoo.recipes.train.config`: the eight MNI152 2 mm grids scaled by the zoo's contract
`BRAIN_T1_2MM`, class-balanced 40 x 48 x 48 patches, batch 2, Adam 2e-3 with cosine decay,
seed 0), changing only what its row names:

``local, augmented``
    a 3-voxel network, the zoo's ``local3d`` (``Conv(16, 3^3, batch norm) -> Conv(16, 1^3,
    batch norm) -> Classifier``), with the recipe's `Augment` (``AUGMENT``: SynthSeg-style deformations, bias
    fields, gamma, blur, noise);
``local, deformations only``
    the same network with `Augment`'s deformations alone (flips, affine, elastic; no bias,
    gamma, blur, slices or noise): image and labels move together, the image interpolated
    linearly and the labels by nearest neighbour;
``local, no augmentation``
    the same network without augmentation (``local3d``'s settings: the recipe's
    ``--no-augment``);
``local, no augmentation, cross-entropy``
    the same with cross-entropy alone (no Dice term), whose probabilities are calibrated, which
    matters where they are interpolated back onto a finer grid.

Each pilot is scored by Dice of CSF, GM, WM and the GM/WM mean on the MNI152 2 mm template
(training data: a fit check only) and on Colin27 at 2 mm (`load_colin27(2)`, never trained on;
the pilots compare settings on it, so a setting chosen from this table has been selected on
Colin27 and a card must say so), both through `predict_volume` with the model's contract. The
shipped ``context3d-basic`` is scored the same way in the same run, as the peer.

Prints the machine, versions and date; writes ``bench/results/zoo-pilots-cpu-YYYY-MM-DD.json``.

Run: ``.venv/bin/python bench/zoo_pilots.py [--steps 1000] [--out-dir bench/results]``.
"""

import argparse
import datetime
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

#: `Augment`'s fields for "deformations only": the recipe's `AUGMENT` with every intensity
#: step off
DEFORMATIONS = {"p_bias": 0.0, "p_slices": 0.0, "p_noise": 0.0, "p_gamma": 0.0}

PILOTS = {
    "local, augmented": {"augment": True, "loss": "crossentropy+dice"},
    "local, deformations only": {"augment": DEFORMATIONS, "loss": "crossentropy+dice"},
    "local, no augmentation": {"augment": False, "loss": "crossentropy+dice"},
    "local, no augmentation, cross-entropy": {"augment": False, "loss": "crossentropy"},
}


def scores(model):
    """``{volume: {csf, grey matter, white matter, mean GM/WM}}`` on MNI152 and Colin27 2 mm."""
    from dilnet.inference import predict_volume
    from dilnet.model.metrics import dice_per_class
    from dilnet_zoo.data.colin27 import load_colin27
    from dilnet_zoo.data.mni152 import load_mni152

    out = {}
    for name, data in (
        ("MNI152 2 mm (training)", load_mni152()),
        ("Colin27 2 mm", load_colin27(2)),
    ):
        labels = predict_volume(model, data["t1"][None], progress=False).argmax(axis=0)
        dice = dice_per_class(labels, data["labels"], 4)
        out[name] = {"csf": float(dice[1]), "grey matter": float(dice[2]),
                     "white matter": float(dice[3]), "mean GM/WM": float(np.mean(dice[2:]))}  # fmt: skip
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--out-dir", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args(argv)

    import dilnet
    import dilnet_zoo
    from dilnet.training import train_from_config
    from dilnet_zoo.families import BRAIN_T1_2MM
    from dilnet_zoo.recipes.train import config

    result = {"date": datetime.date.today().isoformat(), "machine": platform.machine(),
              "cpus": os.cpu_count(), "python": platform.python_version(),
              "numpy": np.__version__, "dilnet": dilnet.__version__, "steps": args.steps,
              "pilots": {}}  # fmt: skip
    shipped = dilnet_zoo.load("context3d-basic", pretrained=True)
    result["pilots"]["shipped context3d-basic (peer)"] = {"scores": scores(shipped)}
    with tempfile.TemporaryDirectory() as tmp:
        for name, pilot in PILOTS.items():
            settings = config("context3d-basic", use_augment=bool(pilot["augment"]),
                              steps=args.steps, output=f"{tmp}/pilot.npz")  # fmt: skip
            if isinstance(pilot["augment"], dict):
                settings["augment"]["synthseg"].update(pilot["augment"])
            settings["model"], settings["loss"] = "zoo:local3d", pilot["loss"]
            start = time.perf_counter()
            model, record = train_from_config(settings, base=tmp, overwrite=True, verbose=0,
                                              input_contract=BRAIN_T1_2MM)  # fmt: skip
            seconds = time.perf_counter() - start
            result["pilots"][name] = {"train_seconds": round(seconds, 1),
                                      "final_loss": record["history"]["loss"][-1],
                                      "scores": scores(model)}  # fmt: skip
    print(
        f"{'pilot':40s} {'train s':>8s} {'MNI GM/WM':>10s} {'Colin GM/WM':>12s} {'Colin CSF':>10s}"
    )
    peer = result["pilots"]["shipped context3d-basic (peer)"]["scores"]["Colin27 2 mm"]
    for name, row in result["pilots"].items():
        s = row["scores"]
        print(f"{name:40s} {row.get('train_seconds', float('nan')):8.1f} "
              f"{s['MNI152 2 mm (training)']['mean GM/WM']:10.3f} "
              f"{s['Colin27 2 mm']['mean GM/WM']:12.3f} {s['Colin27 2 mm']['csf']:10.3f}  "
              f"({s['Colin27 2 mm']['mean GM/WM'] / peer['mean GM/WM']:.3f}x the shipped)")  # fmt: skip
    out = Path(args.out_dir) / f"zoo-pilots-cpu-{result['date']}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
