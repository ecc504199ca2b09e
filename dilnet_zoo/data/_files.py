"""Reading the data files shipped beside this package, verified before use: one sha256 check
and one array check for every data set (`dilnet_zoo.data.mni152`, `dilnet_zoo.data.colin27`)."""

from __future__ import annotations

import hashlib
import importlib.resources
import io
from pathlib import Path

import numpy as np

from dilnet.errors import WeightsError


def package_path(name: str) -> Path:
    """The path of data file `name` beside this module."""
    return Path(str(importlib.resources.files("dilnet_zoo.data") / name))


def verified_bytes(path: str | Path, expected_sha256: str, *, what: str, fix: str) -> bytes:
    """The bytes of `path` after checking their sha256; `WeightsError` starting with the file
    (naming `what` it holds) if it cannot be read or differs, saying how to `fix` it."""
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise WeightsError(f"{path}: cannot read the {what} data file ({e}).") from None
    digest = hashlib.sha256(raw).hexdigest()
    if digest != expected_sha256:
        raise WeightsError(
            f"{path}: sha256 mismatch: expected {expected_sha256}, computed {digest}. The file is "
            f"corrupted or was changed; {fix}."
        )
    return raw


def verified_arrays(
    path: str | Path, expected_sha256: str, keys, rule_version: int, *, what: str, fix: str
) -> dict:
    """The arrays `keys` of the npz at `path`, verified (`verified_bytes`), read without pickle,
    with their ``rule_version`` equal to `rule_version`; `WeightsError` naming the file
    otherwise."""
    raw = verified_bytes(path, expected_sha256, what=what, fix=fix)
    with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
        missing = [k for k in keys if k not in npz.files]
        if missing:
            raise WeightsError(f"{path}: missing arrays {missing}.")
        arrays = {k: npz[k] for k in keys}
    if int(arrays["rule_version"]) != rule_version:
        raise WeightsError(
            f"{path}: label rule version {int(arrays['rule_version'])}; this module reads "
            f"version {rule_version}."
        )
    return arrays
