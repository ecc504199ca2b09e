"""The Ops under each PyTensor linker agree with the Python VM (FAST_COMPILE) path."""

import warnings

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from dilnet.backends import select
from dilnet.ops import DilatedCorr, dilated_conv

FAST = "FAST_COMPILE"


def _small_problem():
    rng = np.random.default_rng(5)
    x_val = rng.standard_normal((2, 4, 6, 5, 7)).astype("float32")
    W_val = rng.standard_normal((6, 2, 3, 2, 3)).astype("float32")
    x = pt.tensor("x", dtype="float32", shape=(None, 4, None, None, None))
    W = pt.tensor("W", dtype="float32", shape=W_val.shape)
    y = dilated_conv(
        x, W, stride=(1, 2, 1), dilation=(2, 1, 3), pad="same", groups=2, flip_filters=True
    )
    cost = (y * y).sum()
    gx, gW = pytensor.grad(cost, [x, W])
    return [x, W], [y, gx, gW], [x_val, W_val]


def _reference_outputs(inputs, outputs, values):
    return pytensor.function(inputs, outputs, mode=FAST)(*values)


@pytest.mark.parametrize("kernels", ["blas", pytest.param("torch", marks=pytest.mark.torch)])
@pytest.mark.parametrize("mode", ["CVM", "NUMBA"])
def test_numba_and_c_vm_linkers_agree_without_fallback_warnings(mode, kernels, monkeypatch):
    monkeypatch.setattr(select, "_choice", kernels)
    inputs, outputs, values = _small_problem()
    expected = _reference_outputs(inputs, outputs, values)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. Numba's "will use object mode" fallback warning
        got = pytensor.function(inputs, outputs, mode=mode)(*values)
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "mode",
    [
        "JAX",
        pytest.param(
            "PYTORCH",
            marks=[
                pytest.mark.torch,
                # PyTensor's PYTORCH linker, not dilnet, passes read-only inputs to
                # torch.as_tensor, and torch.compile touches deprecated torch.jit API; both are
                # outside dilnet's control.
                pytest.mark.filterwarnings(
                    "ignore:The given NumPy array is not writable:UserWarning"
                ),
                pytest.mark.filterwarnings(
                    "ignore:`torch.jit.script_method` is deprecated:DeprecationWarning"
                ),
            ],
        ),
    ],
)
def test_jax_and_pytorch_linkers_agree_with_default_path(mode):
    inputs, outputs, values = _small_problem()
    expected = _reference_outputs(inputs, outputs, values)
    got = pytensor.function(inputs, outputs, mode=mode)(*values)
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_allclose(np.asarray(g), e, rtol=1e-4, atol=1e-4)


def test_numba_cache_key_differs_between_ops_with_different_properties():
    from pytensor.link.numba.dispatch.basic import numba_funcify_and_cache_key

    x = pt.tensor("x", shape=(1, 1, 5))
    W = pt.tensor("W", shape=(1, 1, 3))
    keys = set()
    for pad in [((1, 1),), ((0, 0),), ("same",)]:
        node = DilatedCorr((1,), (1,), pad)(x, W).owner
        keys.add(numba_funcify_and_cache_key(node.op, node=node)[1])
    assert len(keys) == 3 and None not in keys


def test_linkers_are_registered_when_pytensor_first_imports_them():
    # A fresh process builds a graph without importing jax or torch; compiling it with the JAX
    # and PyTorch linkers afterwards still finds dilnet's implementations (registered just
    # after PyTensor imports its dispatch modules), equal to the C VM's result.
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent("""
        import sys, numpy as np, pytensor
        pytensor.config.blas__ldflags = ""
        import pytensor.tensor as pt
        from dilnet import dilated_conv
        x = pt.tensor("x", shape=(1, 1, 5)); W = pt.tensor("W", shape=(1, 1, 3))
        g = pytensor.grad(dilated_conv(x, W, dilation=2).sum(), [x, W])
        assert "jax" not in sys.modules and "torch" not in sys.modules
        args = (np.arange(5.0)[None, None], np.linspace(0.5, 1.5, 3)[None, None])
        ref = pytensor.function([x, W], g, mode="CVM")(*args)
        for mode in ("JAX", "PYTORCH"):
            out = pytensor.function([x, W], g, mode=mode)(*args)
            for a, b in zip(out, ref):
                np.testing.assert_allclose(np.asarray(a), b)
        print("ok")
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().endswith("ok")
