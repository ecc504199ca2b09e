"""Derive the Colin27 evaluation data (``dilnet_zoo/data/colin27*``) from Debian's mricron-data.

Source
------
Debian package ``mricron-data`` 1.2.20211006+dfsg-4 (Debian 12 "bookworm", main; file
``mricron-data_1.2.20211006+dfsg-4_all.deb``, 16 122 652 bytes, sha256 `DEB_SHA256`), get it
with ``apt-get download mricron-data``. Licence: its ``usr/share/doc/mricron-data/copyright``
puts every file not listed otherwise, the templates included, under ``Files: *``: Copyright
2006-2010 Chris Rorden, BSD-3-Clause (reproduced with the provenance in
``dilnet_zoo/data/LICENSE-colin27.txt``). The one file used::

    usr/share/mricron/templates/ch2bet.nii.gz   1 329 155 bytes, sha256 CH2BET_SHA256

"ch2" is Colin27 (Holmes et al. 1998): 27 T1-weighted scans of one adult, registered and
averaged, in MNI space; "bet" is its skull-stripped copy: on its 1 737 193 nonzero voxels it
equals ``ch2.nii.gz`` exactly and it is 0 elsewhere. 181 x 217 x 181 uint8 (0..133 inside the
brain, no scaling: ``scl_slope`` NaN), 1 mm, affine diag(1, 1, 1) with origin (-90, -125, -71)
mm, ``nibabel.aff2axcodes`` = ("R", "A", "S"), sform_code 4 (MNI), qform_code 0, xyzt_units 0
(units unset; read as mm, as nibabel does). The grid is not the MNI152 1 mm grid (origin
(-98, -134, -72), 197 x 233 x 189) but both put voxel centres on whole millimetres.

Run it as ``python dilnet_zoo/recipes/make_colin27_data.py [--source DEB_OR_DIR] [--out-dir
DIR]`` with a Python that has antspyx, nibabel, numpy and scipy (a recipe-only environment:
``python3 -m venv /work/recipe-venv && /work/recipe-venv/bin/pip install antspyx nibabel numpy
scipy nilearn``). ``--source`` is the .deb (read with the standard library: ar + tar.xz), the
root of ``dpkg -x`` (holding ``usr/share/mricron/templates``) or a directory holding
``ch2bet.nii.gz``; the default is ``/tmp/mricron-data_1.2.20211006+dfsg-4_all.deb``.

What is derived
---------------
*T1, 1 mm* -- ``colin27_t1.nii.gz``: the bytes of ``ch2bet.nii.gz``, unchanged (so its sha256
is `CH2BET_SHA256`): the image as any NIfTI reader sees it, for running the CLI on a native
file.

*Brain mask and labels, 1 mm* -- by ``dilnet_zoo/recipes/tissue.py`` (its docstring and
constants are the procedure, shared with the MNI152 recipe): mask = largest 6-connected
component of ``ch2bet > 0`` with holes filled (it drops 806 voxels in 98 specks off the brain's
surface; there are no holes); no bias correction (``tissue.py`` says why); Atropos, 3 classes,
k-means initialisation, MRF ``[0.1,1x1x1]``, inside the mask; classes ordered by mean T1: 1 CSF,
2 grey matter, 3 white matter; 0 outside the mask.

*2 mm, on the MNI152 2 mm grid* of ``mni152_2mm.npz`` (99 x 117 x 95, affine diag(2, 2, 2)
with origin (-97.5, -133.5, -71.5) mm). That grid's voxels are centred on 2 x 2 x 2 blocks of
Colin27's 1 mm voxels (voxel ``(i, j, k)`` covers 1 mm voxels ``2i - 8 .. 2i - 7``, ``2j - 9 ..
2j - 8``, ``2k - 1 .. 2k``; `tissue.block_starts` derives and checks this from the affines), so
no interpolation is needed: the T1 is the block mean rounded half up (``tissue.block_mean_2``,
the rule that made the MNI152 2 mm T1) and the labels are the block's plurality label, ties to
the first tied voxel in C order (``tissue.block_mode_2``, as for MNI152). Voxels outside Colin27's
field of view count as 0; the brain is well inside it. Majority of the 1 mm labels rather than
Atropos again on the 2 mm T1: the 1 mm classification is the reference; at 2 mm a voxel should
say which tissue covers most of it, and a second Atropos run would re-fit the classes to
partial-volume intensities and disagree with the 1 mm labels it summarises. The 2 mm mask is
``labels_2mm > 0``.

``colin27.npz`` (no object arrays; written with ``np.savez_compressed`` and re-packed with fixed
zip timestamps, so the same inputs give the same bytes on the same zlib):

================ ======= =============== ===================================================
key              dtype   shape           what
================ ======= =============== ===================================================
``labels_1mm``   uint8   181 x 217 x 181 0 background, 1 CSF, 2 GM, 3 WM
``mask_1mm``     bool    181 x 217 x 181 the brain mask (= ``labels_1mm > 0``)
``affine_1mm``   float64 4 x 4           ch2bet's affine
``t1_2mm``       uint8   99 x 117 x 95   block means of ch2bet
``labels_2mm``   uint8   99 x 117 x 95   block plurality of ``labels_1mm``
``affine_2mm``   float64 4 x 4           the MNI152 2 mm affine
``rule_version`` int64   ()              `tissue.RULE_VERSION` (2)
================ ======= =============== ===================================================

Measured (antspyx 0.6.3, 2 shared cores): Atropos 33-58 s wall clock; two runs wrote the same
bytes. Volumes at 1 mm: CSF 213.8 ml, grey matter 823.2 ml, white matter 699.3 ml (mask 1736.4
ml; Colin27 is in MNI space, linearly scaled up from the native head); at 2 mm: 198.6, 832.8,
699.2 ml (the plurality loses thin sulcal CSF to grey matter and background). Class means of
the T1: 55.1, 85.4, 109.3.

After regenerating, copy the printed sha256s into ``dilnet_zoo/data/colin27.py``.

Reference: CJ Holmes, R Hoge, L Collins, R Woods, AW Toga, AC Evans. Enhancement of MR images
using registration for signal averaging. J Comput Assist Tomogr 22(2), 324-333 (1998).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import re
import tarfile
from pathlib import Path

import numpy as np

try:
    from . import tissue
    from .make_mni152_data import npz_bytes
except ImportError:  # run as a script: the recipes directory is sys.path[0]
    import tissue
    from make_mni152_data import npz_bytes

DEB_NAME = "mricron-data_1.2.20211006+dfsg-4_all.deb"
DEB_SHA256 = "d40aa0ed66cf89bf6cafa049ad3884703c9d975c2ee2737525b7196528df9d6f"
MEMBER = "usr/share/mricron/templates/ch2bet.nii.gz"
COPYRIGHT = "usr/share/doc/mricron-data/copyright"
CH2BET_SHA256 = "592a2d20abdf36eefcb540ca8958428040edffc1bc1a18ba1dcfbabac77c5dd1"
SHAPE_1MM = (181, 217, 181)
# the grid of dilnet_zoo/data/mni152_2mm.npz
SHAPE_2MM = (99, 117, 95)
AFFINE_2MM = np.array([[2.0, 0, 0, -97.5], [0, 2.0, 0, -133.5], [0, 0, 2.0, -71.5], [0, 0, 0, 1]])
DEFAULT_SOURCE = Path("/tmp") / DEB_NAME
DATA_DIR = Path(__file__).resolve().parents[1] / "data"
NPZ_NAME = "colin27.npz"
NIFTI_NAME = "colin27_t1.nii.gz"


# ---------------------------------------------------------------------------- reading


def _deb_members(deb: bytes, wanted: tuple[str, ...]) -> dict[str, bytes]:
    """The files ``wanted`` (paths without ``./``) from a .deb's ``data.tar.*``."""
    if deb[:8] != b"!<arch>\n":
        raise SystemExit("make_colin27_data: the source is not a .deb (ar archive)")
    pos = 8
    while pos + 60 <= len(deb):
        header = deb[pos : pos + 60]
        name = header[:16].decode("ascii").strip().rstrip("/")
        size = int(header[48:58].decode("ascii"))
        body = deb[pos + 60 : pos + 60 + size]
        if name.startswith("data.tar"):
            out = {}
            with tarfile.open(fileobj=io.BytesIO(body), mode="r:*") as tar:
                for member in tar.getmembers():
                    path = member.name.removeprefix("./")
                    if path in wanted and member.isfile():
                        out[path] = tar.extractfile(member).read()
            missing = [w for w in wanted if w not in out]
            if missing:
                raise SystemExit(f"make_colin27_data: the .deb has no {missing}")
            return out
        pos += 60 + size + (size % 2)
    raise SystemExit("make_colin27_data: the .deb has no data.tar member")


