"""Score a zoo network on Colin27, a real brain no zoo network trains on, stored six ways.

    python -m dilnet_zoo.recipes.evaluate context3d-basic [--weights-dir DIR] [--card]

Every prediction goes through the command line (``dilnet predict``, `dilnet.cli.main` in this
process) from a NIfTI file, as a user runs it; the labels it writes are compared with the
reference tissue labels of `dilnet_zoo.data.colin27` (ANTs Atropos, 3 classes + MRF: a
classical segmenter's labels, not ground truth; docs/zoo.md). The conditions (`CONDITIONS`), all
made from ``ch2bet.nii.gz`` (`t1_nifti_path`: 1 mm, RAS, 181 x 217 x 181, uint8 0..133,
skull-stripped):

``native 1 mm``
    the file as shipped; scored against the 1 mm reference.
``2 mm``
    ``load_colin27(2)``'s T1 (2 x 2 x 2 block means, MNI152's 2 mm grid) with its affine;
    scored against the 2 mm reference (2 x 2 x 2 block plurality of the 1 mm labels).
``bias field +-25%``
    the 1 mm T1 times ``b = 1 + 0.25 * f / max|f|``, ``f(u, v, w) = sum over a, b, c in {0, 1, 2}
    (not all 0) of g_abc cos(pi a u) cos(pi b v) cos(pi c w)``, with ``u, v, w`` the voxel
    coordinates scaled to [0, 1] per axis and ``g_abc ~ N(0, 1)`` from
    ``numpy.random.default_rng(0)`` (a smooth field, multiplicative, between 0.75 and 1.25);
    scored against the 1 mm reference.
``2x2x4 mm slices``
    the 1 mm T1 averaged over 2 x 2 x 4 voxel blocks (axis 2, superior, is the slice axis;
    the volume is cropped to whole blocks: 180 x 216 x 180) -> 90 x 108 x 45 voxels of
    2 x 2 x 4 mm, affine ``A1 @ [[2, 0, 0, 0.5], [0, 2, 0, 0.5], [0, 0, 4, 1.5], [0, 0, 0, 1]]``
    (a block's centre); the command maps its labels back onto that grid, and they are scored
    against the 1 mm reference reduced the same way: the plurality label of each block (ties
    to the lower label), as the 2 mm reference is made.
``stored LPS``
    the 1 mm T1 with axes 0 and 1 reversed and the affine saying so (``A1 @ F``, ``F`` flipping
    x and y about the volume); the labels are flipped back and scored against the 1 mm
    reference.
``scanner units``
    the 1 mm T1 as int16 ``20 * t1 + 300`` inside the brain (``t1 > 0``), 0 outside: values
    300..2960, as a scanner's; scored against the 1 mm reference.

`evaluate` returns the Dice per class (CSF, GM, WM), their mean and the GM/WM mean per
condition. The command adds them to the training record ``<weights-dir>/<name>.json`` as
``metrics["colin27"]`` (the zoo table and cards read them from there) and, with ``--card``,
rewrites the card's measured section (`write_card`). Colin27 takes
no part in training or in choosing a network's settings by this command; the card says which
settings were compared on it.
"""

import argparse
import contextlib
import io
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import dilnet_zoo
from dilnet.io.weights import atomic_write
from dilnet.model.metrics import dice_per_class

HERE = Path(__file__).resolve().parent.parent
#: the ways Colin27 is stored, in the order of every table
CONDITIONS = ("native 1 mm", "2 mm", "bias field +-25%", "2x2x4 mm slices", "stored LPS",
              "scanner units")  # fmt: skip
#: the scored classes (label 1, 2, 3)
CLASSES = ("csf", "grey matter", "white matter")


def bias_field(shape, seed=0, amplitude=0.25) -> np.ndarray:
    """The smooth multiplicative field of the module docstring: 1 +- `amplitude`."""
    rng = np.random.default_rng(seed)
    u, v, w = (np.linspace(0, 1, n) for n in shape)
    f = np.zeros(shape)
    for a in range(3):
        for b in range(3):
            for c in range(3):
                if a == b == c == 0:
                    continue
                g = rng.normal()
                f += g * (np.cos(np.pi * a * u)[:, None, None] * np.cos(np.pi * b * v)[None, :, None]
                          * np.cos(np.pi * c * w)[None, None, :])  # fmt: skip
    return 1 + amplitude * f / np.abs(f).max()


