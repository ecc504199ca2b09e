import sys
from pathlib import Path

# tests/oracles.py is imported as `oracles` by every test module
sys.path.insert(0, str(Path(__file__).parent))
