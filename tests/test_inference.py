"""Tiled inference: stitched tiles equal the whole-volume prediction, plans cover every voxel
once with crops inside the volume, the halo is the true reach, memory limits pick tiles whose
estimate fits, and bad arguments say what was expected."""

import functools
import math

import numpy as np
import pytensor
import pytest
from pytensor.compile.mode import Mode

import dilnet
from dilnet import ConfigError, Sequential, ShapeError
from dilnet import blocks as B
from dilnet.backends.select import get_cpu_kernels, have, set_cpu_kernels
from dilnet.inference import (
    DEFAULT_MEMORY_LIMIT,
    compute_halo,
    parse_memory,
    plan_tiles,
    predict_volume,
)

PY = Mode(linker="py", optimizer=None)  # compiles in milliseconds


class CompiledModel:
    """The two things predict_volume uses of a model: `network` and `predict_on_batch`."""

    def __init__(self, spec, seed=0, floatX="float64", mode="CVM"):
        with pytensor.config.change_flags(floatX=floatX):
            self.network = dilnet.build(spec)
            randomise(self.network, np.random.default_rng(seed))
            self._fn = pytensor.function(
                [self.network.input_layer.input_var],
                self.network.get_output(deterministic=True),
                mode=mode,
            )

    def predict_on_batch(self, x):
        return self._fn(x)


def randomise(network, rng):
    """Random weights everywhere -- biases and batch-norm statistics too (inv_std positive), so
    that border effects would show -- with kernels scaled by their fan-in to keep activations
    of order 1, as in a trained network."""
    for p in network.get_params():
        value = p.get_value()
        if p.name.endswith("inv_std"):
            new = rng.uniform(0.5, 2.0, value.shape)
        elif value.ndim > 1:
            new = rng.normal(0.0, 1.0 / np.sqrt(math.prod(value.shape[1:])), value.shape)
        else:
            new = rng.normal(0.0, 0.5, value.shape)
        p.set_value(new.astype(value.dtype))


I3 = B.Input(channels=2, spatial=(None,) * 3)
SPECS = {
    # 3D: dilated residual stack with batch norm
    "dilated3d": [
        I3,
        B.Conv(filters=4),
        B.DilatedStack(filters=4, dilations=(1, 2, 4), residual=True, batch_norm=True),
        B.Classifier(num_classes=3),
    ],
    # 2D: an even kernel (asymmetric halo) and a context module
    "context2d": [
        B.Input(channels=1, spatial=(None, None)),
        B.Conv(filters=3, kernel=(4, 2)),
        B.ContextModule(channels=3, dilations=(1, 2, 4)),
        B.Classifier(num_classes=2, activation="linear"),
    ],
    # 1D: batch norm, a residual block and parallel branches
    "residual1d": [
        B.Input(channels=1, spatial=(None,)),
        B.Conv(filters=4, kernel=5, dilation=3, batch_norm=True),
        B.Residual(
            body=[B.Conv(filters=4), B.Conv(filters=4, dilation=2, activation="tanh")],
            activation="relu",
        ),
        B.Parallel(branches=[[B.Conv(filters=2)], [B.Conv(filters=2, kernel=2, dilation=5)]]),
        B.Classifier(num_classes=3),
    ],
    # period 2: pool, dilated conv at half resolution, upsample
    "pool2": [
        B.Input(channels=1, spatial=(None, None)),
        B.Conv(filters=3),
        B.Pool(size=2),
        B.Conv(filters=3, dilation=2),
        B.Upsample(factor=2),
        B.Conv(filters=3, kernel=4),
        B.Classifier(num_classes=2),
    ],
    # period 4: average pool, strided conv ('same' padding that depends on the length), upsample
    "pool4": [
        B.Input(channels=2, spatial=(None, None)),
        B.Pool(size=2, mode="average"),
        B.Conv(filters=3, stride=2),
        B.Conv(filters=3, batch_norm=True),
        B.Upsample(factor=2),
        B.Conv(filters=2),
        B.Upsample(factor=2),
        B.Classifier(num_classes=2),
    ],
    # period 2 in 1D: an even kernel with stride 2, then a dilated conv at half resolution
    "strided1d": [
        B.Input(channels=1, spatial=(None,)),
        B.Conv(filters=3),
        B.Conv(filters=3, kernel=2, stride=2),
        B.DilatedConv(filters=3, dilation=2),
        B.Upsample(factor=2),
        B.Classifier(num_classes=2),
    ],
}