def block_mean(x, block) -> np.ndarray:
    """The mean of each whole `block` of `x` (3D; a partial block at the end is dropped)."""
    shape = [n // b for n, b in zip(x.shape, block, strict=True)]
    x = x[tuple(slice(0, n * b) for n, b in zip(shape, block, strict=True))]
    blocks = x.reshape(shape[0], block[0], shape[1], block[1], shape[2], block[2])
    return blocks.mean(axis=(1, 3, 5))


def block_plurality(labels, block, num_classes=4) -> np.ndarray:
    """The most frequent label of each block (ties to the lower label)."""
    counts = [block_mean((labels == k).astype(np.float32), block) for k in range(num_classes)]
    return np.argmax(np.stack(counts), axis=0)


def make_conditions(directory) -> dict:
    """``{condition: (nifti path, reference labels on the file's grid, to_reference)}``, the
    files written into `directory`: `to_reference` brings the command's labels into the
    reference's array order."""
    import nibabel as nib

    from dilnet_zoo.data.colin27 import load_colin27, t1_nifti_path

    d = Path(directory)
    src = nib.load(t1_nifti_path())
    t1 = np.asarray(src.dataobj).astype(np.float32)
    a1 = src.affine
    ref1 = load_colin27(1)["labels"]
    same = lambda labels: labels  # noqa: E731
    out = {"native 1 mm": (t1_nifti_path(), ref1, same)}

    c2 = load_colin27(2)
    nib.save(nib.Nifti1Image(c2["t1"], c2["affine"]), d / "2mm.nii.gz")
    out["2 mm"] = (d / "2mm.nii.gz", c2["labels"], same)

    biased = t1 * bias_field(t1.shape).astype(np.float32)
    nib.save(nib.Nifti1Image(biased, a1), d / "bias.nii.gz")
    out["bias field +-25%"] = (d / "bias.nii.gz", ref1, same)

    block = (2, 2, 4)
    thick = block_mean(t1, block).astype(np.float32)
    a_thick = a1 @ np.array([[2, 0, 0, 0.5], [0, 2, 0, 0.5], [0, 0, 4, 1.5], [0, 0, 0, 1.0]])
    nib.save(nib.Nifti1Image(thick, a_thick), d / "thick.nii.gz")
    out["2x2x4 mm slices"] = (d / "thick.nii.gz", block_plurality(ref1, block), same)

    flip = np.diag([-1.0, -1.0, 1.0, 1.0])
    flip[:2, 3] = [n - 1 for n in t1.shape[:2]]
    nib.save(nib.Nifti1Image(t1[::-1, ::-1].copy(), a1 @ flip), d / "lps.nii.gz")
    out["stored LPS"] = (d / "lps.nii.gz", ref1, lambda labels: labels[::-1, ::-1])

    scanner = np.where(t1 > 0, np.round(20 * t1 + 300), 0).astype(np.int16)
    nib.save(nib.Nifti1Image(scanner, a1), d / "scanner.nii.gz")
    out["scanner units"] = (d / "scanner.nii.gz", ref1, same)
    return out


def predict(model, path, output, extra=()) -> tuple[np.ndarray, str]:
    """The labels ``dilnet predict`` writes (run in this process), and its stderr."""
    import nibabel as nib

    from dilnet.cli import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["predict", "--model", str(model), "--input", str(path), "--output",
                     str(output), "--force", *extra])  # fmt: skip
    if code != 0:
        raise RuntimeError(f"dilnet predict failed on {path}: {err.getvalue().strip()}")
    return np.asarray(nib.load(output).dataobj), err.getvalue()


def evaluate(model, conditions=None, directory=None, extra=()) -> dict:
    """``{condition: row}`` for `model` (a ``--model`` value: ``zoo:NAME`` or a saved model) on
    `conditions` (`make_conditions` of `directory`; made in a temporary directory when None).

    A row holds the Dice of each of `CLASSES`, ``"mean CSF/GM/WM"``, ``"mean GM/WM"``, the
    command's ``"seconds"`` and its stderr lines as ``"notes"``. `extra`: more command options.
    """
    if conditions is None:
        with tempfile.TemporaryDirectory() as tmp:
            return evaluate(model, make_conditions(tmp), tmp, extra)
    rows = {}
    for name in CONDITIONS:
        path, reference, to_reference = conditions[name]
        start = time.perf_counter()
        labels, notes = predict(model, path, Path(directory) / "seg.nii.gz", extra)
        seconds = time.perf_counter() - start
        labels = to_reference(labels)
        if labels.shape != reference.shape:
            raise RuntimeError(f"{name}: labels {labels.shape}, reference {reference.shape}")
        dice = dice_per_class(labels, reference, 4)
        rows[name] = {
            **{c: float(v) for c, v in zip(CLASSES, dice[1:], strict=True)},
            "mean CSF/GM/WM": float(np.mean(dice[1:])),
            "mean GM/WM": float(np.mean(dice[2:])),
            "seconds": round(seconds, 2),
            "notes": [line for line in notes.splitlines() if line.strip()],
        }
    return rows


