"""Every ```python block in the README and docs/ (all of it, docs/api/ included) runs, so the
examples cannot rot; on the command-line page the ```bash blocks run too.

The blocks of one page run in order in one namespace, like a notebook: a later block may use
what an earlier one defined. Each page runs in an empty temporary directory, so files an
example writes (``seg.nii.gz``) are there for the next block and nowhere else.
"""

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
#: pages whose ```bash blocks are `dilnet` commands, run as a user runs them
SHELL_PAGES = {"docs/cli.md"}
DILNET = Path(sys.executable).parent / "dilnet"  # the console script `pip install` made


def blocks(page):
    """[(language, code)] of the page's python and bash blocks, in order."""
    return re.findall(r"```(python|bash)\n(.*?)```", page.read_text(), re.S)


def page_id(page):
    """The page's path under the repository (``docs/api/index.md``): names are not unique."""
    return page.relative_to(ROOT).as_posix()


def commands(code):
    """The command lines of a bash block (comments and blank lines dropped)."""
    for line in code.replace("\\\n", " ").splitlines():
        line = line.split(" #")[0].strip()
        if line and not line.startswith("#"):
            yield shlex.split(line)


def test_there_are_examples():
    assert any(lang == "python" for lang, _ in blocks(ROOT / "README.md"))


def test_shell_pages_hold_only_dilnet_commands():
    for name in SHELL_PAGES:
        lines = [c for lang, code in blocks(ROOT / name) if lang == "bash" for c in commands(code)]
        assert lines and all(c[0] == "dilnet" for c in lines), name


def _runs(page):
    return any(lang == "python" or page_id(page) in SHELL_PAGES for lang, _ in blocks(page))


@pytest.mark.parametrize("page", [p for p in PAGES if _runs(p)], ids=page_id)
def test_code_blocks_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace = {}
    for i, (lang, code) in enumerate(blocks(page)):
        if lang == "python":
            exec(compile(code, f"<{page_id(page)} block {i}>", "exec"), namespace)
        elif page_id(page) in SHELL_PAGES:
            for command in commands(code):
                done = subprocess.run([str(DILNET), *command[1:]], capture_output=True,
                                      text=True, timeout=600)  # fmt: skip
                assert done.returncode == 0, f"{shlex.join(command)}:\n{done.stderr}"
