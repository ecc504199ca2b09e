"""Training augmentation that generalises beyond one template: `Augment` draws, per call, a
random deformation, random tissue contrasts (SynthSeg, Billot et al. 2023), a bias field, thick
slices, noise and a gamma, and ends with `normalize_percentile`, the intensity scaling used at
inference too.

An `Augment` is a `PatchSampler` ``augment``: ``augment(x, y, rng) -> (x, y)`` with ``x``
``(C, *spatial)`` and ``y`` ``(*spatial)`` integer labels. Given ``window=`` (slices of the
spatial axes) it returns that window of the augmented volume, computed from the window only,
except that rotations and deformations read the anatomy around it, not the window's edge
voxels. Every draw comes from `rng`, so equal seeds give equal results, bit for bit.

The steps, in order (each drawn with its probability ``p_...``):

1. *Spatial*: flips, an affine (rotation, scale, shear, translation about the window's
   centre) and a smooth elastic displacement, composed into one map of coordinates; the image
   is read through it by linear interpolation, the labels by nearest neighbour
   (`scipy.ndimage.map_coordinates`, one call per channel and one for the labels).
2. *Tissue contrast*: inside each label, Gaussian intensities of a random mean and standard
   deviation, mixed with the real image by a random weight so its texture survives.
3. *Bias field*: the image times a smooth random field ``exp(b)``, ``b`` the cubic B-spline
   of random control values (one every ``bias_spacing`` voxels, at most).
4. *Thick slices*: along one random axis, a Gaussian slice profile (full width at half maximum
   the slice thickness), sampled every `thickness` voxels and interpolated back linearly: a
   2 x 2 x 4 mm acquisition resampled to 2 mm.
5. *Noise*: Gaussian, of a random standard deviation.
6. *Gamma*: each channel scaled to [0, 1] and raised to ``exp(N(0, gamma_std))``.
7. *Normalisation*: `normalize_percentile` over the foreground (labels other than 0).

Lengths are in voxels; the defaults suit T1 brain MRI at 2 mm scaled to [0, 1] (the zoo's
template). `sample_params` and `apply` split a call into its draws (`AugmentParams`, small
arrays) and their application, so the draws can be checked or set by hand.
"""

import math
from numbers import Integral, Real

import attrs
import numpy as np

from ..errors import ConfigError, ShapeError, invalid

__all__ = ["Augment", "AugmentParams", "normalize_percentile"]

#: full width at half maximum of a Gaussian over its standard deviation, 2 sqrt(2 ln 2)
FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))


# ---------------------------------------------------------------------------------------------
# normalisation, shared by training (`Augment`) and inference


def _bad_image(where, expected, received) -> ConfigError:
    return ConfigError(
        f"{where}: invalid value for `image`. Expected {expected}; received {received}."
    )


