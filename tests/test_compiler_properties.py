"""Property tests of the compiler (`dilnet.build`) and the config format on random valid specs.

`models` draws a model of 1 to 3 spatial axes from every built-in block type, nested
(`Sequential`, `Residual`, `Parallel`/`Concat`), with int and per-axis kernels, strides,
dilations and paddings. While drawing it tracks, with its own arithmetic (`_conv_length`,
`_pool_length`), the channels and spatial lengths each block outputs for a drawn input size, and
only draws blocks that fit, so every spec builds for that size. Properties:

- output shapes: the shape `build` infers for the drawn size, the shape it infers with unknown
  (None) lengths, the tracked shape and the shape of the compiled output on a random input agree;
  specs of shape-keeping blocks only keep the input's spatial size;
- receptive fields: the input voxels an output voxel's gradient reaches lie inside the field
  `Network.receptive_field` gives for it, and reach both of its ends where it lies inside the
  input;
- configs: ``from_config(json round trip of to_config(spec)) == spec``, in plain JSON types.

Graphs are compiled with the Python linker and no rewrites (`CHEAP`, ~0.01 s a graph) and run
on dilnet's own CPU kernels; weights are seeded per test case.
"""

import json
import math
from contextlib import contextmanager
from typing import NamedTuple

import attrs
import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from pytensor.compile.mode import Mode

import dilnet.random
from dilnet import Sequential, build, from_config, to_config
from dilnet import blocks as B
from dilnet.backends import select

CHEAP = Mode(linker="py", optimizer=None)


#: activations whose derivative is never zero ('prelu' starts with slope 0.25)
SMOOTH_ACTIVATIONS = ("linear", "leaky_relu", "prelu", "elu", "selu", "sigmoid", "tanh", "softplus")
#: initialisers that draw every weight at random (not 'identity', whose taps are mostly zero)
RANDOM_INITS = ("glorot_uniform", "glorot_normal", "he_uniform", "he_normal", "orthogonal")
MAX_FILTERS = 4
#: blocks in a model, not counting containers; a stack counts one per layer
MAX_BLOCKS = 8


