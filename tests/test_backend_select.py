"""Choosing the CPU kernels: a choice that cannot be honoured is a BackendError, whether it
came from `set_cpu_kernels` or from ``$DILNET_CPU_KERNELS`` (checked in fresh interpreters where
torch cannot be imported, as on a machine without it)."""

import os
import subprocess
import sys
import textwrap

HIDE_TORCH = 'import sys\nsys.modules["torch"] = None\n'


def run(code, **env):
    done = subprocess.run([sys.executable, "-c", HIDE_TORCH + textwrap.dedent(code)],
                          capture_output=True, text=True, env={**os.environ, **env})  # fmt: skip
    return done.returncode, done.stdout, done.stderr


def test_env_torch_without_torch_is_a_backend_error():
    code, out, err = run(
        """
        import dilnet
        try:
            dilnet.get_cpu_kernels()
        except dilnet.BackendError as e:
            print(isinstance(e, ImportError), e)
        """,
        DILNET_CPU_KERNELS="torch",
    )
    assert code == 0, err
    assert out.startswith("True DILNET_CPU_KERNELS=torch needs PyTorch; install a CPU build")


def test_auto_and_blas_work_without_torch():
    for choice in ("auto", "blas"):
        code, out, err = run("import dilnet\nprint(dilnet.get_cpu_kernels())",
                             DILNET_CPU_KERNELS=choice)  # fmt: skip
        assert (code, out.strip()) == (0, "blas"), err
