"""Tile plans for exact tiled inference: pure, nothing runs here.

`plan_tiles` cuts a volume's spatial shape into output tiles and the input crops that compute
them (each tile plus the network's halo, clipped to the volume or, with ``same_shape``, moved
inwards so that every crop has one shape), with the tile chosen for a memory limit.
`compute_halo` gives the halo and the period it rests on (`dilnet.geometry`), `check_dense`
checks that a network predicts one voxel per input voxel for a shape. `dilnet.inference` runs
the plans (and explains why the stitched result is exact); `dilnet.distributed` runs them over
a Dask array. Every name here, and `dilnet.geometry.Halo`, is also importable from
`dilnet.inference`.
"""

import math
import re
from fractions import Fraction
from numbers import Real

import attrs
import numpy as np

from . import geometry
from .errors import ConfigError, ShapeError, invalid
from .geometry import Halo
from .network import Network
from .utils import format_bytes, is_int

__all__ = [
    "DEFAULT_MEMORY_LIMIT",
    "FIXED_OVERHEAD",
    "MIN_TILE_SIDE",
    "Tile",
    "TilePlan",
    "check_dense",
    "compute_halo",
    "network_of",
    "parse_batch_size",
    "parse_memory",
    "plan_tiles",
]

#: working memory per batch that `plan_tiles` aims for when neither `tile` nor `memory_limit`
#: is given (bytes): the whole volume in one go when it fits, else the largest tiles that do.
DEFAULT_MEMORY_LIMIT = 2**30

#: what `predict_volume` may add to the process's peak memory beyond 1.25 times its
#: `memory_limit` (the output array excluded): kernel workspaces that grow with the crop but are
#: not in the estimate (oneDNN's reordered copies of a layer's input and output), the kernels'
#: cache of compiled convolutions, one per crop shape, thread buffers and the slabs the
#: contract's percentiles are read in (`dilnet.model.contract.SLAB_VALUES`). Measured by
#: ``bench/memory_limit.py`` on the zoo network, both CPU kernels (docs/benchmarks.md).
FIXED_OVERHEAD = 128 * 2**20

#: the smallest output tile side (voxels, rounded up to the period; the whole axis where
#: shorter) that a `memory_limit` may choose: a limit too small for it is refused with the
#: smallest workable value. Smaller tiles are mostly halo: the zoo's context3d-basic (a halo
#: of 34 voxels each side) computes a 76^3 crop to predict 8^3 voxels, 860 times the work.
MIN_TILE_SIDE = 8

_UNITS = {
    "": 1, "b": 1,
    "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9, "t": 10**12,
    "tb": 10**12,
    "ki": 2**10, "kib": 2**10, "mi": 2**20, "mib": 2**20, "gi": 2**30, "gib": 2**30, "ti": 2**40,
    "tib": 2**40,
}  # fmt: skip
_MEMORY = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-z]*)\s*$", re.IGNORECASE)


# ---------------------------------------------------------------------------------------------
# Halo, period and dense outputs (`dilnet.geometry` computes them)


def network_of(model, where="plan_tiles"):
    """The `dilnet.network.Network` of `model` (anything with ``.network``), or `model`
    itself if it is one; a `ConfigError` naming `where` otherwise."""
    if isinstance(model, Network):
        return model
    network = getattr(model, "network", None)
    if not isinstance(network, Network):
        raise ConfigError(
            invalid(where, "model", "a model with `network` (a dilnet.network.Network)", model)
        )
    return network


def compute_halo(network) -> Halo:
    """The halo and period of `network` (a `Network`, or a model with ``.network``).

    The period ``L`` per axis is the least common multiple of the numerators of every layer's
    jump (a jump ``p/q`` after upsampling puts the layer's grid at multiples of ``p/q``, which
    line up with the input's every ``p`` voxels; `dilnet.geometry.period`). The reach is traced
    through the layers (`dilnet.geometry.halo`); for stride-1 networks it is the receptive
    field's, ``-start`` before and ``start + size - 1`` after.
    """
    return geometry.halo(network_of(network).output_layer)


