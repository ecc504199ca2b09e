"""Registration of the correlation Ops with PyTensor's linkers: Numba, JAX and PyTorch, all lazy.

PyTensor's Numba, JAX and PyTorch linkers import their dispatch modules (and so numba, jax or
torch) only when a function is compiled with them. dilnet registers its Ops there, at that
moment, rather than when dilnet is imported or a graph is built: ``import dilnet`` then imports
none of numba (0.35-0.6 s), jax (0.4 s) or torch (0.8 s), and a process that never uses a linker
never pays for it.

`register_ops` is called by `dilnet.ops` when the first graph with the Ops is built. For each
linker whose dispatch module is already imported it registers now; for the others it installs
an import hook (`_AfterImport`) that registers right after PyTensor imports the module. The
registrations themselves live in files named after the linker (`numba_backend`,
`jax_backend`, `torch_backend`), as PyTensor's own ``link/*/dispatch`` do.
"""

import importlib
import importlib.abc
import importlib.util
import sys

__all__ = ["DISPATCH", "register_ops"]

#: PyTensor's dispatch module of each linker -> dilnet's module that registers the Ops there
DISPATCH = {
    "pytensor.link.numba.dispatch": "numba_backend",
    "pytensor.link.jax.dispatch": "jax_backend",
    "pytensor.link.pytorch.dispatch": "torch_backend",
}

_ops = None


class _AfterImport(importlib.abc.MetaPathFinder):
    """Runs `callback` right after the module `name` has been imported, once."""

    def __init__(self, name, callback):
        self.name, self.callback = name, callback

    def find_spec(self, fullname, path=None, target=None):
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        exec_module, callback = spec.loader.exec_module, self.callback

        def exec_and_register(module):
            exec_module(module)
            _run(callback)

        spec.loader.exec_module = exec_and_register
        return spec


def _run(callback):
    # a broken numba/jax/torch install must not break the other paths: skip that linker, which
    # then reports PyTensor's own "no conversion" error if someone asks for it
    try:
        callback()
    except ImportError:
        pass


def _registrar(backend):
    def register():
        module = importlib.import_module(f"{__package__}.{backend}")
        module.register(*_ops)

    return register


def register_ops(forward, grad_inputs, grad_weights):
    """Register the three correlation Op classes with every linker, each when it is first used.

    Runs once; later calls do nothing.
    """
    global _ops
    if _ops is not None:
        return
    _ops = (forward, grad_inputs, grad_weights)
    for module, backend in DISPATCH.items():
        callback = _registrar(backend)
        if module in sys.modules:
            _run(callback)
        else:
            sys.meta_path.insert(0, _AfterImport(module, callback))
