"""dilnet's NUMPY mode (`dilnet.modes`): numpy elementwise work, nothing compiled by gcc, the
same numbers as the C VM; and the compile status line (`dilnet.status`)."""

import io
import logging
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.graph.traversal import applys_between
from pytensor.link.vm import VMLinker
from pytensor.scalar import basic as ps
from pytensor.scan.op import Scan

import dilnet
from dilnet import Sequential, status
from dilnet import blocks as B
from dilnet.model import Model
from dilnet.modes import NUMPY, NumpyElemwise, PythonVMLinker


def test_elementwise_nodes_compute_what_numpy_computes():
    a, b, c = pt.matrices("a", "b", "c")
    i = pt.imatrix("i")
    outputs = [a + b + c, a * b * c * 2, pt.clip(a, 0.2, 0.5), pt.cast(a * 10, "int32"),
               pt.sigmoid(a), i + a, pt.maximum(a, b) - c / 3, a ** 2]  # fmt: skip
    f = pytensor.function([a, b, c, i], outputs, mode="NUMPY")
    elementwise = [
        n.op for n in f.maker.fgraph.toposort() if isinstance(n.op, pt.elemwise.Elemwise)
    ]
    assert elementwise and all(type(op) is NumpyElemwise for op in elementwise)
    rng = np.random.default_rng(0)
    A, Bm, C = (rng.random((3, 4)) for _ in range(3))
    I = rng.integers(-5, 5, (3, 4)).astype(np.int32)
    got = f(A, Bm, C, I)
    expected = [A + Bm + C, A * Bm * C * 2, np.clip(A, 0.2, 0.5), (A * 10).astype(np.int32),
                1 / (1 + np.exp(-A)), I + A, np.maximum(A, Bm) - C / 3, A**2]  # fmt: skip
    for g, e in zip(got, expected, strict=True):
        assert g.dtype == e.dtype
        np.testing.assert_allclose(g, e, rtol=1e-12)


def test_the_caller_s_graph_keeps_its_own_ops():
    # the NUMPY mode swaps ops in the function's clone of the graph, never in the caller's
    a, b = pt.vectors("a", "b")
    out = pt.exp(a) * b + 1
    before = [type(n.op) for n in applys_between([a, b], [out])]
    f = pytensor.function([a, b], out, mode="NUMPY")
    assert [type(n.op) for n in applys_between([a, b], [out])] == before
    assert pt.elemwise.Elemwise in before and NumpyElemwise not in before
    compiled = {type(n.op) for n in f.maker.fgraph.apply_nodes}
    assert NumpyElemwise in compiled and pt.elemwise.Elemwise not in compiled
    # the same graph still compiles in another mode, with PyTensor's own ops
    g = pytensor.function([a, b], out, mode="FAST_COMPILE")
    assert NumpyElemwise not in {type(n.op) for n in g.maker.fgraph.apply_nodes}
    x, y = np.array([0.0, 1.0, -2.0]), np.array([3.0, 0.5, 2.0])
    np.testing.assert_allclose(f(x, y), np.exp(x) * y + 1, rtol=1e-12)
    np.testing.assert_allclose(g(x, y), np.exp(x) * y + 1, rtol=1e-12)


def test_equal_elementwise_ops_share_one_numpy_op():
    from pytensor.graph.fg import FunctionGraph

    from dilnet.modes import _ToNumpyElemwise

    a, b = pt.vectors("a", "b")
    fg = FunctionGraph([a, b], [pt.exp(a) + 1, pt.exp(b) + 2, a * b], clone=True)
    _ToNumpyElemwise().apply(fg)
    ops = [n.op for n in fg.toposort() if isinstance(n.op, pt.elemwise.Elemwise)]
    assert len(ops) == 5 and all(type(op) is NumpyElemwise for op in ops)
    exps = [op for op in ops if isinstance(op.scalar_op, ps.Exp)]
    assert len(exps) == 2 and exps[0] is exps[1]  # one op for the two equal nodes
    f = pytensor.function(fg.inputs, fg.outputs, mode="NUMPY")
    x, y = np.array([0.0, 1.0]), np.array([2.0, -1.0])
    for got, want in zip(f(x, y), [np.exp(x) + 1, np.exp(y) + 2, x * y], strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12)


