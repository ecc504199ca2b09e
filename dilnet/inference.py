"""Tiled inference: predict a volume larger than memory allows, tile by tile, exactly.

`predict_volume` splits a volume into output tiles, runs each tile's input crop (the tile plus
the network's halo, clipped to the volume; or, with ``same_shape``, moved inwards so that every
crop has one shape) through any model with ``model.network`` (a
`dilnet.compiler.Network`) and ``model.predict_on_batch``, and stitches the tiles' parts of the
predictions. `plan_tiles` makes the plan (tile shape, crops, memory estimate) without running
anything and `compute_halo` gives the halo and the period it rests on (both in
`dilnet.tiling`, importable from here too). `dilnet.distributed` does the same over a Dask
array.

Why the result equals the whole-volume prediction, not just approximately
------------------------------------------------------------------------
Output voxel ``o`` depends on the input voxels ``o - before .. o + after`` only (the receptive
field, `compute_halo`), so a crop holding that range gives the same value for ``o`` as the whole
volume -- provided every layer sees the same values at the positions it reads. Two things could
break that, and the plan avoids both:

- **Padding.** Each 'same' layer zero-pads *its own input* at the edges of what it is run on.
  Where a crop ends inside the volume, that padding is wrong, but only for positions within the
  reach of the layers after it, which the halo keeps away from the tile. Where a crop meets the
  volume's edge, the padding is exactly the whole volume's -- which is why crops are *clipped*
  to the volume, never zero-padded: zero input voxels are not zero activations after a layer
  with biases, batch norm or a non-zero activation at 0, so a zero-padded input would change the
  second layer's view of the border.
- **Grids.** Pooling and strides by ``s`` compute on a grid of every ``s``-th position, and
  upsampling repeats grid values; the computation is only periodic with period ``L`` per axis
  (the least common multiple of the layers' jumps; `compute_halo`). Crops therefore start at
  multiples of ``L`` and have lengths that are multiples of ``L`` (or end at the volume's edge),
  so every layer's grid and its 'same' padding (which for strides depends on the length's
  remainder) match the whole volume's. Halos are rounded up to multiples of ``L``.

Differences that remain come only from the order in which kernels add the same products for
inputs of different shapes (BLAS blocking), i.e. rounding: none at all in the tests here in
float64, below 1e-6 in float32.
"""

import numpy as np

from .allocator import release_freed_memory
from .errors import ConfigError, ShapeError, VolumeError, invalid
from .geometry import Halo as Halo
from .tiling import DEFAULT_MEMORY_LIMIT as DEFAULT_MEMORY_LIMIT
from .tiling import Tile as Tile
from .tiling import TilePlan as TilePlan
from .tiling import check_dense as check_dense
from .tiling import compute_halo as compute_halo
from .tiling import network_of as network_of
from .tiling import padded_to_period
from .tiling import parse_batch_size as parse_batch_size
from .tiling import parse_memory as parse_memory
from .tiling import plan_tiles as plan_tiles

__all__ = [
    "DEFAULT_MEMORY_LIMIT",
    "Halo",
    "Tile",
    "TilePlan",
    "check_dense",
    "compute_halo",
    "network_of",
    "parse_batch_size",
    "parse_memory",
    "plan_tiles",
    "predict_volume",
]


# ---------------------------------------------------------------------------------------------
# Running


def _writeable(array) -> bool:
    flags = getattr(array, "flags", None)
    return flags is None or bool(getattr(flags, "writeable", True))


