"""ONNX export (`dilnet.io.onnx`, `Model.export_onnx`, ``dilnet export``), checked against
onnxruntime: its output on the exported graph must be `Model.predict`'s (or the layer graph's
deterministic output) within 1e-4 of the output's scale, on inputs of several sizes and batch
sizes, none of which the exporter saw.

Every parameter (batch-norm running averages included) is drawn at random before export, so a
batch norm folded into a convolution, a flipped kernel or a misplaced padding shows.
"""

import json
import subprocess
import sys
from collections import Counter

import numpy as np
import onnx
import onnxruntime as ort
import pytensor
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pytensor.compile.mode import Mode
from test_compiler_properties import models

import dilnet_zoo
from dilnet import Sequential, from_config
from dilnet import blocks as B
from dilnet import layers as L
from dilnet import nonlinearities as nl
from dilnet.backends import select
from dilnet.cli import main
from dilnet.errors import BackendError, ConfigError, ExportError
from dilnet.inference import predict_volume
from dilnet.io.onnx import OPSET, OnnxRuntimeModel, export, to_onnx
from dilnet.model import Model, load_model
from dilnet.model.contract import normalize_intensities
from dilnet_zoo.data.colin27 import load_colin27

#: the Python linker without rewrites: ~0.01 s a graph, what the many small specs need
CHEAP = Mode(linker="py", optimizer=None)
ZOO = ["context3d-basic", "plain3d", "context3d-large", "dilated-resnet3d", "highres3dnet"]
PRETRAINED = ("context3d-basic", "plain3d")


@pytest.fixture(autouse=True, scope="module")
def _float32():
    """float32 layer graphs: onnxruntime's CPU provider has float32 kernels of every op."""
    with pytensor.config.change_flags(floatX="float32"):
        yield