def normalize_percentile(image, mask=None, low=0.5, high=99.5) -> np.ndarray:
    """`image` ``(C, *spatial)`` scaled per channel so that the `low` and `high` percentiles of
    its foreground become 0 and 1, clipped to [0, 1], as float32.

    The same scaling serves training (the last step of `Augment`, foreground = labels other
    than 0) and inference (foreground = nonzero voxels of a skull-stripped image), so the
    network sees the same range in both.

    Parameters
    ----------
    image : array (C, *spatial)
        Real values.
    mask : bool array (*spatial), optional
        The foreground voxels, the same for every channel. None: each channel's nonzero voxels.
    low, high : float
        Percentiles in [0, 100], ``low < high`` (numpy's linear interpolation).

    Returns
    -------
    ndarray (C, *spatial), float32
        ``clip((image - p_low) / (p_high - p_low), 0, 1)`` per channel.

    Raises
    ------
    ConfigError
        Naming `image`: non-finite values, an empty foreground (an empty mask, or an all-zero
        channel with ``mask=None``), or a foreground whose `low` and `high` percentiles are
        equal (a constant image); naming `mask`, `low` or `high` for bad arguments.
    """
    where = "normalize_percentile"
    for name, value in (("low", low), ("high", high)):
        if not _is_real(value) or not 0 <= value <= 100:
            raise ConfigError(invalid(where, name, "a percentile in [0, 100]", value))
    if not low < high:
        raise ConfigError(invalid(where, "low", f"less than high={high}", low))
    image = np.asarray(image)
    if image.ndim < 2 or image.dtype.kind not in "biuf":
        raise _bad_image(
            where,
            "a real array (C, *spatial)",
            f"an array of shape {image.shape} and dtype {image.dtype}",
        )
    values = image.astype(np.float64)
    finite = np.isfinite(values)
    if not finite.all():
        raise _bad_image(
            where, "finite values", f"{np.count_nonzero(~finite)} NaN or infinite voxel(s)"
        )
    if mask is not None:
        mask = np.asarray(mask)
        if mask.dtype != bool or mask.shape != image.shape[1:]:
            raise ConfigError(
                invalid(
                    where,
                    "mask",
                    f"None or a boolean array of shape {image.shape[1:]}",
                    f"an array of shape {mask.shape} and dtype {mask.dtype}",
                )
            )
    out = np.empty(image.shape, np.float32)
    for c, channel in enumerate(values):
        foreground = channel[mask] if mask is not None else channel[channel != 0]
        if foreground.size == 0:
            chosen = "the mask" if mask is not None else "its nonzero voxels (mask=None)"
            raise _bad_image(
                where,
                "foreground voxels to take percentiles of",
                f"channel {c} with none in {chosen}",
            )
        lo, hi = np.percentile(foreground, [low, high])
        if not hi > lo:
            raise _bad_image(
                where,
                f"foreground values whose {low} and {high} percentiles differ",
                f"channel {c} with both equal to {lo:g} (a constant image)",
            )
        out[c] = np.clip((channel - lo) / (hi - lo), 0.0, 1.0)
    return out


# ---------------------------------------------------------------------------------------------
# field validators: every message names the field and follows the house template


def _is_real(value) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)


def _probability(instance, attribute, value):
    if not _is_real(value) or not 0 <= value <= 1:
        raise ConfigError(invalid("Augment", attribute.name, "a probability in [0, 1]", value))


def _number(lower, upper=math.inf, *, open_upper=False):
    """A validator: a finite number in [lower, upper] (or [lower, upper))."""
    text = f"a number in [{lower:g}, {upper:g}{')' if open_upper else ']'}"
    if upper == math.inf:
        text = f"a finite number >= {lower:g}"

    def check(instance, attribute, value):
        ok = _is_real(value) and lower <= value <= upper
        if not ok or (open_upper and value >= upper):
            raise ConfigError(invalid("Augment", attribute.name, text, value))

    return check


def _interval(lower, upper=math.inf):
    """A validator: a pair (a, b) of finite numbers with lower <= a <= b <= upper."""
    text = f"a pair (low, high) with {lower:g} <= low <= high" + (
        f" <= {upper:g}" if upper != math.inf else ""
    )

    def check(instance, attribute, value):
        ok = isinstance(value, tuple) and len(value) == 2 and all(_is_real(v) for v in value)
        if not ok or not lower <= value[0] <= value[1] <= upper:
            raise ConfigError(invalid("Augment", attribute.name, text, value))

    return check


def _optional_interval(lower, upper=math.inf):
    inner = _interval(lower, upper)

    def check(instance, attribute, value):
        if value is not None:
            inner(instance, attribute, value)

    return check


def _tuple(value):
    return tuple(value) if isinstance(value, list | tuple) else value


def _axes(instance, attribute, value):
    ok = isinstance(value, tuple) and all(
        isinstance(v, Integral) and not isinstance(v, bool) and v >= 0 for v in value
    )
    if not ok or len(set(value)) != len(value):
        raise ConfigError(
            invalid("Augment", attribute.name, "distinct spatial axes (ints >= 0)", value)
        )


# ---------------------------------------------------------------------------------------------
# the drawn parameters


