"""Derive ``dilnet_zoo/data/mni152_{1mm,2mm}.npz`` from the MNI ICBM152 2009a symmetric template.

Source: the 1 mm T1 that the nilearn wheel ships (nilearn 0.14.1, ``nilearn/datasets/data/``)::

    mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz   T1 template, skull-stripped

197 x 233 x 189 uint8 (0 outside the brain, 28..255 inside), RAS, affine diag(1, 1, 1) with
origin (-98, -134, -72) mm. (Label rule 1 also read the template's grey- and white-matter
probability maps; rule 2 does not.)

Run it as ``python dilnet_zoo/recipes/make_mni152_data.py [--source PATH] [--out-dir DIR]`` with a
Python that has antspyx, nibabel, numpy and scipy (a recipe-only environment, see
``make_colin27_data.py``). ``--source`` is a nilearn wheel (``nilearn-*.whl``), a nilearn
installation's ``nilearn/datasets/data`` directory or any directory holding the file; without it
the recipe uses the installed nilearn (``importlib.util.find_spec("nilearn")``).

Tissue labels, 1 mm (rule version 2)
------------------------------------
By ``dilnet_zoo/recipes/tissue.py``, the procedure (and constants) that also labels the Colin27
evaluation brain: brain mask = largest 6-connected component of ``t1 > 0``, holes filled (here:
all 1 886 539 nonzero voxels, one component, no holes); no bias correction (``tissue.py`` says
why); Atropos, 3 Gaussian classes, k-means initialisation, MRF ``[0.1,1x1x1]``, inside the mask;
classes ordered by mean T1: 1 CSF, 2 grey matter, 3 white matter; 0 outside the mask.

The mask is the skull-stripped T1's own support, not nilearn's ``load_mni152_brain_mask`` (which
thresholds the T1 at 0.2 of its range and so drops the darkest CSF) nor ``p_gm + p_wm`` (which
leaves CSF out by construction). Rule 1 called "CSF" whatever a closing of the tissue reached;
rule 2's CSF is what the classifier finds dark inside the skull-stripped brain, as on Colin27.

2 mm
----
Every 1 mm volume is padded with zeros at the end of each odd-length axis (197 -> 198, 233 ->
234, 189 -> 190) so that every 2 x 2 x 2 block is whole. The 2 mm T1 is the block mean rounded
half up, ``(sum of the 8 uint8 values + 4) // 8`` (``tissue.block_mean_2``; the same bytes as
rule 1's T1); the 2 mm labels are each block's plurality label, ties to the first tied voxel in
C order (``tissue.block_mode_2``). 99 x 117 x 95 voxels. 2 mm voxel ``i`` covers 1 mm voxels
``2i`` and ``2i + 1``, so its centre lies at 1 mm voxel coordinate ``2i + 0.5``: the 2 mm affine is
the 1 mm affine times ``[[2, 0, 0, .5], [0, 2, 0, .5], [0, 0, 2, .5], [0, 0, 0, 1]]``, i.e.
diag(2, 2, 2) with origin (-97.5, -133.5, -71.5) mm. (No 2 x grid of a 1 mm grid with a voxel on
x = 0 is symmetric about x = 0: 2 mm voxel 49 (x = +0.5 mm) holds the midline 1 mm voxel x = 0
and x = +1 mm.)

*Hemispheres.* ``split_index`` is the first index along axis 0 whose centre has x > 0 mm (from
the affine): 49 at 2 mm, 99 at 1 mm (the midline voxel, x = 0, goes left). The template is
symmetric (the right hemisphere is the left one mirrored), so the split is not a held-out test;
held-out evaluation uses Colin27 (``make_colin27_data.py``).

Measured (antspyx 0.6.3, 2 shared cores): Atropos 38-47 s wall clock; two runs wrote the same
bytes. Volumes at 1 mm: CSF 312.4 ml, grey matter 872.4 ml, white matter 701.8 ml (mask 1886.5
ml); at 2 mm: 303.2, 876.6, 702.1 ml. Class means of the T1: 116.3, 170.0, 212.1. Against rule
1's 2 mm labels, Dice CSF 0.416 (rule 1: 80.1 ml), grey matter 0.878 (1104.0 ml), white matter
0.939 (632.7 ml): 159 ml of rule 1's grey matter (the template's dark, partial-volume sulcal
rims) and 64 ml of its background (the skull-stripped support beyond rule 1's closing) are CSF
now, 75 ml of its grey matter white. At 1 mm the labels are mirror-symmetric up to 0.02% of the
voxels (the T1 is exactly symmetric).

Each npz has keys ``t1`` (uint8), ``labels`` (uint8), ``affine`` (float64 4 x 4),
``split_index`` and ``rule_version`` (int64 scalars), no object arrays; it is written with
``np.savez_compressed`` and then re-packed with fixed zip timestamps so that the same inputs give
the same bytes (and sha256) on the same zlib. After regenerating, copy the printed sha256s into
``dilnet_zoo/data/mni152.py`` (``SHA256``: 2 mm, ``SHA256_1MM``: 1 mm).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import importlib.util
import io
import re
import zipfile
from pathlib import Path

import numpy as np

try:
    from . import tissue
except ImportError:  # run as a script: the recipes directory is sys.path[0]
    import tissue

T1_FILE = "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"
WHEEL_DIR = "nilearn/datasets/data/"
RULE_VERSION = tissue.RULE_VERSION  # 2
DATA_DIR = Path(__file__).resolve().parents[1] / "data"
OUT_NAMES = {1: "mni152_1mm.npz", 2: "mni152_2mm.npz"}
PINNED = {1: "SHA256_1MM", 2: "SHA256"}  # the constants in dilnet_zoo/data/mni152.py


# ---------------------------------------------------------------------------- reading


def _installed_nilearn_data() -> Path:
    spec = importlib.util.find_spec("nilearn")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(
            "make_mni152_data: nilearn is not installed; pass --source with a nilearn wheel or a "
            f"directory holding {T1_FILE}"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"


def _read_nifti(raw: bytes, name: str) -> tuple[np.ndarray, np.ndarray]:
    import nibabel as nib

    img = nib.Nifti1Image.from_bytes(gzip.decompress(raw) if name.endswith(".gz") else raw)
    return np.asarray(img.dataobj), np.asarray(img.affine, dtype=np.float64)


def read_source(source: Path | None) -> tuple[np.ndarray, np.ndarray]:
    """The 1 mm T1, ``(uint8 array, affine)``."""
    if source is None:
        source = _installed_nilearn_data()
    if source.is_file() and zipfile.is_zipfile(source):
        with zipfile.ZipFile(source) as wheel:
            t1, affine = _read_nifti(wheel.read(WHEEL_DIR + T1_FILE), T1_FILE)
    elif source.is_dir():
        t1, affine = _read_nifti((source / T1_FILE).read_bytes(), T1_FILE)
    else:
        raise SystemExit(f"make_mni152_data: {source} is neither a wheel nor a directory")
    if t1.dtype != np.uint8 or t1.ndim != 3:
        raise SystemExit(f"make_mni152_data: {T1_FILE}: {t1.dtype} {t1.shape}")
    return t1, affine


# ---------------------------------------------------------------------------- derivation


def block_mean_2(vol: np.ndarray) -> np.ndarray:
    """2 x 2 x 2 block means of a uint8 volume, odd axes zero-padded at the end, rounded half up."""
    return tissue.block_mean_2(vol)


def block_mode_2(labels: np.ndarray) -> np.ndarray:
    """2 x 2 x 2 block plurality labels, odd axes zero-padded at the end (`tissue.block_mode_2`)."""
    return tissue.block_mode_2(labels)


def affine_2mm(affine_1mm: np.ndarray) -> np.ndarray:
    """The affine of the 2 mm block grid: voxel i is centred on 1 mm voxel coordinate 2i + 0.5."""
    scale = np.diag([2.0, 2.0, 2.0, 1.0])
    scale[:3, 3] = 0.5
    return affine_1mm @ scale


def split_index(affine: np.ndarray, n0: int) -> int:
    """The first index along axis 0 whose centre has x > 0 (axis 0 must be x, left -> right)."""
    if affine[0, 0] <= 0 or np.any(affine[0, 1:3] != 0) or np.any(affine[1:3, 0] != 0):
        raise ValueError(f"split_index: axis 0 is not x left->right in affine\n{affine}")
    x = affine[0, 0] * np.arange(n0) + affine[0, 3]
    return int(np.flatnonzero(x > 0)[0])


def _arrays(t1: np.ndarray, labels: np.ndarray, affine: np.ndarray) -> dict:
    return {
        "t1": t1,
        "labels": labels,
        "affine": affine.astype(np.float64),
        "split_index": np.int64(split_index(affine, t1.shape[0])),
        "rule_version": np.int64(RULE_VERSION),
    }


def derive(t1: np.ndarray, affine: np.ndarray) -> tuple[dict[int, dict], dict]:
    """``({1: arrays, 2: arrays}, the Atropos run's report)``."""
    mask = tissue.brain_mask(t1)
    run = tissue.atropos_labels(t1, mask, affine)
    run["mask_dropped"] = int((t1 > 0).sum() - mask.sum())
    labels = run["labels"]
    out = {
        1: _arrays(t1, labels, affine),
        2: _arrays(block_mean_2(t1), block_mode_2(labels), affine_2mm(affine)),
    }
    return out, run


# ---------------------------------------------------------------------------- writing


def npz_bytes(arrays: dict) -> bytes:
    """``np.savez_compressed`` output, re-packed with fixed timestamps (reproducible bytes)."""
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    out = io.BytesIO()
    with zipfile.ZipFile(buf) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            fixed = zipfile.ZipInfo(info.filename, date_time=(1980, 1, 1, 0, 0, 0))
            fixed.compress_type = zipfile.ZIP_DEFLATED
            fixed.external_attr = 0o644 << 16
            dst.writestr(fixed, src.read(info.filename), compresslevel=9)
    return out.getvalue()


def report(d: dict, voxel_ml: float) -> None:
    labels = d["labels"]
    names = ("background", "csf", "grey matter", "white matter")
    counts = np.bincount(labels.ravel(), minlength=4)
    print(f"shape {labels.shape}, split_index {int(d['split_index'])}")
    print("affine:\n" + np.array2string(d["affine"]))
    for k, (name, c) in enumerate(zip(names, counts, strict=True)):
        print(f"  {k} {name:13s} {c:8d} voxels  {c * voxel_ml:8.1f} ml")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", type=Path, default=None, help="nilearn wheel or data directory")
    ap.add_argument("--out-dir", type=Path, default=DATA_DIR, help=f"default: {DATA_DIR}")
    args = ap.parse_args(argv)

    out, run = derive(*read_source(args.source))
    print(tissue.procedure())
    tissue.print_run(run)
    print(f"mask dropped {run['mask_dropped']} voxels of t1 > 0")
    module = DATA_DIR / "mni152.py"
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for res in (1, 2):
        report(out[res], res**3 / 1000)
        data = npz_bytes(out[res])
        path = args.out_dir / OUT_NAMES[res]
        path.write_bytes(data)
        digest = hashlib.sha256(data).hexdigest()
        print(f"wrote {path}: {len(data)} bytes ({len(data) / 2**20:.2f} MiB), sha256 {digest}")
        pinned = re.search(rf'^{PINNED[res]} = "([0-9a-f]{{64}})"', module.read_text(), re.M)
        state = "matches" if pinned and pinned.group(1) == digest else "differs from"
        print(f"  {state} {PINNED[res]} in {module}")


if __name__ == "__main__":
    main()
