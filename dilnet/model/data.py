"""Data for training: `PatchSampler` draws random or class-balanced patches; `check_labels`
checks label values against a model's classes; `normalize` scales intensities (by name, through
`dilnet.model.contract.normalize_intensities`, the function inference uses); `augmentation`
builds a patch augmentation from named steps (`AUGMENTATIONS`); `dilnet.model.augment.Augment`
is the SynthSeg-style one, which reads the anatomy around each patch.

A fixed `seed` makes the sequence of batches, augmented or not, and so a training run,
reproducible.
"""

import numpy as np

from ..errors import ConfigError, ShapeError, invalid
from ..utils import is_int
from .augment import Augment
from .contract import NORMALIZATIONS, InputContract, normalize_intensities

__all__ = [
    "AUGMENTATIONS",
    "NORMALIZATIONS",
    "PatchSampler",
    "augmentation",
    "check_labels",
    "normalize",
]

#: voxels remembered per class and volume for balanced sampling (a uniform subsample)
MAX_CENTRES = 20000


def check_labels(
    labels, num_classes, *, ignore_label=None, where="check_labels", name="labels", hint=None
) -> None:
    """Raise `ConfigError` unless every value of `labels` is a class ``0..num_classes-1`` or
    `ignore_label`.

    The one label-range check of dilnet: `PatchSampler.check_labels`, `Model`'s checks of
    ``y`` and the training of `dilnet.training` all use it.

    Parameters
    ----------
    labels : int array, any shape
    num_classes : int
        The model's classes (its output channels).
    ignore_label : int, optional
        A value allowed besides the classes (voxels without a class).
    where, name : str
        Who checks and what is checked, for the message (``Model.fit``, ``labels[1]``).
    hint : str, optional
        A sentence appended to the message: what to do about it.

    Notes
    -----
    The message follows the house template and lists up to five of the values found outside
    the range, e.g. ``Model.fit: invalid value for `labels[1]`. Expected values 0..1 or
    ignore_label=255; received labels[1]=[3].``
    """
    labels = np.asarray(labels)
    valid = (labels >= 0) & (labels < num_classes)
    if ignore_label is not None:
        valid |= labels == ignore_label
    if valid.all():
        return
    found = np.unique(labels[~valid])[:5].tolist()
    allowed = f"values 0..{num_classes - 1}" + (
        f" or ignore_label={ignore_label}" if ignore_label is not None else ""
    )
    message = invalid(where, name, allowed, found)
    raise ConfigError(f"{message} {hint}" if hint else message)


def normalize(array, how):
    """`array` ``(C, *spatial)`` as float32, scaled per channel as `how` (one of
    `NORMALIZATIONS`) says: ``"none"`` leaves the values, ``"minmax"`` maps each channel's
    minimum and maximum over all its voxels to 0 and 1, ``"percentile"`` maps the 0.5th and
    99.5th percentiles of its nonzero voxels to 0 and 1 and clips (the zoo's `InputContract`).

    A shorthand for `dilnet.model.contract.normalize_intensities` with such a contract: one
    implementation for training and inference. A constant channel or one without nonzero
    voxels raises `dilnet.errors.VolumeError` for ``"minmax"`` and ``"percentile"``.
    """
    if how not in NORMALIZATIONS:
        raise ConfigError(invalid("normalize", "how", f"one of {', '.join(NORMALIZATIONS)}", how))
    array = np.asarray(array)
    contract = InputContract(normalization=how, foreground="all" if how == "minmax" else "nonzero")
    return normalize_intensities(array, contract, rank=array.ndim - 1, where="normalize")


# ---------------------------------------------------------------------------------------------
# augmentation: steps ``(x, y, rng) -> (x, y)`` on one patch, x (C, *patch), y (*patch)


def _intensity(x, y, rng):
    """Intensities scaled by U(0.9, 1.1) and shifted by U(-0.05, 0.05)."""
    return x * rng.uniform(0.9, 1.1) + rng.uniform(-0.05, 0.05), y


def _subvoxel_shift(x, y, rng):
    """Along each spatial axis, the patch blended with itself moved by one voxel (either way,
    weight U(0, 0.5)): a shift by a fraction of a voxel, as another grid would cut the anatomy."""
    for axis in range(1, x.ndim):
        weight = rng.uniform(0.0, 0.5)
        index = np.clip(np.arange(x.shape[axis]) + rng.choice((-1, 1)), 0, x.shape[axis] - 1)
        x = (1 - weight) * x + weight * np.take(x, index, axis=axis)
    return x, y