@attrs.frozen(kw_only=True, eq=False)
class AugmentParams:
    """The draws of one `Augment` call; a step whose fields are None is skipped.

    Parameters
    ----------
    matrix : ndarray (d, d) or None
        Output -> input coordinates about the window's centre (flips, rotation, shear, scale):
        output voxel ``o`` reads input ``centre + translation + matrix @ (o - centre) + u(o)``.
    translation : ndarray (d,) or None
        Voxels; with `matrix`.
    displacement : ndarray (d, *grid) or None
        Control values of the elastic displacement ``u`` (voxels), a cubic B-spline over the
        output window (so ``|u| <= max |displacement|``).
    tissue_labels : int ndarray (L,) or None
        The label values, sorted, that `tissue_means`, `tissue_stds` columns belong to.
    tissue_means, tissue_stds : ndarray (C, L) or None
        Per channel and label: the Gaussian intensities drawn inside the label.
    tissue_mix : ndarray (C,) or None
        Per channel: the weight of the real image, ``(1 - w) * gaussian + w * image``.
    bias : ndarray (C, *grid) or None
        Control values of the log bias field, a cubic B-spline over the window.
    slice_axis : int or None
        The spatial axis of the thick slices.
    slice_thickness, slice_offset : float or None
        In voxels: the slice spacing and full width at half maximum, and the first slice's
        centre.
    noise_std : ndarray (C,) or None
        Per channel.
    gamma : ndarray (C,) or None
        Per channel: the exponent.
    normalize : bool
        Whether to end with `normalize_percentile`.
    """

    matrix: np.ndarray | None = None
    translation: np.ndarray | None = None
    displacement: np.ndarray | None = None
    tissue_labels: np.ndarray | None = None
    tissue_means: np.ndarray | None = None
    tissue_stds: np.ndarray | None = None
    tissue_mix: np.ndarray | None = None
    bias: np.ndarray | None = None
    slice_axis: int | None = None
    slice_thickness: float | None = None
    slice_offset: float | None = None
    noise_std: np.ndarray | None = None
    gamma: np.ndarray | None = None
    normalize: bool = False


# ---------------------------------------------------------------------------------------------
# the augmentation


