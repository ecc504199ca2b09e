"""The MNI ICBM152 2009a symmetric template at 2 mm, with tissue labels, for examples and tests.

``mni152_2mm.npz`` beside this module is derived from the template's 1 mm T1, grey-matter and
white-matter maps (as shipped by nilearn 0.14.1) by ``dilnet_zoo/recipes/make_mni152_data.py``,
whose docstring gives the exact rule; the notice is ``LICENSE-MNI152.txt``. In short: 2 x 2 x 2
block means (99 x 117 x 95 voxels, RAS, affine diag(2, 2, 2) with origin (-97.5, -133.5, -71.5)
mm) and labels 0 background, 1 CSF, 2 grey matter, 3 white matter, where tissue is
``p_gm + p_wm >= 0.5`` split by the larger of the two, and CSF is the rest of the tissue's
closing (ball of radius 2 voxels) with its holes filled.

>>> from dilnet_zoo.data.mni152 import load_mni152, hemispheres
>>> data = load_mni152()
>>> (t1_train, labels_train), (t1_test, labels_test) = hemispheres(data)
>>> t1_train.shape, t1_test.shape
((49, 117, 95), (50, 117, 95))
"""

from __future__ import annotations

import hashlib
import importlib.resources
import io
from pathlib import Path

import numpy as np

from dilnet.errors import WeightsError

__all__ = ["CLASS_NAMES", "FILENAME", "SHA256", "hemispheres", "load_mni152"]

CLASS_NAMES = ("background", "csf", "grey matter", "white matter")
FILENAME = "mni152_2mm.npz"
# Written by dilnet_zoo/recipes/make_mni152_data.py (it prints the digest of the file it writes).
SHA256 = "383ecb133488d2112967db8a17fa5f6a86ede362185b09d2555244e0b8b4179e"
RULE_VERSION = 1
_KEYS = ("t1", "labels", "affine", "p_gm", "p_wm", "split_index", "rule_version")


def _path() -> Path:
    return Path(str(importlib.resources.files("dilnet_zoo.data") / FILENAME))


def _load(path: str | Path, expected_sha256: str) -> dict:
    """Read and verify the npz at ``path``; `WeightsError` (starting with the file) if it is
    missing, its sha256 differs from ``expected_sha256`` or its arrays are not the expected ones."""
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise WeightsError(f"{path}: cannot read the MNI152 data file ({e}).") from None
    digest = hashlib.sha256(raw).hexdigest()
    if digest != expected_sha256:
        raise WeightsError(
            f"{path}: sha256 mismatch: expected {expected_sha256}, computed {digest}. The file is "
            "corrupted or was changed; regenerate it with dilnet_zoo/recipes/make_mni152_data.py "
            "(and update SHA256 in dilnet_zoo/data/mni152.py)."
        )
    with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
        missing = [k for k in _KEYS if k not in npz.files]
        if missing:
            raise WeightsError(f"{path}: missing arrays {missing}.")
        arrays = {k: npz[k] for k in _KEYS}
    if int(arrays["rule_version"]) != RULE_VERSION:
        raise WeightsError(
            f"{path}: label rule version {int(arrays['rule_version'])}; this module reads "
            f"version {RULE_VERSION}."
        )
    return arrays


def load_mni152() -> dict:
    """The verified 2 mm template: a dict with

    * ``t1``: float32 (99, 117, 95), intensities scaled to [0, 1];
    * ``labels``: int64 (99, 117, 95), indices into `CLASS_NAMES`;
    * ``affine``: float64 (4, 4), voxel index -> RAS mm;
    * ``split_index``: int, the first index along axis 0 with x > 0 mm (the right hemisphere).

    Raises `dilnet.errors.WeightsError` naming the file if it is missing or its sha256 differs.
    """
    a = _load(_path(), SHA256)
    return {
        "t1": a["t1"].astype(np.float32) / np.float32(255),
        "labels": a["labels"].astype(np.int64),
        "affine": a["affine"].astype(np.float64),
        "split_index": int(a["split_index"]),
    }


def hemispheres(data: dict) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """``((t1_train, labels_train), (t1_test, labels_test))``: the volumes of `load_mni152` split
    along axis 0 at ``split_index``; train is the left hemisphere (x < 0), test the right one
    (x > 0). The parts are views of ``data``'s arrays."""
    s = int(data["split_index"])
    t1, labels = data["t1"], data["labels"]
    return (t1[:s], labels[:s]), (t1[s:], labels[s:])
