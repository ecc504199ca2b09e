"""`dilnet.geometry` against a brute-force oracle: perturb one input voxel at a time of a small
network with random weights and see which output voxels change.

For every output voxel ``o`` away from the borders (at input position ``jump * o``) and every
input voxel ``j`` that changes it:

- reach: ``jump * o - before <= j <= jump * o + after`` (`AxisGeometry.before`, ``.after``;
  the halo's ``reach_before``, ``reach_after``), with both bounds attained where the walk is
  tight (every network here but one that strides over an upsampled grid);
- field: without upsampling, ``start + jump * o .. stop + jump * o`` is exactly the span of the
  ``j`` that change ``o`` (`ReceptiveField`), for outputs whose position is a multiple of the
  period (whose computation is output 0's, shifted).

Activations are smooth (tanh, linear), pooling averages and weights are random, so that every
tap an output depends on changes it. 1D, 2D and 3D networks, with dilation, strides, even
kernels, explicit asymmetric padding, pooling, upsampling, residual sums and concatenations.
"""

import math
from fractions import Fraction

import numpy as np
import pytensor
import pytest
from pytensor.compile.mode import Mode

import dilnet
from dilnet import Sequential
from dilnet import blocks as B
from dilnet import layers as L
from dilnet.backends import select
from dilnet.geometry import ReceptiveField, halo, layer_padding, period, receptive_fields, walk

CHEAP = Mode(linker="py", optimizer=None)


@pytest.fixture(autouse=True, scope="module")
def _blas_kernels():
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(select, "_choice", "blas")
        yield


def tanh_conv(**kwargs):
    return B.Conv(filters=2, activation="tanh", **kwargs)


def _i(rank, channels=1):
    return B.Input(channels=channels, spatial=(None,) * rank)


# name -> (blocks, whether the reach is attained, whether the fields are exact)
SPECS = {
    "dilated1d": ([_i(1), tanh_conv(), B.DilatedStack(filters=2, dilations=(2, 4),
                   activation="tanh")], True, True),
    "strided1d": ([_i(1), tanh_conv(kernel=5, stride=2), tanh_conv(kernel=4, padding="valid"),
                   tanh_conv(kernel=3, dilation=3)], True, True),
    "even_asymmetric1d": ([_i(1), tanh_conv(kernel=4, padding=((3, 0),)),
                           tanh_conv(kernel=2, dilation=5, padding=((0, 5),))], True, True),
    "pooled1d": ([_i(1), tanh_conv(), B.Pool(size=3, stride=2, mode="average"),
                  tanh_conv(kernel=2, dilation=2)], True, True),
    "residual_upsample1d": ([_i(1), tanh_conv(),
                             B.Residual(body=[B.Pool(size=2, mode="average"),
                                              tanh_conv(dilation=2), B.Upsample(factor=2)],
                                        activation="tanh"),
                             tanh_conv(kernel=4)], True, False),
    "concat1d": ([_i(1), B.Concat(branches=[[tanh_conv(kernel=5)],
                                            [tanh_conv(kernel=2, dilation=6)],
                                            [B.Pool(size=2, mode="average"), tanh_conv(),
                                             B.Upsample(factor=2)]]),
                  tanh_conv(kernel=1)], True, False),
    "upsample_then_stride1d": ([_i(1), B.Upsample(factor=2), tanh_conv(kernel=3, stride=3),
                                tanh_conv(), B.Upsample(factor=3),
                                B.Pool(size=2, mode="average")], False, False),
    "per_axis2d": ([_i(2), tanh_conv(kernel=(3, 1), dilation=(1, 2)),
                    tanh_conv(kernel=(2, 3), stride=(1, 2)),
                    B.Pool(size=(1, 2), mode="average"),
                    tanh_conv(kernel=3, dilation=(3, 1))], True, True),
    "residual2d": ([_i(2, channels=2), tanh_conv(kernel=(4, 2)),
                    B.Residual(body=[tanh_conv(dilation=(2, 1)), tanh_conv(kernel=(1, 3))],
                               activation="tanh")], True, True),
    "stack3d": ([_i(3), tanh_conv(kernel=(3, 2, 1)),
                 B.DilatedStack(filters=2, dilations=(1, 2), kernel=(3, 3, 1),
                                activation="tanh"),
                 tanh_conv(kernel=2, stride=(1, 1, 2))], True, True),
    "pool_upsample3d": ([_i(3), B.Pool(size=(2, 1, 2), mode="average"),
                         tanh_conv(kernel=(3, 1, 2)), B.Upsample(factor=(2, 1, 2)),
                         tanh_conv(kernel=(1, 2, 3))], True, False),
}  # fmt: skip