@functools.cache
def model(name, floatX="float64"):
    return CompiledModel(Sequential(SPECS[name]), floatX=floatX)


@pytest.fixture(autouse=True, scope="module")
def blas_kernels():
    # dilnet's own kernels: PyTorch's float64 dilated conv3d costs ~30 ms per call even for
    # 4^3 voxels, and these tests make hundreds of small calls (test_torch_kernels_are_exact_too
    # covers PyTorch's)
    previous = get_cpu_kernels()
    set_cpu_kernels("blas")
    yield
    set_cpu_kernels(previous)


class Recording:
    """A model that records the input shape of every call (and may claim to compile per
    shape, as `Model` does on the JAX linker)."""

    def __init__(self, inner, compiles_per_shape=False):
        self.network, self.inner, self.shapes = inner.network, inner, []
        self.compiles_per_shape = compiles_per_shape

    def predict_on_batch(self, x):
        self.shapes.append(x.shape)
        return self.inner.predict_on_batch(x)


class Wrapped:
    def __init__(self, network):
        self.network = network

    def predict_on_batch(self, x):
        raise AssertionError("not called")


def volume(shape, seed=1, dtype=np.float64):
    return np.random.default_rng(seed).normal(size=shape).astype(dtype)


def whole(m, vol):
    return m.predict_on_batch(vol[None])[0]


# ---------------------------------------------------------------------------------------------
# Exactness


CLIPPED = [
    ("dilated3d", (2, 21, 18, 23), (8, 5, 16), 3),
    ("dilated3d", (2, 13, 11, 9), 4, 1),  # tiles smaller than the halo (8)
    ("context2d", (1, 37, 29), (6, 11), 4),
    ("context2d", (1, 37, 29), 1, 64),  # one-voxel tiles
    ("residual1d", (1, 101), 7, 2),
    ("pool2", (1, 34, 26), (6, 8), 2),
    ("pool2", (1, 34, 26), 2, 1),  # one period per tile, halo 8
    ("pool4", (2, 36, 28), (4, 8), 4),
    ("pool4", (2, 36, 28), (12, 100), 1),  # the tile covers a whole axis
    ("strided1d", (1, 50), 4, 3),
]
# same-shape crops are the tile plus the whole halo, so these volumes are larger than that
SAME_SHAPE = [
    ("dilated3d", (2, 30, 19, 27), (4, 2, 8), 3),
    ("context2d", (1, 37, 29), (6, 11), 4),
    ("context2d", (1, 37, 29), 1, 64),
    ("residual1d", (1, 101), 7, 2),
    ("pool2", (1, 34, 26), (6, 8), 2),
    ("pool2", (1, 34, 26), 2, 1),
    ("pool4", (2, 36, 28), (4, 8), 4),  # the second axis is one crop
    ("pool4", (2, 60, 28), (12, 100), 1),
    ("strided1d", (1, 50), 4, 3),
]


@pytest.mark.parametrize(
    ("name", "shape", "tile", "batch_size", "same_shape"),
    [(*case, False) for case in CLIPPED] + [(*case, True) for case in SAME_SHAPE],
)
def test_tiles_stitch_to_the_whole_volume_prediction(name, shape, tile, batch_size, same_shape):
    m = Recording(model(name))
    vol = volume(shape)
    expected = whole(m.inner, vol)
    got = predict_volume(
        m, vol, tile=tile, batch_size=batch_size, progress=False, same_shape=same_shape
    )
    assert got.shape == expected.shape and got.dtype == expected.dtype
    # float64 with dilnet's kernels: bit for bit (0.0 observed); allow BLAS summation order
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    plan = plan_tiles(m, shape[1:], tile=tile, batch_size=batch_size, same_shape=same_shape)
    assert len(plan.tiles) > 1
    if same_shape:  # one crop shape; every call a full batch (unless there is just one call)
        assert len({t.crop_shape for t in plan.tiles}) == 1
        assert len(set(m.shapes)) == 1
        assert m.shapes[0][0] == min(batch_size, len(plan.tiles))
    else:
        assert len(set(m.shapes)) > 1