def test_no_elementwise_node_falls_back_to_a_python_loop_per_element():
    # PyTensor's own Python path calls a Python function per element where numpy has no ufunc
    # for the node (n-ary products with an integer first input, fill, softplus, scipy's
    # special functions): 7.4 s instead of 0.2 s for three epochs of a small model
    a = pt.matrix("a")
    i = pt.bmatrix("i")
    outputs = [i * a * a, pt.exp(i), pt.second(a, 3.0), pt.softplus(a), pt.sigmoid(a),
               pt.erf(a), pt.true_div(i, i + 1)]  # fmt: skip
    f = pytensor.function([a, i], outputs, mode="NUMPY")
    rng = np.random.default_rng(1)
    A = rng.normal(size=(3, 4))
    Ib = rng.integers(1, 5, (3, 4)).astype(np.int8)
    got = f(A, Ib)
    nodes = [n for n in f.maker.fgraph.toposort() if isinstance(n.op, NumpyElemwise)]
    assert nodes and all(n.tag.dilnet_numpy is not None for n in nodes)
    from scipy.special import erf, expit

    expected = [Ib * A * A, np.exp(Ib.astype(np.float32)), np.full_like(A, 3.0),
                np.log1p(np.exp(A)), expit(A), erf(A), Ib / (Ib + 1.0)]  # fmt: skip
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-6)


def test_an_inplace_node_writes_into_its_input():
    x, y = pt.vectors("x", "y")
    op = NumpyElemwise(ps.add, {0: 0})
    node = op.make_node(x, y)
    data = np.arange(3.0)
    storage = [[None]]
    op.perform(node, [data, np.ones(3)], storage)
    assert storage[0][0] is data
    np.testing.assert_array_equal(data, [1.0, 2.0, 3.0])
    three = NumpyElemwise(ps.add, {0: 1}).make_node(x, y, x)
    data = np.arange(3.0)
    op3 = three.op
    op3.perform(three, [np.ones(3), data, np.ones(3)], storage)
    assert storage[0][0] is data
    np.testing.assert_array_equal(data, [2.0, 3.0, 4.0])


def _reused(f):
    """{scalar op class: index of the input it computes into} of the function's nodes."""
    return {
        type(n.op.scalar_op).__name__: n.tag.dilnet_reuse
        for n in f.maker.fgraph.toposort()
        if isinstance(n.op, NumpyElemwise) and n.tag.dilnet_reuse is not None
    }


def test_an_elementwise_chain_after_a_convolution_computes_in_its_arrays():
    # conv -> + bias -> ReLU: the add writes into the convolution's output, the maximum into the
    # add's; the caller's arrays are untouched and the numbers are numpy's
    x = pt.tensor5("x")
    W = pt.tensor5("W")
    b = pt.vector("b")
    y = dilnet.ops.dilated_conv(x, W, dilation=2, pad="same")
    out = pt.maximum(y + b.dimshuffle("x", 0, "x", "x", "x"), 0)
    f = pytensor.function([x, W, b], out, mode="NUMPY")
    assert _reused(f) == {"Add": 0, "Maximum": 0}
    rng = np.random.default_rng(3)
    X, Wv, bv = (
        rng.normal(size=(1, 2, 5, 6, 7)),
        rng.normal(size=(3, 2, 3, 3, 3)),
        rng.normal(size=3),
    )
    copies = [X.copy(), Wv.copy(), bv.copy()]
    conv = pytensor.function([x, W], y, mode="NUMPY")(X, Wv)
    got = f(X, Wv, bv)
    np.testing.assert_allclose(got, np.maximum(conv + bv[:, None, None, None], 0), rtol=1e-12)
    for before, after in zip(copies, [X, Wv, bv], strict=True):
        np.testing.assert_array_equal(before, after)