def padded_to_period(network, spatial) -> tuple:
    """`spatial` with each length rounded up to a multiple of the network's period on that axis
    (`geometry.period`: the product of its pooling sizes and strides), where the network needs
    it; `spatial` itself for a network without pooling or strides."""
    network = network_of(network)
    periods = geometry.period(geometry.walk(network.output_layer))
    return tuple(-(-int(n) // p) * p for n, p in zip(spatial, periods, strict=True))


def check_dense(network, spatial, where="predict_volume", name="volume"):
    """Check that `network` predicts densely for an input of spatial lengths `spatial`: the output
    has the input's lengths and every layer's length is the input length over its jump (so crops
    and the whole volume share their grids).

    Raises
    ------
    ShapeError
        Naming `name`, what the network outputs for it, and the period its lengths need.
    """
    network = network_of(network)
    spatial = tuple(spatial)
    records = geometry.walk(network.output_layer)
    shapes = network.output_shapes(spatial, 1)
    out = tuple(shapes[-1][2:])
    periods = geometry.period(records)
    hint = (
        f" Its pooling and strides need lengths that are multiples of {periods}: pad or crop "
        f"`{name}` to such lengths."
        if any(p > 1 for p in periods)
        else ""
    )
    if out != spatial:
        raise ShapeError(
            f"{where}: invalid value for `{name}`. Expected spatial lengths for which the network "
            f"outputs a prediction per input voxel (tiled inference needs dense, same-size "
            f"outputs); received {name} spatial shape {spatial}, for which the network outputs "
            f"spatial shape {out}.{hint}"
        )
    for info, shape in zip(network.layers, shapes, strict=True):
        axes = records[info.layer]
        expected = tuple(Fraction(n) / g.jump for n, g in zip(spatial, axes, strict=True))
        if tuple(shape[2:]) != expected:
            raise ShapeError(
                f"{where}: invalid value for `{name}`. Expected spatial lengths for which every "
                f"layer's length is the input's over its jump; received {name} spatial shape "
                f"{spatial}, for which layer {info.layer.name} has spatial shape "
                f"{tuple(shape[2:])}, not {tuple(str(e) for e in expected)}.{hint}"
            )


def _round_up(value, multiple):
    return -(-value // multiple) * multiple


# ---------------------------------------------------------------------------------------------
# Planning


@attrs.frozen
class Tile:
    """One output tile and the input crop that computes it, in volume coordinates
    (``start`` inclusive, ``stop`` exclusive, per spatial axis)."""

    start: tuple
    stop: tuple
    crop_start: tuple
    crop_stop: tuple

    @property
    def shape(self) -> tuple:
        return tuple(b - a for a, b in zip(self.start, self.stop, strict=True))

    @property
    def crop_shape(self) -> tuple:
        return tuple(b - a for a, b in zip(self.crop_start, self.crop_stop, strict=True))

    @property
    def slices(self) -> tuple:
        """The tile in the volume."""
        return tuple(map(slice, self.start, self.stop))

    @property
    def crop_slices(self) -> tuple:
        """The crop in the volume."""
        return tuple(map(slice, self.crop_start, self.crop_stop))

    @property
    def inner_slices(self) -> tuple:
        """The tile in the crop's prediction."""
        return tuple(
            slice(a - c, b - c)
            for a, b, c in zip(self.start, self.stop, self.crop_start, strict=True)
        )


@attrs.frozen
class TilePlan:
    """How `predict_volume` runs a volume of spatial shape `spatial`.

    Attributes
    ----------
    spatial : tuple of int
    tile : tuple of int
        Output tile shape (the last tile along an axis may be shorter; with `same_shape` the
        edge tiles are longer, and the shape is evened out to the fewest crops).
    halo : Halo
    tiles : tuple of Tile
        Every output voxel lies in exactly one tile.
    batch_size : int
    estimate : int
        Estimated working memory in bytes of one batch of the largest crop: all layer outputs
        (``network.activation_bytes``) plus the input crops and the output tiles (counted at
        ``tile``: a `same_shape` plan's edge tiles are longer, by at most the halo, but come
        from crops of the same size).
    memory_limit : int or None
        The limit the tile was chosen for (None when `tile` was given).
    same_shape : bool
        Whether crops at the volume's edges were moved inwards rather than clipped, so that
        every crop has one shape, ``tile`` plus the halo (`plan_tiles`).
    """

    spatial: tuple
    tile: tuple
    halo: Halo
    tiles: tuple
    batch_size: int
    estimate: int
    memory_limit: int | None
    same_shape: bool = False


def parse_memory(value, where="predict_volume", name="memory_limit") -> int:
    """Bytes from a positive number or a string like ``'2GiB'``, ``'512MB'``, ``'1.5 gb'``.

    Decimal units (kB, MB, GB, TB: powers of 1000) and binary ones (KiB, MiB, GiB, TiB: powers
    of 1024), case-insensitive; a bare number is bytes.
    """
    expected = "a positive number of bytes or a string like '2GiB' or '512MB'"
    if isinstance(value, str):
        match = _MEMORY.match(value)
        unit = match and _UNITS.get(match.group(2).lower())
        if unit is None:
            raise ConfigError(invalid(where, name, expected, value))
        number = float(match.group(1)) * unit
    elif isinstance(value, Real) and not isinstance(value, bool):
        number = float(value)
    else:
        raise ConfigError(invalid(where, name, expected, value))
    if not math.isfinite(number) or int(number) < 1:
        raise ConfigError(invalid(where, name, expected, value))
    return int(number)


def parse_batch_size(value, where="predict_volume") -> int:
    """`value` as a positive int (crops per ``predict_on_batch`` call), or a `ConfigError`
    naming `where`."""
    if not is_int(value) or value < 1:
        raise ConfigError(invalid(where, "batch_size", "a positive int", value))
    return int(value)


def _axis_tiles(length, tile, before, after, same_shape=False):
    """``(start, stop, crop_start, crop_stop)`` of the tiles along one axis: tiles of `tile`
    voxels from 0, each crop the tile plus the halo, clipped to the volume.

    With `same_shape`, every crop has the largest crop's length ``tile + before + after``
    instead: a crop at the volume's edge needs the halo on one side only, so the edge tiles
    take the rest (the first is ``tile + before`` long, the last up to ``tile + after``);
    `_same_shape_tile` makes the last one (nearly) full, and makes `tile` the whole axis where
    one crop covers it."""
    full = min(length, tile + before + after)
    if not same_shape or full == length:  # (one crop of the whole axis: `tile` is the axis)
        return [
            (start, min(start + tile, length), max(0, start - before),
             min(length, start + tile + after))
            for start in range(0, length, tile)
        ]  # fmt: skip
    out = [(0, full - after, 0, full)]
    start = full - after
    while start < length:
        if length - start > full - before:  # an inner tile, its crop inside the volume
            out.append((start, start + tile, start - before, start + tile + after))
            start += tile
            continue
        # the last crop ends at the edge (dense lengths are multiples of the period, as are
        # the tile and the halo, so this start is one too)
        out.append((start, length, min(start - before, length - full), length))
        break
    return out


def _same_shape_tile(length, tile, before, after, period):
    """The inner tile length for same-shape crops: as few crops of ``tile + before + after`` as
    cover the axis (``count * tile + before + after >= length``), then the tile evened out to
    the least multiple of the period that keeps that count (so the last tile is not a sliver
    whose crop is mostly waste)."""
    inner = length - before - after
    if tile + before + after >= length:
        return length  # one crop holds the whole axis
    count = max(2, -(-inner // tile))
    return min(tile, _round_up(-(-inner // count), period))


def _estimate(network, tile, crop, batch_size, itemsize):
    # the outputs alive at once in a forward pass of the crop (its input included), plus the
    # tile cut out of the prediction
    channels_out = network.output_shape[1]
    layers = network.peak_activation_bytes(crop, batch_size, itemsize=itemsize)
    return layers + batch_size * channels_out * math.prod(tile) * itemsize


def _largest_crop(tile, spatial, halo):
    return tuple(
        min(n, t + b + a) for t, n, b, a in zip(tile, spatial, halo.before, halo.after, strict=True)
    )


def _cube(side, spatial, halo):
    """The tile for cube side `side`: rounded up to the period, at most the volume."""
    return tuple(
        n if fixed or side >= n else min(n, _round_up(side, p))
        for n, p, fixed in zip(spatial, halo.period, halo.fixed, strict=True)
    )


def plan_tiles(
    model, spatial, *, tile=None, memory_limit=None, batch_size=1, same_shape=False,
    where="plan_tiles", name="spatial",
) -> TilePlan:  # fmt: skip
    """Plan the tiles `predict_volume` runs for a volume of spatial shape `spatial`.

    Parameters
    ----------
    model : model with .network, or a dilnet.network.Network
    spatial : tuple of int
        The volume's spatial lengths.
    tile : int or tuple of int, optional
        Output tile shape; overrides `memory_limit`. Each length must be a multiple of the
        period (`compute_halo`) or cover the whole axis. Axes whose length the Input block
        fixes are never tiled.
    memory_limit : int or str, optional
        Bytes (or ``'2GiB'``, ``'512MB'``, see `parse_memory`) one batch may use: the largest
        tile, as near a cube as the volume allows, whose estimate (`TilePlan.estimate`) fits.
        What `predict_volume` then adds to the process's peak memory stays within 1.25 times
        the limit plus `FIXED_OVERHEAD` (measured: ``bench/memory_limit.py``). Tiles are at
        least `MIN_TILE_SIDE` voxels a side; a limit too small for that is refused with the
        smallest workable value. Default: `DEFAULT_MEMORY_LIMIT` (so the whole volume in one
        go when it fits in 1 GiB).
    batch_size : int
        Crops per ``predict_on_batch`` call; counted in the estimate.
    same_shape : bool
        Give every crop one shape, the tile plus the halo on both sides: the edge tiles, whose
        crops need the halo on one side only, are longer instead of their crops shorter, and
        the tile is evened out to the fewest such crops that cover each axis. Worth it where
        each new input shape compiles anew (the JAX linker, `Model` on a GPU: a 4x4x3 grid of
        clipped crops has up to 36 shapes).
    where, name : str
        The function and the argument errors name (`predict_volume` plans for its `volume`).

    Returns
    -------
    TilePlan

    Raises
    ------
    ShapeError
        The network does not predict densely for `spatial` (`check_dense`).
    ConfigError
        Invalid `tile`, `memory_limit` or `batch_size`; a `memory_limit` below the estimate for
        the smallest tile (the message gives the minimum).
    """
    network = network_of(model, where)
    batch_size = parse_batch_size(batch_size, where)
    if not isinstance(same_shape, bool | np.bool_):
        raise ConfigError(invalid(where, "same_shape", "True or False", same_shape))
    same_shape = bool(same_shape)
    if len(spatial) != network.rank or not all(is_int(n) and n >= 1 for n in spatial):
        raise ConfigError(
            invalid(
                where, "spatial", f"{network.rank} positive lengths (the network's rank)", spatial
            )
        )
    spatial = tuple(int(n) for n in spatial)
    halo = compute_halo(network)
    check_dense(network, spatial, where, name)
    itemsize = np.dtype(network.input_layer.input_var.dtype).itemsize
    limit = None
    if tile is not None:
        tile = _check_tile(tile, spatial, halo, where)
    else:
        limit = DEFAULT_MEMORY_LIMIT if memory_limit is None else parse_memory(memory_limit, where)
        tile = _tile_for_limit(
            network, spatial, halo, limit, batch_size, itemsize, memory_limit, where
        )
    if same_shape:
        tile = tuple(
            _same_shape_tile(n, t, b, a, p)
            for n, t, b, a, p in zip(
                spatial, tile, halo.before, halo.after, halo.period, strict=True
            )
        )
    per_axis = [
        _axis_tiles(n, t, b, a, same_shape)
        for n, t, b, a in zip(spatial, tile, halo.before, halo.after, strict=True)
    ]
    tiles = tuple(
        Tile(*(tuple(axis[i] for axis in combo) for i in range(4))) for combo in _product(per_axis)
    )
    for shape in {t.crop_shape for t in tiles}:
        check_dense(network, shape, where, name)
    estimate = _estimate(network, tile, _largest_crop(tile, spatial, halo), batch_size, itemsize)
    return TilePlan(spatial, tile, halo, tiles, batch_size, estimate, limit, same_shape)


def _product(per_axis):
    combos = [()]
    for axis in per_axis:
        combos = [(*c, entry) for c in combos for entry in axis]
    return combos


def _check_tile(tile, spatial, halo, where):
    rank = len(spatial)
    expected = (
        f"a positive int or {rank} positive ints (one per spatial axis), each a multiple of the "
        f"network's period {halo.period} or at least the volume's length {spatial}"
    )
    if is_int(tile):
        tile = (tile,) * rank
    try:
        tile = tuple(tile)
    except TypeError:
        raise ConfigError(invalid(where, "tile", expected, tile)) from None
    if len(tile) != rank or not all(is_int(t) and t >= 1 for t in tile):
        raise ConfigError(invalid(where, "tile", expected, tile))
    for t, n, p in zip(tile, spatial, halo.period, strict=True):
        if t < n and t % p:
            raise ConfigError(invalid(where, "tile", expected, tile))
    return tuple(
        n if fixed else min(int(t), n)
        for t, n, fixed in zip(tile, spatial, halo.fixed, strict=True)
    )


def _tile_for_limit(network, spatial, halo, limit, batch_size, itemsize, given, where):
    def cost(side):
        tile = _cube(side, spatial, halo)
        return _estimate(network, tile, _largest_crop(tile, spatial, halo), batch_size, itemsize)

    # the estimate grows with the side, so bisect for the largest side that fits, from the
    # smallest side worth a crop (below it, the halo is nearly all of every crop)
    low, high = MIN_TILE_SIDE, max(spatial)
    if cost(low) > limit:
        smallest = _cube(low, spatial, halo)
        raise ConfigError(
            invalid(
                where,
                "memory_limit",
                f"at least {cost(low)} bytes ({format_bytes(cost(low))}), the estimated memory "
                f"of one batch (batch_size={batch_size}) of the smallest tile {smallest} with its "
                f"halo (crop {_largest_crop(smallest, spatial, halo)})",
                given if given is not None else limit,
            )
        )
    while low < high:
        mid = (low + high + 1) // 2
        if cost(mid) <= limit:
            low = mid
        else:
            high = mid - 1
    return _balanced(_cube(low, spatial, halo), spatial, halo)


def _balanced(tile, spatial, halo):
    """The same number of tiles per axis, made as even as the period allows: a 256 axis with
    tiles of 200 becomes two tiles of 128, not 200 + 56 (smaller crops, same count)."""
    out = []
    for t, n, p in zip(tile, spatial, halo.period, strict=True):
        count = -(-n // t)
        out.append(min(t, _round_up(-(-n // count), p)))
    return tuple(out)
