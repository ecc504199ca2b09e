"""Tiled inference: predict a volume larger than memory allows, tile by tile, exactly.

`predict_volume` splits a volume into output tiles, runs each tile's input crop (the tile plus
the network's halo, clipped to the volume; or, with ``same_shape``, moved inwards so that every
crop has one shape) through any model with ``model.network`` (a
`dilnet.compiler.Network`) and ``model.predict_on_batch``, and stitches the tiles' parts of the
predictions. `plan_tiles` makes the plan (tile shape, crops, memory estimate) without running
anything; `compute_halo` gives the halo and the period it rests on. `dilnet.distributed`
does the same over a Dask array.

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

import math
import re
from fractions import Fraction
from numbers import Real

import attrs
import numpy as np

from .compiler import Network
from .errors import ConfigError, ShapeError, invalid
from .layers import ConvLayer, InputLayer, MergeLayer, PoolLayer, UpscaleLayer
from .shapes import same_padding
from .utils import is_int

__all__ = [
    "DEFAULT_MEMORY_LIMIT",
    "Halo",
    "Tile",
    "TilePlan",
    "check_dense",
    "compute_halo",
    "parse_memory",
    "plan_tiles",
    "predict_volume",
]

#: working memory per batch that `plan_tiles` aims for when neither `tile` nor `memory_limit`
#: is given (bytes): the whole volume in one go when it fits, else the largest tiles that do.
DEFAULT_MEMORY_LIMIT = 2**30

_UNITS = {
    "": 1, "b": 1,
    "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9, "t": 10**12,
    "tb": 10**12,
    "ki": 2**10, "kib": 2**10, "mi": 2**20, "mib": 2**20, "gi": 2**30, "gib": 2**30, "ti": 2**40,
    "tib": 2**40,
}  # fmt: skip
_MEMORY = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-z]*)\s*$", re.IGNORECASE)


# ---------------------------------------------------------------------------------------------
# Geometry: halo and period


@attrs.frozen
class Halo:
    """What tiling needs to know about a network, per spatial axis.

    Attributes
    ----------
    period : tuple of int
        ``L``: crops must start at multiples of it (and have lengths that are multiples of it,
        unless they end at the volume's edge). 1 without pooling or strides.
    before, after : tuple of int
        Input voxels an output voxel reads before and after its own position, rounded up to
        multiples of `period`.
    reach_before, reach_after : tuple of int
        The same before rounding up (for stride-1 networks: ``-start`` and
        ``start + size - 1`` of ``network.receptive_field``, each at least 0).
    fixed : tuple of bool
        Axes whose length the Input block fixes: not tiled.
    """

    period: tuple
    before: tuple
    after: tuple
    reach_before: tuple
    reach_after: tuple
    fixed: tuple


def _incoming(layer):
    return list(layer.input_layers) if isinstance(layer, MergeLayer) else [layer.input_layer]


def _walk(network):
    """Per layer and axis: ``(jump, before, after)`` as Fractions.

    A unit at index ``i`` of a layer with jump ``J`` sits at input position ``J * i``; every
    unit (padding slots included) in the computation of it lies within ``J * i - before ..
    J * i + after``. Convolutions and pooling read indices ``i * s - pad_before + d * m``;
    upsampling by ``f`` reads index ``i // f``, up to ``(f - 1) / f`` incoming jumps before
    ``J * i``; merges take the widest of their inputs.
    """
    state = {}
    for info in network.layers:
        layer = info.layer
        if isinstance(layer, InputLayer):
            state[layer] = [(Fraction(1), Fraction(0), Fraction(0))] * network.rank
            continue
        inputs = [state[i] for i in _incoming(layer)]
        if isinstance(layer, ConvLayer | PoolLayer):
            out = []
            for axis, (jump, before, after) in enumerate(inputs[0]):
                if isinstance(layer, ConvLayer):
                    k, s, d = layer.filter_size[axis], layer.stride[axis], layer.dilation[axis]
                    pad = info.padding[axis] if info.padding is not None else None
                    if pad is None:
                        # 'same' with a stride on an unknown length: for lengths that are
                        # multiples of the stride (all that tiling runs) the padding is fixed
                        pad = same_padding(s, k, s, d)
                    pad_before = pad[0]
                else:
                    k, s, d = layer.pool_size[axis], layer.stride[axis], 1
                    pad_before = layer.pad[axis]
                span = (k - 1) * d
                out.append(
                    (jump * s, before + jump * pad_before, after + jump * (span - pad_before))
                )
            state[layer] = out
        elif isinstance(layer, UpscaleLayer):
            state[layer] = [
                (jump / f, before + jump * (f - 1) / f, after)
                for (jump, before, after), f in zip(inputs[0], layer.scale_factor, strict=True)
            ]
        elif len(inputs) > 1:
            state[layer] = [
                (axis[0][0], max(a[1] for a in axis), max(a[2] for a in axis))
                for axis in zip(*inputs, strict=True)
            ]
        else:
            state[layer] = inputs[0]
    return [state[info.layer] for info in network.layers]


def _round_up(value, multiple):
    return -(-value // multiple) * multiple


def compute_halo(network) -> Halo:
    """The halo and period of `network` (a `Network`, or a model with ``.network``).

    The period ``L`` per axis is the least common multiple of the numerators of every layer's
    jump (a jump ``p/q`` after upsampling puts the layer's grid at multiples of ``p/q``, which
    line up with the input's every ``p`` voxels). The reach is traced through the layers
    (`Halo`); for stride-1 networks it is the receptive field's, ``-start`` before and
    ``start + size - 1`` after.
    """
    network = _network(network)
    walk = _walk(network)
    periods, before, after, reach_before, reach_after = [], [], [], [], []
    for axis in range(network.rank):
        period = math.lcm(*(layer[axis][0].numerator for layer in walk))
        _, b, a = walk[-1][axis]
        b, a = max(0, math.ceil(b)), max(0, math.ceil(a))
        periods.append(period)
        reach_before.append(b)
        reach_after.append(a)
        before.append(_round_up(b, period))
        after.append(_round_up(a, period))
    fixed = tuple(s is not None for s in network.input_shape[2:])
    return Halo(tuple(periods), tuple(before), tuple(after), tuple(reach_before),
                tuple(reach_after), fixed)  # fmt: skip


def _network(model, where="plan_tiles"):
    if isinstance(model, Network):
        return model
    network = getattr(model, "network", None)
    if not isinstance(network, Network):
        raise ConfigError(
            invalid(where, "model", "a model with `network` (a dilnet.compiler.Network)", model)
        )
    return network


def check_dense(network, spatial, where="predict_volume", name="volume"):
    """Check that `network` predicts densely for an input of spatial lengths `spatial`: the output
    has the input's lengths and every layer's length is the input length over its jump (so crops
    and the whole volume share their grids).

    Raises
    ------
    ShapeError
        Naming `name`, what the network outputs for it, and the period its lengths need.
    """
    network = _network(network)
    spatial = tuple(spatial)
    walk = _walk(network)
    shapes = network.output_shapes(spatial, 1)
    out = tuple(shapes[-1][2:])
    period = tuple(
        math.lcm(*(layer[axis][0].numerator for layer in walk)) for axis in range(network.rank)
    )
    hint = (
        f" Its pooling and strides need lengths that are multiples of {period}: pad or crop "
        f"`{name}` to such lengths."
        if any(p > 1 for p in period)
        else ""
    )
    if out != spatial:
        raise ShapeError(
            f"{where}: invalid value for `{name}`. Expected spatial lengths for which the network "
            f"outputs a prediction per input voxel (tiled inference needs dense, same-size "
            f"outputs); received {name} spatial shape {spatial}, for which the network outputs "
            f"spatial shape {out}.{hint}"
        )
    for info, shape, steps in zip(network.layers, shapes, walk, strict=True):
        expected = tuple(Fraction(n) / step[0] for n, step in zip(spatial, steps, strict=True))
        if tuple(shape[2:]) != expected:
            raise ShapeError(
                f"{where}: invalid value for `{name}`. Expected spatial lengths for which every "
                f"layer's length is the input's over its jump; received {name} spatial shape "
                f"{spatial}, for which layer {info.layer.name} has spatial shape "
                f"{tuple(shape[2:])}, not {tuple(str(e) for e in expected)}.{hint}"
            )


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


def _format_bytes(n):
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return f"{n} B"


def _positive_int(value, where, name):
    if not is_int(value) or value < 1:
        raise ConfigError(invalid(where, name, "a positive int", value))
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
    model, spatial, *, tile=None, memory_limit=None, batch_size=1, same_shape=False
) -> TilePlan:
    """Plan the tiles `predict_volume` runs for a volume of spatial shape `spatial`.

    Parameters
    ----------
    model : model with .network, or a dilnet.compiler.Network
    spatial : tuple of int
        The volume's spatial lengths.
    tile : int or tuple of int, optional
        Output tile shape; overrides `memory_limit`. Each length must be a multiple of the
        period (`compute_halo`) or cover the whole axis. Axes whose length the Input block
        fixes are never tiled.
    memory_limit : int or str, optional
        Bytes (or ``'2GiB'``, ``'512MB'``, see `parse_memory`) one batch may use: the largest
        tile, as near a cube as the volume allows, whose estimate (`TilePlan.estimate`) fits.
        Default: `DEFAULT_MEMORY_LIMIT` (so the whole volume in one go when it fits in 1 GiB).
    batch_size : int
        Crops per ``predict_on_batch`` call; counted in the estimate.
    same_shape : bool
        Give every crop one shape, the tile plus the halo on both sides: the edge tiles, whose
        crops need the halo on one side only, are longer instead of their crops shorter, and
        the tile is evened out to the fewest such crops that cover each axis. Worth it where
        each new input shape compiles anew (the JAX linker, `Model` on a GPU: a 4x4x3 grid of
        clipped crops has up to 36 shapes).

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
    return _plan(_network(model), spatial, tile, memory_limit, batch_size, "plan_tiles", same_shape)


def _plan(network, spatial, tile, memory_limit, batch_size, where, same_shape=False):
    batch_size = _positive_int(batch_size, where, "batch_size")
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
    name = "spatial" if where == "plan_tiles" else "volume"
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

    # the estimate grows with the side, so bisect for the largest side that fits
    low, high = 1, max(spatial)
    if cost(low) > limit:
        smallest = _cube(1, spatial, halo)
        raise ConfigError(
            invalid(
                where,
                "memory_limit",
                f"at least {cost(low)} bytes ({_format_bytes(cost(low))}), the estimated memory "
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


# ---------------------------------------------------------------------------------------------
# Running


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
):
    """Predict a whole volume tile by tile, equal to one ``predict_on_batch`` on all of it.

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
        JAX linker, where each new shape costs a compile; False for the C VM, where it costs
        nothing and clipped crops are less work).

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
        Invalid `tile`, `memory_limit` or `batch_size`, or a `memory_limit` too small for the
        smallest tile.

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
    network = _network(model, where)
    if not callable(getattr(model, "predict_on_batch", None)):
        raise ConfigError(
            invalid(where, "model", "a model with `network` and `predict_on_batch`", model)
        )
    if not hasattr(volume, "shape") or not hasattr(volume, "__getitem__"):
        volume = np.asarray(volume)
    has_channels, spatial = _check_volume(network, volume, where)
    if same_shape is None:
        same_shape = bool(getattr(model, "compiles_per_shape", False))
    plan = _plan(network, spatial, tile, memory_limit, batch_size, where, same_shape)
    channels = network.output_shape[1]
    if out is not None and tuple(out.shape) != (channels, *spatial):
        raise ShapeError(
            f"{where}: invalid value for `out`. Expected an array of shape {(channels, *spatial)} "
            f"(the network's {channels} output channels, then the volume's spatial shape); "
            f"received out of shape {tuple(out.shape)}."
        )
    dtype = network.input_layer.input_var.dtype
    groups = {}
    for t in plan.tiles:
        groups.setdefault(t.crop_shape, []).append(t)

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
    return out


def _read(volume, slices, has_channels, dtype):
    if has_channels:
        return np.asarray(volume[(slice(None), *slices)], dtype=dtype)
    return np.asarray(volume[slices], dtype=dtype)[None]
