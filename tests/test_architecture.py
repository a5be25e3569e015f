"""The import structure: no circles, and layers that point one way only.

The graph is built with :mod:`ast` from every ``import`` statement of every
module of ``solvers``, ``sde_engine``, ``benchmarks`` and ``experiments``,
including imports inside functions (a lazy import that closes a circle is
still a circle: the two modules cannot be understood or tested apart). An edge
A → B means A names B (or something defined in B) in an import. Layers::

    experiments, benchmarks  →  sde_engine  →  solvers

(each may import the layers to its right, never to its left, and the two
leftmost never import each other).
"""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("solvers", "sde_engine", "benchmarks", "experiments")
LAYER = {"solvers": 0, "sde_engine": 1, "benchmarks": 2, "experiments": 2}


def module_files(root):
    """Module name -> file, for every ``.py`` of :data:`PACKAGES` under ``root``."""
    out = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def import_graph(root):
    """Module -> set of project modules it imports (anywhere in its body)."""
    files = module_files(root)

    def project_module(name):
        # "a.b.c" may name a module, or an object defined in module "a.b"
        while name and name not in files:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for module, path in files.items():
        package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package[:len(package) - node.level + 1]
                    base = ".".join(anchor + ([node.module] if node.module else []))
                names = [f"{base}.{alias.name}" for alias in node.names]
            else:
                continue
            targets.update(filter(None, map(project_module, names)))
        targets.discard(module)
        graph[module] = targets
    return graph


def find_cycle(graph):
    """One import circle as a list ``[a, b, ..., a]``, or None (depth-first search)."""
    state = {}   # module -> "open" while on the stack, "done" after

    def visit(node, stack):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt, stack)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node, [])
            if cycle:
                return cycle
    return None


def layer_violations(graph):
    """Edges that point from a lower layer to a higher one, or between two top layers."""
    bad = []
    for module, targets in graph.items():
        for target in targets:
            a, b = module.split(".")[0], target.split(".")[0]
            if a != b and LAYER[b] >= LAYER[a]:
                bad.append(f"{module} -> {target}")
    return sorted(bad)


@pytest.fixture(scope="module")
def graph():
    return import_graph(ROOT)


def test_graph_sees_lazy_imports(graph):
    """The builder resolves relative and function-level imports (else the checks below
    would pass vacuously)."""
    assert "sde_engine.simulate" in graph["sde_engine.torch.simulate"]      # from ..simulate
    assert "solvers.registry" in graph["sde_engine.simulate"]
    assert "solvers.torchsde_backend" in graph["sde_engine.torch.simulate"]  # inside a function
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_circles(graph):
    cycle = find_cycle(graph)
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_layers_point_one_way(graph):
    """experiments, benchmarks -> sde_engine -> solvers, never back."""
    assert layer_violations(graph) == []


def test_torch_subpackage_imports_the_real_torch():
    """``sde_engine/torch/`` does not shadow torch: its ``import torch`` statements are
    absolute and none of its modules imports torch at load (the Numba engine runs
    without torch)."""
    for path in sorted((ROOT / "sde_engine" / "torch").glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level and node.module == "torch":
                pytest.fail(f"{path.name}: relative import of torch")
        for node in tree.body:
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level
                     else [])
            assert not any(n.split(".")[0] in ("torch", "torchsde") for n in names), \
                f"{path.name} imports torch at module load"


def test_backend_registry():
    """``simulate`` reaches the torch backend through :mod:`sde_engine.backends`."""
    from sde_engine.backends import backend_simulator, register_backend
    from sde_engine.torch.simulate import simulate_torch

    assert backend_simulator("torch") is simulate_torch
    with pytest.raises(ValueError, match="`backend` 'nope' is not registered"):
        backend_simulator("nope")
    with pytest.raises(ValueError, match="`name`"):
        register_backend("numba", simulate_torch)
    with pytest.raises(ValueError, match="`simulator`"):
        register_backend("other", 3)
