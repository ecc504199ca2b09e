"""Graph-level geometry: one walk over a layer graph gives, per layer and spatial axis, where
its units sit in the input and how far they reach.

`walk` visits the layers in topological order (`dilnet.layers.get_all_layers`) and composes
one `AxisGeometry` per layer and spatial axis from the layers' public attributes (kernel,
stride, dilation and `ConvLayer.resolved_pads`; pooling windows, strides and padding;
upsampling factors). Everything else derives from those records:

- `receptive_fields`: what output element 0 of each layer sees (`ReceptiveField`), the
  compiler's per-layer and per-block fields and the summary's column;
- `period` and `halo`: what tiled inference needs (`dilnet.inference`, `dilnet.distributed`);
- `layer_padding`: the ``(before, after)`` padding of a convolution or pooling layer.

Notes
-----
A unit ``i`` of a layer with jump ``J`` sits at input position ``J * i``. A convolution or
pooling layer with kernel ``k``, dilation ``d``, stride ``s`` and padding ``pad`` before reads
its input at ``i * s - pad + d * m`` (``m < k``), so along one axis, with
``span = (k - 1) * d``:

    jump   *= s
    start  -= pad * jump          (output 0's field;    stop  += (span - pad) * jump)
    before += pad * jump          (the reach of a unit; after += (span - pad) * jump)

(each right-hand ``jump`` is the incoming one). Upsampling by ``f`` divides the jump by ``f``
(fields after it are those of output 0 and may be fractions) and lets units ``i > 0`` read
``i // f``, up to ``(f - 1) / f`` incoming jumps before ``J * i``; merges take the widest of
their inputs. Layers of other types (nonlinearities, normalisation, dropout) keep positions.
Transposed convolutions and layers that pad, slice or reshape are not modelled.

Field and reach agree for stride-1 networks (``before = -start``, ``after = stop``); they
differ after upsampling (units ``i > 0`` reach further back than unit 0) and where 'same'
padding with a stride meets an unknown length: the field counts that padding as 0 and records
it in ``unknown`` and ``slack``, the reach takes it for lengths that are multiples of the
stride (all that tiling runs).
"""

import math
from fractions import Fraction
from typing import NamedTuple

import attrs

from .layers import (
    ConvLayer,
    InputLayer,
    MergeLayer,
    PoolLayer,
    UpscaleLayer,
    get_all_layers,
)
from .shapes import same_padding

__all__ = [
    "AxisGeometry",
    "Halo",
    "ReceptiveField",
    "halo",
    "layer_padding",
    "period",
    "receptive_fields",
    "walk",
]


class ReceptiveField(NamedTuple):
    """What one output element sees along one axis, in input coordinates.

    ``size``: number of input elements in its field; ``jump``: input distance between
    neighbouring outputs; ``start``: input index of the first element of output 0's field
    (negative when it starts in the padding; None when it depends on an unknown length).
    Output ``o`` sees input elements ``start + jump * o`` to ``start + jump * o + size - 1``.
    After upsampling ``jump`` (and so ``size`` and ``start``) may be a `~fractions.Fraction`.
    """

    size: int
    jump: int
    start: int | None

    @property
    def centre(self) -> float:
        """Input coordinate of the centre of output 0's field (``.5`` for even sizes)."""
        return self.start + (self.size - 1) / 2


class AxisGeometry(NamedTuple):
    """One layer's output along one spatial axis, in input coordinates (`fractions.Fraction`).

    Attributes
    ----------
    jump : Fraction
        Input distance between neighbouring units (the product of strides and pooling
        factors over the product of upsampling factors; a merge takes its inputs' largest).
    start, stop : Fraction
        First and last input position output unit 0's field reaches. A padding whose length
        is unknown counts as 0 here.
    unknown : frozenset
        Keys ``(id(layer), axis)`` of those paddings ('same' with a stride on an unknown
        length).
    slack : Fraction
        How much further left the unknown paddings can move `start`: at most
        ``(extent - 1) // 2`` incoming jumps each. Merges of branches that share all their
        unknown paddings shift alike and keep it; others widen `start` by it instead.
    before, after : Fraction
        How far any unit ``i`` reaches before and after its own position ``jump * i``, with
        unknown 'same' paddings taken for lengths that are multiples of their stride.
    """

    jump: Fraction
    start: Fraction
    stop: Fraction
    unknown: frozenset
    slack: Fraction
    before: Fraction
    after: Fraction

    def receptive_field(self) -> ReceptiveField:
        """The `ReceptiveField` of output 0: ints where exact, ``start`` None if unknown."""
        return ReceptiveField(
            _exact(self.stop - self.start + 1),
            _exact(self.jump),
            None if self.unknown else _exact(self.start),
        )


_ORIGIN = AxisGeometry(Fraction(1), Fraction(0), Fraction(0), frozenset(), Fraction(0),
                       Fraction(0), Fraction(0))  # fmt: skip


def _exact(x):
    """Fractions with denominator 1 -> int."""
    return int(x) if x.denominator == 1 else x


def layer_padding(layer):
    """``(before, after)`` per spatial axis of a convolution (None on an axis where it depends
    on an unknown length: 'same' with a stride) or pooling layer; None for other layers."""
    if isinstance(layer, ConvLayer):
        return layer.resolved_pads
    if isinstance(layer, PoolLayer):
        return tuple((p, p) for p in layer.pad)
    return None


