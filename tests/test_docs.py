"""Every ```python block in the README and docs/ runs (so the examples cannot rot).

The blocks of one page run in order in one namespace, like a notebook: a later block may use
what an earlier one defined.
"""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def blocks(page):
    return re.findall(r"```python\n(.*?)```", page.read_text(), re.S)


def test_there_are_examples():
    assert blocks(ROOT / "README.md")


@pytest.mark.parametrize("page", [p for p in PAGES if blocks(p)], ids=lambda p: p.name)
def test_code_blocks_run(page):
    namespace = {}
    for i, block in enumerate(blocks(page)):
        exec(compile(block, f"<{page.name} block {i}>", "exec"), namespace)
