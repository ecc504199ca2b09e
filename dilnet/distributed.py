"""Inference over Dask arrays: `predict_dask`, exact like `dilnet.inference.predict_volume`.

Each chunk is extended by the network's halo from its neighbours (``dask.array.map_overlap``
with ``boundary='none'``: chunks at the volume's edge are *not* padded, so the network's own
'same' padding acts there as on the whole volume; see `dilnet.inference` for why zero padding
would not be exact), predicted, and trimmed back.

Workers never receive a compiled PyTensor function. The task graph holds the spec's config
(plain JSON) and the parameter values (numpy arrays, one copy per graph as a single
``dask.delayed`` key); a module-level function rebuilds the network from them on the worker
(`dilnet.from_config`, `dilnet.build`, `dilnet.layers.set_all_param_values`), compiles it once
per process (cached under the SHA-256 of config, floatX and values) and runs each chunk with
`predict_volume`.
"""

import hashlib
import json
import threading

import numpy as np

from .errors import ConfigError, ShapeError
from .inference import predict_volume
from .tiling import check_dense, compute_halo, network_of, parse_batch_size, parse_memory

__all__ = ["predict_dask"]

#: compiled networks of this process, by the key `predict_dask` computes
_CACHE = {}
_CACHE_LOCK = threading.Lock()


def predict_dask(model, darr, *, batch_size=1, memory_limit=None):
    """Predict a Dask array chunk by chunk; lazily, exactly as the whole volume at once.

    Parameters
    ----------
    model : object
        With ``model.network`` (a `dilnet.network.Network`); only its spec and parameter values
        are used (``model.predict_on_batch`` is not: workers compile their own function).
    darr : dask.array.Array of shape (C, *spatial)
        One chunk along the channel axis. Along each spatial axis with several chunks, every
        chunk must hold at least the halo (`dilnet.tiling.compute_halo`, ``max(before,
        after)``) and every chunk but the last must be a multiple of the network's period.
    batch_size, memory_limit
        Passed to `predict_volume` for each chunk (with its halo): with the default memory
        limit, chunks up to 1 GiB of working memory run in one call.

    Returns
    -------
    dask.array.Array of shape (K, *spatial)
        ``K = model.network.output_shape[1]``, chunked like `darr` along the spatial axes, of
        the network's output dtype.

    Raises
    ------
    ShapeError
        `darr` of the wrong rank or channels, or a volume the network does not predict densely.
    ConfigError
        Chunks that do not fit the halo and period (the message suggests a ``darr.rechunk``);
        nothing is rechunked automatically, since chunk sizes are the user's memory budget.
    """
    import dask
    import dask.array as da

    where = "predict_dask"
    network = network_of(model, where)
    # checked here rather than on the workers
    batch_size = parse_batch_size(batch_size, where)
    if memory_limit is not None:
        memory_limit = parse_memory(memory_limit, where)
    if not isinstance(darr, da.Array):
        raise ConfigError(
            f"{where}: invalid value for `darr`. Expected a dask.array.Array of shape "
            f"(channels, *spatial); received {type(darr).__name__}. Use "
            "dilnet.inference.predict_volume for numpy arrays."
        )
    rank, channels = network.rank, network.input_shape[1]
    if darr.ndim != rank + 1 or darr.shape[0] != channels:
        raise ShapeError(
            f"{where}: invalid value for `darr`. Expected a dask array of shape (channels, "
            f"*spatial) with {channels} channels and {rank} spatial axes (the network's input "
            f"is {network.input_shape}); received darr of shape {darr.shape}."
        )
    spatial = tuple(int(n) for n in darr.shape[1:])
    check_dense(network, spatial, where, "darr")
    halo = compute_halo(network)
    depth = _check_chunks(darr, halo, where)

    config = json.dumps(network.spec.to_config(), sort_keys=True)
    values = [np.asarray(p.get_value()) for p in network.get_params()]
    floatx = network.input_layer.input_var.dtype  # the floatX the network was built with
    key = _cache_key(config, floatx, values)
    # one key in the graph for all the weights, whatever the number of chunks
    params = dask.delayed(values, pure=True, traverse=False, name=f"dilnet-params-{key[:16]}")
    dtype = np.dtype(network.get_output(deterministic=True).dtype)
    out_channels = network.output_shape[1]
    chunks = (
        (out_channels,),
        *(_overlapped(c, depth[axis]) for axis, c in enumerate(darr.chunks[1:], start=1)),
    )
    return da.map_overlap(
        _predict_block,
        darr,
        depth=depth,
        boundary="none",
        trim=True,
        allow_rechunk=False,
        chunks=chunks,
        dtype=dtype,
        meta=np.empty((0,) * darr.ndim, dtype=dtype),
        token="dilnet-predict",
        config=config,
        floatx=floatx,
        cache_key=key,
        params=params,
        batch_size=batch_size,
        memory_limit=memory_limit,
    )