@pytest.mark.skipif(not have("torch"), reason="needs PyTorch")
@pytest.mark.parametrize(("floatX", "atol"), [("float64", 1e-12), ("float32", 1e-6)])
def test_torch_kernels_are_exact_too(floatX, atol):
    m = model("dilated3d", floatX)
    vol = volume((2, 17, 12, 14), dtype=floatX)
    set_cpu_kernels("torch")
    try:
        expected = whole(m, vol)
        got = predict_volume(m, vol, tile=(9, 12, 7), batch_size=2, progress=False)
    finally:
        set_cpu_kernels("blas")
    # oneDNN orders its sums differently per shape: up to ~1e-15 (float64) and a few float32
    # ulps of the output observed
    np.testing.assert_allclose(got, expected, rtol=0, atol=atol)


@pytest.mark.parametrize("name", ["dilated3d", "pool4"])
def test_float32_within_1e_6(name):
    m = model(name, "float32")
    shape = (2, 19, 16, 13) if name == "dilated3d" else (2, 24, 20)
    vol = volume(shape, dtype=np.float32)
    expected = whole(m, vol)
    got = predict_volume(m, vol, tile=(8, 8, 4)[: len(shape) - 1], batch_size=2, progress=False)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)


def test_single_channel_volume_without_channel_axis_and_array_likes():
    m = model("residual1d")
    vol = volume((1, 60))
    expected = whole(m, vol)
    got = predict_volume(m, vol[0], tile=16, progress=False)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    # a nested list works too; float32 input is cast to the network's float64
    got = predict_volume(m, vol[0].astype(np.float32).tolist(), tile=16, progress=False)
    np.testing.assert_allclose(got, whole(m, vol.astype(np.float32)), rtol=0, atol=1e-12)


def test_memmap_in_and_out(tmp_path):
    m = model("pool2")
    vol = volume((1, 30, 22))
    source = np.lib.format.open_memmap(tmp_path / "in.npy", mode="w+", shape=vol.shape)
    source[:] = vol
    target = np.lib.format.open_memmap(tmp_path / "out.npy", mode="w+", shape=(2, 30, 22))
    got = predict_volume(m, source, tile=8, out=target, progress=False)
    assert got is target
    target.flush()
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), whole(m, vol), rtol=0, atol=1e-12)


def test_zero_padding_the_input_instead_of_clipping_would_not_be_exact():
    # Why crops are clipped to the volume: zero input voxels are not zero activations after a
    # conv with biases, so padding the input changes what the second layer sees at the border.
    m = model("dilated3d")
    vol = volume((2, 12, 12, 12))
    pad = compute_halo(m).before[0]
    padded = np.pad(vol, [(0, 0)] + [(pad, pad)] * 3)
    inner = whole(m, padded)[:, pad:-pad, pad:-pad, pad:-pad]
    assert np.abs(inner - whole(m, vol)).max() > 1e-3


def test_same_shape_follows_the_model_and_fills_only_a_repeated_shape():
    m = Recording(model("strided1d"), compiles_per_shape=True)
    vol = volume((1, 40))
    expected = whole(m.inner, vol)
    # halo 6 + 6 (period 2): crops of 16 for tiles of 4: [0, 10), five of 4, [30, 40); in
    # batches of 3, 3 and 1, the last filled up to 3
    got = predict_volume(m, vol, tile=4, batch_size=3, progress=False)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    assert m.shapes == [(3, 1, 16)] * 3
    # tile 16 evens out to 14: crops of 26 for [0, 20) and [20, 40), one batch of its shape:
    # not filled up (that would be work for nothing)
    m = Recording(model("strided1d"), compiles_per_shape=True)
    predict_volume(m, vol, tile=16, batch_size=8, progress=False)
    assert m.shapes == [(2, 1, 26)]
    m = Recording(model("strided1d"))  # a C VM model: clipped crops of 10, 14 and 16
    predict_volume(m, vol, tile=4, batch_size=3, progress=False)
    assert {shape[2] for shape in m.shapes} == {10, 14, 16}


def test_progress_bar(capsys):
    m = model("strided1d")
    predict_volume(m, volume((1, 16)), tile=4, progress=True)
    assert "predict_volume" in capsys.readouterr().err
    predict_volume(m, volume((1, 16)), tile=4, progress=False)
    assert capsys.readouterr().err == ""


# ---------------------------------------------------------------------------------------------
# Halo


@pytest.mark.parametrize("name", ["dilated3d", "context2d", "residual1d"])
def test_halo_of_stride_1_networks_is_the_receptive_field(name):
    net = model(name).network
    halo = compute_halo(net)
    assert halo.period == (1,) * net.rank
    assert halo.before == halo.reach_before == tuple(-f.start for f in net.receptive_field)
    assert (
        halo.after == halo.reach_after == tuple(f.start + f.size - 1 for f in net.receptive_field)
    )


