"""What ``import dilnet`` costs: the heavy libraries load when first used, not at import."""

import subprocess
import sys
import textwrap


def test_importing_dilnet_and_its_model_loads_no_heavy_library():
    # torch (about 1.1 s on a 2-core machine), jax, numba and scipy.ndimage (0.25 s, for the
    # augmentations and preprocessing only) wait for their first use
    code = textwrap.dedent("""
        import sys
        import dilnet, dilnet.model, dilnet.inference, dilnet.modes
        heavy = ("torch", "jax", "numba", "scipy.ndimage")
        print(sorted(m for m in heavy if m in sys.modules))
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
