"""Derive ``dilnet_zoo/data/mni152_2mm.npz`` from the MNI ICBM152 2009a symmetric template.

Source: the three 1 mm volumes that the nilearn wheel ships (nilearn 0.14.1,
``nilearn/datasets/data/``)::

    mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz   T1 template
    mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz   grey-matter probability map
    mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz   white-matter probability map

each 197 x 233 x 189 uint8 (0..255), RAS, affine diag(1, 1, 1) with origin (-98, -134, -72) mm.

Run it as ``python dilnet_zoo/recipes/make_mni152_data.py [--source PATH] [--out FILE]``.
``--source`` is a nilearn wheel (``nilearn-*.whl``), a nilearn installation's
``nilearn/datasets/data`` directory or any directory holding the three files; without it the
recipe uses the installed nilearn (``importlib.util.find_spec("nilearn")``). Reading needs
nibabel; nothing else beyond numpy.

What is derived, at 2 mm
------------------------
*Resampling.* Every 1 mm volume is padded with zeros at the end of each odd-length axis (197 ->
198, 233 -> 234, 189 -> 190) so that every 2 x 2 x 2 block is whole, then each block is replaced
by its mean, rounded half up to an integer: ``(sum of the 8 uint8 values + 4) // 8``. The 2 mm
volumes are 99 x 117 x 95 uint8. 2 mm voxel ``i`` covers 1 mm voxels ``2i`` and ``2i + 1``, so
its centre lies at 1 mm voxel coordinate ``2i + 0.5``: the 2 mm affine is the 1 mm affine times
``[[2, 0, 0, .5], [0, 2, 0, .5], [0, 0, 2, .5], [0, 0, 0, 1]]``, i.e. diag(2, 2, 2) with origin
(-97.5, -133.5, -71.5) mm. (No 2 x grid of a 1 mm grid with a voxel on x = 0 is symmetric about
x = 0: 2 mm voxel 49 (x = +0.5 mm) holds the midline 1 mm voxel x = 0 and x = +1 mm.)

*Arrays.* ``t1``, ``p_gm``, ``p_wm``: the 2 mm block means (uint8, 0..255).

*Tissue labels* (``labels``, uint8; rule version 1). With ``p_gm = p_gm_uint8 / 255``,
``p_wm = p_wm_uint8 / 255`` (the stored, rounded 2 mm values) and ``p_brain = p_gm + p_wm``:

* ``tissue = p_brain >= 0.5`` (computed exactly in integers: ``2 * (gm + wm) >= 255``);
* ``intracranial = fill_holes(closing(tissue, ball of radius 2 voxels))``: the ball is every
  offset ``(dx, dy, dz)`` with ``dx**2 + dy**2 + dz**2 <= 4`` (33 voxels, 4 mm radius); the
  closing is a dilation then an erosion on a copy padded by 2 voxels (so nothing wraps around
  or is clipped at the border; outside the volume counts as background for the dilation and
  as foreground for the erosion, so the closing contains ``tissue``); ``fill_holes`` adds
  every background voxel that is not 6-connected to the volume's border (a flood fill of the
  background from the border faces, by constrained dilation until it stops changing);
* ``label = 3`` (white matter) where ``tissue`` and ``p_wm >= p_gm``; ``2`` (grey matter) where
  ``tissue`` and ``p_gm > p_wm``; ``1`` (CSF) where ``intracranial`` and not ``tissue``;
  ``0`` (background) elsewhere.

"CSF" is therefore the intracranial space between and inside the tissue that the closing and
the hole filling reach: ventricles, sulci, cisterns -- not the template's own CSF map.

*Hemispheres.* ``split_index`` is the first index along axis 0 whose centre has x > 0 mm (from
the affine): 49. The left hemisphere (x < 0, indices < 49) is for training, the right one for
testing.

The npz (keys ``t1``, ``labels``, ``affine`` float64 4 x 4, ``p_gm``, ``p_wm``, ``split_index``,
``rule_version``; no object arrays) is written with ``np.savez_compressed`` and then re-packed
with fixed zip timestamps so that the same inputs give the same bytes (and sha256) on the same
zlib. After regenerating, copy the printed sha256 into ``dilnet_zoo/data/mni152.py``.
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

FILES = {
    "t1": "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
    "gm": "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
    "wm": "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
}
WHEEL_DIR = "nilearn/datasets/data/"
RADIUS = 2
RULE_VERSION = 1
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "data" / "mni152_2mm.npz"


# ---------------------------------------------------------------------------- reading


def _installed_nilearn_data() -> Path:
    spec = importlib.util.find_spec("nilearn")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(
            "make_mni152_data: nilearn is not installed; pass --source with a nilearn wheel or a "
            "directory holding " + ", ".join(FILES.values())
        )
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"


def _read_nifti(raw: bytes, name: str) -> tuple[np.ndarray, np.ndarray]:
    import nibabel as nib

    img = nib.Nifti1Image.from_bytes(gzip.decompress(raw) if name.endswith(".gz") else raw)
    return np.asarray(img.dataobj), np.asarray(img.affine, dtype=np.float64)


def read_source(source: Path | None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The three 1 mm volumes, ``{"t1"|"gm"|"wm": (uint8 array, affine)}``."""
    if source is None:
        source = _installed_nilearn_data()
    out = {}
    if source.is_file() and zipfile.is_zipfile(source):
        with zipfile.ZipFile(source) as wheel:
            for key, name in FILES.items():
                out[key] = _read_nifti(wheel.read(WHEEL_DIR + name), name)
    elif source.is_dir():
        for key, name in FILES.items():
            out[key] = _read_nifti((source / name).read_bytes(), name)
    else:
        raise SystemExit(f"make_mni152_data: {source} is neither a wheel nor a directory")
    for key, (arr, aff) in out.items():
        if arr.dtype != np.uint8 or arr.shape != out["t1"][0].shape:
            raise SystemExit(f"make_mni152_data: {FILES[key]}: {arr.dtype} {arr.shape}")
        if not np.array_equal(aff, out["t1"][1]):
            raise SystemExit(f"make_mni152_data: {FILES[key]}: affine differs from the T1's")
    return out


