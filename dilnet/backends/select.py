"""Which CPU kernels the Ops' ``perform`` uses: dilnet's numpy/BLAS kernels or PyTorch's oneDNN.

``"auto"`` (the default) takes PyTorch when it is installed, else the BLAS kernels. Set it with
`set_cpu_kernels` or the environment variable ``DILNET_CPU_KERNELS`` (auto, blas, torch).
"""

import functools
import importlib.util
import os

from ..errors import BackendError, ConfigError, invalid

__all__ = ["CHOICES", "cpu_kernels", "get_cpu_kernels", "set_cpu_kernels"]

CHOICES = ("auto", "blas", "torch")
_choice = os.environ.get("DILNET_CPU_KERNELS", "auto")


@functools.cache
def have(package: str) -> bool:
    """Whether `package` is installed and imports (tried once)."""
    if importlib.util.find_spec(package) is None:
        return False
    try:
        importlib.import_module(package)
    except ImportError:
        return False
    return True


def set_cpu_kernels(name: str) -> None:
    """Choose the CPU kernels: 'auto', 'blas' (dilnet's own) or 'torch' (needs torch)."""
    global _choice
    if name not in CHOICES:
        raise ConfigError(invalid("set_cpu_kernels", "name", f"one of {CHOICES}", name))
    if name == "torch" and not have("torch"):
        raise BackendError(
            "set_cpu_kernels: 'torch' needs PyTorch; install a CPU build, e.g. "
            "`pip install torch==2.13.0`, or use 'blas'."
        )
    _choice = name


def get_cpu_kernels() -> str:
    """The kernels in use now: 'blas' or 'torch' ('auto' resolved)."""
    if _choice not in CHOICES:
        raise ConfigError(
            invalid("DILNET_CPU_KERNELS", "DILNET_CPU_KERNELS", f"one of {CHOICES}", _choice)
        )
    if _choice == "auto":
        return "torch" if have("torch") else "blas"
    if _choice == "torch" and not have("torch"):
        raise BackendError(
            "DILNET_CPU_KERNELS=torch needs PyTorch; install a CPU build, e.g. "
            "`pip install torch==2.13.0`, or set DILNET_CPU_KERNELS=blas (or auto)."
        )
    return _choice


def cpu_kernels():
    """The module implementing ``corr_forward``, ``corr_grad_input``, ``corr_grad_weights``."""
    if get_cpu_kernels() == "torch":
        from . import torch_backend

        return torch_backend
    from . import blas

    return blas