@attrs.frozen(kw_only=True)
class Augment:
    """A random training augmentation, ``augment(x, y, rng, window=None) -> (x, y)``.

    Parameters
    ----------
    p_flip : float
        Probability of mirroring each axis of `flip_axes` (image and labels). Label values are
        kept, so leave it 0 for label sets with a left and a right class of one structure.
    flip_axes : tuple of int
        Spatial axes; axis 0 is left-right in RAS volumes (the zoo's).
    p_affine : float
        Probability of the affine.
    rotation : float
        Degrees, at most, in each plane of two axes (uniform).
    scale : (float, float)
        The factor the anatomy is enlarged by, per axis (uniform).
    shear : float
        Each off-diagonal entry of the shear matrix, at most (uniform).
    translation : float
        Voxels, at most, per axis (uniform).
    p_elastic : float
        Probability of the elastic displacement.
    elastic_std : float
        Voxels: the displacement's control values are N(0, s), s uniform in [0, elastic_std].
    elastic_spacing : float
        Voxels between control points, at most.
    p_tissue : float
        Probability of replacing the contrast (SynthSeg).
    tissue_mean, tissue_std : (float, float)
        Ranges (uniform) of each label's mean and standard deviation.
    tissue_mix : (float, float)
        Range (uniform) of the real image's weight.
    background_mean : (float, float) or None
        Range of label 0's mean; None draws it from `tissue_mean` like any label.
    p_bias : float
        Probability of the bias field.
    bias_amplitude : float
        The field stays within ``[1 - a, 1 + a]``; its log control values are
        ``N(0, s)``, s uniform in ``[0, log(1 + a) / 2]``, clipped to ``[log(1 - a), log(1 + a)]``.
    bias_spacing : float
        Voxels between control points, at most.
    p_slices : float
        Probability of thick slices.
    slice_thickness : (float, float)
        Range (uniform) of the slice thickness in voxels (1: no loss of resolution).
    p_noise : float
        Probability of noise.
    noise_std : (float, float)
        Range (uniform) of its standard deviation.
    p_gamma : float
        Probability of the gamma.
    gamma_std : float
        The exponent is ``exp(N(0, gamma_std))``.
    normalize : bool
        End with `normalize_percentile` over the labels other than 0 (over the nonzero voxels
        where the window has none; clipped to [0, 1] where it is blank).
    percentiles : (float, float)
        The `low` and `high` of `normalize_percentile`.

    Notes
    -----
    The defaults, for T1 brain MRI at 2 mm scaled to [0, 1]: rotations up to 15 degrees,
    scales 0.85-1.15 and small shears cover head positions and head sizes; an elastic
    displacement of up to 2 voxels every 12 voxels (4 mm every 24 mm) varies the anatomy; per
    tissue means anywhere in [0, 1] make the contrast random (T1, T2, PD or none), with up to
    half of the real image kept; a +-30 % bias field over 64 mm; slices up to 3 voxels thick
    (6 mm); noise up to 5 % of the range; gamma with a log-standard deviation of 0.4. The
    image's intensities should be in about [0, 1] (`normalize_percentile`), since the real
    image is mixed with contrasts drawn there.

    Examples
    --------
    >>> import numpy as np
    >>> image = np.random.default_rng(0).random((1, 16, 16, 16)).astype("float32")
    >>> labels = (image[0] > 0.5).astype("int64")
    >>> x, y = Augment()(image, labels, np.random.default_rng(1))
    >>> x.shape, x.dtype, y.dtype
    ((1, 16, 16, 16), dtype('float32'), dtype('int64'))
    """

    p_flip: float = attrs.field(default=0.5, validator=_probability)
    flip_axes: tuple[int, ...] = attrs.field(default=(0,), converter=_tuple, validator=_axes)
    p_affine: float = attrs.field(default=0.8, validator=_probability)
    rotation: float = attrs.field(default=15.0, validator=_number(0, 180))
    scale: tuple[float, float] = attrs.field(
        default=(0.85, 1.15), converter=_tuple, validator=_interval(0.1, 10)
    )
    shear: float = attrs.field(default=0.05, validator=_number(0, 1))
    translation: float = attrs.field(default=2.0, validator=_number(0))
    p_elastic: float = attrs.field(default=0.5, validator=_probability)
    elastic_std: float = attrs.field(default=2.0, validator=_number(0))
    elastic_spacing: float = attrs.field(default=12.0, validator=_number(1))
    p_tissue: float = attrs.field(default=0.8, validator=_probability)
    tissue_mean: tuple[float, float] = attrs.field(
        default=(0.0, 1.0), converter=_tuple, validator=_interval(-math.inf)
    )
    tissue_std: tuple[float, float] = attrs.field(
        default=(0.0, 0.1), converter=_tuple, validator=_interval(0)
    )
    tissue_mix: tuple[float, float] = attrs.field(
        default=(0.0, 0.5), converter=_tuple, validator=_interval(0, 1)
    )
    background_mean: tuple[float, float] | None = attrs.field(
        default=(0.0, 0.1), converter=_tuple, validator=_optional_interval(-math.inf)
    )
    p_bias: float = attrs.field(default=0.5, validator=_probability)
    bias_amplitude: float = attrs.field(default=0.3, validator=_number(0, 1, open_upper=True))
    bias_spacing: float = attrs.field(default=32.0, validator=_number(1))
    p_slices: float = attrs.field(default=0.3, validator=_probability)
    slice_thickness: tuple[float, float] = attrs.field(
        default=(1.0, 3.0), converter=_tuple, validator=_interval(1)
    )
    p_noise: float = attrs.field(default=0.5, validator=_probability)
    noise_std: tuple[float, float] = attrs.field(
        default=(0.0, 0.05), converter=_tuple, validator=_interval(0)
    )
    p_gamma: float = attrs.field(default=0.5, validator=_probability)
    gamma_std: float = attrs.field(default=0.4, validator=_number(0))
    normalize: bool = attrs.field(default=True)
    percentiles: tuple[float, float] = attrs.field(
        default=(0.5, 99.5), converter=_tuple, validator=_interval(0, 100)
    )

    @normalize.validator
    def _check_normalize(self, attribute, value):
        if not isinstance(value, bool):
            raise ConfigError(invalid("Augment", "normalize", "True or False", value))

    def __attrs_post_init__(self):
        if not self.percentiles[0] < self.percentiles[1]:
            raise ConfigError(
                invalid("Augment", "percentiles", "a pair (low, high) with low < high",
                        self.percentiles)
            )  # fmt: skip

    # -- calls ------------------------------------------------------------------------------

    def __call__(self, x, y, rng, *, window=None):
        """The augmented ``(x, y)``: x ``(C, *out)`` float32, y ``(*out)`` of `y`'s dtype, new
        arrays; ``out`` is the spatial size of `window` (a tuple of slices, one per spatial
        axis, step 1) or of `x`. Same as ``apply(sample_params(x, y, rng), x, y, rng)``."""
        params = self.sample_params(x, y, rng, window=window)
        return self.apply(params, x, y, rng, window=window)

    def sample_params(self, x, y, rng, *, window=None) -> AugmentParams:
        """The random draws of one call (`AugmentParams`), from `rng`; voxel-wise draws
        (noise, tissue intensities) are left to `apply`."""
        x, y, window, out = _check(self, x, y, rng, window)
        rank, channels = y.ndim, x.shape[0]
        params = {"normalize": self.normalize}

        matrix = translation = None
        if rng.random() < self.p_affine:
            planes = [(i, j) for i in range(rank) for j in range(i + 1, rank)]
            angles = np.deg2rad(rng.uniform(-self.rotation, self.rotation, len(planes)))
            rotation = np.eye(rank)
            for (i, j), angle in zip(planes, angles, strict=True):
                turn = np.eye(rank)
                turn[[i, i, j, j], [i, j, i, j]] = (
                    np.cos(angle), -np.sin(angle), np.sin(angle), np.cos(angle)
                )  # fmt: skip
                rotation = rotation @ turn
            shear = np.eye(rank)
            off = ~np.eye(rank, dtype=bool)
            shear[off] = rng.uniform(-self.shear, self.shear, rank * rank - rank)
            scale = rng.uniform(*self.scale, rank)
            matrix = rotation @ shear @ np.diag(1.0 / scale)
            translation = rng.uniform(-self.translation, self.translation, rank)
        flips = np.ones(rank)
        for axis in self.flip_axes:
            if rng.random() < self.p_flip:
                flips[axis] = -1.0
        if (flips < 0).any():
            matrix = (np.eye(rank) if matrix is None else matrix) @ np.diag(flips)
            translation = np.zeros(rank) if translation is None else translation
        params.update(matrix=matrix, translation=translation)

        if rng.random() < self.p_elastic:
            std = rng.uniform(0.0, self.elastic_std)
            grid = _grid(out, self.elastic_spacing)
            params["displacement"] = rng.normal(0.0, std, (rank, *grid))

        if rng.random() < self.p_tissue:
            reach = _reach(window, y.shape, matrix, translation, params.get("displacement"))
            labels = _label_values(y[reach])
            means = rng.uniform(*self.tissue_mean, (channels, labels.size))
            if self.background_mean is not None and labels[0] == 0:
                means[:, 0] = rng.uniform(*self.background_mean, channels)
            params.update(
                tissue_labels=labels,
                tissue_means=means,
                tissue_stds=rng.uniform(*self.tissue_std, (channels, labels.size)),
                tissue_mix=rng.uniform(*self.tissue_mix, channels),
            )

        if rng.random() < self.p_bias:
            bound = (math.log1p(-self.bias_amplitude), math.log1p(self.bias_amplitude))
            std = rng.uniform(0.0, bound[1] / 2)
            grid = _grid(out, self.bias_spacing)
            params["bias"] = np.clip(rng.normal(0.0, std, (channels, *grid)), *bound)

        axes = [a for a in range(rank) if out[a] > 1]
        if rng.random() < self.p_slices and axes:
            axis = axes[int(rng.integers(len(axes)))]
            thickness = float(rng.uniform(*self.slice_thickness))
            params.update(
                slice_axis=axis,
                slice_thickness=thickness,
                slice_offset=float(rng.uniform(0.0, min(thickness, out[axis] - 1))),
            )

        if rng.random() < self.p_noise:
            params["noise_std"] = rng.uniform(*self.noise_std, channels)
        if rng.random() < self.p_gamma:
            params["gamma"] = np.exp(rng.normal(0.0, self.gamma_std, channels))
        return AugmentParams(**params)

    def apply(self, params, x, y, rng, *, window=None):
        """`params` applied to ``(x, y)`` (see `__call__`); `rng` draws the voxel-wise noise
        and tissue intensities."""
        x, y, window, out = _check(self, x, y, rng, window)
        _check_params(params, x.shape[0], y.ndim)
        image, labels = _warp(x, y, window, params)
        if not np.isfinite(image).all():
            raise ConfigError(
                "Augment: invalid value for `x`. Expected finite values; received NaN or "
                "infinite voxels in the window."
            )
        channels = image.shape[0]
        if params.tissue_labels is not None:
            image = _tissue(image, labels, params, rng)
        if params.bias is not None:
            image *= np.exp(_upsample(params.bias, out)).astype(np.float32)
        if params.slice_axis is not None:
            image = _thick_slices(
                image, params.slice_axis, params.slice_thickness, params.slice_offset
            )
        if params.noise_std is not None:
            std = np.asarray(params.noise_std, np.float32).reshape((channels,) + (1,) * y.ndim)
            image = image + std * rng.standard_normal(image.shape, dtype=np.float32)
        if params.gamma is not None:
            image = _gamma(image, params.gamma)
        if params.normalize:
            image = _normalize(image, labels, self.percentiles)
        return np.ascontiguousarray(image, dtype=np.float32), np.ascontiguousarray(labels)


