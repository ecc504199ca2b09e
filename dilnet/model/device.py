"""Where a `Model` computes: the CPU (dilnet's NUMPY mode, PyTensor's C VM or its JAX linker)
or a CUDA GPU (the JAX linker, with parameters and optimizer state kept as device arrays
between steps).

``Model(spec, device="cuda")`` compiles every function with PyTensor's JAX linker on the first
CUDA GPU JAX sees (``"cuda:1"`` the second); only the batches move to the device and only the
loss, the metric counts and the predictions come back. ``Model(spec, mode="JAX")`` runs the same
code path on the CPU, which is how the test suite covers it on machines without a GPU.
"""

import contextlib
import copy
import re
import warnings

import attrs
import numpy as np

from ..errors import BackendError, ConfigError, invalid

__all__ = ["Device", "resolve_device"]

#: what to install for a CUDA JAX (JAX's installation guide names the wheel per CUDA version)
JAX_CUDA_HINT = 'pip install -U "jax[cuda13]" (or "jax[cuda12]" for CUDA 12 drivers)'
_PATTERN = re.compile(r"^(cpu|cuda|gpu)(?::(\d+))?$")
# With float64 off (dilnet computes in float32 on the GPU), JAX warns where PyTensor's graph asks
# for a float64 accumulator or index and computes it in float32, as PyTorch does.
_X64_WARNING = r"Explicitly requested dtype .* requested in .* is not available"
# PyTensor's JAX linker drops the graph's shape assertions (JAX traces them away) and says so;
# Model checks every input's shape before calling, so nothing is lost.
_ASSERT_WARNING = r"Skipping .* Op \(assertion: .*\) as JAX tracing would remove it"
# Dropout's generators: the JAX linker keeps its own copy (a JAX key) inside each compiled
# function and advances that; documented on Model (get_state does not capture those draws).
_RNG_WARNING = r"The RandomType SharedVariables .* will not be used in the compiled JAX graph"


@attrs.frozen
class Device:
    """A resolved device: `kind` ('cpu' or 'cuda'), its `index`, and the JAX device object
    (None for the NUMPY mode or the C VM on the CPU)."""

    kind: str
    index: int = 0
    jax_device: object = None

    def __str__(self):
        return self.kind if self.kind == "cpu" else f"{self.kind}:{self.index}"

    @contextlib.contextmanager
    def active(self, x64=False):
        """Compile and call within this: JAX places new arrays on this device, computes with
        64-bit types only for a float64 model (`x64`), and its float32-for-float64 warnings
        (expected then) are silenced.

        JAX's 64-bit switch is otherwise global and PyTensor sets it once, from ``floatX`` when
        its JAX dispatch is first imported; a float32 model run while it is on computed a
        batch-norm mean in float64 (slow on a GPU), so each model sets it for its own calls."""
        if self.jax_device is None:
            yield
            return
        import jax

        with (
            jax.default_device(self.jax_device),
            _x64(jax, x64),
            warnings.catch_warnings(),
        ):
            warnings.filterwarnings("ignore", message=_X64_WARNING, category=UserWarning)
            warnings.filterwarnings("ignore", message=_ASSERT_WARNING, category=UserWarning)
            warnings.filterwarnings("ignore", message=_RNG_WARNING, category=UserWarning)
            yield


def _x64(jax, enabled):
    """JAX's 64-bit switch as a context (``jax.enable_x64`` in JAX >= 0.5, else the
    experimental one)."""
    if hasattr(jax, "enable_x64"):
        return jax.enable_x64(enabled)
    from jax import experimental

    return experimental.enable_x64() if enabled else experimental.disable_x64()


def _jax(where, device):
    try:
        import jax
    except ImportError:
        if device in (None, "cpu"):
            raise BackendError(
                f"{where}: mode='JAX' needs JAX; install it: pip install 'dilnet[jax]'."
            ) from None
        raise BackendError(
            f"{where}: device={device!r} runs through PyTensor's JAX linker, and JAX is not "
            f"installed; install a CUDA build of JAX: {JAX_CUDA_HINT}."
        ) from None
    return jax


