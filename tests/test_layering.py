"""The layers of the package, and who may import whom.

Every import in `dilnet/` and `dilnet_zoo/` (function-level ones included: an import inside a
function is still a dependency) is read from the source with `ast`. A module may import modules
of its own layer or of lower layers, never a higher one, and the module graph has no cycle.
The layers are written once, here (the architecture page in docs/concepts.md draws them).
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: lowest first; a module belongs to the longest prefix listed
LAYERS = [
    # arithmetic, errors, file formats: numpy and the standard library only
    ["dilnet._version", "dilnet.errors", "dilnet.utils", "dilnet.shapes", "dilnet.state",
     "dilnet.random", "dilnet.allocator", "dilnet.io.arrays", "dilnet.io.weights",
     "dilnet.io.volume", "dilnet.status"],
    # the correlation Op family and its kernels / linker registrations; dilnet's PyTensor mode
    ["dilnet.ops", "dilnet.backends", "dilnet.modes", "dilnet.theano_extensions"],
    # the Lasagne-style layer graph and Lasagne's module names
    ["dilnet.layers", "dilnet.init", "dilnet.nonlinearities", "dilnet.objectives",
     "dilnet.updates", "dilnet.regularization", "dilnet.interop"],
    # specs, their configs, the compiler, the one geometry walker, the summary
    ["dilnet.geometry", "dilnet.blocks", "dilnet.compiler", "dilnet.network", "dilnet.io.config",
     "dilnet.io.summary", "dilnet.io.onnx"],
    # running networks: Model, tiled and Dask inference
    ["dilnet.model", "dilnet.tiling", "dilnet.inference", "dilnet.distributed"],
    # training from a config, plug-in registries, images onto a model's grid and back
    ["dilnet.training", "dilnet.io.train_config", "dilnet.plugins", "dilnet.preprocessing"],
    # the command line and the package facade
    ["dilnet.cli", "dilnet.__main__", "dilnet"],
    # the zoo plugs into dilnet from above
    ["dilnet_zoo"],
]  # fmt: skip


def _module_name(path):
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules():
    found = {}
    for package in ("dilnet", "dilnet_zoo"):
        for path in sorted((ROOT / package).rglob("*.py")):
            found[_module_name(path)] = path
    return found


MODULES = _modules()


def _is_package(name):
    return MODULES[name].name == "__init__.py"


def _resolve(name, node):
    """Absolute names of the project modules that an import node in module `name` imports."""
    if isinstance(node, ast.Import):
        targets = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:
            package = name if _is_package(name) else name.rpartition(".")[0]
            for _ in range(node.level - 1):
                package = package.rpartition(".")[0]
            base = f"{package}.{base}" if base else package
        # `from package import submodule` depends on the submodule itself
        targets = [
            f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
            for alias in node.names
        ]
    out = set()
    for target in targets:
        while target and target not in MODULES:  # `import dilnet.x.y` of a name inside x
            target = target.rpartition(".")[0]
        if target:
            out.add(target)
    return out


def _graph():
    graph = {}
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        deps = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                deps |= _resolve(name, node)
        deps.discard(name)
        # a package imports its own submodules to re-export them: not a dependency upward
        graph[name] = deps
    return graph


def layer_of(name):
    best, rank = "", None
    for i, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (name == prefix or name.startswith(prefix + ".")) and len(prefix) > len(best):
                best, rank = prefix, i
    return rank


GRAPH = _graph()


def test_every_module_has_a_layer():
    assert [name for name in MODULES if layer_of(name) is None] == []


def test_no_module_imports_a_higher_layer():
    upward = sorted(
        f"{name} (layer {layer_of(name)}) imports {dep} (layer {layer_of(dep)})"
        for name, deps in GRAPH.items()
        for dep in deps
        if layer_of(dep) > layer_of(name)
    )
    assert upward == []


def test_no_module_inside_dilnet_imports_the_facade():
    # `import dilnet` from inside dilnet imports everything: a cycle through the facade
    assert (
        sorted(n for n, deps in GRAPH.items() if "dilnet" in deps and n.startswith("dilnet.")) == []
    )


def _cycles(graph):
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index, low, on_stack, stack, out = {}, {}, set(), [], []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    out.append(sorted(component))
    return out


def _without_package_reexports(graph):
    """Drop edges from a package to its own submodules (its ``__init__`` re-exports them):
    a submodule importing a sibling through the package is then still caught."""
    return {
        name: {d for d in deps if not (_is_package(name) and d.startswith(name + "."))}
        for name, deps in graph.items()
    }


def test_the_import_graph_has_no_cycle():
    assert _cycles(_without_package_reexports(GRAPH)) == []


@pytest.mark.parametrize(
    "graph, expected",
    [
        ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
        ({"a": {"b"}, "b": {"a"}}, [["a", "b"]]),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
    ],
)
def test_the_cycle_finder_finds_cycles(graph, expected):
    assert _cycles(graph) == expected


def test_the_reader_sees_function_level_and_relative_imports():
    tree = ast.parse("def f():\n    from ..model import Model\n    from . import registry\n")
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            found |= _resolve("dilnet.backends.select", node)
    assert found == {"dilnet.model", "dilnet.backends.registry"}
    assert "dilnet.backends.registry" in GRAPH["dilnet.ops.corr"]
    assert "dilnet.blocks.base" in GRAPH["dilnet.blocks.config"]
    assert "dilnet.errors" in GRAPH["dilnet.blocks.base"]
