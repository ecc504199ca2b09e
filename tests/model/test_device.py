"""The device path of `Model` (PyTensor's JAX linker, state kept as device arrays), run on the
CPU's JAX device: it must train, evaluate and predict as the C VM does (the oracle: the same
model compiled by the C VM, from the same seed), keep its parameters and optimizer state as JAX
arrays between steps, and fail clearly where there is no GPU or no JAX."""

import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from dilnet import BackendError, ConfigError, Sequential, dilated_conv
from dilnet import blocks as B
from dilnet.inference import predict_volume
from dilnet.model import Model, load_model
from dilnet.model.device import resolve_device


def spec():
    return Sequential([
        B.Input(channels=1),
        B.Conv(filters=4, batch_norm=True),
        B.DilatedStack(filters=4, dilations=(1, 2), residual=True),
        B.Dropout(rate=0.25),
        B.Classifier(num_classes=3),
    ])  # fmt: skip


def data():
    rng = np.random.default_rng(0)
    x = rng.random((4, 1, 10, 12, 8)).astype("float32")
    y = np.clip((x[:, 0] * 3).astype("int64"), 0, 2)
    return x, y


def trained(**kwargs):
    x, y = data()
    model = Model(spec(), seed=0, **kwargs)
    model.compile("adam", "crossentropy+dice", ["dice"], learning_rate=0.01)
    history = model.fit(x, y, batch_size=2, epochs=3, verbose=0, shuffle=False)
    return model, history


@pytest.fixture(scope="module")
def pair():
    return trained(), trained(mode="JAX")


def pair_without_dropout():
    """Dropout draws differ between linkers (numpy's generator vs JAX's keys)."""

    def run(**kwargs):
        x, y = data()
        model = Model(Sequential([b for b in spec().blocks if not isinstance(b, B.Dropout)]),
                      seed=0, **kwargs)  # fmt: skip
        model.compile("adam", "crossentropy+dice", ["dice"], learning_rate=0.01)
        return model, model.fit(x, y, batch_size=2, epochs=3, verbose=0, shuffle=False)

    return run(), run(mode="JAX")


def test_jax_training_follows_the_c_vm():
    (cvm, h_cvm), (jx, h_jax) = pair_without_dropout()
    assert jx.device.jax_device == jax.devices("cpu")[0] and cvm.device.jax_device is None
    np.testing.assert_allclose(h_jax.history["loss"], h_cvm.history["loss"], rtol=2e-4)
    np.testing.assert_allclose(h_jax.history["dice"], h_cvm.history["dice"], rtol=2e-3)
    for a, b in zip(jx.get_weights(), cvm.get_weights(), strict=True):
        assert isinstance(a, np.ndarray)
        np.testing.assert_allclose(a, b, rtol=2e-3, atol=2e-5)


def test_parameters_and_optimizer_state_stay_device_arrays(pair):
    _, (jx, _) = pair
    # (the dropout stream's generator stays numpy: the JAX function keeps its own key)
    rngs = [
        v for v in jx._optimizer_state if isinstance(v.get_value(borrow=True), np.random.Generator)
    ]
    state = [*jx.params, *(v for v in jx._optimizer_state if v not in rngs)]
    assert len(rngs) == 1
    assert len(state) >= len(jx.params) + 2 * len(jx.network.get_params(trainable=True))
    for variable in state:
        value = variable.get_value(borrow=True)
        assert isinstance(value, jax.Array), variable
        assert value.devices() == {jax.devices("cpu")[0]}
    # a step updates them on the device: new values, still JAX arrays, no numpy copy
    trainable = jx.network.get_params(trainable=True)
    before = {v: np.array(v.get_value(borrow=True)) for v in [*trainable, *state]}
    x, y = data()
    jx.train_on_batch(x[:2], y[:2])
    for v in state:
        assert isinstance(v.get_value(borrow=True), jax.Array)
    for v in trainable:  # every trainable parameter moved (Adam moves them all)
        assert not np.array_equal(np.asarray(v.get_value(borrow=True)), before[v]), v