def _check_volume(network, volume, where="predict_volume", name="volume"):
    """``(has_channel_axis, spatial)`` of `volume`, or a ShapeError."""
    rank, channels = network.rank, network.input_shape[1]
    shape = tuple(int(n) for n in volume.shape)
    fixed = network.input_shape[2:]
    expected = (
        f"an array of shape (channels, *spatial) = ({channels}, {', '.join(['...'] * rank)}) "
        f"with {rank} spatial axes (the network's input is {network.input_shape})"
        + (", or (*spatial) for its single channel" if channels == 1 else "")
    )
    if len(shape) == rank + 1 and shape[0] == channels:
        has_channels, spatial = True, shape[1:]
    elif len(shape) == rank and channels == 1:
        has_channels, spatial = False, shape
    else:
        raise ShapeError(
            f"{where}: invalid value for `{name}`. Expected {expected}; received {name} of shape "
            f"{shape}."
        )
    if any(f is not None and f != n for f, n in zip(fixed, spatial, strict=True)):
        raise ShapeError(
            f"{where}: invalid value for `{name}`. Expected the spatial lengths the network's "
            f"Input block fixes, {fixed} (None: any); received {name} of shape {shape}."
        )
    kind = getattr(getattr(volume, "dtype", None), "kind", None)
    if kind not in ("b", "i", "u", "f"):
        # complex values would lose their imaginary part in the cast, objects fail inside it
        raise ConfigError(
            f"{where}: invalid value for `{name}`. Expected real numbers (bool, integer or "
            f"float); received {name} of dtype {getattr(volume, 'dtype', type(volume))}."
        )
    return has_channels, spatial