# ---------------------------------------------------------------------------------------------
# the steps


def _check(augment, x, y, rng, window):
    """(x, y, window as slices, output spatial shape), or a ConfigError / ShapeError."""
    where = "Augment"
    if not isinstance(rng, np.random.Generator):
        raise ConfigError(invalid(where, "rng", "a numpy.random.Generator", rng))
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim < 2 or y.shape != x.shape[1:]:
        raise ShapeError(
            f"{where}: image of shape {x.shape} and labels of shape {y.shape}; expected "
            "(C, *spatial) and (*spatial)."
        )
    if x.dtype.kind not in "iuf":
        raise ConfigError(invalid(where, "x.dtype", "a real number dtype", x.dtype))
    if y.dtype.kind not in "iu":
        raise ConfigError(invalid(where, "y.dtype", "an integer dtype", y.dtype))
    if any(axis >= y.ndim for axis in augment.flip_axes):
        raise ConfigError(
            invalid(where, "flip_axes", f"axes of the {y.ndim} spatial axes", augment.flip_axes)
        )
    if window is None:
        return x, y, tuple(slice(0, n) for n in y.shape), y.shape
    expected = f"None or {y.ndim} slices of step 1 inside the spatial shape {y.shape}"
    if not isinstance(window, tuple) or len(window) != y.ndim:
        raise ConfigError(invalid(where, "window", expected, window))
    slices = []
    for s, n in zip(window, y.shape, strict=True):
        if not isinstance(s, slice):
            raise ConfigError(invalid(where, "window", expected, window))
        start, stop, step = s.indices(n)
        if step != 1 or stop <= start:
            raise ConfigError(invalid(where, "window", expected, window))
        slices.append(slice(start, stop))
    return x, y, tuple(slices), tuple(s.stop - s.start for s in slices)


