import sys
from pathlib import Path

# tests/oracles.py is imported as `oracles` by every test module
sys.path.insert(0, str(Path(__file__).parent))

# pip's numpy bundles its BLAS under private symbol names that PyTensor's C code cannot link,
# so PyTensor's BLAS search fails and warns on the first C-compiled matrix product (DenseLayer
# under mode="CVM"). Saying so up front makes PyTensor call numpy for those products instead.
import pytensor

pytensor.config.blas__ldflags = ""