def predict_volume(
    model,
    volume,
    *,
    tile=None,
    memory_limit=None,
    batch_size=1,
    progress=True,
    out=None,
    same_shape=None,
    normalize=None,
):
    """Predict a whole volume tile by tile, equal to one ``predict_on_batch`` on all of it.

    .. warning::
       An array carries no affine: nothing here checks its **orientation or voxel size**. It
       must already be on the grid the model was trained on (``model.input_contract``, e.g.
       RAS at 2 mm for the zoo); otherwise the prediction is wrong without any error. Images
       with an affine (NIfTI) are brought onto that grid by
       `dilnet.preprocessing.predict_image`, which ``dilnet predict`` uses.

    Parameters
    ----------
    model : object
        Anything with ``model.network`` (a `dilnet.compiler.Network` whose first block is an
        `Input`) and ``model.predict_on_batch(x)``, mapping ``(N, C, *spatial)`` to
        ``(N, K, *spatial)`` deterministically (batch-norm running averages, no dropout).
    volume : array_like of shape (C, *spatial), or (*spatial) when C == 1
        Anything that slices into numpy arrays: an ndarray, an ``np.memmap``, an h5py or zarr
        dataset. Only the crops are read, cast to the network's input dtype.
    tile, memory_limit, batch_size
        As in `plan_tiles`: the output tile shape, or the working memory one batch may use
        (default 1 GiB: the whole volume at once if it fits), and crops per call.
    progress : bool
        Show a tqdm progress bar over the tiles.
    out : array of shape (K, *spatial), optional
        Where to write the prediction (e.g. an ``np.memmap`` for outputs larger than memory);
        by default a new array of the model's output dtype.
    same_shape : bool, optional
        Run every call on one input shape (see `plan_tiles`): crops at the edges are moved
        inwards rather than clipped, and a last short batch is filled up to `batch_size` with
        copies of its last crop (whose predictions are dropped) unless the batch is the only one
        of its shape. Default: the model's ``compiles_per_shape`` (True for a `Model` on the
        JAX linker, where each new shape costs a compile; False for the NUMPY mode and the C
        VM, where it costs nothing and clipped crops are less work).
    normalize : bool or None
        None (default): scale the intensities as ``model.input_contract`` says (the
        percentiles of the whole volume, `dilnet.model.contract.intensity_scaling`, applied
        crop by crop, so every tile sees the same scaling); nothing when the model has no
        contract. False:
        the values as they are (already scaled, e.g. by `predict_image`). Either way NaN or
        infinite voxels are refused.

    Returns
    -------
    ndarray of shape (K, *spatial)
        `out` when given. The channel axis is there also for ``C == 1`` inputs without one.

    Raises
    ------
    ShapeError
        `volume` (or `out`) of the wrong rank, channels or shape; a network whose output is not
        one prediction per input voxel for this volume (e.g. one ending in a strided
        convolution, or pooling on lengths that are not multiples of its period).
    ConfigError
        Invalid `tile`, `memory_limit`, `batch_size` or `normalize`, or a `memory_limit` too
        small for the smallest tile.
    VolumeError
        Naming `volume`: NaN or infinite values (they would spread through every receptive
        field they touch), or a volume the contract's scaling cannot scale (blank, constant).

    Networks with pooling or strides need lengths that are multiples of their period (the
    product of their pooling sizes and strides, per axis): other lengths are padded with zeros
    after the end of each axis up to the next multiple, and the prediction is cropped back to
    the volume's own lengths (read crop by crop: a memmap stays on disk). Voxels within the
    network's reach of such an end then see those zeros, as they would if you padded yourself.

    Notes
    -----
    The tiles do not overlap and nothing is blended. Each tile's crop extends by the halo
    (`compute_halo`) on each side, clipped to the volume -- not padded, so that at the
    volume's edges the network's own 'same' zero padding acts exactly as on the whole volume --
    and starts at a multiple of the network's period, so pooling grids line up. See the module
    docstring for why the stitched result is then the whole-volume prediction; the only
    differences are the order of floating point sums inside the kernels.
    """
    from tqdm.auto import tqdm

    where = "predict_volume"
    network = network_of(model, where)
    if not callable(getattr(model, "predict_on_batch", None)):
        raise ConfigError(
            invalid(where, "model", "a model with `network` and `predict_on_batch`", model)
        )
    if not hasattr(volume, "shape") or not hasattr(volume, "__getitem__"):
        volume = np.asarray(volume)
    has_channels, spatial = _check_volume(network, volume, where)
    if normalize not in (None, False):
        raise ConfigError(invalid(where, "normalize", "None (the contract's scaling) or False",
                                  normalize))  # fmt: skip
    contract = getattr(model, "input_contract", None) if normalize is None else None
    if contract is not None:
        from .model.contract import ScaledVolume, intensity_scaling

        # percentiles of the whole volume (read slab by slab), so that every tile is scaled
        # alike, then applied crop by crop: the scaled volume is never held whole; NaN refused
        scaling = intensity_scaling(volume, contract, network.rank, where="volume")
        volume = ScaledVolume(volume, scaling, has_channels)
    if same_shape is None:
        same_shape = bool(getattr(model, "compiles_per_shape", False))
    original = spatial
    padded = padded_to_period(network, spatial)
    if padded != spatial:
        # pooling or strides need multiples of the period: zeros after the end of each axis,
        # the prediction cropped back (read lazily: a memmap stays on disk)
        volume, spatial = _ZeroPadded(volume, has_channels, padded), padded
    plan = plan_tiles(
        network, spatial, tile=tile, memory_limit=memory_limit, batch_size=batch_size,
        same_shape=same_shape, where=where, name="volume",
    )  # fmt: skip
    channels = network.output_shape[1]
    out_dtype = getattr(out, "dtype", None)
    if out is not None and (getattr(out_dtype, "kind", None) != "f" or not _writeable(out)):
        # an integer array would truncate every probability to 0 or 1 without a word
        raise ConfigError(
            f"{where}: invalid value for `out`. Expected a writeable float array (the class "
            f"probabilities); received out of dtype {out_dtype}"
            f"{'' if _writeable(out) else ', read-only'}."
        )
    if out is not None and tuple(out.shape) != (channels, *original):
        raise ShapeError(
            f"{where}: invalid value for `out`. Expected an array of shape {(channels, *original)} "
            f"(the network's {channels} output channels, then the volume's spatial shape); "
            f"received out of shape {tuple(out.shape)}."
        )
    target = out
    if padded != original:
        out = None  # predicted at the padded size, then cropped into `target`
    dtype = network.input_layer.input_var.dtype
    groups = {}
    for t in plan.tiles:
        groups.setdefault(t.crop_shape, []).append(t)

    trim = len(plan.tiles) > 1
    with tqdm(total=len(plan.tiles), disable=not progress, desc=where, unit="tile") as bar:
        for crop_shape, tiles in groups.items():
            fill = plan.same_shape and len(tiles) > plan.batch_size
            for first in range(0, len(tiles), plan.batch_size):
                batch = tiles[first : first + plan.batch_size]
                crops = [_read(volume, t.crop_slices, has_channels, dtype) for t in batch]
                if fill:  # the full batch's shape is compiled: reuse it
                    crops += crops[-1:] * (plan.batch_size - len(crops))
                x = np.stack(crops)
                y = np.asarray(model.predict_on_batch(x))
                if y.shape != (len(x), channels, *crop_shape):
                    raise ShapeError(
                        f"{where}: model.predict_on_batch returned shape {y.shape} for an input "
                        f"of shape {x.shape}; expected {(len(x), channels, *crop_shape)} "
                        "(one prediction per input voxel, as network.output_shape says)."
                    )
                if out is None:
                    out = np.empty((channels, *spatial), dtype=y.dtype)
                for t, pred in zip(batch, y[: len(batch)], strict=True):
                    out[(slice(None), *t.slices)] = pred[(slice(None), *t.inner_slices)]
                bar.update(len(batch))
                if trim:
                    del x, y, crops, pred
                    # hand the batch's freed arrays back: glibc keeps them in its heaps (one per
                    # kernel thread), where crops of other shapes fragment them and the
                    # process grows far past the limit (bench/memory_limit.py)
                    release_freed_memory()
    if padded == original:
        return out
    cropped = out[(slice(None), *(slice(0, n) for n in original))]
    if target is None:
        return np.ascontiguousarray(cropped)
    target[...] = cropped
    return target