def test_dropout_trains_and_state_round_trips_on_the_device(pair):
    """Dropout (rate 0.25) runs through JAX, with new masks each step; get_state/set_state put
    the weights and the optimizer's state back (what NaNGuard relies on)."""
    _, (jx, _) = pair
    x, y = data()
    rate = jx.get_learning_rate()
    jx.set_learning_rate(0.0)  # the weights stay: only the dropout masks change the loss
    first = jx.train_on_batch(x[:2], y[:2])
    second = jx.train_on_batch(x[:2], y[:2])
    assert first["loss"] != second["loss"]
    jx.compile("adam", "crossentropy+dice", ["dice"], learning_rate=0.0)  # a new function
    again = jx.train_on_batch(x[:2], y[:2])
    assert again["loss"] not in (first["loss"], second["loss"])  # new masks, not replayed
    jx.compile("adam", "crossentropy+dice", ["dice"], learning_rate=rate)
    jx.train_on_batch(x[:2], y[:2])
    state = jx.get_state()
    assert all(type(w) is np.ndarray for w in state["weights"])
    jx.train_on_batch(x[:2], y[:2])
    jx.set_state(state)
    assert isinstance(jx.params[0].get_value(borrow=True), np.ndarray)  # set from the host
    for p, w in zip(jx.params, state["weights"], strict=True):
        np.testing.assert_array_equal(p.get_value(borrow=True), w)
    for v, value in state["optimizer"]:
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(np.asarray(v.get_value(borrow=True)), value)
    assert np.isfinite(jx.train_on_batch(x[:2], y[:2])["loss"])
    assert isinstance(jx.params[0].get_value(borrow=True), jax.Array)  # moved back


def test_state_round_trips_with_dropout_on_the_c_vm():
    model = Model(spec(), seed=0)
    model.compile("adam", "crossentropy", learning_rate=0.01)
    x, y = data()
    model.train_on_batch(x[:2], y[:2])
    state = model.get_state()  # includes the dropout stream's generator
    first = model.train_on_batch(x[:2], y[:2])
    model.set_state(state)
    again = model.train_on_batch(x[:2], y[:2])
    assert again == first


def test_loaded_weights_move_to_the_device_once(pair):
    (cvm, _), (jx, _) = pair
    jx.set_weights(cvm.get_weights())  # set_value stores numpy arrays
    assert isinstance(jx.params[0].get_value(borrow=True), np.ndarray)
    x, _ = data()
    out = jx.predict_on_batch(x[:1])  # a function without updates: the call itself moves them
    assert type(out) is np.ndarray  # results come back as numpy arrays
    for p in jx.params:
        assert isinstance(p.get_value(borrow=True), jax.Array)
        assert p.get_value(borrow=True).devices() == {jax.devices("cpu")[0]}
    first = jx.params[0].get_value(borrow=True)
    jx.predict_on_batch(x[:1])
    assert jx.params[0].get_value(borrow=True) is first  # not copied again


def test_evaluate_predict_and_tiles_match_the_c_vm(pair):
    (cvm, _), (jx, _) = pair
    x, y = data()
    jx.set_weights(cvm.get_weights())  # same weights: the outputs must agree to rounding
    for key, value in cvm.evaluate(x, y).items():
        np.testing.assert_allclose(jx.evaluate(x, y)[key], value, rtol=1e-4, atol=1e-6)
    volume = np.random.default_rng(3).random((1, 30, 26, 22)).astype("float32")
    whole = cvm.predict(volume[None])[0]
    assert jx.compiles_per_shape and not cvm.compiles_per_shape
    shapes, call = [], jx.predict_on_batch
    jx.predict_on_batch = lambda x: (shapes.append(x.shape), call(x))[1]
    try:
        tiled = predict_volume(jx, volume, tile=(8, 8, 8), batch_size=4, progress=False)
    finally:
        del jx.predict_on_batch
    assert isinstance(tiled, np.ndarray)
    np.testing.assert_allclose(tiled, whole, rtol=1e-4, atol=1e-6)
    # 18 crops in batches of 4, the last (of 2) filled up: one compiled shape for them all
    assert len(shapes) == 5 and len(set(shapes)) == 1 and shapes[0][0] == 4


