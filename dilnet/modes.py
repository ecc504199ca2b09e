"""dilnet's default PyTensor mode: FAST_RUN's rewrites, numpy kernels, nothing compiled.

PyTensor's C VM fuses each chain of elementwise operations into a C module written for that
graph and builds it with gcc: about 70 modules for the README's example, 47 s of a 52 s first
run on a 2-core machine, again for any new graph while the compile cache is cold. dilnet's heavy
work is in its own convolution Ops, whose kernels are numpy/BLAS or PyTorch either way, so the
elementwise work around them is left to numpy: the ``"NUMPY"`` mode keeps FAST_RUN's rewrites
but elementwise fusion and three that cost compile time for nothing numpy uses (`LEFT_OUT`),
runs every node in Python (PyTensor's VM, no C thunks, no C loop), and swaps each `Elemwise` for
`NumpyElemwise`, which computes with one numpy (or scipy.special) call where PyTensor's Python
fallback would call a Python function per element (n-ary sums and products, integer inputs with
a float output, casts, clips, fill, softplus), and computes into an input array that only it
reads where one is free (a convolution's output for its bias, the bias's for its ReLU: what the
C VM's fused loops save in memory traffic). A `Scan` left to PyTensor's default mode runs its
steps in the NUMPY mode as well (PyTensor would build them with gcc for the C VM, whatever the
outer mode).

Measured by ``bench/cold_start.py`` (docs/benchmarks.md); `dilnet.model.Model` uses it by
default and ported Lasagne code can ask for it: ``pytensor.function(..., mode="NUMPY")`` (the
name is registered when ``dilnet`` is imported) or ``dilnet.modes.NUMPY``. The C VM (``"CVM"``),
Numba (``"NUMBA"``) and the JAX linker stay selectable.
"""

import sys

import numpy as np
from pytensor.compile import optdb
from pytensor.compile.mode import Mode, predefined_modes, register_mode
from pytensor.graph.rewriting.basic import GraphRewriter, in2out, node_rewriter
from pytensor.graph.rewriting.db import RewriteDatabaseQuery
from pytensor.link.vm import VMLinker
from pytensor.scalar import basic as ps
from pytensor.scan.op import Scan
from pytensor.tensor.elemwise import Elemwise
from pytensor.tensor.rewriting.ofg import inline_ofg_node
from pytensor.tensor.symbolic import TensorSymbolicOp

__all__ = ["LEFT_OUT", "NUMPY", "NumpyElemwise", "PythonVMLinker"]


def _nary(ufunc):
    def run(inputs, target):
        result = np.asarray(ufunc(inputs[0], inputs[1]))
        for x in inputs[2:]:
            if result.shape == np.broadcast_shapes(result.shape, np.shape(x)) and (
                np.result_type(result, x) == result.dtype
            ):
                ufunc(result, x, out=result)
            else:
                result = np.asarray(ufunc(result, x))
        return result

    return run


def _clip(inputs, target):
    return np.clip(*inputs, out=target)