def test_an_array_read_twice_or_returned_is_never_computed_into():
    a = pt.vector("a")
    e = pt.exp(a)  # read by two nodes, and returned
    once = pt.exp(a * 3)  # read by one node only: that node may write into it
    f = pytensor.function([a], [e + 1, e * 2, e, pt.sqrt(once)], mode="NUMPY")
    assert _reused(f) == {"Exp": 0, "Sqrt": 0}  # exp into a * 3, sqrt into the exp
    A = np.array([0.0, 1.0, -2.0])
    for got, want in zip(f(A), [np.exp(A) + 1, np.exp(A) * 2, np.exp(A), np.sqrt(np.exp(3 * A))],
                         strict=True):  # fmt: skip
        np.testing.assert_allclose(got, want, rtol=1e-12)
    np.testing.assert_array_equal(A, [0.0, 1.0, -2.0])
    # a broadcast input, or one of another dtype, is not the output's array either
    m, v = pt.matrix("m"), pt.vector("v")
    g = pytensor.function([m, v], [pt.exp(v) + m, pt.cast(pt.exp(m), "float32") * 2.0],
                          mode="NUMPY")  # fmt: skip
    M, V = np.ones((2, 3)), np.arange(3.0)
    got = g(M, V)
    np.testing.assert_allclose(got[0], np.exp(V) + M, rtol=1e-12)
    np.testing.assert_allclose(got[1], (np.exp(M).astype("float32") * 2.0), rtol=1e-6)
    assert "Add" not in _reused(g)


def _tiny():
    return Sequential([B.Input(channels=1), B.Conv(filters=3, batch_norm=True),
                       B.ContextModule(channels=3, dilations=(1, 2)),
                       B.Classifier(num_classes=3)])  # fmt: skip


def test_training_matches_the_c_vm():
    rng = np.random.default_rng(1)
    x = rng.random((2, 1, 10, 10, 10)).astype(np.float32)
    y = rng.integers(0, 3, (2, 10, 10, 10))
    results = {}
    for mode in ("NUMPY", "CVM"):
        model = Model(_tiny(), seed=0, mode=mode)
        model.compile("adam", "crossentropy+dice", ["dice"], learning_rate=0.01)
        losses = [model.train_on_batch(x, y)["loss"] for _ in range(3)]
        results[mode] = losses, model.predict(x), model.get_weights()
    assert Model(_tiny()).mode == "NUMPY"
    np.testing.assert_allclose(results["NUMPY"][0], results["CVM"][0], rtol=1e-5)
    np.testing.assert_allclose(results["NUMPY"][1], results["CVM"][1], atol=1e-5)
    for w, v in zip(results["NUMPY"][2], results["CVM"][2], strict=True):
        np.testing.assert_allclose(w, v, atol=1e-5)


CHILD = textwrap.dedent("""
    import sys
    import numpy as np
    from dilnet import Sequential, blocks as B
    from dilnet.model import Model
    model = Model(Sequential([B.Input(channels=1), B.Conv(filters=3),
                              B.ContextModule(channels=3, dilations=(1, 2)),
                              B.Classifier(num_classes=3)]), seed=0)
    model.compile("adam", "crossentropy+dice", ["dice"])
    x = np.random.default_rng(0).random((1, 1, 8, 8, 8)).astype("float32")
    model.train_on_batch(x, np.zeros((1, 8, 8, 8), dtype="int64"))
    model.predict(x)
    print("numba" in sys.modules, "pytensor.link.numba.dispatch" in sys.modules)
""")


def test_a_fresh_process_trains_without_building_c_modules_or_jitting(tmp_path):
    cache = tmp_path / "compiledir"
    env = dict(os.environ, PYTENSOR_FLAGS=f"compiledir={cache}")
    done = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    # no Numba dispatch (PyTensor's Softmax would JIT its inner graph on its first call)
    assert done.stdout.split()[-1] == "False"
    built = [p for p in cache.rglob("*") if p.suffix in (".so", ".cpp", ".c")]
    assert built == [], built[:5]


def test_config_mode_takes_the_mode_object():
    assert isinstance(dilnet.modes.NUMPY, pytensor.compile.mode.Mode)
    x = pt.vector()
    with pytensor.config.change_flags(mode=NUMPY):
        f = pytensor.function([x], x * 2 + 1)
    assert f.maker.mode is NUMPY
    np.testing.assert_array_equal(f(np.arange(3.0)), [1.0, 3.0, 5.0])