def walk(layer) -> dict:
    """``{layer: tuple of AxisGeometry per spatial axis}`` for every layer of the graph that
    ends at `layer` (a layer or a list of them), in topological order, output last."""
    records = {}
    for current in get_all_layers(layer):
        if isinstance(current, InputLayer):
            records[current] = (_ORIGIN,) * (len(current.shape) - 2)
            continue
        inputs = current.input_layers if isinstance(current, MergeLayer) else [current.input_layer]
        if any(i is None for i in inputs):  # built on a shape, not a layer: it starts here
            records[current] = (_ORIGIN,) * (len(current.input_shape) - 2)
            continue
        records[current] = _step(current, [records[i] for i in inputs])
    return records


def _step(layer, incoming):
    """The records of `layer`'s output from its inputs' (`incoming`: one tuple per input)."""
    if isinstance(layer, ConvLayer):
        (axes,) = incoming
        padding = layer.resolved_pads
        out = []
        for axis, g in enumerate(axes):
            k, s, d = layer.filter_size[axis], layer.stride[axis], layer.dilation[axis]
            if padding[axis] is None:  # 'same' as for lengths that are multiples of the stride
                before, key = same_padding(s, k, s, d)[0], (id(layer), axis)
                out.append(_grow(g, (k - 1) * d, s, before, key))
            else:
                out.append(_grow(g, (k - 1) * d, s, padding[axis][0]))
        return tuple(out)
    if isinstance(layer, PoolLayer):
        (axes,) = incoming
        return tuple(
            _grow(g, k - 1, s, p)
            for g, k, s, p in zip(axes, layer.pool_size, layer.stride, layer.pad, strict=True)
        )
    if isinstance(layer, UpscaleLayer):
        (axes,) = incoming
        return tuple(
            g._replace(jump=g.jump / f, before=g.before + g.jump * (f - 1) / f)
            for g, f in zip(axes, layer.scale_factor, strict=True)
        )
    if isinstance(layer, MergeLayer):
        return tuple(_union(axes) for axes in zip(*incoming, strict=True))
    (axes,) = incoming
    return axes


def _grow(g, span, stride, pad_before, unknown=None):
    """`g` through a window of `span` (``(k - 1) * d``) with `stride` and `pad_before`.

    With `unknown` (a key naming the padding) the padding depends on an unknown length:
    the field counts it as 0 and adds the key and its bound to ``unknown`` and ``slack``;
    `pad_before` is then the padding for lengths that are multiples of the stride.
    """
    jump = g.jump
    before = g.before + jump * pad_before
    after = g.after + jump * (span - pad_before)
    if unknown is not None:  # 'same' padding is at most span // 2 before
        return AxisGeometry(jump * stride, g.start, g.stop + jump * span, g.unknown | {unknown},
                            g.slack + span // 2 * jump, before, after)  # fmt: skip
    return AxisGeometry(jump * stride, g.start - jump * pad_before,
                        g.stop + jump * (span - pad_before), g.unknown, g.slack, before,
                        after)  # fmt: skip


def _union(axes):
    """A merge along one axis: the widest field and reach of its inputs."""
    if len({g.unknown for g in axes}) == 1:  # shifted alike: exact
        start, slack = min(g.start for g in axes), axes[0].slack
    else:
        start, slack = min(g.start - g.slack for g in axes), Fraction(0)
    return AxisGeometry(
        max(g.jump for g in axes),
        start,
        max(g.stop for g in axes),
        frozenset().union(*(g.unknown for g in axes)),
        slack,
        max(g.before for g in axes),
        max(g.after for g in axes),
    )


def receptive_fields(records) -> dict:
    """``{layer: tuple of ReceptiveField per axis}`` from `walk`'s records."""
    return {layer: tuple(g.receptive_field() for g in axes) for layer, axes in records.items()}


def period(records) -> tuple:
    """Per axis the least common multiple of the numerators of every layer's jump.

    A jump ``p/q`` (after upsampling) puts the layer's grid at multiples of ``p/q``, which line
    up with the input's every ``p`` voxels; so crops that start at multiples of the period, and
    lengths that are, give every layer the whole volume's grid.
    """
    rank = len(next(reversed(records.values())))
    return tuple(
        math.lcm(*(axes[axis].jump.numerator for axes in records.values())) for axis in range(rank)
    )


def _round_up(value, multiple):
    return -(-value // multiple) * multiple


@attrs.frozen
class Halo:
    """What tiling needs to know about a network, per spatial axis (`halo`).

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
        Axes whose length the input layer fixes: not tiled.
    """

    period: tuple
    before: tuple
    after: tuple
    reach_before: tuple
    reach_after: tuple
    fixed: tuple


def halo(layer) -> Halo:
    """The `Halo` of the graph ending at `layer`: its `period` and the reach of its output
    (`AxisGeometry.before`, ``.after``), rounded up to whole voxels and to the period."""
    records = walk(layer)
    periods = period(records)
    output = next(reversed(records.values()))
    reach_before = tuple(max(0, math.ceil(g.before)) for g in output)
    reach_after = tuple(max(0, math.ceil(g.after)) for g in output)
    inputs = [i for i in records if isinstance(i, InputLayer)]
    fixed = tuple(any(i.shape[2 + axis] is not None for i in inputs) for axis in range(len(output)))
    return Halo(
        periods,
        tuple(_round_up(b, p) for b, p in zip(reach_before, periods, strict=True)),
        tuple(_round_up(a, p) for a, p in zip(reach_after, periods, strict=True)),
        reach_before,
        reach_after,
        fixed,
    )
