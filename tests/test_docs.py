"""Every ```python block in the README and docs/ runs (so the examples cannot rot)."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCKS = [
    pytest.param(block, id=f"{page.name}-{i}")
    for page in PAGES
    for i, block in enumerate(re.findall(r"```python\n(.*?)```", page.read_text(), re.S))
]


def test_there_are_examples():
    assert any("README.md" in p.id for p in BLOCKS)


@pytest.mark.parametrize("block", BLOCKS)
def test_code_block_runs(block):
    exec(compile(block, "<docs>", "exec"), {})