# ---------------------------------------------------------------------------- derivation


def block_mean_2(vol: np.ndarray) -> np.ndarray:
    """2 x 2 x 2 block means of a uint8 volume, odd axes zero-padded at the end, rounded half up."""
    pad = [(0, n % 2) for n in vol.shape]
    v = np.pad(vol.astype(np.int32), pad)
    nx, ny, nz = (n // 2 for n in v.shape)
    s = v.reshape(nx, 2, ny, 2, nz, 2).sum(axis=(1, 3, 5))
    return ((s + 4) // 8).astype(np.uint8)


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


def ball_offsets(radius: int) -> np.ndarray:
    r = np.arange(-radius, radius + 1)
    d = np.stack(np.meshgrid(r, r, r, indexing="ij"), axis=-1).reshape(-1, 3)
    return d[(d**2).sum(axis=1) <= radius * radius]


def _shift_reduce(mask: np.ndarray, offsets: np.ndarray, fill: bool, op) -> np.ndarray:
    r = int(np.abs(offsets).max())
    p = np.pad(mask, r, constant_values=fill)
    out = np.full(mask.shape, op is np.logical_and)  # identity of the reduction
    nx, ny, nz = mask.shape
    for dx, dy, dz in offsets:
        op(out, p[r + dx : r + dx + nx, r + dy : r + dy + ny, r + dz : r + dz + nz], out=out)
    return out


def dilate(mask: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Binary dilation by a symmetric structuring element; outside the volume is background."""
    return _shift_reduce(mask, offsets, False, np.logical_or)


def erode(mask: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Binary erosion by a symmetric structuring element; outside the volume is foreground."""
    return _shift_reduce(mask, offsets, True, np.logical_and)


def closing(mask: np.ndarray, radius: int) -> np.ndarray:
    """Dilation then erosion by a ball, on a copy padded by ``radius`` so nothing is clipped."""
    b = ball_offsets(radius)
    p = np.pad(mask, radius, constant_values=False)
    c = erode(dilate(p, b), b)
    return c[radius:-radius, radius:-radius, radius:-radius]


_FACES = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1], [0, 0, 0]])


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """``mask`` plus every background voxel not 6-connected to the volume's border."""
    free = ~mask
    reached = np.zeros_like(mask)
    for axis in range(3):
        for end in (0, -1):
            idx = [slice(None)] * 3
            idx[axis] = end
            reached[tuple(idx)] = free[tuple(idx)]
    while True:
        grown = dilate(reached, _FACES) & free
        if np.array_equal(grown, reached):
            return ~reached
        reached = grown