def table(rows) -> str:
    """`evaluate`'s rows as plain text, one line per condition."""
    lines = [f"  {'condition':18s} {'CSF':>6s} {'GM':>6s} {'WM':>6s} {'mean':>6s} {'GM/WM':>6s}"]
    for name, r in rows.items():
        lines.append(
            f"  {name:18s} {r['csf']:6.3f} {r['grey matter']:6.3f} {r['white matter']:6.3f} "
            f"{r['mean CSF/GM/WM']:6.3f} {r['mean GM/WM']:6.3f}"
        )
    return "\n".join(lines)


def record_evaluation(name, directory=None, log=print) -> dict:
    """Evaluate ``<directory>/<name>.npz`` (the package's weights by default) and store the rows,
    without their notes, as ``metrics["colin27"]`` of ``<directory>/<name>.json``; return it."""
    directory = Path(directory) if directory is not None else HERE / "weights"
    record_path = directory / f"{name}.json"
    record = json.loads(record_path.read_text())
    rows = evaluate(directory / f"{name}.npz")
    log(f"{name} on Colin27 ({rows['native 1 mm']['notes'][0]}):\n{table(rows)}")
    record["metrics"]["colin27"] = {
        condition: {k: v for k, v in row.items() if k != "notes"} for condition, row in rows.items()
    }
    text = (json.dumps(record, indent=1) + "\n").encode()
    atomic_write(record_path, lambda f: f.write(text))
    return record


_START, _END = "<!-- measured:", "<!-- end measured -->"


def training_description(record) -> str:
    """The card's sentence on how the weights were trained, from a recipe record."""
    settings = record["settings"]
    return (
        f"Trained by `{record['command']}` (dilnet {record['dilnet_version']}) on "
        f"{record['data']}: {settings['steps']} steps of {settings['batch_size']} "
        f"class-balanced {'x'.join(map(str, settings['patch']))} patches, augmentation: "
        f"{settings['augment']}, {settings['optimizer']} from {settings['learning_rate']}, loss "
        f"{settings['loss']}, seed {settings['seed']}; "
        f"{record['metrics']['train_seconds'] / 60:.1f} min on the CPU."
    )


def colin27_table(record) -> str:
    """The card's markdown table of a record's ``metrics["colin27"]``
    (`dilnet_zoo.recipes.evaluate`): one row per condition."""
    rows = record["metrics"]["colin27"]
    lines = [
        "| Colin27 stored as | CSF | grey matter | white matter | mean GM/WM |",
        "|---|---:|---:|---:|---:|",
    ]
    for condition in CONDITIONS:
        r = rows[condition]
        lines.append(
            f"| {condition} | {r['csf']:.3f} | {r['grey matter']:.3f} | "
            f"{r['white matter']:.3f} | {r['mean GM/WM']:.3f} |"
        )
    return "\n".join(lines)


def write_card(name, directory=None):
    """Rewrite the measured section of `name`'s card from ``<directory>/<name>.json``: how the
    weights were trained and, once `dilnet_zoo.recipes.evaluate` has added them to the record,
    their Dice on Colin27."""
    directory = Path(directory) if directory is not None else HERE / "weights"
    record = json.loads((directory / f"{name}.json").read_text())
    path = HERE / "cards" / f"{name}.md"
    text = path.read_text()
    start, end = text.index(_START), text.index(_END)
    parts = [f"{_START} written from `dilnet_zoo/weights/{name}.json` by "
             f"`python -m dilnet_zoo.recipes.evaluate {name} --card` -->",
             training_description(record)]  # fmt: skip
    if "colin27" in record["metrics"]:
        parts += [
            "",
            "Dice on Colin27, a real brain these weights never saw, against its reference "
            "tissue labels (ANTs Atropos: a classical segmenter, not ground truth; docs/zoo.md, "
            '"Evaluation on Colin27", says what it cannot see), '
            f"each by `dilnet predict --model zoo:{name}` from a NIfTI file "
            "(`dilnet_zoo/recipes/evaluate.py` makes the six files):",
            "",
            colin27_table(record),
        ]
    path.write_text(text[:start] + "\n".join(parts) + "\n" + text[end:])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", choices=dilnet_zoo.list_models())
    parser.add_argument("--weights-dir", help="where <name>.npz / .json are (default: the package)")
    parser.add_argument("--card", action="store_true", help="rewrite the card's measured part")
    args = parser.parse_args(argv)
    record_evaluation(args.name, args.weights_dir)
    if args.card:
        write_card(args.name, args.weights_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