def _noise(x, y, rng):
    """Gaussian noise of standard deviation 0.02 (intensities in [0, 1])."""
    return x + rng.normal(0.0, 0.02, x.shape), y


def _flip(axis):
    def flip(x, y, rng):
        if rng.random() < 0.5:
            x, y = np.flip(x, axis + 1), np.flip(y, axis)
        return x, y

    flip.__doc__ = f"Spatial axis {axis} mirrored, image and labels, half of the time."
    return flip


#: named augmentation steps; `augmentation` applies them in the order they are named
AUGMENTATIONS = {
    "intensity": _intensity,
    "subvoxel_shift": _subvoxel_shift,
    "noise": _noise,
    "flip0": _flip(0),
    "flip1": _flip(1),
    "flip2": _flip(2),
}


class _Augmentation:
    """The steps named, one after the other, as a `PatchSampler` ``augment``."""

    def __init__(self, names):
        self.names = tuple(names)
        self.steps = [AUGMENTATIONS[name] for name in self.names]

    def __call__(self, x, y, rng):
        for step in self.steps:
            x, y = step(x, y, rng)
        return np.ascontiguousarray(x, dtype=np.float32), np.ascontiguousarray(y)

    def __repr__(self):
        return f"augmentation({list(self.names)})"


def augmentation(names, *, rank=None, where="augmentation"):
    """A `PatchSampler` ``augment`` applying the named steps of `AUGMENTATIONS` in the order
    given (None for no names).

    ``"intensity"`` (scale U(0.9, 1.1), shift U(-0.05, 0.05)), ``"subvoxel_shift"`` (each
    spatial axis blended with its one-voxel shift, weight U(0, 0.5)), ``"noise"`` (Gaussian,
    standard deviation 0.02), ``"flip0"``, ``"flip1"``, ``"flip2"`` (spatial axis 0, 1 or 2
    mirrored with its labels half of the time; axis 0 of a NIfTI file is left-right). Every
    random draw comes from the sampler's generator, so augmented runs are reproducible. With
    `rank`, flips of axes the volumes do not have are refused.
    """
    if isinstance(names, str) or not all(isinstance(n, str) for n in names):
        raise ConfigError(invalid(where, "names", "a list of augmentation names", names))
    names = list(names)
    for name in names:
        allowed = [n for n in AUGMENTATIONS if rank is None or not n.startswith("flip")
                   or int(n[4:]) < rank]  # fmt: skip
        if name not in allowed:
            raise ConfigError(invalid(where, "names", f"names among {', '.join(allowed)}", names))
    return _Augmentation(names) if names else None


def _arrays(values, where, name) -> list:
    """A list of arrays from an array ``(N, ...)`` or a sequence of arrays."""
    if isinstance(values, np.ndarray):
        return list(values) if values.ndim else [values]
    if isinstance(values, str | bytes) or not hasattr(values, "__iter__"):
        raise ConfigError(invalid(where, name, "an array (N, ...) or a list of arrays", values))
    return [np.asarray(v) for v in values]


def _probabilities(values, where) -> np.ndarray:
    """`class_probs` as a 1-d float array of finite numbers >= 0."""
    expected = "finite numbers >= 0, one per class"
    try:
        probs = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as err:
        raise ConfigError(invalid(where, "class_probs", expected, values)) from err
    if probs.ndim != 1 or isinstance(values, str | bytes) or not np.isfinite(probs).all():
        raise ConfigError(invalid(where, "class_probs", expected, values))
    if (probs < 0).any():
        raise ConfigError(invalid(where, "class_probs", expected, values))
    return probs