@pytest.mark.parametrize(
    ("blocks", "period"),
    [
        ([B.Conv(filters=2, activation="tanh"), B.Pool(size=2, mode="average"),
          B.Conv(filters=2, dilation=2, activation="tanh"), B.Upsample(factor=2),
          B.Conv(filters=2, kernel=4, activation="tanh")], 2),
        ([B.Conv(filters=2, stride=2, activation="tanh"),
          B.Conv(filters=2, kernel=4, stride=2, activation="tanh"), B.Upsample(factor=2),
          B.Conv(filters=2, kernel=2, activation="tanh"), B.Upsample(factor=2)], 4),
        ([B.Upsample(factor=2), B.Conv(filters=2, kernel=3, stride=3, activation="tanh"),
          B.Conv(filters=2, activation="tanh"), B.Upsample(factor=3),
          B.Pool(size=2, mode="average")], 3),
    ],
)  # fmt: skip
def test_halo_is_the_reach_observed_by_perturbing_each_input_voxel(blocks, period):
    m = CompiledModel(
        Sequential([B.Input(channels=1, spatial=(None,)), *blocks,
                    B.Classifier(num_classes=2, activation="linear")]),
        mode=PY,
    )  # fmt: skip
    halo = compute_halo(m)
    assert halo.period == (period,)
    n = 24 * period
    base = volume((1, n))
    x = np.repeat(base[None], n, axis=0)
    x[np.arange(n), 0, np.arange(n)] += 1.0  # row j: voxel j perturbed
    changed = np.abs(m.predict_on_batch(x) - whole(m, base)).max(axis=1) > 0  # (j, o)
    j, o = np.nonzero(changed)
    middle = (o >= n // 3) & (o < 2 * n // 3)  # away from the borders
    assert (o - j)[middle].max() == halo.reach_before[0]
    assert (j - o)[middle].max() == halo.reach_after[0]
    assert halo.before[0] % period == 0 and halo.before[0] >= halo.reach_before[0]


# ---------------------------------------------------------------------------------------------
# Plans


@pytest.mark.parametrize(
    ("name", "spatial", "tile"),
    [
        ("dilated3d", (21, 18, 23), (8, 5, 16)),
        ("context2d", (37, 29), 3),
        ("pool2", (34, 26), (6, 8)),
        ("pool4", (36, 28), (4, 12)),
        ("strided1d", (50,), 100),
    ],
)
@pytest.mark.parametrize("same_shape", [False, True])
def test_plan_covers_every_voxel_once_with_crops_holding_the_halo(name, spatial, tile, same_shape):
    net = model(name).network
    plan = plan_tiles(net, spatial, tile=tile, same_shape=same_shape)
    assert plan.same_shape is same_shape
    halo = plan.halo
    count = np.zeros(spatial, dtype=int)
    for t in plan.tiles:
        count[t.slices] += 1
        for a, b, ca, cb, n, p, before, after in zip(
            t.start, t.stop, t.crop_start, t.crop_stop, spatial, halo.period, halo.before,
            halo.after, strict=True,
        ):  # fmt: skip
            assert 0 <= ca <= a < b <= cb <= n
            assert ca <= max(0, a - before) and cb >= min(n, b + after)
            assert ca % p == 0 and (cb % p == 0 or cb == n)
        assert t.crop_shape == tuple(s.stop - s.start for s in t.crop_slices)
        assert tuple(s.stop - s.start for s in t.inner_slices) == t.shape
    assert (count == 1).all()
    if same_shape:
        assert {t.crop_shape for t in plan.tiles} == {
            tuple(min(n, t + b + a) for n, t, b, a in zip(
                spatial, plan.tile, halo.before, halo.after, strict=True))
        }  # fmt: skip


@pytest.mark.parametrize(
    ("spatial", "tile", "tiles", "inner"),
    [
        # halo 8 on each side (period 1): 99 = 36 + 28 + 35 with crops of 44, not
        # 32 + 32 + 32 + 3 (whose last crop would be mostly halo); 60 = 30 + 30 (crops of 38)
        ((99, 20, 60), 32, (3, 1, 2), (28, 20, 22)),
        ((17, 16, 33), (1, 1, 1), (1, 1, 17), (17, 16, 1)),
    ],
)
def test_same_shape_plans_use_the_fewest_crops_evened_out(spatial, tile, tiles, inner):
    # hand-computed: n axis voxels need ceil((n - 16) / tile) crops of tile + 16 (one crop
    # covering the whole axis where tile + 16 >= n); the tile then shrinks to the least length
    # that keeps that count
    plan = plan_tiles(model("dilated3d"), spatial, tile=tile, same_shape=True)
    assert plan.halo.before == plan.halo.after == (8, 8, 8)
    assert plan.tile == inner
    for axis, count in enumerate(tiles):
        assert len({t.start[axis] for t in plan.tiles}) == count


def _fewer_tiles(length, tile, period=1):
    """The tile length that makes one tile fewer along an axis of `length`."""
    count = math.ceil(length / tile)
    return None if count == 1 else math.ceil(math.ceil(length / (count - 1)) / period) * period


def test_memory_limit_chooses_the_fewest_even_tiles_whose_estimate_fits():
    m = model("dilated3d")
    net = m.network
    spatial = (40, 40, 40)
    plan = plan_tiles(m, spatial, memory_limit="16MiB", batch_size=2)
    assert plan.memory_limit == 16 * 2**20
    assert plan.estimate <= plan.memory_limit
    side = plan.tile[0]
    assert plan.tile == (side,) * 3 and 1 <= side < 40
    # one tile fewer per axis does not fit; the tiles are as even as they can be
    fewer = _fewer_tiles(40, side)
    assert plan_tiles(m, spatial, tile=fewer, batch_size=2).estimate > plan.memory_limit
    count = -(-40 // side)
    assert side == -(-40 // count)
    # the estimate: the outputs alive at once for the largest crop, plus the output tiles
    crop = (min(40, side + 16),) * 3
    assert plan.estimate == net.peak_activation_bytes(crop, 2) + 2 * 8 * 3 * side**3


def test_memory_limit_with_a_period_and_a_short_axis():
    m = model("pool4")
    plan = plan_tiles(m, (400, 8), memory_limit=100_000)
    assert plan.tile[1] == 8 and plan.tile[0] % 4 == 0 and 8 < plan.tile[0] < 400
    fewer = _fewer_tiles(400, plan.tile[0], period=4)
    assert plan.estimate <= 100_000 < plan_tiles(m, (400, 8), tile=(fewer, 8)).estimate
    assert plan.tiles[-1].stop[0] == 400


def test_default_is_the_whole_volume_when_it_fits_in_1_gib():
    m = model("dilated3d")
    plan = plan_tiles(m, (20, 20, 20))
    assert plan.tile == (20, 20, 20) and len(plan.tiles) == 1
    big = plan_tiles(m, (400, 400, 400))
    assert big.memory_limit == DEFAULT_MEMORY_LIMIT
    assert big.tile[0] < 400 and big.estimate <= DEFAULT_MEMORY_LIMIT


def test_tile_overrides_memory_limit_and_fixed_input_axes_are_not_tiled():
    m = model("dilated3d")
    assert plan_tiles(m, (20, 20, 20), tile=5, memory_limit=10**12).tile == (5, 5, 5)
    fixed = dilnet.build(
        Sequential([B.Input(channels=1, spatial=(None, 12)), B.Conv(filters=2, dilation=3)])
    )
    plan = plan_tiles(fixed, (30, 12), tile=4)
    assert plan.tile == (4, 12) and plan.halo.fixed == (False, True)
    with pytest.raises(ShapeError, match=r"spatial lengths the network's Input block fixes"):
        predict_volume(Wrapped(fixed), np.zeros((30, 13)), progress=False)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("2GiB", 2 * 2**30), ("512MB", 512 * 10**6), ("1.5 kib", 1536), (" 10 b ", 10),
     ("3k", 3000), (1000, 1000), (2.5e9, 2_500_000_000), ("7", 7)],
)  # fmt: skip
def test_parse_memory(value, expected):
    assert parse_memory(value) == expected


@pytest.mark.parametrize("value", ["2 parsecs", "GiB", "-1MB", "0.1", 0, -5, True, None, [1]])
def test_parse_memory_rejects(value):
    with pytest.raises(ConfigError, match=r"invalid value for `memory_limit`. Expected a positive"):
        parse_memory(value)


# ---------------------------------------------------------------------------------------------
# Errors


def test_memory_limit_below_the_smallest_tile():
    with pytest.raises(
        ConfigError,
        match=r"predict_volume: invalid value for `memory_limit`. Expected at least \d+ bytes "
        r"\(.*\), the estimated memory of one batch \(batch_size=1\) of the smallest tile "
        r"\(8, 8, 8\) with its halo \(crop \(20, 20, 20\)\); received memory_limit='10kB'.",
    ):
        predict_volume(model("dilated3d"), volume((2, 20, 20, 20)), memory_limit="10kB")


@pytest.mark.parametrize(
    ("shape", "match"),
    [
        ((3, 10, 10, 10), r"received volume of shape \(3, 10, 10, 10\)"),
        ((10, 10, 10), r"received volume of shape \(10, 10, 10\)"),
        ((2, 10, 10), r"received volume of shape \(2, 10, 10\)"),
    ],
)
def test_volume_of_the_wrong_shape(shape, match):
    expected = (
        r"predict_volume: invalid value for `volume`. Expected an array of shape "
        r"\(channels, \*spatial\) = \(2, \.\.\., \.\.\., \.\.\.\) with 3 spatial axes"
    )
    with pytest.raises(ShapeError, match=expected + ".*" + match):
        predict_volume(model("dilated3d"), np.zeros(shape), progress=False)


def test_lengths_that_are_not_multiples_of_the_period_are_padded_and_cropped_back(tmp_path):
    # plan_tiles still names the period
    with pytest.raises(
        ShapeError,
        match=r"plan_tiles: invalid value for `spatial`. Expected spatial lengths for which "
        r"the network outputs a prediction per input voxel .*received spatial spatial shape "
        r"\(34, 27\), for which the network outputs spatial shape \(34, 26\). Its pooling and "
        r"strides need lengths that are multiples of \(2, 2\)",
    ):
        plan_tiles(model("pool2").network, (34, 27))
    # predict_volume pads with zeros after each axis's end to a multiple of the period and
    # crops back: the oracle is the whole zero-padded volume in one call, cropped
    for name, shape, tile in [("pool2", (33, 27), 8), ("pool4", (2, 30, 23), 8),
                              ("strided1d", (1, 37), 4)]:  # fmt: skip
        m = model(name)
        vol = volume(shape)
        period = {"pool2": 2, "pool4": 4, "strided1d": 2}[name]
        rank = m.network.rank
        spatial = shape[-rank:]
        pad = [(0, 0)] * (len(shape) - rank) + [(0, -n % period) for n in spatial]
        padded = np.pad(vol, pad)
        expected = whole(m, padded if len(shape) > rank else padded[None])
        expected = expected[(slice(None), *(slice(0, n) for n in spatial))]
        got = predict_volume(m, vol, tile=tile, progress=False)
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)
        # from a memmap (read crop by crop through the padding), into a given out=
        np.save(tmp_path / f"{name}.npy", vol)
        mapped = np.load(tmp_path / f"{name}.npy", mmap_mode="r")
        out = np.zeros_like(expected)
        assert predict_volume(m, mapped, tile=tile, progress=False, out=out) is out
        np.testing.assert_allclose(out, expected, rtol=1e-10, atol=1e-12)