@pytest.fixture(autouse=True, scope="module")
def _blas_kernels():
    """dilnet's own CPU kernels: on graphs this small, torch's take up to milliseconds a call
    to start its threads, more than the rest of a test case together."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(select, "_choice", "blas")
        yield


class Model(NamedTuple):
    spec: Sequential
    size: tuple  # spatial lengths of the input to run it on
    channels: int  # output channels, tracked while drawing
    lengths: tuple  # output spatial lengths for `size`, tracked while drawing
    keep_size: bool  # only blocks that keep the spatial size


@attrs.define
class _Track:
    """What the blocks drawn so far output, and which blocks may come next."""

    rank: int
    channels: int
    lengths: tuple
    keep_size: bool  # only stride-1 'same' (or size-keeping explicit) padding, no pool/upsample
    smooth: bool  # for gradients: smooth activations, random weights, average pooling
    depth: int  # nesting levels left for Sequential, Residual and Parallel
    budget: list  # [blocks left to draw] (stacks count one per layer), shared by the model

    @property
    def max_length(self):
        return (32, 20, 12)[self.rank - 1]

    def child(self, keep_size=None):
        keep = self.keep_size if keep_size is None else keep_size
        return attrs.evolve(self, keep_size=keep, depth=self.depth - 1)


def _axes(value, rank):
    return (value,) * rank if isinstance(value, int) else tuple(value)


def _conv_length(n, kernel, stride, dilation, pad):
    """Output length along one axis; `pad` is 'same', 'valid', 'full', an int or a pair."""
    extent = (kernel - 1) * dilation + 1
    if pad == "same":
        return -(-n // stride)
    if pad == "valid":
        pad = 0
    elif pad == "full":
        pad = extent - 1
    before, after = (pad, pad) if isinstance(pad, int) else pad
    return (n + before + after - extent) // stride + 1


def _pool_length(n, size, stride, ceil):
    """Windows start at 0, stride, 2 * stride, ...: whole windows only, or with `ceil` windows
    starting inside the input until one reaches its end."""
    if not ceil:
        return (n - size) // stride + 1
    out = 1
    while (out - 1) * stride + size < n and out * stride < n:
        out += 1
    return out


def _per_axis(draw, rank, values):
    """An int for all axes, or a tuple with one value per axis."""
    if draw(st.booleans()):
        return draw(values)
    return draw(st.tuples(*[values] * rank))


def _activation(draw, t):
    return draw(st.sampled_from(SMOOTH_ACTIVATIONS if t.smooth else B.ACTIVATIONS))


def _init(draw, t, identity_ok):
    return draw(
        st.sampled_from(RANDOM_INITS + (("identity",) if identity_ok and not t.smooth else ()))
    )


def _odd(kernel):
    return all(k % 2 for k in ((kernel,) if isinstance(kernel, int) else kernel))


def _padding(draw, t, kernel, dilation):
    rank = t.rank
    if t.keep_size:
        if draw(st.booleans()):
            return "same"
        entries = []  # explicit padding that keeps the size: extent - 1 in total per axis
        for k, d in zip(_axes(kernel, rank), _axes(dilation, rank)):
            total = (k - 1) * d
            before = draw(st.integers(0, total))
            entries.append(before if 2 * before == total else (before, total - before))
        return tuple(entries)
    modes = st.sampled_from(B.PADDING_MODES)
    entry = st.one_of(st.integers(0, 2), st.tuples(st.integers(0, 2), st.integers(0, 2)))
    return draw(st.one_of(modes, modes, st.integers(0, 2), st.tuples(*[entry] * rank)))


def _conv(draw, t, dilated=False):
    rank = t.rank
    filters = draw(st.integers(1, MAX_FILTERS))
    kernel = _per_axis(draw, rank, st.integers(1, 4))
    dilation = _per_axis(draw, rank, st.integers(1, 3))
    if t.keep_size or dilated:
        stride = draw(st.sampled_from([1, (1,) * rank]))
    else:
        stride = _per_axis(draw, rank, st.integers(1, 2))
    per_axis = list(zip(t.lengths, _axes(kernel, rank), _axes(stride, rank), _axes(dilation, rank)))
    for _ in range(3):  # a padding that fits, else 'same' (which fits any length)
        padding = _padding(draw, t, kernel, dilation)
        pads = (padding,) * rank if isinstance(padding, str | int) else padding
        lengths = tuple(_conv_length(n, k, s, d, p) for (n, k, s, d), p in zip(per_axis, pads))
        if all(1 <= n <= t.max_length for n in lengths):
            break
    else:
        padding = "same"
        lengths = tuple(_conv_length(*axis, "same") for axis in per_axis)
    fields = {
        "filters": filters,
        "kernel": kernel,
        "dilation": dilation,
        "padding": padding,
        "activation": _activation(draw, t),
        "batch_norm": draw(st.booleans()),
        "bias": draw(st.sampled_from([None, True, False])),
        "init": _init(draw, t, filters == t.channels and _odd(kernel)),
    }
    block = B.DilatedConv(**fields) if dilated else B.Conv(stride=stride, **fields)
    t.channels, t.lengths = filters, lengths
    return block


def _pool(draw, t):
    rank = t.rank
    size = _per_axis(draw, rank, st.integers(1, 3))
    stride = None if draw(st.booleans()) else _per_axis(draw, rank, st.integers(1, 3))
    mode = "average" if t.smooth else draw(st.sampled_from(["max", "average"]))
    ceil = draw(st.booleans())
    sizes = _axes(size, rank)
    strides = sizes if stride is None else _axes(stride, rank)
    if any(n < k for n, k in zip(t.lengths, sizes)):
        ceil = True  # a partial window fits any length
    t.lengths = tuple(_pool_length(n, k, s, ceil) for n, k, s in zip(t.lengths, sizes, strides))
    return B.Pool(size=size, stride=stride, mode=mode, ceil=ceil)


def _upsample(draw, t):
    factor = _per_axis(draw, t.rank, st.integers(1, 3))
    lengths = tuple(n * f for n, f in zip(t.lengths, _axes(factor, t.rank)))
    if max(lengths) > t.max_length:
        factor, lengths = 1, t.lengths
    t.lengths = lengths
    return B.Upsample(factor=factor)


def _residual(draw, t):
    inner = t.child(keep_size=True)
    body = [_block(draw, inner) for _ in range(draw(st.integers(1, 2)))]
    assert inner.lengths == t.lengths
    changes = inner.channels != t.channels
    projection = draw(st.sampled_from([None, True] if changes else [None, True, False]))
    t.channels = inner.channels
    return B.Residual(body=body, projection=projection, activation=_activation(draw, t))


def _parallel(draw, t):
    kind = draw(st.sampled_from(["concat", "sum", "Concat"]))
    branches, channels = [], []
    for i in range(draw(st.integers(2, 3))):
        inner = t.child(keep_size=True)
        branch = [_block(draw, inner) for _ in range(draw(st.integers(1, 2)))]
        assert inner.lengths == t.lengths
        if kind == "sum" and i > 0 and inner.channels != channels[0]:
            inner.channels = channels[0]
            branch.append(B.Conv(filters=channels[0], kernel=1, activation=_activation(draw, t)))
        elif kind != "sum" and inner.channels > 2:  # keep the concatenation small
            inner.channels = draw(st.integers(1, 2))
            branch.append(B.Conv(filters=inner.channels, activation=_activation(draw, t)))
        channels.append(inner.channels)
        branches.append(branch[0] if len(branch) == 1 and draw(st.booleans()) else branch)
    t.channels = channels[0] if kind == "sum" else sum(channels)
    if kind == "Concat":
        return B.Concat(branches=branches)
    return B.Parallel(branches=branches, merge=kind)


def _dilated_stack(draw, t):
    filters = draw(st.integers(1, MAX_FILTERS))
    kernel = _per_axis(draw, t.rank, st.integers(1, 4))
    block = B.DilatedStack(
        filters=filters,
        dilations=draw(st.lists(st.integers(1, 3), min_size=1, max_size=3)),
        kernel=kernel,
        activation=_activation(draw, t),
        batch_norm=draw(st.booleans()),
        residual=draw(st.booleans()),
        dropout=0.0 if t.smooth else draw(st.one_of(st.just(0.0), st.floats(0, 0.9))),
        init=_init(draw, t, filters == t.channels and _odd(kernel)),
    )
    t.channels = filters
    return block


def _context_module(draw, t):
    variant = draw(st.sampled_from(["basic", "large"]))
    large = variant == "large"
    init = _init(draw, t, identity_ok=True)
    odd = st.sampled_from([1, 3])
    kernel = _per_axis(draw, t.rank, odd if init == "identity" else st.integers(1, 4))
    if large:
        channels = 1  # its layers have 2, 2 and 4 channels
    elif init == "identity":
        channels = t.channels  # the basic identity passes its input through
    else:
        channels = draw(st.integers(1, MAX_FILTERS))
    block = B.ContextModule(
        channels=channels,
        variant=variant,
        dilations=draw(st.lists(st.integers(1, 2), min_size=1, max_size=3 if large else 2)),
        kernel=kernel,
        activation=_activation(draw, t),
        init=init,
    )
    t.channels = channels
    return block


def _sequential(draw, t):
    inner = t.child()
    blocks = [_block(draw, inner) for _ in range(draw(st.integers(1, 3)))]
    t.channels, t.lengths = inner.channels, inner.lengths
    return Sequential(blocks)


def _batch_norm(draw, t):
    return B.BatchNorm(
        epsilon=draw(st.floats(1e-6, 1.0)), alpha=draw(st.floats(0.0, 1.0, exclude_max=True))
    )


def _dropout(draw, t):
    return B.Dropout(rate=draw(st.floats(0.0, 1.0, exclude_max=True)), spatial=draw(st.booleans()))


def _block(draw, t):
    """One block that fits `t`; updates `t` to what it outputs."""
    kinds = [lambda: _batch_norm(draw, t), lambda: B.Activation(name=_activation(draw, t))]
    if t.budget[0] > 0:  # else the cheap blocks only
        kinds += [
            lambda: _conv(draw, t),
            lambda: _conv(draw, t, dilated=True),
            lambda: _dilated_stack(draw, t),
            lambda: _context_module(draw, t),
        ]
        if not t.smooth:
            kinds.append(lambda: _dropout(draw, t))
        if not t.keep_size:  # more of the blocks that change the size
            kinds += [lambda: _conv(draw, t), lambda: _pool(draw, t), lambda: _pool(draw, t)]
            if not t.smooth:
                kinds.append(lambda: _upsample(draw, t))
        if t.depth > 0:
            kinds += [lambda: _residual(draw, t), lambda: _parallel(draw, t)]
            kinds.append(lambda: _sequential(draw, t))
    block = draw(st.sampled_from(kinds))()
    if not isinstance(block, B.Residual | B.Parallel | B.Concat | Sequential):
        t.budget[0] -= len(getattr(block, "dilations", (1,)))
    return block


@st.composite
def models(draw, keep_size=None, smooth=False):
    """A valid model spec and an input size it fits (`Model`).

    ``keep_size``: only blocks that keep the spatial size (None: drawn). ``smooth``: no relu,
    softmax, max pooling, upsampling, dropout or identity initialisation, so that every input
    voxel inside an output voxel's receptive field gets a nonzero gradient.
    """
    rank = draw(st.integers(1, 3))
    if keep_size is None:
        keep_size = draw(st.integers(0, 2)) == 0
    size = draw(st.tuples(*[st.integers(4, 7) if rank == 3 else st.integers(5, 12)] * rank))
    channels = draw(st.integers(1, MAX_FILTERS))
    t = _Track(rank, channels, size, keep_size, smooth, depth=2, budget=[MAX_BLOCKS])
    blocks = [_block(draw, t) for _ in range(draw(st.integers(1, 4)))]
    if draw(st.booleans()):
        classes = draw(st.integers(1, MAX_FILTERS))
        names = ("sigmoid", "linear") if smooth else ("softmax", "sigmoid", "linear")
        blocks.append(B.Classifier(num_classes=classes, activation=draw(st.sampled_from(names))))
        t.channels = classes
    # the Input knows some lengths and leaves the others unknown
    spatial = tuple(n if draw(st.booleans()) else None for n in size)
    spec = Sequential([B.Input(channels=channels, spatial=spatial), *blocks])
    return Model(spec, size, t.channels, t.lengths, keep_size)


@contextmanager
def _seeded_weights(seed):
    previous = dilnet.random.get_rng()
    dilnet.random.set_rng(np.random.default_rng(seed))
    try:
        yield
    finally:
        dilnet.random.set_rng(previous)


def _run(network, x):
    fn = pytensor.function(
        [network.input_layer.input_var], network.get_output(deterministic=True), mode=CHEAP
    )
    return fn(x)


# ---------------------------------------------------------------------------------------------
# Output shapes


@settings(max_examples=500, deadline=None, derandomize=True)
@given(model=models(), batch=st.integers(1, 2), seed=st.integers(0, 2**32 - 1))
def test_inferred_output_shape_is_the_compiled_shape(model, batch, seed):
    spec, size = model.spec, model.size
    known = spec.blocks[0].spatial
    event(f"rank {len(size)}, {sum(n is None for n in known)} unknown lengths")
    with _seeded_weights(seed):
        network = build(spec)
        sized = build(spec, spatial=size)

    tracked = (model.channels, *model.lengths)
    assert sized.output_shape == (None, *tracked)
    expected_open = tuple(n if k is not None else None for n, k in zip(model.lengths, known))
    assert network.output_shape == (None, model.channels, *expected_open)
    # receptive fields: sizes and jumps do not depend on the lengths; starts are known (and
    # the same) unless a length is unknown
    for open_field, field, k in zip(network.receptive_field, sized.receptive_field, known):
        assert (open_field.size, open_field.jump) == (field.size, field.jump)
        assert open_field.start == field.start or (k is None and open_field.start is None)

    x = np.random.default_rng(seed).standard_normal((batch, spec.blocks[0].channels, *size))
    y = _run(network, x)
    assert y.shape == (batch, *tracked)
    assert y.shape[1:] == sized.output_shape[1:]
    assert np.isfinite(y).all()
    if model.keep_size:
        event("keeps the size")
        assert y.shape[2:] == size


# ---------------------------------------------------------------------------------------------
# Receptive fields


def _interior(field, n, outputs):
    """The output indices whose receptive field lies inside ``[0, n - 1]``, or None."""
    first = max(0, -(field.start // field.jump))
    last = min(outputs - 1, (n - field.size - field.start) // field.jump)
    return (first, last) if first <= last else None


def _grown_input(spec, size):
    """`size` grown (up to a cap) until each axis has an output whose field lies inside it."""
    cap = 16 if len(size) == 3 else 48
    size = list(size)
    for _ in range(12):
        sized = build(spec, spatial=tuple(size))
        grown = False
        for axis, (field, n, m) in enumerate(
            zip(sized.receptive_field, size, sized.output_shape[2:])
        ):
            if _interior(field, n, m) is None and n < cap:
                first = -(field.start // field.jump)
                size[axis] = min(cap, max(n + 1, field.start + field.jump * first + field.size))
                grown = True
        if not grown:
            break
    return tuple(size), sized


@settings(max_examples=100, deadline=None, derandomize=True)
@given(model=models(smooth=True), seed=st.integers(0, 2**32 - 1), data=st.data())
def test_gradient_support_is_the_receptive_field(model, seed, data):
    spec = model.spec
    rank = len(model.size)
    # run with unknown lengths (the run pads for 'same' with strides from the actual length)
    inputs = B.Input(channels=spec.blocks[0].channels, spatial=(None,) * rank)
    with _seeded_weights(seed):
        size, sized = _grown_input(spec, model.size)
        network = build(attrs.evolve(spec, blocks=(inputs, *spec.blocks[1:])))
    fields = sized.receptive_field
    assert all(isinstance(f.jump, int) and isinstance(f.start, int) for f in fields)

    anywhere = data.draw(st.integers(0, 3)) == 0  # else an output whose field is inside
    voxel = []
    for field, n, m in zip(fields, size, sized.output_shape[2:]):
        inside = _interior(field, n, m)
        lo, hi = (0, m - 1) if anywhere or inside is None else inside
        voxel.append(data.draw(st.integers(lo, hi)))

    rng = np.random.default_rng(seed)
    out = network.get_output(deterministic=True)
    x = network.input_layer.input_var
    # a random mix of the output channels: each channel of a concatenation sees its own branch
    mix = pt.dot(out[(0, slice(None), *voxel)], rng.standard_normal(sized.output_shape[1]))
    grad_fn = pytensor.function([x], pytensor.grad(mix, x), mode=CHEAP)
    grad = grad_fn(rng.standard_normal((1, spec.blocks[0].channels, *size)))
    reach = np.abs(grad[0]).sum(axis=0)

    ends = [
        (f.start + f.jump * o, f.start + f.jump * o + f.size - 1) for f, o in zip(fields, voxel)
    ]
    # Inside the input the field is exact. Where it reaches into the padding, an output voxel can
    # depend on fewer input voxels (a dilated kernel skips some, a voxel of an explicit padding
    # on the far side of a later layer sees none), so there it only contains the support.
    inside = all(0 <= first and last <= n - 1 for (first, last), n in zip(ends, size))
    event("field inside the input" if inside else "field partly outside the input")
    for axis, ((first, last), n) in enumerate(zip(ends, size)):
        profile = reach.sum(axis=tuple(a for a in range(rank) if a != axis))
        support = np.flatnonzero(profile)
        where = f"axis {axis}: output {voxel}, fields {fields}, input size {size}"
        if support.size:
            assert max(0, first) <= support.min() and support.max() <= min(n - 1, last), where
        if inside:
            assert support.size and (support.min(), support.max()) == (first, last), where


# ---------------------------------------------------------------------------------------------
# Configs


def _plain_json(value):
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain_json(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_plain_json(v) for v in value)
    if isinstance(value, float):
        return math.isfinite(value)
    return value is None or isinstance(value, str | int | bool)


@settings(max_examples=500, deadline=None, derandomize=True)
@given(model=models())
def test_config_round_trips_through_json(model):
    spec = model.spec
    config = to_config(spec)
    assert _plain_json(config)
    text = json.dumps(config, allow_nan=False)
    assert json.loads(text) == config
    assert spec.to_config() == config
    restored = from_config(json.loads(text))
    assert restored == spec
    assert type(restored) is Sequential
    assert to_config(restored) == config