def _check_params(params, channels, rank):
    """A ConfigError unless `params` is an `AugmentParams`, a ShapeError naming the first field
    whose size does not fit `channels` and `rank`."""
    where = "Augment.apply"
    if not isinstance(params, AugmentParams):
        raise ConfigError(invalid(where, "params", "an AugmentParams", params))
    # the number of axes, and the leading sizes
    expected = {
        "matrix": (2, (rank, rank)),
        "translation": (1, (rank,)),
        "displacement": (rank + 1, (rank,)),
        "tissue_means": (2, (channels,)),
        "tissue_stds": (2, (channels,)),
        "tissue_mix": (1, (channels,)),
        "bias": (rank + 1, (channels,)),
        "noise_std": (1, (channels,)),
        "gamma": (1, (channels,)),
    }
    for name, (ndim, lead) in expected.items():
        value = getattr(params, name)
        if value is not None and (np.ndim(value) != ndim or np.shape(value)[: len(lead)] != lead):
            raise ShapeError(
                f"{where}: params.{name} has shape {np.shape(value)}; expected {ndim} axes, "
                f"the first {len(lead)} of sizes {lead}, for {channels} channel(s) and {rank} "
                "spatial axes."
            )
    tissue = (params.tissue_labels, params.tissue_means, params.tissue_stds, params.tissue_mix)
    if any(t is None for t in tissue) and any(t is not None for t in tissue):
        raise ConfigError(
            invalid(where, "params.tissue_labels", "tissue_labels, _means, _stds and _mix all "
                    "set or all None", params.tissue_labels)
        )  # fmt: skip
    if (params.slice_axis is not None) and not (0 <= params.slice_axis < rank):
        raise ConfigError(
            invalid(where, "params.slice_axis", f"a spatial axis below {rank}", params.slice_axis)
        )


