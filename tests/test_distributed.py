"""Dask inference: chunks with the halo from their neighbours give the whole-volume prediction
on a two-process cluster whose workers rebuild the network from its config and weights; chunks
that do not fit the halo or the period are refused with a rechunk suggestion."""

import ast

import numpy as np
import pytest
from test_inference import CompiledModel, volume

from dilnet import ConfigError, Sequential, ShapeError
from dilnet import blocks as B
from dilnet.inference import compute_halo

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("dask.distributed")

from dilnet.distributed import predict_dask  # noqa: E402

DILATED = Sequential(
    [
        B.Input(channels=1, spatial=(None,) * 3),
        B.Conv(filters=4),
        B.DilatedStack(filters=4, dilations=(1, 2, 4)),
        B.Classifier(num_classes=3),
    ]
)  # halo 8, period 1
POOLED = Sequential(
    [
        B.Input(channels=2, spatial=(None,) * 3),
        B.Conv(filters=3, batch_norm=True),
        B.Pool(size=2),
        B.Conv(filters=3, dilation=2),
        B.Upsample(factor=2),
        B.Classifier(num_classes=2),
    ]
)  # halo 6, period 2


@pytest.fixture(scope="module")
def client():
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


@pytest.fixture(scope="module")
def dilated():
    return CompiledModel(DILATED, seed=3)


@pytest.fixture(scope="module")
def pooled():
    return CompiledModel(POOLED, seed=4)


def test_dilated_network_on_a_cluster_equals_the_whole_volume(client, dilated):
    vol = volume((1, 26, 24, 20), seed=5)
    darr = da.from_array(vol, chunks=(1, 13, 12, 10))  # 2 x 2 x 2 chunks, each >= the halo
    result = predict_dask(dilated, darr)
    assert result.shape == (3, 26, 24, 20) and result.dtype == np.float64
    assert result.chunks[1:] == darr.chunks[1:]
    # the weights are one key of the graph, whatever the number of chunks
    keys = [k for k in result.__dask_graph__() if "dilnet-params" in str(k)]
    assert len(keys) == 1
    got = result.compute()
    expected = dilated.predict_on_batch(vol[None])[0]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    # every worker compiled the network once, from config and values
    cached = client.run(lambda: list(__import__("dilnet.distributed").distributed._CACHE))
    assert {len(keys) for keys in cached.values()} == {1}


def test_pooled_network_on_a_cluster_equals_the_whole_volume(client, pooled):
    assert compute_halo(pooled).period == (2, 2, 2)
    vol = volume((2, 20, 24, 16), seed=6)
    darr = da.from_array(vol, chunks=(2, 10, 12, 8))
    got = predict_dask(pooled, darr, batch_size=2).compute()
    expected = pooled.predict_on_batch(vol[None])[0]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def test_float32_inputs_are_cast(pooled):
    vol = volume((2, 8, 12, 16), seed=7)
    darr = da.from_array(vol.astype(np.float32), chunks=(2, 8, 6, 8))
    got = predict_dask(pooled, darr).compute(scheduler="synchronous")
    expected = pooled.predict_on_batch(vol.astype(np.float32).astype(np.float64)[None])[0]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    ("model", "chunks", "match"),
    [
        (
            "dilated",
            (1, 10, 12, 6),
            r"\(axis 3: chunks \(6, 6, 6, 6\) are smaller than the halo 8\). Rechunk first, e.g. "
            r"darr.rechunk\(\(\(1,\), \(10, 10\), \(12, 12\), \(8, 8, 8\)\)\)\.$",
        ),
        (
            "pooled",
            (2, 5, 12, 8),
            r"\(axis 1: chunks \(5, 5, 5, 5\) are not multiples of the period 2 and smaller than "
            r"the halo 6\). Rechunk first, e.g. "
            r"darr.rechunk\(\(\(2,\), \(6, 6, 8\), \(12, 12\), \(8, 8, 8\)\)\)\.$",
        ),
        ("pooled", (1, 10, 12, 8), r"axis 0: the channels are split into chunks \(1, 1\)"),
    ],
)
def test_chunks_that_do_not_fit_the_halo_or_the_period(request, model, chunks, match):
    m = request.getfixturevalue(model)
    channels = m.network.input_shape[1]
    darr = da.zeros((channels, 20, 24, 24), chunks=chunks)
    with pytest.raises(ConfigError, match=r"predict_dask: invalid chunks of `darr`.*" + match):
        predict_dask(m, darr)


def test_suggested_rechunk_works(dilated):
    vol = volume((1, 20, 10, 21), seed=8)
    darr = da.from_array(vol, chunks=(1, 20, 10, 5))
    with pytest.raises(ConfigError, match=r"darr.rechunk\((.*)\)\.$") as info:
        predict_dask(dilated, darr)
    suggestion = ast.literal_eval(str(info.value).rsplit("darr.rechunk(", 1)[1][:-2])
    got = predict_dask(dilated, darr.rechunk(suggestion)).compute(scheduler="synchronous")
    expected = dilated.predict_on_batch(vol[None])[0]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def test_wrong_shapes(dilated, pooled):
    with pytest.raises(ShapeError, match=r"received darr of shape \(2, 8, 8, 8\)"):
        predict_dask(dilated, da.zeros((2, 8, 8, 8)))
    with pytest.raises(ShapeError, match=r"multiples of \(2, 2, 2\)"):
        predict_dask(pooled, da.zeros((2, 8, 9, 8)))
    with pytest.raises(ConfigError, match=r"Expected a dask.array.Array .*received ndarray"):
        predict_dask(dilated, np.zeros((1, 8, 8, 8)))
    with pytest.raises(ConfigError, match=r"predict_dask: invalid value for `batch_size`"):
        predict_dask(dilated, da.zeros((1, 8, 8, 8)), batch_size=0)
    with pytest.raises(ConfigError, match=r"predict_dask: invalid value for `memory_limit`"):
        predict_dask(dilated, da.zeros((1, 8, 8, 8)), memory_limit="lots")