def read_source(source: Path) -> tuple[bytes, bytes | None]:
    """``(ch2bet.nii.gz bytes, copyright file bytes or None)``; checks ch2bet's sha256."""
    copyright_ = None
    if source.is_file():
        deb = source.read_bytes()
        digest = hashlib.sha256(deb).hexdigest()
        note = "as documented" if digest == DEB_SHA256 else f"NOT {DEB_SHA256}"
        print(f"source {source}: sha256 {digest} ({note})")
        files = _deb_members(deb, (MEMBER, COPYRIGHT))
        raw, copyright_ = files[MEMBER], files[COPYRIGHT]
    elif (source / MEMBER).is_file():
        raw = (source / MEMBER).read_bytes()
        if (source / COPYRIGHT).is_file():
            copyright_ = (source / COPYRIGHT).read_bytes()
    elif (source / "ch2bet.nii.gz").is_file():
        raw = (source / "ch2bet.nii.gz").read_bytes()
    else:
        raise SystemExit(
            f"make_colin27_data: {source}: expected {DEB_NAME}, a dpkg -x root or a directory "
            "holding ch2bet.nii.gz"
        )
    digest = hashlib.sha256(raw).hexdigest()
    if digest != CH2BET_SHA256:
        raise SystemExit(
            f"make_colin27_data: ch2bet.nii.gz has sha256 {digest}, not {CH2BET_SHA256} "
            f"({DEB_NAME}): a different file; check it and update the recipe deliberately"
        )
    return raw, copyright_