class _ZeroPadded:
    """A volume read as if zeros followed it up to `spatial` on each axis; crops are read from
    the volume itself (a memmap or zarr array is read crop by crop, never whole)."""

    def __init__(self, volume, has_channels, spatial):
        self.volume, self.has_channels = volume, has_channels
        lead = (volume.shape[0],) if has_channels else ()
        self.shape = (*lead, *spatial)
        self.dtype = volume.dtype
        self.inner = tuple(volume.shape[1:] if has_channels else volume.shape)

    def __getitem__(self, key):
        key = key if isinstance(key, tuple) else (key,)
        spatial_key = key[1:] if self.has_channels else key
        inside = tuple(slice(min(s.start, n), min(s.stop, n))
                       for s, n in zip(spatial_key, self.inner, strict=True))  # fmt: skip
        part = np.asarray(self.volume[(key[0], *inside) if self.has_channels else inside])
        lead = part.shape[:1] if self.has_channels else ()
        crop = np.zeros((*lead, *(s.stop - s.start for s in spatial_key)), dtype=part.dtype)
        crop[(slice(None),) * len(lead) + tuple(slice(0, i.stop - i.start) for i in inside)] = part
        return crop


def _read(volume, slices, has_channels, dtype):
    crop = volume[(slice(None), *slices)] if has_channels else volume[slices][None]
    crop = np.asarray(crop, dtype=dtype)
    # checked crop by crop, so that a memmap or zarr volume is still read only once
    bad = crop.size - np.count_nonzero(np.isfinite(crop))
    if bad:
        raise VolumeError(
            f"volume: {bad} voxel(s) of the crop at {tuple((s.start, s.stop) for s in slices)} "
            f"are NaN or infinite (as {dtype}); they would spread through every receptive field "
            "they touch (replace them, e.g. with np.nan_to_num, before predicting)."
        )
    return crop
