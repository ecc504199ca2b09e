"""Registration of the correlation Ops with PyTensor's default (Numba) linker.

The kernels are numpy/BLAS (or torch) code, not Numba code, so the compiled graph calls the Op's
``perform`` from an explicit ``numba.objmode`` block. Registering it ourselves (rather than
leaving PyTensor's generic fallback to do the same) removes the fallback's warning and lets
Numba cache the wrapper under a key made from the Op's properties.
"""

import numba
from pytensor.link.numba.dispatch.basic import (
    get_numba_type,
    numba_njit,
    register_funcify_default_op_cache_key,
)

__all__ = ["register"]

#: Bump when the wrapper changes, so Numba's on-disk cache does not serve a stale one.
CACHE_VERSION = 1


def _funcify(op, node, **kwargs):
    ret_sig = get_numba_type(node.outputs[0].type)

    def py_perform(*inputs):
        storage = [[None]]
        op.perform(node, inputs, storage)
        return storage[0][0]

    if len(node.inputs) == 2:

        @numba_njit
        def corr2(a, b):
            with numba.objmode(ret=ret_sig):
                ret = py_perform(a, b)
            return ret

        return corr2, CACHE_VERSION

    @numba_njit
    def corr3(a, b, c):
        with numba.objmode(ret=ret_sig):
            ret = py_perform(a, b, c)
        return ret

    return corr3, CACHE_VERSION


def register(*op_classes):
    """Register every class in `op_classes` with the Numba linker."""
    for cls in op_classes:
        register_funcify_default_op_cache_key(cls)(_funcify)