class NumpyElemwise(Elemwise):
    """An `Elemwise` computed by numpy calls on whole arrays (PyTensor's Python fallback for an
    n-ary sum, a cast, a clip, fill, softplus or an integer-input ufunc builds a Python function
    called per element), writing in place where its ``inplace_pattern`` says so, or into the
    input ``node.tag.dilnet_reuse`` names (`_reusable_input`) where that is free. A scalar op
    none of those cover is computed as `Elemwise` does."""

    def _numpy(self, node):
        fn = getattr(node.tag, "dilnet_numpy", False)
        if fn is not False:
            return fn
        fn = None
        scalar, nin = self.scalar_op, len(node.inputs)
        dtype = node.outputs[0].dtype
        if len(node.outputs) != 1:
            pass
        elif isinstance(scalar, ps.Add) and nin > 2:
            fn = _nary(np.add)
        elif isinstance(scalar, ps.Mul) and nin > 2:
            fn = _nary(np.multiply)
        elif isinstance(scalar, ps.Cast):
            fn = lambda inputs, target: inputs[0].astype(dtype)  # noqa: E731
        elif isinstance(scalar, ps.Clip):
            fn = _clip
        elif isinstance(scalar, ps.Second):  # `fill`: the second input in the first's shape
            fn = lambda inputs, target: np.array(  # noqa: E731
                np.broadcast_to(inputs[1], np.broadcast_shapes(*(i.shape for i in inputs))),
                dtype=dtype,
            )
        elif isinstance(scalar, ps.Identity):
            fn = lambda inputs, target: np.array(inputs[0], dtype=dtype)  # noqa: E731
        elif type(scalar).__name__ == "Softplus":
            fn = lambda inputs, target: np.logaddexp(0, inputs[0], dtype=dtype)  # noqa: E731
        else:
            # numpy's or scipy.special's ufunc, as `Elemwise.prepare_node` found it
            ufunc = getattr(self, "nfunc", None)
            spec = self.nfunc_spec
            if isinstance(ufunc, np.ufunc) and ufunc.nout == 1 and spec and spec[1] == nin:
                if hasattr(node.tag, "sig"):  # integer inputs, float output: compute in it
                    fn = lambda inputs, target: ufunc(*inputs, dtype=dtype)  # noqa: E731
                else:
                    fn = lambda inputs, target: ufunc(*inputs, out=target)  # noqa: E731
        node.tag.dilnet_numpy = fn
        return fn

    def perform(self, node, inputs, output_storage):
        fn = self._numpy(node)
        if fn is None:
            return super().perform(node, inputs, output_storage)
        self._check_runtime_broadcast(node, inputs)
        dtype = node.outputs[0].dtype
        declared = 0 in self.inplace_pattern  # a rewrite asked: the output must be that input
        index = self.inplace_pattern[0] if declared else getattr(node.tag, "dilnet_reuse", None)
        target = None
        if index is not None:
            candidate = inputs[index]
            if candidate.dtype == dtype and candidate.flags.writeable:
                target = candidate
        with np.errstate(all="ignore"):
            try:
                result = fn(inputs, target)
            except TypeError:  # a cast numpy will not do into `target`: compute, then copy
                result = fn(inputs, None)
        result = np.asarray(result)
        if result.dtype != dtype:
            result = result.astype(dtype)
        if declared and target is not None and result is not target:
            target[...] = result
            result = target
        elif result is not target and not result.flags.owndata:
            result = result.copy()
        output_storage[0][0] = result

    #: Its outputs are new arrays, or an input only it read (`_reusable_input`)
    fresh_outputs = True


class _ToNumpyElemwise(GraphRewriter):
    """Every `Elemwise` node of the graph computed by `NumpyElemwise`: the node's op swapped in
    place, after every other rewrite. The two ops take the same inputs to outputs of the same
    types, so the graph needs no replacement: a node-by-node rewrite (``in2out``) would rebuild
    each node and run the graph's callbacks for it: 0.24-0.28 s for bench/model.py's context
    module's training function, against at most 1 ms swapped in place (its first training step
    with PyTorch imported: median 1.23 s before, 1.15 s after; three alternating runs). `pytensor.function` rewrites a clone of the
    caller's graph; a Scan's inner graph, which PyTensor compiles without copying, is rewritten
    in place, as the node-by-node rewrite did before."""

    def apply(self, fgraph):
        ops = {}  # equal Elemwise ops share one NumpyElemwise (ops are immutable)
        for node in fgraph.apply_nodes:
            if type(node.op) is Elemwise:
                op = ops.get(node.op)
                if op is None:
                    op = ops[node.op] = NumpyElemwise(node.op.scalar_op, node.op.inplace_pattern)
                node.op = op
        for node in fgraph.apply_nodes:
            if type(node.op) is NumpyElemwise and not node.op.inplace_pattern:
                node.tag.dilnet_reuse = _reusable_input(fgraph, node)


def _reusable_input(fgraph, node):
    """The index of an input of `node` whose array `NumpyElemwise` may compute into, or None.

    Without it each elementwise node allocates a new array, fresh pages from the kernel for any
    array over malloc's mmap threshold: a bias and a ReLU after each convolution made the NUMPY
    mode's prediction 1.5 times the C VM's, which fuses them into one loop working in place
    (bench/cold_start.py's predict row; equal with this). An input qualifies when this node is
    its only reader (no other node, no view, not a function output), it is the output of a node
    that returns a new array nobody else holds (an Op with ``fresh_outputs``: `NumpyElemwise`,
    the correlation Ops), and it has the output's dtype and broadcast pattern (so its shape,
    since `Elemwise` refuses broadcasting at run time). PyTensor's ``inplace`` rewrites would
    find more, at the cost of a destroy handler that took more than a second to compile the
    training function of the README's model."""
    out = node.outputs[0]
    if len(node.outputs) != 1:
        return None
    for index, var in enumerate(node.inputs):
        owner = var.owner
        if (
            owner is not None
            and getattr(owner.op, "fresh_outputs", False)
            and not getattr(owner.op, "destroy_map", None)
            and not getattr(owner.op, "view_map", None)
            and var.type.dtype == out.type.dtype
            and var.type.broadcastable == out.type.broadcastable
            and len(fgraph.clients[var]) == 1
            and var not in fgraph.outputs
        ):
            return index
    return None