def tissue_labels(p_gm: np.ndarray, p_wm: np.ndarray, radius: int = RADIUS) -> np.ndarray:
    """Rule version 1 (module docstring) on uint8 probability maps (0..255 = 0..1)."""
    gm = p_gm.astype(np.int32)
    wm = p_wm.astype(np.int32)
    tissue = 2 * (gm + wm) >= 255
    intracranial = fill_holes(closing(tissue, radius))
    labels = np.zeros(p_gm.shape, np.uint8)
    labels[intracranial & ~tissue] = 1
    labels[tissue & (gm > wm)] = 2
    labels[tissue & (wm >= gm)] = 3
    return labels


def derive(vols: dict[str, tuple[np.ndarray, np.ndarray]], radius: int = RADIUS) -> dict:
    t1 = block_mean_2(vols["t1"][0])
    p_gm = block_mean_2(vols["gm"][0])
    p_wm = block_mean_2(vols["wm"][0])
    affine = affine_2mm(vols["t1"][1])
    return {
        "t1": t1,
        "labels": tissue_labels(p_gm, p_wm, radius),
        "affine": affine.astype(np.float64),
        "p_gm": p_gm,
        "p_wm": p_wm,
        "split_index": np.int64(split_index(affine, t1.shape[0])),
        "rule_version": np.int64(RULE_VERSION),
    }


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


def report(d: dict) -> None:
    labels = d["labels"]
    names = ("background", "csf", "grey matter", "white matter")
    counts = np.bincount(labels.ravel(), minlength=4)
    print(f"shape {labels.shape}, split_index {int(d['split_index'])}")
    print("affine:\n" + np.array2string(d["affine"]))
    for k, (name, c) in enumerate(zip(names, counts, strict=True)):
        print(f"  {k} {name:13s} {c:8d} voxels  {c * 8 / 1000:8.1f} ml")
    intracranial = counts[1:].sum()
    print(f"  CSF / intracranial = {counts[1] / intracranial:.3%} ({counts[1]} / {intracranial})")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", type=Path, default=None, help="nilearn wheel or data directory")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"default: {DEFAULT_OUT}")
    ap.add_argument("--radius", type=int, default=RADIUS, help="closing radius (rule v1: 2)")
    args = ap.parse_args(argv)

    d = derive(read_source(args.source), args.radius)
    report(d)
    data = npz_bytes(d)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(data)
    print(f"wrote {args.out}: {len(data)} bytes ({len(data) / 2**20:.2f} MiB)")
    digest = hashlib.sha256(data).hexdigest()
    print(f"sha256 {digest}")
    module = Path(__file__).resolve().parents[1] / "data" / "mni152.py"
    pinned = re.search(r'^SHA256 = "([0-9a-f]{64})"', module.read_text(), re.M)
    if pinned and pinned.group(1) == digest:
        print(f"matches SHA256 in {module}")
    else:
        print(f"differs from SHA256 in {module}: put the new digest there")


if __name__ == "__main__":
    main()
