"""A model's input contract: the orientation, voxel size and intensity scaling it was trained on.

A network trained on 2 mm RAS volumes scaled to [0, 1] sees something else when it is given a
1 mm LPS scan in scanner units, and answers without complaint. The contract says what it was
trained on; it is saved with the model (the checkpoint's ``"input_contract"`` metadata) and
applied on every path a user predicts through:

- `dilnet.preprocessing.predict_image` and ``dilnet predict`` (images with an affine): reorient
  to `orientation`, resample to `voxel_size`, scale intensities, predict, and bring the class
  probabilities back to the input's own grid;
- `dilnet.inference.predict_volume` (arrays, no affine): intensities only — an array carries no
  orientation or voxel size to check, so it must already be on the model's grid (documented
  there).

Users' own models declare one the same way: ``model.input_contract = InputContract(...)``
before ``model.save``.
"""

import math
from numbers import Real

import attrs
import numpy as np

from ..errors import ConfigError, VolumeError, invalid
from .augment import normalize_percentile

__all__ = ["NORMALIZATIONS", "InputContract", "normalize_intensities"]

#: intensity scalings: 'percentile' maps the `low`/`high` percentiles of the foreground to 0/1
#: and clips; 'minmax' maps the minimum/maximum to 0/1; 'none' leaves the values
NORMALIZATIONS = ("percentile", "minmax", "none")
_AXES = {"R": "L", "L": "R", "A": "P", "P": "A", "S": "I", "I": "S"}


def _orientation(instance, attribute, value):
    if value is None:
        return
    ok = isinstance(value, str) and len(value) in (1, 2, 3) and all(c in _AXES for c in value)
    ok = ok and len({_AXES[c] if c in "LPI" else c for c in value}) == len(value)
    if not ok:
        raise ConfigError(
            invalid("InputContract", attribute.name, "axis codes such as 'RAS' or None", value)
        )


def _voxel_size(instance, attribute, value):
    if value is None:
        return
    ok = isinstance(value, tuple) and len(value) in (1, 2, 3)
    ok = ok and all(
        isinstance(v, Real) and not isinstance(v, bool) and math.isfinite(v) and v > 0
        for v in value
    )
    if not ok:
        raise ConfigError(
            invalid("InputContract", attribute.name, "positive millimetres per axis or None", value)
        )


def _percent(instance, attribute, value):
    if isinstance(value, bool) or not isinstance(value, Real) or not 0 <= value <= 100:
        raise ConfigError(invalid("InputContract", attribute.name, "a number in [0, 100]", value))


def _tuple_or_none(value):
    return tuple(value) if isinstance(value, list | tuple) else value


@attrs.frozen(kw_only=True)
class InputContract:
    """What a model expects of its input.

    Parameters
    ----------
    orientation : str or None
        Axis codes of the array axes (nibabel's, e.g. ``"RAS"``: axis 0 runs to the right,
        1 anterior, 2 superior); None accepts any orientation.
    voxel_size : tuple of float or None
        Millimetres per spatial axis (e.g. ``(2.0, 2.0, 2.0)``); None accepts any.
    normalization : str
        One of `NORMALIZATIONS`.
    low, high : float
        The percentiles 'percentile' maps to 0 and 1 (of the foreground voxels).
    foreground : str
        Voxels the percentiles are taken over: ``"nonzero"`` (a skull-stripped image's brain)
        or ``"all"``.
    class_names : tuple of str or None
        The name of each output class, in order.
    """

    orientation: str | None = attrs.field(default=None, validator=_orientation)
    voxel_size: tuple[float, ...] | None = attrs.field(
        default=None, converter=_tuple_or_none, validator=_voxel_size
    )
    normalization: str = attrs.field(default="none")
    low: float = attrs.field(default=0.5, validator=_percent)
    high: float = attrs.field(default=99.5, validator=_percent)
    foreground: str = attrs.field(default="nonzero")
    class_names: tuple[str, ...] | None = attrs.field(default=None, converter=_tuple_or_none)

    @normalization.validator
    def _check_normalization(self, attribute, value):
        if value not in NORMALIZATIONS:
            raise ConfigError(
                invalid("InputContract", "normalization", f"one of {NORMALIZATIONS}", value)
            )

    @foreground.validator
    def _check_foreground(self, attribute, value):
        if value not in ("nonzero", "all"):
            raise ConfigError(invalid("InputContract", "foreground", "'nonzero' or 'all'", value))

    @class_names.validator
    def _check_class_names(self, attribute, value):
        if value is not None and not all(isinstance(v, str) and v for v in value):
            raise ConfigError(
                invalid("InputContract", "class_names", "non-empty strings or None", value)
            )

    def __attrs_post_init__(self):
        if self.low >= self.high:
            raise ConfigError(
                invalid("InputContract", "low", f"less than high={self.high}", self.low)
            )

    def to_dict(self) -> dict:
        """A JSON-able dict (lists for tuples); `from_dict` reads it back."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in attrs.asdict(self).items()}

    @classmethod
    def from_dict(cls, data, where="input_contract") -> "InputContract":
        """The contract `to_dict` wrote; `ConfigError` naming `where` for anything else."""
        if not isinstance(data, dict):
            raise ConfigError(invalid(where, "input_contract", "a dict", type(data).__name__))
        names = [a.name for a in attrs.fields(cls)]
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise ConfigError(
                f"{where}: unknown keys {unknown}; an input contract has {', '.join(names)}."
            )
        try:
            return cls(**data)
        except ConfigError as err:
            raise ConfigError(f"{where}: {err}") from None
        except TypeError as err:
            raise ConfigError(f"{where}: {err}") from None


def normalize_intensities(volume, contract, rank, where="volume") -> np.ndarray:
    """`volume` (``(C, *spatial)``, or ``(*spatial)`` with `rank` dims for one channel) scaled
    as `contract` says (None: as 'none'), as float32, in `volume`'s shape.

    'percentile' and 'minmax' (the 0th and 100th percentiles) scale each channel on its own
    with `dilnet.model.augment.normalize_percentile`, the function training uses, over the
    channel's nonzero voxels (``foreground="nonzero"``) or all of them.

    Raises
    ------
    VolumeError
        Naming `where`: values that are not real, NaN or infinite (after the cast to float32
        too), an empty foreground, or a foreground whose values are all equal.
    """
    data = np.asarray(volume)
    if data.dtype.kind not in "biuf":
        raise VolumeError(f"{where}: expected real numbers; received dtype {data.dtype}.")
    channels = data[np.newaxis] if data.ndim == rank else data
    as32 = channels.astype(np.float32)
    bad = np.count_nonzero(~np.isfinite(as32))
    if bad:
        raise VolumeError(
            f"{where}: {bad} voxel(s) are NaN or infinite (as float32); they would spread "
            "through every receptive field they touch."
        )
    if contract is None or contract.normalization == "none":
        return as32.reshape(data.shape)
    low, high = (
        (contract.low, contract.high) if contract.normalization == "percentile" else (0, 100)
    )
    mask = None if contract.foreground == "nonzero" else np.ones(channels.shape[1:], bool)
    try:
        out = normalize_percentile(channels, mask=mask, low=low, high=high)
    except ConfigError as err:
        detail = (str(err).partition(": ")[2] or str(err)).rstrip(".")
        raise VolumeError(
            f"{where}: {detail} (the model scales intensities over the "
            f"{contract.foreground} voxels; check that the image holds data)."
        ) from None
    return out.reshape(data.shape)