@node_rewriter([TensorSymbolicOp])
def _inline_symbolic(fgraph, node):
    # PyTensor's Softmax (and others) are graphs in one node whose first call compiles the
    # inner graph in the default mode -- Numba's JIT, seconds -- whatever the outer mode
    return inline_ofg_node(node)


@node_rewriter([Scan])
def _scan_inner_numpy(fgraph, node):
    # A Scan compiles its inner graph, when the outer function is linked, in the mode given to
    # `pytensor.scan` -- by default (None) the C VM, whatever the outer mode: gcc builds C
    # modules for every new step function (7-9 s for a tanh RNN step and its gradient). A Scan
    # left to the default computes its steps in the NUMPY mode too; one that names a mode
    # keeps it.
    op = node.op
    if op.mode is not None:
        return None
    new = op.clone()  # its own inner graph: compiling it must not touch the original's
    new.mode = NUMPY
    new._fn = None  # nor share a function the original compiled in another mode
    return new.make_node(*node.inputs).outputs


# After every other rewrite (stabilisation included), only in the NUMPY mode's query
optdb.register(
    "dilnet_inline_symbolic",
    in2out(_inline_symbolic, name="dilnet_inline_symbolic"),
    "dilnet_numpy",
    position=199,
)
optdb.register(
    "dilnet_numpy_scan",
    in2out(_scan_inner_numpy, name="dilnet_numpy_scan", ignore_newtrees=True),
    "dilnet_numpy",
    position=200,
)
optdb.register("dilnet_numpy_elemwise", _ToNumpyElemwise(), "dilnet_numpy", position=200.5)


class PythonVMLinker(VMLinker):
    """PyTensor's VM in Python (``use_cloop=False``) that does not build the C loop it does not
    use: `VMLinker.make_vm` imports ``pytensor.link.c.cvm`` whatever ``use_cloop`` says, and
    that import builds ``lazylinker_ext`` with gcc on a machine that has none yet (1.3 s).
    Where the module is loaded already (another mode used it), it is used as is."""

    def make_vm(self, *args, **kwargs):
        name = "pytensor.link.c.cvm"
        if self.use_cloop or name in sys.modules:
            return super().make_vm(*args, **kwargs)
        sys.modules[name] = None  # the import in make_vm raises ImportError: no C loop
        try:
            return super().make_vm(*args, **kwargs)
        finally:
            if sys.modules.get(name, False) is None:
                del sys.modules[name]


#: FAST_RUN's rewrites that the NUMPY mode leaves out: elementwise fusion (C modules); the
#: in-place rewrites, whose destroy handler added 1.1 s to compiling bench/model.py's training
#: function (one run; `_reusable_input` saves the memory they would); the shape feature, whose
#: callbacks made the README model's training function take 1.72 instead of 0.87 s to its first
#: step (one run); and the greedy distributor, which refactors products of sums to save
#: multiplications: 0.07 s of bench/model.py's 0.47-0.62 s of rewriting (medians of five fresh
#: processes per variant, two runs) for no node fewer.
LEFT_OUT = ("fusion", "inplace", "ShapeOpt", "local_greedy_distributor")

#: The mode: FAST_RUN's rewrites but `LEFT_OUT`, a Python VM without C thunks, `NumpyElemwise`
#: for every elementwise node. Registered as ``"NUMPY"``.
NUMPY = Mode(
    PythonVMLinker(use_cloop=False, c_thunks=False),
    RewriteDatabaseQuery(include=["fast_run", "dilnet_numpy"], exclude=list(LEFT_OUT)),
)

if "NUMPY" not in predefined_modes:
    register_mode("NUMPY", NUMPY)
