"""The MNI ICBM152 2009a symmetric template at 2 mm and 1 mm, with tissue labels: training data.

``mni152_2mm.npz`` and ``mni152_1mm.npz`` beside this module are derived from the template's
1 mm T1 (as shipped by nilearn 0.14.1) by ``dilnet_zoo/recipes/make_mni152_data.py``, whose
docstring (with ``dilnet_zoo/recipes/tissue.py``) gives the exact procedure; the notice is
``LICENSE-MNI152.txt``. In short: labels 0 background, 1 CSF, 2 grey matter, 3 white matter by
ANTs Atropos at 1 mm (3 classes, k-means initialisation, MRF ``[0.1,1x1x1]``, inside
the skull-stripped template's support), the same procedure that labels the Colin27 evaluation
brain (`dilnet_zoo.data.colin27`), so the classes mean the same in training and evaluation. At
1 mm: 197 x 233 x 189 voxels, RAS, affine diag(1, 1, 1) with origin (-98, -134, -72) mm; at
2 mm: 2 x 2 x 2 block means of the T1 and block plurality of the labels, 99 x 117 x 95 voxels,
affine diag(2, 2, 2) with origin (-97.5, -133.5, -71.5) mm.

The template is symmetric: its right hemisphere is its left one mirrored (at 1 mm), so
`hemispheres` splits one brain into two near-copies. It is not a held-out test; evaluate on
Colin27. (`hemispheres` stays for the code that still uses it.)

>>> from dilnet_zoo.data.mni152 import load_mni152, hemispheres
>>> data = load_mni152()
>>> (t1_left, labels_left), (t1_right, labels_right) = hemispheres(data)
>>> t1_left.shape, t1_right.shape
((49, 117, 95), (50, 117, 95))
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dilnet.errors import ConfigError, invalid
from dilnet_zoo.data._files import package_path, verified_arrays

__all__ = [
    "CLASS_NAMES",
    "FILENAME",
    "FILENAME_1MM",
    "SHA256",
    "SHA256_1MM",
    "hemispheres",
    "load_mni152",
]

CLASS_NAMES = ("background", "csf", "grey matter", "white matter")
FILENAME = "mni152_2mm.npz"
FILENAME_1MM = "mni152_1mm.npz"
# Written by dilnet_zoo/recipes/make_mni152_data.py (it prints the digests of the files it writes).
SHA256 = "ecc7f9503be0624d4d253cec4d4d0b726910174ae4449db9b2586e7180c908a2"
SHA256_1MM = "8da0ccf95d70592a1473950d94111c25f62f7bfa9018d18e915edeec419af049"
RULE_VERSION = 2
_KEYS = ("t1", "labels", "affine", "split_index", "rule_version")


def _path(resolution: int = 2) -> Path:
    return package_path(FILENAME if resolution == 2 else FILENAME_1MM)


def _load(path: str | Path, expected_sha256: str) -> dict:
    """Read and verify the npz at ``path``; `WeightsError` (starting with the file) if it is
    missing, its sha256 differs from ``expected_sha256`` or its arrays are not the expected ones."""
    return verified_arrays(
        path, expected_sha256, _KEYS, RULE_VERSION, what="MNI152",
        fix="regenerate it with dilnet_zoo/recipes/make_mni152_data.py (and update SHA256 or "
        "SHA256_1MM in dilnet_zoo/data/mni152.py)",
    )  # fmt: skip


def load_mni152(resolution: int = 2) -> dict:
    """The verified template at ``resolution`` 2 (default) or 1 mm: a dict with

    * ``t1``: float32, (99, 117, 95) or (197, 233, 189), intensities scaled to [0, 1] (/ 255);
    * ``labels``: int64, same shape, indices into `CLASS_NAMES`;
    * ``affine``: float64 (4, 4), voxel index -> RAS mm;
    * ``split_index``: int, the first index along axis 0 with x > 0 mm (49 at 2 mm, 99 at 1 mm).

    Raises `dilnet.errors.WeightsError` naming the file if it is missing or its sha256 differs,
    `dilnet.errors.ConfigError` for another ``resolution``.
    """
    if resolution not in (1, 2):
        raise ConfigError(invalid("load_mni152", "resolution", "1 or 2 (mm)", resolution))
    a = _load(_path(resolution), SHA256 if resolution == 2 else SHA256_1MM)
    return {
        "t1": a["t1"].astype(np.float32) / np.float32(255),
        "labels": a["labels"].astype(np.int64),
        "affine": a["affine"].astype(np.float64),
        "split_index": int(a["split_index"]),
    }


def hemispheres(data: dict) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """``((t1_left, labels_left), (t1_right, labels_right))``: the volumes of `load_mni152` split
    along axis 0 at ``split_index``: left (x < 0) and right (x > 0). The parts are views of
    ``data``'s arrays.

    The template is symmetric, so the right part is (up to the grid's 1 mm offset at 2 mm) the
    left one mirrored: not held-out data. Kept for existing callers; evaluate on
    `dilnet_zoo.data.colin27` instead."""
    s = int(data["split_index"])
    t1, labels = data["t1"], data["labels"]
    return (t1[:s], labels[:s]), (t1[s:], labels[s:])
