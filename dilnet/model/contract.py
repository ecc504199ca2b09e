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

__all__ = [
    "NORMALIZATIONS",
    "InputContract",
    "IntensityScaling",
    "ScaledVolume",
    "intensity_scaling",
    "normalize_intensities",
    "percentiles",
]

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


#: values per slab that `intensity_scaling` reads at once (4 MiB as float64; its working
#: memory is a few times that, whatever the volume's size)
SLAB_VALUES = 2**19


def _channels(volume, rank):
    """`volume` as ``(C, *spatial)`` without reading it (a leading axis added when it has
    `rank` dims), and the number of channels."""
    if len(volume.shape) == rank:
        return (lambda c, key: volume[key]), 1
    return (lambda c, key: volume[(c, *key)]), int(volume.shape[0])


def _slabs(volume, rank, channel):
    """The float64 values of `channel`, read in slabs of about `SLAB_VALUES` along the first
    spatial axis (a memmap or zarr array is never read whole)."""
    read, _ = _channels(volume, rank)
    spatial = tuple(volume.shape[-rank:])
    per_plane = max(1, math.prod(spatial[1:]))
    step = max(1, SLAB_VALUES // per_plane)
    for start in range(0, spatial[0], step):
        key = (slice(start, min(spatial[0], start + step)),)
        yield np.asarray(read(channel, key), dtype=np.float64)


def _non_finite(values) -> int:
    """How many of `values` are NaN or infinite as float32 (those beyond its range become
    inf)."""
    with np.errstate(over="ignore"):
        return values.size - np.count_nonzero(np.isfinite(values.astype(np.float32)))


def _refuse_non_finite(bad, where):
    if bad:
        raise VolumeError(
            f"{where}: {bad} voxel(s) are NaN or infinite (as float32); they would spread "
            "through every receptive field they touch."
        )


def _order_keys(values):
    """uint64 keys ordered as the float64 `values` are (IEEE bits, sign folded)."""
    bits = values.view(np.uint64)
    return np.where(bits >> np.uint64(63), ~bits, bits | np.uint64(1 << 63))


def _from_keys(keys):
    keys = np.asarray(keys, dtype=np.uint64)
    bits = np.where(keys >> np.uint64(63), keys & ~np.uint64(1 << 63), ~keys)
    return bits.view(np.float64)


def _order_statistics(slabs, foreground, ranks):
    """The values of 0-based `ranks` among the `foreground` values of `slabs()` (a callable
    giving the slabs anew), as numpy's sort would order them: an exact radix select on the
    values' bits, four passes of 16 bits, each reading the slabs once."""
    ranks = np.asarray(ranks, dtype=np.int64)
    prefix = np.zeros(len(ranks), dtype=np.uint64)
    left = ranks.copy()
    for shift in (48, 32, 16, 0):
        counts = np.zeros((len(ranks), 1 << 16), dtype=np.int64)
        for slab in slabs():
            keys = _order_keys(slab[foreground(slab)])
            digits = ((keys >> np.uint64(shift)) & np.uint64(0xFFFF)).astype(np.intp)
            high = keys >> np.uint64(shift + 16) if shift < 48 else None
            for i in range(len(ranks)):
                chosen = digits if high is None else digits[high == prefix[i]]
                counts[i] += np.bincount(chosen, minlength=1 << 16)
        for i in range(len(ranks)):
            cumulative = np.cumsum(counts[i])
            digit = int(np.searchsorted(cumulative, left[i], side="right"))
            left[i] -= cumulative[digit - 1] if digit else 0
            prefix[i] = (prefix[i] << np.uint64(16)) | np.uint64(digit)
    return _from_keys(prefix)


def percentiles(volume, rank, channel, q, *, foreground="nonzero", where="volume"):
    """numpy's ``np.percentile(values, q)`` (linear interpolation, float64) of one channel's
    `foreground` values ('nonzero' or 'all'), read slab by slab: equal to numpy's to the bit,
    in working memory that does not grow with the volume (a few times `SLAB_VALUES` values).

    Raises `VolumeError` naming `where` for NaN or infinite voxels (also after a cast to
    float32) and an empty foreground.
    """

    def slabs():
        return _slabs(volume, rank, channel)

    def select(slab):
        return slab != 0 if foreground == "nonzero" else np.ones(slab.shape, bool)

    n = bad = 0
    for slab in slabs():
        bad += _non_finite(slab)
        n += np.count_nonzero(select(slab))
    _refuse_non_finite(bad, where)
    if n == 0:
        raise VolumeError(
            f"{where}: expected foreground voxels to take percentiles of; received channel "
            f"{channel} with none in its {'nonzero ' if foreground == 'nonzero' else ''}voxels (the model "
            f"scales intensities over the {foreground} voxels; check that the image holds data)."
        )
    # numpy's 'linear' method: virtual index (n - 1) * q / 100, its floor and the next
    quantiles = np.true_divide(np.asarray(q, dtype=np.float64), 100)
    virtual = (n - 1) * quantiles
    previous = np.floor(virtual)
    above = virtual >= n - 1
    previous[above] = n - 1
    following = np.where(above, n - 1, previous + 1)
    wanted = np.unique(np.concatenate([previous, following]).astype(np.int64))
    values = dict(zip(wanted.tolist(), _order_statistics(slabs, select, wanted), strict=True))
    a = np.array([values[int(i)] for i in previous])
    b = np.array([values[int(i)] for i in following])
    gamma = virtual - previous
    gamma[above] = virtual[above] - (n - 1)  # numpy's gamma where both indexes are the last
    diff = b - a
    out = a + diff * gamma
    np.subtract(b, diff * (1 - gamma), out=out, where=gamma >= 0.5)
    return out


@attrs.frozen
class IntensityScaling:
    """Per channel ``clip((x - low) / (high - low), 0, 1)`` in float64, then float32: the
    contract's scaling with its percentiles taken (`intensity_scaling`). ``low = 0``,
    ``high = 1`` without clipping stands for no scaling ('none')."""

    lows: tuple
    highs: tuple
    clip: bool = True

    def apply(self, channel, values) -> np.ndarray:
        """`values` of `channel` (any real array) scaled, as float32."""
        if not self.clip:
            return np.asarray(values, dtype=np.float32)
        lo, hi = self.lows[channel], self.highs[channel]
        out = (np.asarray(values, dtype=np.float64) - lo) / (hi - lo)
        return np.clip(out, 0.0, 1.0, out=out).astype(np.float32)


def intensity_scaling(volume, contract, rank, where="volume") -> IntensityScaling:
    """The scaling `contract` gives `volume` (``(C, *spatial)``, or ``(*spatial)`` with `rank`
    dims for one channel; anything that slices like an array), its percentiles taken slab by
    slab (`percentiles`), so that a volume larger than memory is never read whole.

    Raises
    ------
    VolumeError
        Naming `where`: values that are not real, NaN or infinite (after the cast to float32
        too), an empty foreground, or a foreground whose values are all equal.
    """
    dtype = getattr(volume, "dtype", None)
    if getattr(dtype, "kind", None) not in tuple("biuf"):
        raise VolumeError(f"{where}: expected real numbers; received dtype {dtype}.")
    _, channels = _channels(volume, rank)
    if contract is None or contract.normalization == "none":
        for c in range(channels):  # the finiteness check, slab by slab
            _refuse_non_finite(sum(_non_finite(slab) for slab in _slabs(volume, rank, c)), where)
        return IntensityScaling((0.0,) * channels, (1.0,) * channels, clip=False)
    low, high = (
        (contract.low, contract.high) if contract.normalization == "percentile" else (0, 100)
    )
    lows, highs = [], []
    for c in range(channels):
        lo, hi = percentiles(volume, rank, c, [low, high], foreground=contract.foreground,
                             where=where)  # fmt: skip
        if not hi > lo:
            raise VolumeError(
                f"{where}: expected foreground values whose {low} and {high} percentiles differ; "
                f"received channel {c} with both equal to {lo:g} (a constant image) (the model "
                f"scales intensities over the {contract.foreground} voxels; check that the image "
                "holds data)."
            )
        lows.append(float(lo))
        highs.append(float(hi))
    return IntensityScaling(tuple(lows), tuple(highs))


class ScaledVolume:
    """`volume` read through `scaling`, crop by crop (as `dilnet.inference.predict_volume`
    reads it): the scaled volume is never held whole. Indexing takes the channel axis first
    when the volume has one (`has_channels`)."""

    def __init__(self, volume, scaling, has_channels):
        self.volume, self.scaling, self.has_channels = volume, scaling, has_channels
        self.shape = tuple(volume.shape)
        self.dtype = np.dtype(np.float32)

    def __getitem__(self, key):
        key = key if isinstance(key, tuple) else (key,)
        if not self.has_channels:
            return self.scaling.apply(0, self.volume[key])
        channels = range(self.shape[0])[key[0]]
        part = np.asarray(self.volume[key])
        if isinstance(channels, int):
            return self.scaling.apply(channels, part)
        out = np.empty(part.shape, np.float32)
        for i, c in enumerate(channels):
            out[i] = self.scaling.apply(c, part[i])
        return out


def normalize_intensities(volume, contract, rank, where="volume") -> np.ndarray:
    """`volume` (``(C, *spatial)``, or ``(*spatial)`` with `rank` dims for one channel) scaled
    as `contract` says (None: as 'none'), as float32, in `volume`'s shape.

    'percentile' and 'minmax' (the 0th and 100th percentiles) scale each channel on its own,
    ``clip((x - p_low) / (p_high - p_low), 0, 1)``, with the percentiles of the channel's
    nonzero voxels (``foreground="nonzero"``) or all of them: the values of
    `dilnet.model.augment.normalize_percentile`, the function training uses, taken slab by slab
    (`intensity_scaling`; `ScaledVolume` applies it crop by crop instead).

    Raises
    ------
    VolumeError
        Naming `where`: values that are not real, NaN or infinite (after the cast to float32
        too), an empty foreground, or a foreground whose values are all equal.
    """
    data = np.asarray(volume)
    scaling = intensity_scaling(data, contract, rank, where)
    if data.ndim == rank:
        return scaling.apply(0, data)
    out = np.empty(data.shape, np.float32)
    for c in range(data.shape[0]):
        out[c] = scaling.apply(c, data[c])
    return out
