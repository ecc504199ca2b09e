"""Colin27, one real adult brain that no zoo network trains on, with reference tissue labels.

The held-out evaluation brain of the zoo: the networks train on the MNI ICBM152 template
(`dilnet_zoo.data.mni152`) and are scored here. Colin27 is the average of 27 T1 scans of one
subject (Holmes et al. 1998), skull-stripped, 1 mm, RAS, 181 x 217 x 181, affine diag(1, 1, 1)
with origin (-90, -125, -71) mm; from Debian's ``mricron-data`` package (``ch2bet.nii.gz``,
BSD-3-Clause; notice and provenance in ``LICENSE-colin27.txt``).

Files beside this module, made by ``dilnet_zoo/recipes/make_colin27_data.py`` (its docstring and
``dilnet_zoo/recipes/tissue.py`` give the exact procedure):

* ``colin27_t1.nii.gz``: ``ch2bet.nii.gz`` byte for byte (uint8, 0..133); `t1_nifti_path`.
* ``colin27.npz``: the brain mask and the reference labels at 1 mm (0 background, 1 CSF,
  2 grey matter, 3 white matter: ANTs Atropos, 3 classes, k-means initialisation, MRF
  ``[0.1,1x1x1]``, inside the mask; the same procedure labels the MNI152 training data), and the
  T1 and labels on the MNI152 2 mm grid (99 x 117 x 95, affine diag(2, 2, 2) with origin (-97.5,
  -133.5, -71.5) mm): 2 x 2 x 2 block means of the T1, block plurality of the labels.

The labels are a classical segmenter's output, not manual ground truth: a score against them
says how well a network agrees with Atropos on a brain it has not seen.

>>> from dilnet_zoo.data.colin27 import load_colin27
>>> data = load_colin27()
>>> data["t1"].shape, data["labels"].shape
((99, 117, 95), (99, 117, 95))
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from dilnet.errors import ConfigError, WeightsError, invalid
from dilnet_zoo.data._files import package_path, verified_arrays, verified_bytes

__all__ = [
    "CLASS_NAMES",
    "FILENAME",
    "NIFTI_FILENAME",
    "NIFTI_SHA256",
    "SHA256",
    "load_colin27",
    "t1_nifti_path",
]

CLASS_NAMES = ("background", "csf", "grey matter", "white matter")
FILENAME = "colin27.npz"
NIFTI_FILENAME = "colin27_t1.nii.gz"
# Written by dilnet_zoo/recipes/make_colin27_data.py (it prints the digests of the files it
# writes); NIFTI_SHA256 is also that of mricron-data's ch2bet.nii.gz.
SHA256 = "fdd362ba28bb214be079080d3c934cc33f1001254eaa200835c47aec06896182"
NIFTI_SHA256 = "592a2d20abdf36eefcb540ca8958428040edffc1bc1a18ba1dcfbabac77c5dd1"
RULE_VERSION = 2
_KEYS = (
    "labels_1mm", "mask_1mm", "affine_1mm", "t1_2mm", "labels_2mm", "affine_2mm", "rule_version",
)  # fmt: skip


_FIX = (
    "regenerate it with dilnet_zoo/recipes/make_colin27_data.py (and update the digests in "
    "dilnet_zoo/data/colin27.py)"
)


def _path(name: str = FILENAME) -> Path:
    return package_path(name)


def _verified_bytes(path: str | Path, expected_sha256: str) -> bytes:
    return verified_bytes(path, expected_sha256, what="Colin27", fix=_FIX)


def _load(path: str | Path, expected_sha256: str) -> dict:
    """Read and verify the npz at ``path``; `WeightsError` (starting with the file) if it is
    missing, its sha256 differs from ``expected_sha256`` or its arrays are not the expected ones."""
    return verified_arrays(path, expected_sha256, _KEYS, RULE_VERSION, what="Colin27", fix=_FIX)


def t1_nifti_path() -> Path:
    """The shipped native T1 (``colin27_t1.nii.gz``), after checking its sha256: give it to the
    CLI or any NIfTI reader. Raises `dilnet.errors.WeightsError` naming the file if it is missing
    or changed."""
    path = _path(NIFTI_FILENAME)
    _verified_bytes(path, NIFTI_SHA256)
    return path


def _nifti_t1(path: Path) -> tuple[np.ndarray, np.ndarray]:
    import nibabel as nib

    raw = _verified_bytes(path, NIFTI_SHA256)
    img = nib.Nifti1Image.from_bytes(gzip.decompress(raw))
    return np.asarray(img.dataobj), np.asarray(img.affine, dtype=np.float64)


def load_colin27(resolution: int = 2) -> dict:
    """The verified Colin27 data at ``resolution`` 2 (the MNI152 2 mm grid) or 1 (native) mm:

    * ``t1``: float32, (99, 117, 95) or (181, 217, 181), divided by its maximum: [0, 1], what
      ``--normalize minmax`` gives (the source's brain spans 0..133, not MNI152's 0..255);
    * ``labels``: int64, same shape, indices into `CLASS_NAMES`;
    * ``mask``: bool, same shape, the brain (``labels > 0``);
    * ``affine``: float64 (4, 4), voxel index -> RAS mm.

    Raises `dilnet.errors.WeightsError` naming the file if one is missing or its sha256 differs,
    `dilnet.errors.ConfigError` for another ``resolution``.
    """
    if resolution not in (1, 2):
        raise ConfigError(invalid("load_colin27", "resolution", "1 or 2 (mm)", resolution))
    a = _load(_path(), SHA256)
    if resolution == 2:
        t1, labels, affine = a["t1_2mm"], a["labels_2mm"], a["affine_2mm"]
    else:
        t1, affine_nifti = _nifti_t1(_path(NIFTI_FILENAME))
        labels, affine = a["labels_1mm"], a["affine_1mm"]
        if not np.array_equal(affine_nifti, affine) or t1.shape != labels.shape:
            raise WeightsError(f"{_path(NIFTI_FILENAME)}: grid differs from {FILENAME}'s.")
    t1 = t1.astype(np.float32)
    return {
        "t1": t1 / t1.max(),
        "labels": labels.astype(np.int64),
        "mask": labels > 0,
        "affine": affine.astype(np.float64),
    }