def decode(raw: bytes) -> tuple[np.ndarray, np.ndarray]:
    """``(uint8 array, affine)`` of ch2bet.nii.gz, with the header facts the docstring states."""
    import nibabel as nib

    img = nib.Nifti1Image.from_bytes(gzip.decompress(raw))
    t1 = np.asarray(img.dataobj)
    affine = np.asarray(img.affine, dtype=np.float64)
    codes = nib.aff2axcodes(affine)
    if t1.dtype != np.uint8 or t1.shape != SHAPE_1MM or codes != ("R", "A", "S"):
        raise SystemExit(f"make_colin27_data: ch2bet is {t1.dtype} {t1.shape} {codes}")
    return t1, affine


# ---------------------------------------------------------------------------- derivation


def derive(t1: np.ndarray, affine: np.ndarray) -> tuple[dict, dict]:
    """``(arrays for colin27.npz, the Atropos run's report)``."""
    mask = tissue.brain_mask(t1)
    run = tissue.atropos_labels(t1, mask, affine)
    labels = run["labels"]
    starts = tissue.block_starts(affine, AFFINE_2MM)
    arrays = {
        "labels_1mm": labels,
        "mask_1mm": mask,
        "affine_1mm": affine,
        "t1_2mm": tissue.block_mean_2(t1, starts, SHAPE_2MM),
        "labels_2mm": tissue.block_mode_2(labels, starts, SHAPE_2MM),
        "affine_2mm": AFFINE_2MM.copy(),
        "rule_version": np.int64(tissue.RULE_VERSION),
    }
    run["block_starts"] = starts
    run["mask_dropped"] = int((t1 > 0).sum() - mask.sum())
    return arrays, run


def report(arrays: dict, run: dict) -> None:
    print(tissue.procedure())
    tissue.print_run(run)
    print(f"mask: {int(arrays['mask_1mm'].sum())} voxels; dropped {run['mask_dropped']} of t1 > 0")
    print(f"2 mm block starts (1 mm index of 2 mm voxel 0): {run['block_starts']}")
    names = ("background", "csf", "grey matter", "white matter")
    for key, ml in (("labels_1mm", 1e-3), ("labels_2mm", 8e-3)):
        counts = np.bincount(arrays[key].ravel(), minlength=4)
        volumes = (f"{n} {c * ml:.1f} ml" for n, c in zip(names[1:], counts[1:], strict=True))
        print(f"{key}: " + ", ".join(volumes))


def _check_pinned(name: str, digest: str, module: Path, constant: str) -> None:
    m = re.search(rf'^{constant} = "([0-9a-f]{{64}})"', module.read_text(), re.M)
    state = "matches" if m and m.group(1) == digest else "differs from"
    print(f"  {state} {constant} in {module}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="the .deb or a directory")
    ap.add_argument("--out-dir", type=Path, default=DATA_DIR, help=f"default: {DATA_DIR}")
    args = ap.parse_args(argv)

    raw, copyright_ = read_source(args.source)
    if copyright_ is not None:
        stanza = re.search(r"^Files: \*\n(.*?)\n\n", copyright_.decode("utf-8"), re.M | re.S)
        print("copyright, Files: * | " + " | ".join(stanza.group(1).splitlines()))
    t1, affine = decode(raw)
    arrays, run = derive(t1, affine)
    report(arrays, run)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    module = DATA_DIR / "colin27.py"
    for name, data, constant in (
        (NIFTI_NAME, raw, "NIFTI_SHA256"),
        (NPZ_NAME, npz_bytes(arrays), "SHA256"),
    ):
        (args.out_dir / name).write_bytes(data)
        digest = hashlib.sha256(data).hexdigest()
        print(f"wrote {args.out_dir / name}: {len(data)} bytes, sha256 {digest}")
        _check_pinned(name, digest, module, constant)


if __name__ == "__main__":
    main()