@pytest.fixture
def blas():
    """dilnet's own CPU kernels for tiny graphs: torch's take up to milliseconds a call to
    start their threads (but are many times faster on whole volumes)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(select, "_choice", "blas")
        yield


def _session(model_or_path):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    source = model_or_path
    if isinstance(model_or_path, onnx.ModelProto):
        source = model_or_path.SerializeToString()
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def _run(session, x):
    return session.run(None, {"input": x})[0]


def _assert_close(got, expected):
    """Equal within 1e-4 relative to the output's scale (elementwise 1e-4 relative, plus
    1e-4 of the largest magnitude for values near zero)."""
    assert got.shape == expected.shape
    assert got.dtype == expected.dtype
    scale = float(np.abs(expected).max()) if expected.size else 0.0
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * max(scale, 1e-6))


def _evaluate(layer, x):
    """The deterministic output of a layer graph with one input."""
    (inp,) = [lay for lay in L.get_all_layers(layer) if isinstance(lay, L.InputLayer)]
    output = L.get_output(layer, deterministic=True)
    return pytensor.function([inp.input_var], output, mode=CHEAP)(x)


def _randomize(params, rng):
    """Random values for every parameter; inverse standard deviations positive."""
    for p in params:
        value = p.get_value(borrow=True)
        if p.name.endswith("inv_std"):
            new = rng.uniform(0.5, 2.0, value.shape)
        else:
            new = rng.normal(0.0, 0.6, value.shape)
        p.set_value(new.astype(value.dtype))


# ---------------------------------------------------------------------------------------------
# the zoo


@pytest.mark.parametrize("name", ZOO)
def test_every_zoo_network_runs_in_onnxruntime_as_in_dilnet(name, tmp_path):
    model = dilnet_zoo.load(name, pretrained=name in PRETRAINED, mode=CHEAP)
    if name not in PRETRAINED:
        _randomize(model.params, np.random.default_rng(0))
    path = model.export_onnx(tmp_path / f"{name}.onnx")
    assert path == tmp_path / f"{name}.onnx"
    session = _session(str(path))
    rng = np.random.default_rng(1)
    for shape in [(1, 1, 6, 7, 5), (2, 1, 5, 4, 8)]:
        x = rng.uniform(0.0, 1.0, shape).astype(np.float32)
        _assert_close(_run(session, x), model.predict(x, batch_size=2))
    # the logits too: the softmax of a trained network saturates, which would hide errors
    logits = model.network.output_layer.input_layer
    x = rng.uniform(0.0, 1.0, (1, 1, 7, 6, 5)).astype(np.float32)
    _assert_close(_run(_session(to_onnx(logits)), x), _evaluate(logits, x))


def test_the_metadata_holds_the_input_contract_and_the_spec(tmp_path):
    model = dilnet_zoo.load("plain3d")
    proto = onnx.load(str(model.export_onnx(tmp_path / "m.onnx")))
    props = {p.key: p.value for p in proto.metadata_props}
    contract = json.loads(props["dilnet.input_contract"])
    assert contract == model.input_contract.to_dict()
    assert contract["voxel_size"] == [2.0, 2.0, 2.0]
    assert contract["normalization"] == "percentile"
    assert contract["class_names"] == ["background", "csf", "grey matter", "white matter"]
    assert from_config(json.loads(props["dilnet.spec"])) == model.spec
    assert json.loads(props["dilnet.dtype"]) == "float32"
    assert proto.opset_import[0].version == OPSET
    # batch and spatial axes stay dynamic, channels are fixed
    (graph_input,) = proto.graph.input
    dims = graph_input.type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == [
        "batch",
        1,
        "input_0",
        "input_1",
        "input_2",
    ]
    out_dims = proto.graph.output[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in out_dims][:2] == ["batch", 4]


def test_the_exported_network_segments_the_held_out_brain_as_dilnet(tmp_path):
    model = dilnet_zoo.load("context3d-basic", pretrained=True)
    t1 = load_colin27()["t1"]
    expected = predict_volume(model, t1, progress=False)  # scales as the contract says
    scaled = normalize_intensities(t1, model.input_contract, rank=3)
    session = _session(str(model.export_onnx(tmp_path / "m.onnx")))
    got = _run(session, scaled[None, None].astype(np.float32))[0]
    _assert_close(got, expected)
    labels, ours = got.argmax(axis=0), expected.argmax(axis=0)
    assert labels.shape == t1.shape
    assert len(np.unique(labels)) == 4
    # the same label everywhere but where dilnet's two best classes tie within float32 noise
    top2 = np.sort(expected, axis=0)[-2:]
    differ = labels != ours
    assert (top2[1] - top2[0])[differ].max(initial=0.0) < 1e-5
    assert differ.sum() <= 2


def test_tiled_prediction_in_onnxruntime_equals_dilnets_whole_volume():
    model = dilnet_zoo.load("context3d-basic", pretrained=True)
    rng = np.random.default_rng(0)
    volume = rng.uniform(0.0, 200.0, (23, 19, 21)).astype(np.float32)  # scanner-like units
    expected = predict_volume(model, volume, progress=False)  # one call on the whole volume
    runtime = OnnxRuntimeModel(model, threads=1)
    assert runtime.input_contract is model.input_contract
    tiled = predict_volume(runtime, volume, tile=(8, 11, 9), progress=False)
    _assert_close(tiled, expected)
    with pytest.raises(ConfigError, match=r"OnnxRuntimeModel: invalid value for `threads`"):
        OnnxRuntimeModel(model, threads=0)
    with pytest.raises(ConfigError, match=r"OnnxRuntimeModel: invalid value for `model`"):
        OnnxRuntimeModel(object())


# ---------------------------------------------------------------------------------------------
# random specs


def _sizes(model):
    """The drawn size and one 2 longer along every axis the Input leaves open."""
    known = model.spec.blocks[0].spatial
    grown = tuple(n + 2 if k is None else n for n, k in zip(model.size, known))
    return [model.size] if grown == model.size else [model.size, grown]


@pytest.mark.usefixtures("blas")
@settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)
@given(model=models(), seed=st.integers(0, 2**32 - 1))
def test_random_specs_run_in_onnxruntime_as_model_predict(model, seed):
    spec = model.spec
    rng = np.random.default_rng(seed)
    net = Model(spec, mode=CHEAP, seed=seed % 2**31)
    _randomize(net.params, rng)
    event(f"rank {len(model.size)}")
    session = _session(to_onnx(net.network))
    channels = spec.blocks[0].channels
    for batch, size in zip((1, 2), _sizes(model) * 2):
        x = rng.standard_normal((batch, channels, *size)).astype(np.float32)
        _assert_close(_run(session, x), net.predict(x, batch_size=batch))


# ---------------------------------------------------------------------------------------------
# layers no block makes (layer graphs written with dilnet.layers)


def _layer_case(build, shapes, seed=0):
    """Build a layer graph on a (None, C, None...) input, randomize it, and compare."""
    rng = np.random.default_rng(seed)
    channels, rank = shapes[0][1], len(shapes[0]) - 2
    inp = L.InputLayer((None, channels, *(None,) * rank))
    out = build(inp)
    _randomize(L.get_all_params(out), rng)
    fn = pytensor.function([inp.input_var], L.get_output(out, deterministic=True), mode=CHEAP)
    session = _session(to_onnx(out))
    for shape in shapes:
        x = rng.standard_normal(shape).astype(np.float32)
        _assert_close(_run(session, x), fn(x))


@pytest.mark.usefixtures("blas")
@pytest.mark.parametrize("flip", [False, True])
@pytest.mark.parametrize(
    "kwargs",
    [
        {"filter_size": 3, "stride": 2, "crop": "same"},
        {"filter_size": 2, "stride": 3, "crop": "same"},  # kernel shorter than the stride
        {"filter_size": (3, 2), "stride": (1, 2), "crop": "valid", "dilation": (2, 1)},
        {"filter_size": 3, "stride": 2, "crop": "full"},
        {"filter_size": 4, "stride": 2, "crop": ((1, 2), 1), "num_groups": 2},
    ],
)
def test_transposed_convolutions(kwargs, flip):
    def build(inp):
        return L.TransposedConvLayer(inp, 4, flip_filters=flip, nonlinearity=nl.elu, **kwargs)

    _layer_case(build, [(1, 2, 5, 6), (2, 2, 7, 4)])


@pytest.mark.usefixtures("blas")
def test_a_transposed_convolution_with_an_output_size():
    inp = L.InputLayer((None, 2, 5))
    out = L.TransposedConvLayer(inp, 3, 3, stride=2, crop="same", output_size=9)
    _randomize(L.get_all_params(out), np.random.default_rng(0))
    x = np.random.default_rng(1).standard_normal((2, 2, 5)).astype(np.float32)
    expected = _evaluate(out, x)
    assert expected.shape == (2, 3, 9)
    _assert_close(_run(_session(to_onnx(out)), x), expected)


@pytest.mark.usefixtures("blas")
@pytest.mark.parametrize("n", [1, 2, 3])
def test_grouped_flipped_strided_convolutions_with_untied_biases(n):
    def build(inp):
        x = L.ConvLayer(inp, 6, 3, stride=2, pad="same", num_groups=3, flip_filters=True,
                        dilation=2, nonlinearity=nl.LeakyRectify(0.2))  # fmt: skip
        x = L.BatchNormLayer(x)  # not folded: the convolution has a nonlinearity
        return L.ConvLayer(x, 3, 2, pad=(1,) * n, untie_biases=False, num_groups=3,
                           nonlinearity=nl.ScaledTanH(0.5, 1.7))  # fmt: skip

    _layer_case(build, [(1, 3, *(7,) * n), (2, 3, *(4,) * n)])
    fixed = L.InputLayer((None, 2, *(6,) * n))
    untied = L.ConvLayer(fixed, 3, 3, pad="same", untie_biases=True, nonlinearity=nl.selu)
    _randomize(L.get_all_params(untied), np.random.default_rng(2))
    x = np.random.default_rng(3).standard_normal((2, 2, *(6,) * n)).astype(np.float32)
    _assert_close(_run(_session(to_onnx(untied)), x), _evaluate(untied, x))


@pytest.mark.usefixtures("blas")
@pytest.mark.parametrize("mode", ["max", "average_inc_pad", "average_exc_pad"])
@pytest.mark.parametrize("ignore_border, pad", [(True, 0), (True, 1), (False, 0)])
def test_pooling_modes_padding_and_partial_windows(mode, ignore_border, pad):
    def build(inp):
        return L.PoolLayer(inp, (3, 2), stride=(2, 3), pad=pad, ignore_border=ignore_border,
                           mode=mode)  # fmt: skip

    short = [(2, 2, 2, 2)] if not ignore_border or pad else []  # shorter than a window
    _layer_case(build, [(1, 2, 7, 8), (2, 2, 3, 2), (1, 2, 9, 6), *short])


@pytest.mark.usefixtures("blas")
def test_dilating_upscale_bias_scale_prelu_and_batch_norm_over_other_axes():
    def build(inp):
        x = L.Upscale2DLayer(inp, (2, 3), mode="dilate")
        x = L.BiasLayer(x)
        x = L.ScaleLayer(x, shared_axes=(0, 2, 3))
        x = L.ParametricRectifierLayer(x)
        x = L.Upscale2DLayer(x, (3, 1))
        x = L.DropoutLayer(L.GaussianNoiseLayer(x))
        return L.NonlinearityLayer(L.BatchNormLayer(x, axes=(0, 2, 3)), nl.softplus)

    _layer_case(build, [(1, 3, 2, 3), (2, 3, 4, 2)])
    fixed = L.InputLayer((None, 2, 4))
    bn = L.BatchNormLayer(fixed, axes=(0, 1))  # one statistic per position
    _randomize(L.get_all_params(bn), np.random.default_rng(0))
    x = np.random.default_rng(1).standard_normal((3, 2, 4)).astype(np.float32)
    _assert_close(_run(_session(to_onnx(bn)), x), _evaluate(bn, x))


def test_batch_norms_fold_into_the_convolutions_before_them_where_exact():
    def ops(name):
        return Counter(node.op_type for node in to_onnx(dilnet_zoo.load(name).network).graph.node)

    # Conv(batch_norm=True) and a stack's conv -> BN: all folded; the residual adds stay
    assert ops("context3d-basic") == {"Conv": 10, "Relu": 8, "Softmax": 1}
    assert ops("dilated-resnet3d") == {"Conv": 9, "Relu": 8, "Add": 7, "Softmax": 1}
    # HighRes3DNet's pre-activation units: a BN after a convolution folds (9 + the front's),
    # a BN after a residual add (9) or the last one cannot: Mul and Add each
    assert ops("highres3dnet") == {"Conv": 23, "Relu": 21, "Add": 9 + 10, "Mul": 10,
                                   "Softmax": 1}  # fmt: skip


@pytest.mark.usefixtures("blas")
def test_weighted_sums_concatenation_and_a_folded_batch_norm():
    def build(inp):
        a = L.ConvLayer(inp, 3, 3, pad="same", nonlinearity=None, flip_filters=False)
        a = L.BatchNormLayer(a)  # folded
        b = L.ConvLayer(inp, 3, 1, nonlinearity=None)
        b_bn = L.BatchNormLayer(b)  # not folded: b feeds two layers
        s = L.ElemwiseSumLayer([a, b_bn, b], coeffs=[0.5, -2.0, 1])
        return L.NonlinearityLayer(L.ConcatLayer([s, inp], axis=1), nl.softmax)

    _layer_case(build, [(1, 2, 5, 4, 3), (2, 2, 3, 6, 2)])


@pytest.mark.usefixtures("blas")
def test_softplus_and_softmax_stay_finite_for_large_inputs():
    inp = L.InputLayer((None, 2, None))
    out = L.NonlinearityLayer(L.NonlinearityLayer(inp, nl.softplus), nl.softmax)
    x = np.array([[[-200.0, 0.0, 200.0], [90.0, 1.0, -90.0]]], dtype=np.float32)
    got = _run(_session(to_onnx(out)), x)
    assert np.isfinite(got).all()
    _assert_close(got, _evaluate(out, x))


# ---------------------------------------------------------------------------------------------
# what cannot be exported, and bad arguments


def test_a_layer_without_a_mapping_names_its_block_path(tmp_path):
    model = Model([B.Input(channels=1, spatial=(None, None)), B.Conv(filters=2),
                   B.Conv(filters=3, activation="linear")])  # fmt: skip
    model.network.layers[-1].layer.nonlinearity = lambda x: x * 2
    target = tmp_path / "m.onnx"
    with pytest.raises(ExportError, match=r"^blocks\[2\] \(Conv\): layer 'blocks\[2\]\.conv' "
                       r"\(ConvLayer\): cannot be exported to ONNX: the nonlinearity '<lambda>'"):  # fmt: skip
        model.export_onnx(target)
    assert not target.exists()
    assert isinstance(ExportError("x"), ValueError)


def test_layers_without_a_mapping_and_subclasses_that_compute_otherwise():
    inp = L.InputLayer((None, 2, 4))
    flat = L.FlattenLayer(L.ConvLayer(inp, 2, 1, name="c"), name="flat")
    with pytest.raises(ExportError, match=r"^layer 'flat' \(FlattenLayer\): cannot be exported "
                       r"to ONNX: FlattenLayer has no ONNX mapping \(exportable: "):  # fmt: skip
        to_onnx(flat)

    class Doubled(L.ConvLayer):
        def get_output_for(self, input, **kwargs):
            return 2 * super().get_output_for(input, **kwargs)

    with pytest.raises(ExportError, match=r"layer 'd' \(Doubled\): .*Doubled has no ONNX mapping"):
        to_onnx(Doubled(inp, 2, 1, name="d"))
    # aliases that compute as the layer they extend are exported
    to_onnx(L.Conv1DLayer(inp, 2, 3))
    cropped = L.ConcatLayer([inp, L.InputLayer((None, 2, 4))], name="cat")
    with pytest.raises(ExportError, match=r"one InputLayer; received 2"):
        to_onnx(cropped)
    crop = L.ElemwiseSumLayer([inp, L.ConvLayer(inp, 2, 3)], cropping=[None, None, "lower"],
                              name="s")  # fmt: skip
    with pytest.raises(ExportError, match=r"layer 's' \(ElemwiseSumLayer\): .*cropping="):
        to_onnx(crop)


def test_bad_arguments(tmp_path):
    net = Model([B.Input(channels=1, spatial=(None,)), B.Conv(filters=2)]).network
    with pytest.raises(ConfigError, match=r"to_onnx: invalid value for `network`"):
        to_onnx("net")
    with pytest.raises(ConfigError, match=r"invalid value for `metadata\['x'\]`"):
        to_onnx(net, metadata={"x": object()})
    with pytest.raises(ConfigError, match=r"export: invalid value for `path`. Expected a file "
                       r"name ending in .onnx"):  # fmt: skip
        export(net, tmp_path / "m.npz")


def test_without_onnx_dilnet_imports_and_export_says_which_extra(monkeypatch):
    code = ("import sys; sys.modules['onnx'] = None; import dilnet, dilnet.io.onnx, "
            "dilnet.model; print('ok')")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "ok", done.stderr
    monkeypatch.setitem(sys.modules, "onnx", None)
    net = Model([B.Input(channels=1, spatial=(None,)), B.Conv(filters=2)]).network
    with pytest.raises(BackendError, match=r"pip install 'dilnet\[onnx\]'"):
        to_onnx(net)


# ---------------------------------------------------------------------------------------------
# the command line


def test_dilnet_export_writes_a_zoo_network_and_a_saved_model(tmp_path, capsys):
    out = tmp_path / "plain3d.onnx"
    assert main(["export", "zoo:plain3d", "--format", "onnx", "--output", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    model = dilnet_zoo.load("plain3d", pretrained=True)
    x = np.random.default_rng(0).uniform(0, 1, (1, 1, 8, 9, 10)).astype(np.float32)
    _assert_close(_run(_session(str(out)), x), model.predict(x))
    props = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert json.loads(props["dilnet.input_contract"])["orientation"] == "RAS"

    assert main(["export", "zoo:plain3d", "--output", str(out)]) == 1
    assert "exists; pass --force" in capsys.readouterr().err
    assert main(["export", "zoo:plain3d", "--output", str(out), "--force"]) == 0

    saved = tmp_path / "m.npz"
    small = Model(Sequential([B.Input(channels=2, spatial=(None, None)), B.Conv(filters=3)]))
    small.save(saved)
    target = tmp_path / "m.onnx"
    assert main(["export", str(saved), "--output", str(target)]) == 0
    x = np.random.default_rng(1).standard_normal((2, 2, 5, 6)).astype(np.float32)
    _assert_close(_run(_session(str(target)), x), load_model(saved).predict(x))


def test_dilnet_export_usage_errors(tmp_path, capsys):
    out = str(tmp_path / "m.onnx")
    assert main(["export", "zoo:plain3d", "--format", "tflite", "--output", out]) == 2
    assert "invalid choice: 'tflite'" in capsys.readouterr().err
    assert main(["export", "zoo:plain3d", "--output", str(tmp_path / "m.bin")]) == 1
    assert "ending in .onnx" in capsys.readouterr().err
    assert main(["export", "zoo:plain3d", "--output", str(tmp_path / "no" / "m.onnx")]) == 1
    assert "does not exist" in capsys.readouterr().err