def test_networks_that_do_not_predict_densely():
    net = dilnet.build(
        Sequential([B.Input(channels=1, spatial=(None,)), B.Conv(filters=2, stride=2)])
    )
    with pytest.raises(ShapeError, match=r"outputs spatial shape \(8,\)"):
        plan_tiles(net, (16,))


@pytest.mark.parametrize(
    ("tile", "name"),
    [(0, "dilated3d"), ((4, 4), "dilated3d"), ((4, 0, 4), "dilated3d"), (2.5, "dilated3d"),
     ("big", "dilated3d"), (3, "pool2"), ((4, 6), "pool4")],
)  # fmt: skip
def test_invalid_tile(tile, name):
    m = model(name)
    spatial = (24,) * m.network.rank
    with pytest.raises(ConfigError, match=r"predict_volume: invalid value for `tile`. Expected"):
        predict_volume(m, np.zeros((m.network.input_shape[1], *spatial)), tile=tile)


def test_invalid_same_shape():
    with pytest.raises(ConfigError, match=r"invalid value for `same_shape`. Expected True or"):
        predict_volume(model("strided1d"), np.zeros(8), same_shape="yes")


@pytest.mark.parametrize("batch_size", [0, -1, 1.5, None])
def test_invalid_batch_size(batch_size):
    with pytest.raises(ConfigError, match=r"invalid value for `batch_size`. Expected a positive"):
        predict_volume(model("strided1d"), np.zeros(8), batch_size=batch_size)