def _label_values(labels) -> np.ndarray:
    """The sorted distinct values of `labels` (a bincount for small non-negative labels)."""
    low, high = labels.min(), labels.max()
    if low >= 0 and high < 2**16:
        return np.flatnonzero(np.bincount(labels.ravel().astype(np.intp, copy=False)))
    return np.unique(labels).astype(np.int64)


def _reach(window, shape, matrix, translation, displacement):
    """The part of the input that the spatial transform reads for `window`: the window grown,
    per axis k, by ``sum_j |matrix - I|[k, j] * half_size[j]`` (the affine's largest move,
    at a corner), ``|translation[k]|``, ``max |displacement[k]|`` (the B-spline's bound) and one
    voxel for the interpolation."""
    if matrix is None and displacement is None:
        return window
    rank = len(window)
    half = np.array([(s.stop - s.start - 1) / 2 for s in window])
    grow = np.ones(rank)
    if matrix is not None:
        grow += np.abs(matrix - np.eye(rank)) @ half + np.abs(translation)
    if displacement is not None:
        grow += np.abs(displacement).reshape(rank, -1).max(axis=1)
    return tuple(
        slice(max(0, math.floor(s.start - g)), min(n, math.ceil(s.stop + g)))
        for s, g, n in zip(window, grow, shape, strict=True)
    )


def _grid(shape, spacing) -> tuple[int, ...]:
    """Control points per axis: at most `spacing` voxels apart, at least 2."""
    return tuple(max(2, math.ceil((n - 1) / spacing) + 1) for n in shape)


def _bspline_weights(n, points) -> np.ndarray:
    """(n, points): voxel i's cubic B-spline weights on control points spread over the axis
    (voxel 0 on point 0, voxel n-1 on the last); non-negative, each row sums to 1."""
    t = np.arange(n) * ((points - 1) / (n - 1)) if n > 1 else np.zeros(1)
    i = np.floor(t).astype(np.intp)
    f = t - i
    weights = np.zeros((n, points))
    rows = np.arange(n)
    pieces = ((1 - f) ** 3 / 6, (3 * f**3 - 6 * f**2 + 4) / 6,
              (-3 * f**3 + 3 * f**2 + 3 * f + 1) / 6, f**3 / 6)  # fmt: skip
    for m, w in enumerate(pieces):
        np.add.at(weights, (rows, np.clip(i - 1 + m, 0, points - 1)), w)
    return weights


def _upsample(control, shape) -> np.ndarray:
    """`control` (K, *grid) -> (K, *shape), a cubic B-spline per leading index."""
    # einsum without `optimize` loops in C without BLAS: no thread pool to fight the training
    # for, and the same sums in the same order on every machine (bit-for-bit reproducible)
    field, axes = control, list(range(len(shape) + 1))
    for axis in reversed(range(len(shape))):
        weights = _bspline_weights(shape[axis], control.shape[axis + 1])
        out = [*axes[: axis + 1], len(axes), *axes[axis + 2 :]]
        field = np.einsum(field, axes, weights, [len(axes), axis + 1], out)
    return field