def _check_chunks(darr, halo, where):
    """Depth per axis (0 on the channel axis and on axes of one chunk), or a ConfigError."""
    depth = {0: 0}
    problems = []
    suggestion = [(darr.shape[0],)]
    for axis, (chunks, period, before, after) in enumerate(
        zip(darr.chunks[1:], halo.period, halo.before, halo.after, strict=True), start=1
    ):
        need = max(before, after)
        length = sum(chunks)
        if len(chunks) == 1:
            depth[axis] = 0
            suggestion.append(chunks)
            continue
        depth[axis] = need
        wrong = []
        if any(c % period for c in chunks[:-1]):
            wrong.append(f"not multiples of the period {period}")
        if min(chunks) < need:
            wrong.append(f"smaller than the halo {need}")
        if wrong:
            problems.append(f"axis {axis}: chunks {chunks} are {' and '.join(wrong)}")
        suggestion.append(_suggest(length, chunks[0], period, need))
    if len(darr.chunks[0]) > 1:
        problems.insert(0, f"axis 0: the channels are split into chunks {darr.chunks[0]}")
    if problems:
        raise ConfigError(
            f"{where}: invalid chunks of `darr`. Expected one chunk along the channel axis and, "
            f"along each spatial axis with several chunks, chunks of at least the halo "
            f"{tuple(max(b, a) for b, a in zip(halo.before, halo.after, strict=True))} voxels, "
            f"all but the last a multiple of the period {halo.period}; received "
            f"darr.chunks={darr.chunks} ({'; '.join(problems)}). Rechunk first, e.g. "
            f"darr.rechunk({tuple(suggestion)})."
        )
    return depth


def _suggest(length, chunk, period, need):
    """Chunks near `chunk` that fit: multiples of `period`, none smaller than `need`."""
    size = max(-(-chunk // period) * period, -(-need // period) * period, period)
    if size >= length:
        return (length,)
    out = [size] * (length // size)
    rest = length - sum(out)
    if rest >= need:
        out.append(rest)
    elif rest:
        out[-1] += rest
    return tuple(out)


def _overlapped(chunks, depth):
    """Chunk lengths after ``overlap`` with ``boundary='none'``: no extension at the ends."""
    last = len(chunks) - 1
    return tuple(c + (depth if i > 0 else 0) + (depth if i < last else 0)
                 for i, c in enumerate(chunks))  # fmt: skip


def _cache_key(config, floatx, values):
    digest = hashlib.sha256()
    digest.update(config.encode())
    digest.update(floatx.encode())
    for v in values:
        v = np.ascontiguousarray(v)
        digest.update(f"{v.dtype.str}{v.shape}".encode())
        digest.update(v.tobytes())
    return digest.hexdigest()


class _WorkerModel:
    """A network rebuilt from its config and values, with the ``network`` and
    ``predict_on_batch`` that `predict_volume` needs. Calls from several threads each get
    their own copy of the compiled function (a PyTensor function keeps its buffers)."""

    def __init__(self, config, floatx, values):
        import pytensor

        from .compiler import build
        from .io.config import from_config
        from .layers import set_all_param_values

        with pytensor.config.change_flags(floatX=floatx):
            self.network = build(from_config(json.loads(config)))
            set_all_param_values(self.network.output_layer, values)
            self._function = pytensor.function(
                [self.network.input_layer.input_var],
                self.network.get_output(deterministic=True),
                mode="NUMPY",  # dilnet.modes: nothing for gcc to build on each worker
            )
        self._free = [self._function]
        self._lock = threading.Lock()

    def predict_on_batch(self, x):
        with self._lock:
            fn = self._free.pop() if self._free else self._function.copy()
        try:
            return fn(x)
        finally:
            with self._lock:
                self._free.append(fn)


def _worker_model(cache_key, config, floatx, values):
    with _CACHE_LOCK:
        model = _CACHE.get(cache_key)
        if model is None:
            model = _CACHE[cache_key] = _WorkerModel(config, floatx, values)
    return model


def _predict_block(block, *, config, floatx, cache_key, params, batch_size, memory_limit):
    """Predict one overlapped chunk (run on the workers)."""
    model = _worker_model(cache_key, config, floatx, params)
    return predict_volume(
        model, block, batch_size=batch_size, memory_limit=memory_limit, progress=False
    )