def _compile(output_layer, input_layer):
    return pytensor.function(
        [input_layer.input_var], L.get_output(output_layer, deterministic=True), mode=CHEAP
    )


def _randomise(params, rng):
    for p in params:
        value = p.get_value()
        scale = 1.0 / np.sqrt(math.prod(value.shape[1:])) if value.ndim > 1 else 0.5
        p.set_value(rng.normal(0.0, scale, value.shape).astype(value.dtype))


def _influence(fn, input_shape, axis, rng):
    """``changed[j, o]``: perturbing input voxel ``j`` along spatial `axis` (the other axes at
    their middle) changes some output voxel whose coordinate along `axis` is ``o``."""
    base = rng.normal(size=(1, *input_shape))
    n = input_shape[1 + axis]
    x = np.repeat(base, n, axis=0)
    middle = [s // 2 for s in input_shape[1:]]
    for j in range(n):
        index = [j, slice(None), *middle]
        index[2 + axis] = j
        x[tuple(index)] += 1.0
    diff = np.abs(fn(x) - fn(base)) > 0
    other = tuple(a for a in range(1, diff.ndim) if a != 2 + axis)
    return diff.any(axis=other)  # (j, o)


def _check_against_oracle(output_layer, input_layer, size, tight, exact_fields, seed):
    fn = _compile(output_layer, input_layer)
    records = walk(output_layer)
    out = records[output_layer]
    the_halo = halo(output_layer)
    periods = period(records)
    rng = np.random.default_rng(seed)
    for axis, g in enumerate(out):
        changed = _influence(fn, (input_layer.shape[1], *size), axis, rng)
        n, outputs = changed.shape
        j, o = np.nonzero(changed)
        position = o * g.jump
        # away from the borders, where crops and fields see no padding of the volume's own
        inside = (position - g.before >= 0) & (position + g.after <= n - 1)
        assert inside.sum() > 0, "make the input larger"
        reached_before = max(position[inside] - j[inside])
        reached_after = max(j[inside] - position[inside])
        assert reached_before <= g.before and reached_after <= g.after
        if tight:
            assert math.ceil(reached_before) == the_halo.reach_before[axis]
            assert math.ceil(reached_after) == the_halo.reach_after[axis]
        if exact_fields:
            field = g.receptive_field()
            seen = 0
            for unit in range(outputs):
                pos = unit * g.jump
                if pos % periods[axis] or not (pos - g.before >= 0 and pos + g.after < n):
                    continue
                sources = np.flatnonzero(changed[:, unit])
                assert sources.min() == field.start + pos
                assert sources.max() == field.start + pos + field.size - 1
                seen += 1
            assert seen > 0


@pytest.mark.parametrize("name", sorted(SPECS))
def test_walk_against_perturbing_each_input_voxel(name):
    blocks, tight, exact_fields = SPECS[name]
    rank = len(blocks[0].spatial)
    size = {1: (48,), 2: (24, 20), 3: (16, 12, 16)}[rank]
    spec = Sequential(blocks)
    for spatial in (None, size):
        network = dilnet.build(spec, spatial=spatial)
        _randomise(network.get_params(), np.random.default_rng(0))
        # with a 'same' stride on an unknown length the field's start waits for the length
        known = all(f.start is not None for f in network.receptive_field)
        _check_against_oracle(
            network.output_layer, network.input_layer, size, tight, exact_fields and known, seed=1
        )


def test_a_layer_graph_with_a_sum_of_unequal_branches():
    """The walker needs no compiler: any `dilnet.layers` graph (here a sum of a wide dilated
    branch and a narrow strided-then-upsampled one, as layers)."""
    x = L.InputLayer((None, 1, None))
    wide = L.ConvLayer(x, 2, 3, pad="same", dilation=4, nonlinearity=dilnet.nonlinearities.tanh)
    narrow = L.ConvLayer(x, 2, 2, stride=2, pad=((1, 0),), nonlinearity=dilnet.nonlinearities.tanh)
    narrow = L.UpscaleLayer(narrow, 2)
    narrow = L.ConvLayer(narrow, 2, 3, pad="same", nonlinearity=None)
    out = L.ConvLayer(L.ElemwiseSumLayer([wide, narrow]), 1, 3, pad=((0, 2),), nonlinearity=None)
    _randomise(L.get_all_params(out), np.random.default_rng(2))
    records = walk(out)
    assert list(records) == L.get_all_layers(out)
    assert [g.jump for g in records[out]] == [1]
    _check_against_oracle(out, x, (40,), tight=True, exact_fields=False, seed=3)


def test_padded_pooling_and_per_axis_layers():
    x = L.InputLayer((None, 1, None, None))
    h = L.ConvLayer(
        x, 2, (3, 2), pad="same", dilation=(2, 1), nonlinearity=dilnet.nonlinearities.tanh
    )
    h = L.PoolLayer(h, (3, 2), stride=(2, 1), pad=(1, 0), mode="average_inc_pad")
    out = L.ConvLayer(h, 1, 2, pad=((1, 0), (0, 0)), nonlinearity=None)
    _randomise(L.get_all_params(out), np.random.default_rng(4))
    assert layer_padding(h) == ((1, 1), (0, 0))
    _check_against_oracle(out, x, (30, 12), tight=True, exact_fields=True, seed=5)


def test_fields_of_a_chain():
    """The composition rule on hand-computed chains: ``size += (extent - 1) * jump``,
    ``start -= before * jump``, ``jump *= stride``."""

    def field(*convs):
        network = dilnet.build(Sequential([_i(1), *convs]))
        return network.receptive_field[0]

    assert field(B.Conv(filters=1)) == ReceptiveField(3, 1, -1)
    # Yu & Koltun's context module: 3-tap layers with dilations 1,1,2,4,8,16,1 then 1x1 -> 67
    context = field(B.ContextModule(channels=1))
    assert context == ReceptiveField(67, 1, -33) and context.centre == 0
    # k=4 s=2 pad 1 -> size 4, jump 2, start -1; then k=3 d=2 pad 2: size 4 + 4 * 2, start -5
    strided = field(B.Conv(filters=1, kernel=4, stride=2, padding=1), B.Conv(filters=1, dilation=2))
    assert strided == ReceptiveField(12, 2, -5) and strided.centre == 0.5


def test_unknown_same_padding_with_a_stride_is_bounded_by_the_slack():
    spec = Sequential([_i(1), B.Conv(filters=1), B.Conv(filters=1, kernel=5, stride=2),
                       B.Conv(filters=1, kernel=3)])  # fmt: skip
    network = dilnet.build(spec)
    (g,) = walk(network.output_layer)[network.output_layer]
    assert g.receptive_field() == ReceptiveField(11, 2, None)
    assert len(g.unknown) == 1 and g.slack == 2  # 'same' pads at most (5 - 1) // 2 before
    for n in range(8, 16):
        (known,) = dilnet.build(spec, spatial=(n,)).receptive_field
        assert (known.size, known.jump) == (11, 2)
        assert g.start - g.slack <= known.start <= g.start


def test_fields_after_upsampling_are_fractions():
    spec = Sequential([_i(1), B.Pool(size=2), B.Upsample(factor=4), B.Conv(filters=1)])
    fields = list(receptive_fields(walk(dilnet.build(spec).output_layer)).values())
    assert fields[1] == (ReceptiveField(2, 2, 0),)  # the pool
    assert fields[2] == (ReceptiveField(2, Fraction(1, 2), 0),)  # upsampled by 4
    # the 3-tap 'same' conv, one pad before, at the upsampled jump: 2 + 2 / 2, 0 - 1 / 2
    assert fields[3] == fields[4] == (ReceptiveField(3, Fraction(1, 2), Fraction(-1, 2)),)


def test_layer_padding():
    x = L.InputLayer((None, 1, 9, None))
    assert layer_padding(L.ConvLayer(x, 1, (3, 4), pad="same")) == ((1, 1), (1, 2))
    assert layer_padding(L.ConvLayer(x, 1, 3, stride=2, pad="same")) == ((1, 1), None)
    assert layer_padding(L.ConvLayer(x, 1, 3, pad=((0, 2), 1))) == ((0, 2), (1, 1))
    assert layer_padding(L.PoolLayer(x, 3, pad=(1, 0))) == ((1, 1), (0, 0))
    assert layer_padding(L.NonlinearityLayer(x)) is None