def is_jax(mode) -> bool:
    """Whether `mode` (a name or a pytensor Mode) compiles with PyTensor's JAX linker."""
    if mode == "JAX":
        return True
    linker = getattr(mode, "linker", None)
    if linker is None:
        return False
    from pytensor.link.jax.linker import JAXLinker

    return isinstance(linker, JAXLinker)


def resolve_device(device, mode, where="Model"):
    """`Device` for ``device`` (None, 'cpu', 'cuda', 'cuda:N'; 'gpu' is 'cuda') and `mode`.

    With a CUDA device the mode must be None or 'JAX'. `BackendError` (an `ImportError`) when
    JAX is missing or sees no such GPU, saying what to install; `ConfigError` for anything
    else.
    """
    text = "cpu" if device is None else device
    match = _PATTERN.match(text) if isinstance(text, str) else None
    if match is None:
        raise ConfigError(invalid(where, "device", "'cpu', 'cuda' or 'cuda:N'", device))
    kind = "cpu" if match.group(1) == "cpu" else "cuda"
    index = int(match.group(2) or 0)
    if kind == "cpu":
        if index:
            raise ConfigError(invalid(where, "device", "'cpu' (one CPU device)", device))
        if is_jax(mode):
            jax = _jax(where, device)
            return Device("cpu", 0, jax.devices("cpu")[0])
        return Device("cpu")
    if not (mode is None or is_jax(mode)):
        raise ConfigError(
            invalid(where, "mode", f"None or 'JAX' with device={device!r} (the GPU path)", mode)
        )
    jax = _jax(where, device)
    try:
        gpus = jax.devices("gpu")
    except RuntimeError:
        gpus = []
    if not gpus:
        found = ", ".join(str(d) for d in jax.devices())
        raise BackendError(
            f"{where}: device={device!r}: JAX finds no CUDA GPU (its devices: {found}). Install a "
            f"CUDA build of JAX ({JAX_CUDA_HINT}) on a machine with an NVIDIA GPU and driver "
            "(check `nvidia-smi`), or use device='cpu'."
        )
    if index >= len(gpus):
        raise ConfigError(
            invalid(where, "device", f"cuda:0 to cuda:{len(gpus) - 1} ({len(gpus)} GPU(s))", device)
        )
    return Device("cuda", index, gpus[index])


class OnDevice:
    """A compiled function called on the model's JAX device (see `Device.active`).

    Before a call, shared values that are numpy arrays (new weights from `set_weights` or a
    checkpoint: ``set_value`` stores numpy) are put on the device once, so that no call copies
    the parameters there again; the function's updates keep them there."""

    def __init__(self, fn, device, x64):
        self.fn, self.device, self.x64 = fn, device, x64
        self.shared = [v for v in fn.get_shared() if hasattr(v, "container")]

    def __call__(self, *args):
        import jax

        with self.device.active(self.x64):
            for variable in self.shared:
                storage = variable.container.storage
                if isinstance(storage[0], np.ndarray):
                    storage[0] = jax.device_put(storage[0], self.device.jax_device)
            out = self.fn(*args)
        # results come back to the host as numpy arrays (this also waits for the device)
        return [np.asarray(o) for o in out] if isinstance(out, list) else np.asarray(out)


def on_device(fn, device, x64):
    """`fn` as the model calls it: through `OnDevice` where `device` has a JAX device, else
    `fn` itself (the NUMPY mode, the C VM)."""
    return fn if device.jax_device is None else OnDevice(fn, device, x64)


def renew_generators(device, variables):
    """Where `device` has a JAX device, replace each random generator among the shared
    `variables` by a fresh one drawn from it: the JAX linker copies each generator into the
    compiled function and never advances ours, so a recompiled function would otherwise replay
    the same dropout masks."""
    if device.jax_device is None:
        return
    for variable in variables:
        generator = variable.get_value(borrow=True)
        if isinstance(generator, np.random.Generator):
            variable.set_value(np.random.default_rng(generator.integers(2**63)))


def host_copy(value):
    """A copy on the host: a numpy array for arrays (also JAX ones), a deep copy of anything
    else (the random generators of dropout streams)."""
    if isinstance(value, np.ndarray) or hasattr(value, "__array__"):
        return np.array(value)
    return copy.deepcopy(value)