def _warp(x, y, window, params):
    """The window of x and y read through the spatial transform (copies, x as float32)."""
    from scipy import ndimage  # here, not at import: 0.25 s that `import dilnet.model` saves

    if params.matrix is None and params.displacement is None:
        return np.array(x[(slice(None), *window)], np.float32), np.array(y[window])
    rank = y.ndim
    shape = tuple(s.stop - s.start for s in window)
    centre = (np.array(shape) - 1) / 2
    origin = np.array([s.start for s in window]) + centre
    matrix = np.eye(rank) if params.matrix is None else np.asarray(params.matrix, float)
    shift = np.zeros(rank) if params.translation is None else np.asarray(params.translation)
    offsets = [
        (np.arange(n) - c).reshape([-1 if a == j else 1 for a in range(rank)])
        for j, (n, c) in enumerate(zip(shape, centre, strict=True))
    ]
    coords = np.empty((rank, *shape))
    for k in range(rank):
        coords[k] = origin[k] + shift[k]
        for j in range(rank):
            if matrix[k, j] != 0:
                coords[k] += matrix[k, j] * offsets[j]
    if params.displacement is not None:
        coords += _upsample(np.asarray(params.displacement, float), shape)
    image = np.empty((x.shape[0], *shape), np.float32)
    for c in range(x.shape[0]):
        ndimage.map_coordinates(x[c], coords, output=image[c], order=1, mode="nearest")
    labels = ndimage.map_coordinates(y, coords, output=y.dtype, order=0, mode="nearest")
    return image, labels


def _tissue(image, labels, params, rng):
    """Per label, Gaussian intensities mixed with the real image (SynthSeg)."""
    values = np.asarray(params.tissue_labels)
    index = np.minimum(np.searchsorted(values, labels), values.size - 1)
    if not np.array_equal(values[index], labels):
        missing = np.setdiff1d(np.unique(labels), values)[:5].tolist()
        raise ConfigError(
            invalid("Augment.apply", "params.tissue_labels", "every label of the window", missing)
        )
    means = np.asarray(params.tissue_means, np.float32)
    stds = np.asarray(params.tissue_stds, np.float32)
    mix = np.asarray(params.tissue_mix, np.float32)
    out = np.empty_like(image)
    for c in range(image.shape[0]):
        synthetic = means[c][index] + stds[c][index] * rng.standard_normal(
            labels.shape, dtype=np.float32
        )
        out[c] = (1 - mix[c]) * synthetic + mix[c] * image[c]
    return out


def _linear_along(array, positions, axis) -> np.ndarray:
    """`array` linearly interpolated along `axis` at `positions` (clamped to the axis)."""
    n = array.shape[axis]
    positions = np.clip(positions, 0, n - 1)
    low = np.minimum(np.floor(positions).astype(np.intp), max(n - 2, 0))
    high = np.minimum(low + 1, n - 1)
    shape = [1] * array.ndim
    shape[axis] = -1
    frac = (positions - low).astype(array.dtype).reshape(shape)
    return np.take(array, low, axis) * (1 - frac) + np.take(array, high, axis) * frac


def _thick_slices(image, axis, thickness, offset) -> np.ndarray:
    """Along spatial `axis` of `image` (C, *spatial): the slice profile (a Gaussian of full width
    at half maximum `thickness`), sampled at ``offset + k * thickness`` and interpolated back
    linearly onto the voxels."""
    from scipy import ndimage

    axis += 1
    n = image.shape[axis]
    blurred = ndimage.gaussian_filter1d(image, thickness / FWHM_PER_SIGMA, axis, mode="nearest")
    centres = np.arange(offset, n - 1 + 1e-9, thickness)
    slices = _linear_along(blurred, centres, axis)
    return _linear_along(slices, (np.arange(n) - offset) / thickness, axis)


def _gamma(image, gamma):
    """Each channel min-max scaled to [0, 1] and raised to its exponent."""
    out = np.empty_like(image)
    for c, channel in enumerate(image):
        low, high = channel.min(), channel.max()
        scaled = (channel - low) / (high - low) if high > low else np.zeros_like(channel)
        out[c] = scaled ** np.float32(gamma[c])
    return out


def _normalize(image, labels, percentiles):
    """`normalize_percentile` over the labels other than 0, else over the nonzero voxels; a
    blank window (nothing to scale) is clipped to [0, 1]."""
    foreground = labels != 0
    for mask in (foreground, None) if foreground.any() else (None,):
        try:
            return normalize_percentile(image, mask, *percentiles)
        except ConfigError:  # a window of background only, or of one constant value
            continue
    return np.clip(image, 0.0, 1.0)