def test_out_of_the_wrong_shape():
    with pytest.raises(
        ShapeError,
        match=r"invalid value for `out`. Expected an array of shape \(2, 8\) .*received out of "
        r"shape \(1, 8\)",
    ):
        predict_volume(model("strided1d"), np.zeros(8), out=np.zeros((1, 8)))


@pytest.mark.parametrize("out", [np.zeros((2, 8), np.int32), np.zeros((2, 8), bool)])
def test_an_out_that_would_truncate_probabilities_is_refused(out):
    with pytest.raises(
        ConfigError,
        match=r"invalid value for `out`. Expected a writeable float array \(the class "
        rf"probabilities\); received out of dtype {out.dtype}\.",
    ):
        predict_volume(model("strided1d"), np.zeros(8), out=out, progress=False)
    assert not out.any()  # untouched
    read_only = np.zeros((2, 8))
    read_only.flags.writeable = False
    with pytest.raises(ConfigError, match=r"dtype float64, read-only"):
        predict_volume(model("strided1d"), np.zeros(8), out=read_only, progress=False)


def test_complex_volumes_are_refused():
    with pytest.raises(
        ConfigError,
        match=r"invalid value for `volume`. Expected real numbers \(bool, integer or float\); "
        r"received volume of dtype complex128",
    ):
        predict_volume(model("strided1d"), np.zeros(8, complex), progress=False)


