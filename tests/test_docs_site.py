"""The docs site builds with `mkdocs build --strict`, lists every page, and renders the API.

`--strict` turns every mkdocs and mkdocstrings warning into a failure: a broken link, a page
missing from the nav, a docstring griffe cannot parse (a documented parameter that is not in
the signature, ...). The build runs once, in a subprocess, into a temporary directory.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads mkdocs.yml's `!!python/name:...` (and other python) tags as None
    instead of importing anything."""


_Loader.add_multi_constructor("tag:yaml.org,2002:python/", lambda loader, suffix, node: None)
_Loader.add_multi_constructor("!", lambda loader, suffix, node: None)


def mkdocs_config():
    return yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=_Loader)


def nav_pages(items):
    """Every page path in a mkdocs nav (strings, or one-key dicts of a title to a path or a
    list), in order."""
    for item in items:
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            for value in item.values():
                if isinstance(value, str):
                    if not re.match(r"[a-z]+://", value):  # external links are not pages
                        yield value
                else:
                    yield from nav_pages(value)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, (
        "`mkdocs build --strict` failed (run `make docs` to see it):\n"
        + "\n".join(line for line in done.stderr.splitlines() if not line.startswith("INFO"))
    )
    return out


def test_strict_build_succeeds(site):
    assert (site / "index.html").is_file()
    assert (site / "api" / "index.html").is_file()


def test_every_page_is_in_the_nav_and_every_nav_entry_is_a_page():
    pages = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")}
    nav = list(nav_pages(mkdocs_config()["nav"]))
    assert len(nav) == len(set(nav)), f"pages listed twice in the nav: {sorted(nav)}"
    assert not pages - set(nav), (
        f"pages in docs/ but not in mkdocs.yml's nav: {sorted(pages - set(nav))}"
    )
    assert not set(nav) - pages, f"nav entries without a page in docs/: {sorted(set(nav) - pages)}"


def test_every_api_page_is_linked_from_the_api_index():
    index = (DOCS / "api" / "index.md").read_text()
    for page in sorted((DOCS / "api").glob("*.md")):
        if page.name != "index.md":
            assert f"]({page.name})" in index, f"docs/api/index.md does not link {page.name}"


# (page, the id of an object the page must render): one or more per API page, so an emptied
# page, a wrong directive or a filter that hides members fails here
RENDERED = [
    ("api/dilnet", "dilnet"),
    ("api/blocks", "dilnet.blocks.basic.Conv"),
    ("api/blocks", "dilnet.blocks.stacks.ContextModule"),
    ("api/blocks", "dilnet.blocks.base.register_block"),
    ("api/compiler", "dilnet.compiler.build"),
    ("api/compiler", "dilnet.network.Network.check_size"),
    ("api/compiler", "dilnet.shapes.conv_output_length"),
    ("api/compiler", "dilnet.geometry.walk"),
    ("api/compiler", "dilnet.geometry.AxisGeometry"),
    ("api/model", "dilnet.model.Model.fit"),
    ("api/model", "dilnet.model.Model.compile"),
    ("api/model", "dilnet.model.load_model"),
    ("api/model", "dilnet.model.CrossEntropyDice"),
    ("api/model", "dilnet.model.DiceMetric"),
    ("api/model", "dilnet.model.Optimizer"),
    ("api/model", "dilnet.model.ModelCheckpoint"),
    ("api/model", "dilnet.model.PatchSampler"),
    ("api/inference", "dilnet.inference.predict_volume"),
    ("api/inference", "dilnet.tiling.plan_tiles"),
    ("api/inference", "dilnet.distributed.predict_dask"),
    ("api/layers", "dilnet.layers.helper.get_output"),
    ("api/layers", "dilnet.layers.conv.ConvLayer"),
    ("api/layers", "dilnet.layers.normalization.BatchNormLayer"),
    ("api/layers", "dilnet.layers.recurrent.LSTMLayer"),
    ("api/ops", "dilnet.ops.corr.dilated_conv"),
    ("api/ops", "dilnet.ops.corr.DilatedCorr"),
    ("api/ops", "dilnet.backends.jax_backend.set_jax_weight_grad"),
    ("api/lasagne", "dilnet.init.GlorotUniform"),
    ("api/lasagne", "dilnet.nonlinearities.rectify"),
    ("api/lasagne", "dilnet.objectives.categorical_crossentropy"),
    ("api/lasagne", "dilnet.updates.adam"),
    ("api/blocks", "dilnet.blocks.config.from_config"),
    ("api/io", "dilnet.io.weights.read_checkpoint"),
    ("api/io", "dilnet.io.volume"),
    ("api/io", "dilnet.io.onnx.to_onnx"),
    ("api/io", "dilnet.io.onnx.OnnxRuntimeModel"),
    ("api/errors", "dilnet.errors.ShapeError"),
    ("api/zoo", "dilnet_zoo.load"),
    ("api/zoo", "dilnet_zoo.families.highres3dnet"),
    ("api/zoo", "dilnet_zoo.table.cards_table"),
]


@pytest.mark.parametrize("page, anchor", RENDERED, ids=[f"{p}#{a}" for p, a in RENDERED])
def test_api_pages_render_their_objects(site, page, anchor):
    html = (site / page / "index.html").read_text()
    assert f'id="{anchor}"' in html, f"{page}: no heading with id {anchor!r}"


def test_attrs_specs_show_their_fields_and_defaults(site):
    # docs/griffe_attrs.py gives attrs classes the signature attrs generates
    html = re.sub(r"<[^>]+>", "", (site / "api" / "blocks" / "index.html").read_text())
    assert re.search(r"Conv\(\s*\*,\s*filters: int,\s*kernel: Ints = 3,", html)
    assert re.search(r"ContextModule\(\s*\*,\s*channels: int,", html)


def test_benchmark_figures_are_on_the_page(site):
    page = (DOCS / "benchmarks.md").read_text()
    figures = re.findall(r"\]\((figures/bench-[\w-]+\.svg)\)", page)
    assert len(figures) >= 5
    for figure in figures:
        assert (DOCS / figure).is_file()
        assert (site / figure).is_file()
        svg = (DOCS / figure).read_text()
        assert "<dc:date>" not in svg  # deterministic: no timestamp