class PatchSampler:
    """Batches of patches ``(x (batch, C, *patch), y (batch, *patch))`` from labelled volumes.

    Parameters
    ----------
    volumes : array (N, C, *spatial) or list of arrays (C, *spatial)
        Images; volumes in a list may differ in size.
    labels : array (N, *spatial) or list of int arrays (*spatial)
        One label map per volume, the same spatial size.
    patch_size : int or tuple of int
        Per spatial axis; must fit every volume.
    batch_size : int
    strategy : 'random' or 'balanced'
        'random': a volume and a patch position uniformly at random. 'balanced': a class
        uniformly among the classes present (or by `class_probs`), then a voxel of that class,
        and the patch centred on it (shifted to lie inside the volume) -- small structures
        are seen as often as the background.
    class_probs : sequence of float, optional
        For 'balanced': the probability of each class (normalised; absent classes are skipped).
    ignore_label : int, optional
        Never chosen as a centre class.
    seed : int, optional
        Seeds the sampler's own generator.
    augment : callable or Augment, optional
        ``augment(x, y, rng) -> (x, y)`` applied to each patch (``x`` of shape ``(C, *patch)``,
        ``y`` of ``patch``, copies) with the sampler's generator, so augmented runs are
        reproducible too; it must keep the shapes. A `dilnet.model.augment.Augment` is called
        on the whole volume with ``window=`` the patch instead, so its rotations and
        deformations read the anatomy around the patch rather than repeating its edges.
    steps_per_epoch : int, optional
        What `Model.fit` uses for an epoch when not given (default: enough patches to cover
        the voxels once, at least 1).
    """

    def __init__(
        self,
        volumes,
        labels,
        patch_size,
        *,
        batch_size=2,
        strategy="random",
        class_probs=None,
        ignore_label=None,
        seed=None,
        steps_per_epoch=None,
        augment=None,
    ):
        where = "PatchSampler"
        if augment is not None and not callable(augment):
            raise ConfigError(
                invalid(where, "augment", "a callable (x, y, rng) -> (x, y)", augment)
            )
        self.augment = augment
        self.volumes = _arrays(volumes, where, "volumes")
        self.labels = _arrays(labels, where, "labels")
        if not self.volumes:
            raise ConfigError(invalid(where, "volumes", "at least one volume", volumes))
        if len(self.volumes) != len(self.labels):
            raise ShapeError(
                invalid(
                    where,
                    "labels",
                    f"one label map per volume ({len(self.volumes)} volumes)",
                    f"{len(self.labels)} maps",
                )
            )
        rank = self.volumes[0].ndim - 1
        for i, (v, t) in enumerate(zip(self.volumes, self.labels, strict=True)):
            if rank < 1 or v.ndim != rank + 1 or t.shape != v.shape[1:]:
                raise ShapeError(
                    f"{where}: volume {i} has shape {v.shape} and labels {t.shape}; expected "
                    f"(C, *spatial) with {max(rank, 1)} or more spatial axes, the same in every "
                    "volume, and labels (*spatial)."
                )
            if not np.issubdtype(v.dtype, np.number) or np.issubdtype(v.dtype, np.complexfloating):
                raise ConfigError(
                    invalid(where, f"volumes[{i}].dtype", "a real number dtype", v.dtype)
                )
            if not np.issubdtype(t.dtype, np.integer):
                raise ConfigError(invalid(where, f"labels[{i}].dtype", "an integer dtype", t.dtype))
        channels = [v.shape[0] for v in self.volumes]
        if len(set(channels)) > 1:
            raise ShapeError(
                f"{where}: invalid value for `volumes`. Expected volumes (C, *spatial) with one "
                f"channel count C; received volumes of shapes {[v.shape for v in self.volumes]}."
            )
        self.rank = rank
        given = patch_size
        if is_int(patch_size):
            patch_size = (patch_size,) * rank
        try:
            patch_size = tuple(patch_size)
        except TypeError:  # not iterable
            patch_size = (patch_size,)
        if len(patch_size) != rank or not all(is_int(p) and p > 0 for p in patch_size):
            raise ConfigError(
                invalid(where, "patch_size", f"a positive int or {rank} of them", given)
            )
        patch_size = tuple(int(p) for p in patch_size)
        for i, v in enumerate(self.volumes):
            if any(p > n for p, n in zip(patch_size, v.shape[1:], strict=True)):
                raise ShapeError(
                    invalid(
                        where,
                        "patch_size",
                        f"at most the spatial size {v.shape[1:]} of volume {i}",
                        patch_size,
                    )
                )
        self.patch_size = patch_size
        if not (is_int(batch_size) and batch_size > 0):
            raise ConfigError(invalid(where, "batch_size", "a positive int", batch_size))
        self.batch_size = int(batch_size)
        if strategy not in ("random", "balanced"):
            raise ConfigError(invalid(where, "strategy", "'random' or 'balanced'", strategy))
        self.strategy = strategy
        if ignore_label is not None and not is_int(ignore_label):
            raise ConfigError(invalid(where, "ignore_label", "an int or None", ignore_label))
        self.ignore_label = None if ignore_label is None else int(ignore_label)
        if steps_per_epoch is not None and not (is_int(steps_per_epoch) and steps_per_epoch > 0):
            raise ConfigError(
                invalid(where, "steps_per_epoch", "a positive int or None", steps_per_epoch)
            )
        if class_probs is not None:
            if strategy != "balanced":
                raise ConfigError(
                    invalid(where, "class_probs", "None for strategy='random'", class_probs)
                )
            class_probs = _probabilities(class_probs, where)
        try:
            self.rng = np.random.default_rng(seed)
        except (TypeError, ValueError) as err:
            raise ConfigError(invalid(where, "seed", "an int >= 0 or None", seed)) from err
        voxels = sum(int(np.prod(v.shape[1:])) for v in self.volumes)
        self.steps_per_epoch = (
            int(steps_per_epoch)
            if steps_per_epoch is not None
            else max(1, voxels // (int(np.prod(patch_size)) * self.batch_size))
        )
        if strategy == "balanced":
            self._centres = self._find_centres()
            classes = sorted(self._centres)
            if not classes:
                raise ConfigError(
                    f"{where}: invalid value for `labels`. Expected at least one voxel with a "
                    f"label other than ignore_label={self.ignore_label} (a class to centre "
                    f"'balanced' patches on); received labels whose every voxel is "
                    f"{self.ignore_label}."
                )
            if class_probs is None:
                probs = np.ones(len(classes))
            else:
                if len(class_probs) <= max(classes):
                    raise ConfigError(
                        invalid(
                            where,
                            "class_probs",
                            f"one probability per class 0..{max(classes)} (the labels hold "
                            f"classes {classes})",
                            class_probs.tolist(),
                        )
                    )
                probs = class_probs[classes]
            if probs.sum() <= 0:
                raise ConfigError(
                    invalid(
                        where,
                        "class_probs",
                        f"a positive probability for a class present in the labels {classes}",
                        class_probs.tolist(),
                    )
                )
            self._classes, self._probs = classes, probs / probs.sum()

    def check_labels(self, num_classes, ignore_label=None, where="PatchSampler"):
        """Raise `ConfigError` naming ``labels[i]`` unless every value of every label map is a
        class ``0..num_classes-1`` or `ignore_label` (`check_labels`)."""
        for i, t in enumerate(self.labels):
            check_labels(
                t, num_classes, ignore_label=ignore_label, where=where, name=f"labels[{i}]"
            )

    def _find_centres(self):
        centres = {}
        for i, t in enumerate(self.labels):
            flat = t.reshape(-1)
            for c in np.unique(flat):
                c = int(c)
                if c == self.ignore_label:
                    continue
                idx = np.flatnonzero(flat == c)
                if idx.size > MAX_CENTRES:
                    idx = self.rng.choice(idx, MAX_CENTRES, replace=False)
                centres.setdefault(c, []).append((i, idx))
        return centres

    def _corner(self, shape, centre=None):
        if centre is None:
            return tuple(
                int(self.rng.integers(0, n - p + 1))
                for n, p in zip(shape, self.patch_size, strict=True)
            )
        return tuple(
            min(max(0, c - p // 2), n - p)
            for c, n, p in zip(centre, shape, self.patch_size, strict=True)
        )

    def sample(self):
        """One batch ``(x, y)``."""
        xs, ys = [], []
        for _ in range(self.batch_size):
            if self.strategy == "random":
                i = int(self.rng.integers(len(self.volumes)))
                corner = self._corner(self.volumes[i].shape[1:])
            else:
                c = self._classes[int(self.rng.choice(len(self._classes), p=self._probs))]
                options = self._centres[c]
                i, idx = options[int(self.rng.integers(len(options)))]
                flat = int(idx[int(self.rng.integers(idx.size))])
                shape = self.volumes[i].shape[1:]
                corner = self._corner(shape, np.unravel_index(flat, shape))
            window = tuple(slice(c, c + p) for c, p in zip(corner, self.patch_size, strict=True))
            if isinstance(self.augment, Augment):
                x, y = self.augment(self.volumes[i], self.labels[i], self.rng, window=window)
            else:
                x, y = self.volumes[i][(slice(None), *window)], self.labels[i][window]
                if self.augment is not None:
                    x, y = self.augment(np.array(x), np.array(y), self.rng)
            if self.augment is not None:
                if x.shape[1:] != self.patch_size or y.shape != self.patch_size:
                    raise ShapeError(
                        f"PatchSampler: augment returned shapes {x.shape} and {y.shape}; "
                        f"expected (C, *{self.patch_size}) and {self.patch_size}."
                    )
            xs.append(x)
            ys.append(y)
        return np.stack(xs), np.stack(ys)

    def __iter__(self):
        while True:
            yield self.sample()
