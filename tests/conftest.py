import importlib.util
import sys
from pathlib import Path

import pytensor
import pytest

# tests/oracles.py is imported as `oracles` by every test module
sys.path.insert(0, str(Path(__file__).parent))

# pip's numpy bundles its BLAS under private symbol names that PyTensor's C code cannot link,
# so PyTensor's BLAS search fails and warns on the first C-compiled matrix product (DenseLayer
# under mode="CVM"). Saying so up front makes PyTensor call numpy for those products instead.
pytensor.config.blas__ldflags = ""

# dilnet's default mode for every graph a test compiles without naming one (PyTensor's own
# default, Numba, JITs each new graph for seconds): what `Model` uses, and what the porting
# guide tells Lasagne users to set
import dilnet.modes  # noqa: E402

pytensor.config.mode = dilnet.modes.NUMPY

HAVE_TORCH = importlib.util.find_spec("torch") is not None


def pytest_collection_modifyitems(config, items):
    """`make test TORCH=` leaves torch out: its tests skip, saying why (they run by default)."""
    if HAVE_TORCH:
        return
    skip = pytest.mark.skip(reason="torch is not installed (`make test TORCH=`)")
    for item in items:
        if "torch" in item.keywords:
            item.add_marker(skip)
