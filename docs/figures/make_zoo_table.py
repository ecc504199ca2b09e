"""Rewrite the zoo table of docs/zoo.md from the model cards and the weights' records.

Run from anywhere (``make figures`` runs every ``docs/figures/make_*.py``); the same as
``python -m dilnet_zoo.table --write``.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # the checkout's dilnet_zoo, installed or not

from dilnet_zoo.table import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["--write", "--path", str(ROOT / "docs" / "zoo.md")]))