def test_predict_fills_a_last_short_batch_on_the_jax_linker(pair):
    (cvm, _), (jx, _) = pair
    jx.set_weights(cvm.get_weights())
    x = np.random.default_rng(4).random((3, 1, 10, 12, 8)).astype("float32")
    fn, shapes = jx._function("predict"), []
    jx._functions["predict"] = lambda b: (shapes.append(b.shape), fn(b))[1]
    try:
        got = jx.predict(x, batch_size=2)
        alone = jx.predict(x[:1], batch_size=2)  # the only batch: its own shape
    finally:
        jx._functions["predict"] = fn
    assert shapes == [(2, 1, 10, 12, 8)] * 2 + [(1, 1, 10, 12, 8)]  # the 2nd one filled
    np.testing.assert_allclose(got, cvm.predict(x, batch_size=2), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(alone, got[:1], rtol=1e-5, atol=1e-6)


def test_a_float32_model_computes_in_32_bits_even_with_jax_x64_on():
    """PyTensor turns JAX's 64-bit switch on for the whole process when its JAX dispatch is
    first imported with floatX float64. With it on, after another JAX function had run, a
    float32 model computed a batch-norm mean in float64 (JAX warned, an error here, when it
    scattered the gradient back); the model now turns the switch off for its own calls."""
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    try:
        # a plain float32 JAX function first, as a user's session might have (docs/gpu.md)
        rng = np.random.default_rng(0)
        xv = pt.tensor("x", dtype="float32", shape=(None, 4, None, None, None))
        W = pytensor.shared(rng.normal(0, 0.1, (4, 4, 3, 3, 3)).astype("float32"))
        cost = pt.sqr(pt.maximum(dilated_conv(xv, W, dilation=2), 0)).mean()
        step = pytensor.function([xv], cost, mode="JAX",
                                 updates={W: W - np.float32(0.1) * pytensor.grad(cost, W)})  # fmt: skip
        step(rng.random((1, 4, 16, 16, 16)).astype("float32"))
        spec = Sequential([B.Input(channels=1), B.Conv(filters=4, batch_norm=True),
                           B.DilatedStack(filters=4, dilations=(1, 2, 4)),
                           B.Classifier(num_classes=3)])  # fmt: skip
        model = Model(spec, mode="JAX", seed=0)
        model.compile("adam", "crossentropy", learning_rate=0.01)
        x, y = data()
        history = model.fit(x, y, batch_size=2, epochs=1, verbose=0)
        assert model.predict_on_batch(x[:1]).dtype == np.float32
        assert all(v.get_value(borrow=True).dtype == np.float32 for v in model.params)
        assert np.isfinite(history.history["loss"]).all()
    finally:
        jax.config.update("jax_enable_x64", previous)


def test_save_and_load_from_the_device(pair, tmp_path):
    _, (jx, _) = pair
    jx.save(tmp_path / "m.npz")
    again = load_model(tmp_path / "m.npz")
    for a, b in zip(again.get_weights(), jx.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_device_arguments_are_checked():
    for bad in ("tpu", "cuda:x", 3, "cpu:1"):
        with pytest.raises(ConfigError, match=r"Model: invalid value for `device`"):
            Model(spec(), device=bad)
    with pytest.raises(ConfigError, match=r"Expected None or 'JAX' with device='cuda'"):
        Model(spec(), device="cuda", mode="CVM")
    assert str(resolve_device(None, None)) == "cpu"


@pytest.mark.skipif(bool(jax.devices()[0].platform == "gpu"), reason="this machine has a GPU")
def test_cuda_without_a_gpu_says_what_to_install():
    with pytest.raises(BackendError, match=r"JAX finds no CUDA GPU \(its devices: "):
        Model(spec(), device="cuda")
    with pytest.raises(ImportError, match=r'pip install -U "jax\[cuda13\]"'):
        Model(spec(), device="cuda:1")


def test_cuda_without_jax_says_what_to_install():
    code = textwrap.dedent("""
        import sys
        sys.modules["jax"] = None   # as if JAX were not installed
        from dilnet import Sequential, BackendError, blocks as B
        from dilnet.model import Model
        try:
            Model(Sequential([B.Input(channels=1), B.Classifier(num_classes=2)]), device="cuda")
        except BackendError as err:
            print(err)
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ}, check=True)  # fmt: skip
    assert done.stdout.startswith("Model: device='cuda' runs through PyTensor's JAX linker, and "
                                  "JAX is not installed; install a CUDA build of JAX")  # fmt: skip


def test_a_jax_mode_object_takes_the_device_path_too():
    from pytensor.compile.mode import get_mode

    model = Model(spec(), mode=get_mode("JAX"), seed=0)
    assert model.device.jax_device == jax.devices("cpu")[0]
    x, _ = data()
    assert type(model.predict_on_batch(x[:1])) is np.ndarray


def test_saved_and_zoo_models_load_onto_a_device(tmp_path):
    import dilnet_zoo

    zoo_cvm = dilnet_zoo.load("plain3d", pretrained=True)
    zoo_jax = dilnet_zoo.load("plain3d", pretrained=True, mode="JAX")
    t1 = np.random.default_rng(5).random((1, 1, 20, 20, 20)).astype("float32")
    np.testing.assert_allclose(zoo_jax.predict(t1), zoo_cvm.predict(t1), rtol=1e-4, atol=1e-6)
    zoo_cvm.save(tmp_path / "z.npz")
    again = load_model(tmp_path / "z.npz", mode="JAX")
    assert again.device.jax_device is not None
    np.testing.assert_allclose(again.predict(t1), zoo_cvm.predict(t1), rtol=1e-4, atol=1e-6)
    if not any(d.platform == "gpu" for d in jax.devices()):
        with pytest.raises(BackendError, match="JAX finds no CUDA GPU"):
            load_model(tmp_path / "z.npz", device="cuda")
        with pytest.raises(BackendError, match="JAX finds no CUDA GPU"):
            dilnet_zoo.load("plain3d", pretrained=True, device="cuda")


def test_the_cuda_path_on_a_second_device(tmp_path):
    """`device="cuda:1"` end to end, with JAX's two host devices standing in for two GPUs (the
    only change: ``jax.devices("gpu")`` answers with them). Everything must live on the second
    device -- not JAX's default one -- and give the C VM's results."""
    code = textwrap.dedent(f"""
        import jax, numpy as np
        cpus = jax.devices("cpu")
        assert len(cpus) == 2, cpus
        devices = jax.devices
        jax.devices = lambda backend=None: cpus if backend == "gpu" else devices(backend)

        import sys
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        from test_device import data, spec
        from dilnet import Sequential, blocks as B
        from dilnet.inference import predict_volume
        from dilnet.model import Model, load_model

        x, y = data()
        net = Sequential([b for b in spec().blocks if not isinstance(b, B.Dropout)])
        cvm, gpu = Model(net, seed=0), Model(net, seed=0, device="cuda:1")
        assert str(gpu.device) == "cuda:1" and gpu.device.jax_device == cpus[1], gpu.device
        assert gpu.compiles_per_shape
        for m in (cvm, gpu):
            m.compile("adam", "crossentropy+dice", ["dice"], learning_rate=0.01)
        h_cvm = cvm.fit(x, y, batch_size=2, epochs=2, verbose=0, shuffle=False).history
        h_gpu = gpu.fit(x, y, batch_size=2, epochs=2, verbose=0, shuffle=False).history
        np.testing.assert_allclose(h_gpu["loss"], h_cvm["loss"], rtol=1e-4)
        state = [v.get_value(borrow=True) for v in gpu.params + gpu._optimizer_state]
        assert all(isinstance(v, jax.Array) and v.devices() == {{cpus[1]}} for v in state)
        volume = np.random.default_rng(3).random((1, 30, 26, 22)).astype("float32")
        tiled = predict_volume(gpu, volume, tile=8, batch_size=2, progress=False)
        np.testing.assert_allclose(tiled, cvm.predict(volume[None])[0], rtol=1e-4, atol=1e-5)
        gpu.save({str(tmp_path / "m.npz")!r})
        again = load_model({str(tmp_path / "m.npz")!r}, device="cuda:1")
        np.testing.assert_allclose(again.predict(x), gpu.predict(x), rtol=1e-5, atol=1e-6)
        assert {{p.get_value(borrow=True).devices().pop() for p in again.params}} == {{cpus[1]}}
        print("ok")
    """)
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
           "JAX_PLATFORMS": "cpu"}  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]