def _tanh_rnn(mode=None):
    x = pt.matrix("x")
    W = pytensor.shared(np.random.default_rng(2).normal(size=(3, 3)), name="W")
    hs = pytensor.scan(lambda x_t, h, W: pt.tanh(x_t + pt.dot(h, W)), sequences=x,
                       outputs_info=[pt.zeros(3, dtype=W.dtype)], non_sequences=[W], mode=mode,
                       return_updates=False)  # fmt: skip
    return x, W, hs


def test_a_scan_runs_its_steps_in_the_numpy_mode():
    # a Scan left to PyTensor's default would build its step graphs with gcc (the C VM) however
    # the outer function is compiled: 7 s for this one and its gradient
    x, W, hs = _tanh_rnn()
    f = pytensor.function([x], [hs, pytensor.grad(hs.sum(), W)], mode="NUMPY")
    scans = [n.op for n in f.maker.fgraph.toposort() if isinstance(n.op, Scan)]
    assert len(scans) == 2
    assert all(type(op.fn.maker.linker) is PythonVMLinker for op in scans)
    data = np.random.default_rng(3).normal(size=(4, 3))
    got_h, got_g = f(data)
    h, expected_h = np.zeros(3), []
    for row in data:
        h = np.tanh(row + h @ W.get_value())
        expected_h.append(h)
    np.testing.assert_allclose(got_h, expected_h, rtol=1e-12)
    # the gradient as the Python VM without rewrites computes it
    reference = pytensor.function([x], pytensor.grad(hs.sum(), W), mode="FAST_COMPILE")
    np.testing.assert_allclose(got_g, reference(data), rtol=1e-12)


def test_a_scan_that_names_its_mode_keeps_it():
    x, _, hs = _tanh_rnn(mode="FAST_COMPILE")
    f = pytensor.function([x], hs, mode="NUMPY")
    (op,) = [n.op for n in f.maker.fgraph.toposort() if isinstance(n.op, Scan)]
    assert op.mode == "FAST_COMPILE" and type(op.fn.maker.linker) is VMLinker


# ---------------------------------------------------------------------------------------------
# The compile status line


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_long_compile_shows_a_live_line_on_a_terminal(caplog):
    stream = Terminal()
    with caplog.at_level(logging.INFO, logger="dilnet"):
        with status.compiling("the thing", stream=stream, after=0.05):
            time.sleep(0.4)
    text = stream.getvalue()
    assert text.startswith("\rcompiling the thing... 0.")
    assert text.count("\rcompiling the thing...") >= 2  # it counts
    last = text.rsplit("\r", 1)[1]
    assert last.startswith("compiled the thing in 0.") and last.endswith(" s\x1b[K\n")
    assert [r.getMessage()[:22] for r in caplog.records] == ["compiled the thing in "]


def test_nothing_on_a_pipe_or_for_a_short_compile(capsys):
    stream = io.StringIO()
    with status.compiling("the thing", stream=stream, after=0.05):
        time.sleep(0.2)
    assert stream.getvalue() == ""
    terminal = Terminal()
    with status.compiling("the thing", stream=terminal, after=5):
        pass
    assert terminal.getvalue() == ""
    assert capsys.readouterr().out == ""


def test_verbose_2_prints_one_line_anywhere(capsys, monkeypatch):
    monkeypatch.setattr(status, "AFTER", 0.0)
    model = Model(_tiny(), seed=0)
    model.compile("sgd", "crossentropy")
    x = np.zeros((1, 1, 6, 6, 6), np.float32)
    model.fit(x, np.zeros((1, 6, 6, 6), np.int64), epochs=1, verbose=2)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("compiled the training function in ") and lines[0].endswith(" s")
    assert sum("compiled" in line for line in lines) == 1


@pytest.mark.parametrize("enabled", [True, False])
def test_the_live_line_can_be_turned_off(monkeypatch, enabled):
    monkeypatch.setattr(status, "enabled", enabled)
    stream = Terminal()
    with status.compiling("x", stream=stream, after=0.01):
        time.sleep(0.1)
    assert ("compiling x" in stream.getvalue()) is enabled
