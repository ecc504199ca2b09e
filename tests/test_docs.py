"""Every example in the README and docs/ (all of it, docs/api/ included) runs, so the examples
cannot rot: the ```python blocks, and the ```bash blocks of `dilnet` commands.

The blocks of one page run in order in one namespace, like a notebook: a later block may use
what an earlier one defined. Each page runs in an empty temporary directory, so files an
example writes (``seg.nii.gz``) are there for the next block and nowhere else; where a page has
`dilnet` commands, the directory starts with a T1 volume ``t1.nii.gz`` and its tissue labels
``labels.nii.gz`` (the MNI152 template's right hemisphere), the files those commands name.

A bash block that is not `dilnet` commands may only hold the commands in `NOT_RUN`, each with
its reason.
"""

import re
import shlex
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from dilnet_zoo.data.mni152 import hemispheres, load_mni152

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
DILNET = Path(sys.executable).parent / "dilnet"  # the console script `pip install` made
#: commands shown but not run, by how they start, and why
NOT_RUN = {
    "make ": "the set-up commands that run this suite",
    "pip install ": "installs packages",
    'python -c "import jax': "checks for a CUDA GPU",
    "PYTHONPATH=. python bench/gpu.py": "needs a CUDA GPU",
}


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
            yield line


def is_dilnet(code):
    return all(line.startswith("dilnet ") for line in commands(code))


def test_there_are_examples():
    assert any(lang == "python" for lang, _ in blocks(ROOT / "README.md"))


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_shell_blocks_are_run_or_listed(page):
    for lang, code in blocks(page):
        if lang == "bash" and not is_dilnet(code):
            for line in commands(code):
                assert line.startswith(tuple(NOT_RUN)), f"{page_id(page)}: `{line}` is never run"


def _runs(page):
    return any(lang == "python" or is_dilnet(code) for lang, code in blocks(page))


def _seed(directory):
    data = load_mni152()
    _, (t1, labels) = hemispheres(data)
    affine = data["affine"].copy()
    affine[:3, 3] += affine[:3, 0] * data["split_index"]
    nib.save(nib.Nifti1Image(t1, affine), directory / "t1.nii.gz")
    nib.save(nib.Nifti1Image(labels.astype(np.uint8), affine), directory / "labels.nii.gz")


@pytest.mark.parametrize("page", [p for p in PAGES if _runs(p)], ids=page_id)
def test_code_blocks_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    if any(lang == "bash" and is_dilnet(code) for lang, code in blocks(page)):
        _seed(tmp_path)
    namespace = {}
    for i, (lang, code) in enumerate(blocks(page)):
        if lang == "python":
            exec(compile(code, f"<{page_id(page)} block {i}>", "exec"), namespace)
        elif is_dilnet(code):
            for line in commands(code):
                done = subprocess.run([str(DILNET), *shlex.split(line)[1:]],
                                      capture_output=True, text=True, timeout=600)  # fmt: skip
                assert done.returncode == 0, f"{page_id(page)}: {line}\n{done.stderr}"