def test_a_model_whose_predictions_do_not_match_its_network():
    class Broken:
        network = model("strided1d").network

        def predict_on_batch(self, x):
            return np.zeros((len(x), 5, 3))

    with pytest.raises(ShapeError, match=r"model.predict_on_batch returned shape \(1, 5, 3\)"):
        predict_volume(Broken(), np.zeros(8), progress=False)


def test_not_a_model():
    with pytest.raises(ConfigError, match=r"invalid value for `model`. Expected a model with"):
        predict_volume(object(), np.zeros(8))
    with pytest.raises(ConfigError, match=r"`network` and `predict_on_batch`"):
        predict_volume(model("strided1d").network, np.zeros(8))
    with pytest.raises(ConfigError, match=r"plan_tiles: invalid value for `spatial`. Expected 3"):
        plan_tiles(model("dilated3d"), (8, 8))


# ---------------------------------------------------------------------------------------------
# The input contract's intensity scaling, and non-finite input


class WithContract(Recording):
    def __init__(self, inner, contract):
        super().__init__(inner)
        self.input_contract = contract


def test_the_contract_s_scaling_is_applied_unless_normalize_is_false():
    from dilnet.model.contract import InputContract, normalize_intensities

    contract = InputContract(normalization="percentile", low=1, high=99, foreground="all")
    m = WithContract(model("dilated3d"), contract)
    vol = volume((2, 10, 9, 11)) * 300 + 1000  # scanner units
    scaled = normalize_intensities(vol, contract, 3)
    assert 0 <= scaled.min() < 0.01 and 0.99 < scaled.max() <= 1  # scaled, then clipped
    expected = predict_volume(model("dilated3d"), scaled, tile=4, progress=False)
    got = predict_volume(m, vol, tile=4, progress=False)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    # normalize=False: the values as they are, whatever the contract says
    as_is = predict_volume(m, scaled, tile=4, normalize=False, progress=False)
    np.testing.assert_allclose(as_is, expected, rtol=0, atol=1e-12)
    with pytest.raises(ConfigError, match="invalid value for `normalize`"):
        predict_volume(m, vol, normalize="minmax", progress=False)


@pytest.mark.parametrize("contract", [None, "percentile"])
@pytest.mark.parametrize("normalize", [None, False])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_voxels_are_refused_naming_the_volume(contract, normalize, bad):
    from dilnet.errors import VolumeError
    from dilnet.model.contract import InputContract

    inner = model("residual1d")
    m = inner if contract is None else WithContract(inner, InputContract(normalization=contract))
    vol = volume((1, 40)) + 5
    vol[0, 23] = bad
    with pytest.raises(VolumeError, match=r"^volume: .*NaN or infinite"):
        predict_volume(m, vol, tile=8, normalize=normalize, progress=False)
