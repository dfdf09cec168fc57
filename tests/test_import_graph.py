"""One-way data flow: no import cycle in ``retinaface_polynl`` or ``widerface_eval``.

Walks every ``.py`` file of both packages with :mod:`ast`, imports inside functions included
(a deferred import is still a cycle), resolving relative imports.  ``from X import name``
where ``X.name`` is a module counts as importing that module; importing ``X.Y`` counts as
importing ``X`` too (Python runs ``X/__init__.py`` first), unless ``X`` is a package the
importing module itself lives in (already loaded); ``from X import name`` where ``name`` is
not a module is an edge to ``X`` (its ``__init__``), wherever ``X`` is.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("retinaface_polynl", "widerface_eval")


def _modules(root: Path, packages: tuple[str, ...]) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` of the packages (``__init__`` as the package)."""
    modules = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


def _parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def _import_nodes(tree: ast.AST, deferred: bool):
    """The import statements of a module: all of them, or (``deferred=False``) only those that run
    when it is imported: none inside a function body or under ``if TYPE_CHECKING:``."""
    if deferred:
        yield from (n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom)))
        return
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        elif isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def module_imports(root: Path = ROOT, packages: tuple[str, ...] = PACKAGES, deferred: bool = True
                   ) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """(module -> the package modules it imports, module -> the top-level names of the other
    modules it imports, e.g. 'torch'), counting every import (``deferred``) or only those that run
    when the module is imported."""
    modules = _modules(root, packages)
    graph: dict[str, set[str]] = {m: set() for m in modules}
    external: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        package = name if is_package else name.rpartition(".")[0]
        ancestors = set(_parents(name))  # loaded before this module runs: implied, not edges
        targets: set[str] = set()
        for node in _import_nodes(ast.parse(path.read_text(), filename=str(path)), deferred):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    targets.add(alias.name)
                    targets.update(set(_parents(alias.name)) - ancestors)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    if node.level > 1:
                        base = base[: len(base) - (node.level - 1)]
                    base_name = ".".join(base + ([node.module] if node.module else []))
                else:
                    base_name = node.module or ""
                targets.update(set(_parents(base_name)) - ancestors)
                for alias in node.names:
                    sub = f"{base_name}.{alias.name}"
                    # ``from pkg import sub`` imports the submodule; ``from pkg import name`` runs
                    # pkg/__init__.py, even when pkg is this module's own package.
                    targets.add(sub if sub in modules else base_name)
        graph[name] = {t for t in targets if t in modules and t != name}
        external[name] = {t.partition(".")[0] for t in targets if t.partition(".")[0] not in packages and t}
    return graph, external


def import_graph(root: Path = ROOT, packages: tuple[str, ...] = PACKAGES, deferred: bool = True) -> dict[str, set[str]]:
    """Module -> the package modules it imports (anywhere in the file, or only at import: ``deferred=False``)."""
    return module_imports(root, packages, deferred)[0]


def import_cycles(graph: dict[str, set[str]]) -> list[tuple[set[str], list[str]]]:
    """Every strongly connected component of more than one module (a set), each with one
    shortest cycle through its first module (a path that ends where it starts)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:  # Tarjan's algorithm (the graphs are small)
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    cycles = []
    for component in components:
        members = set(component)
        start = component[0]
        previous: dict[str, str | None] = {start: None}  # breadth first: the shortest way back to start
        frontier, last = [start], None
        while frontier and last is None:
            nxt = []
            for v in frontier:
                if start in graph[v]:
                    last = v
                    break
                for w in sorted(graph[v] & members):
                    if w not in previous:
                        previous[w] = v
                        nxt.append(w)
            frontier = nxt
        path = [last]
        while previous[path[-1]] is not None:
            path.append(previous[path[-1]])
        cycles.append((members, path[::-1] + [start]))
    return cycles


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (a path back to its start) per group of modules that import each other."""
    return [cycle for _members, cycle in import_cycles(graph)]


def test_graph_sees_both_packages_and_deferred_imports():
    graph = import_graph()
    assert "retinaface_polynl.detector" in graph and "widerface_eval.cli" in graph
    assert "retinaface_polynl.pipeline" in graph["retinaface_polynl.tta"]
    # checkpoints.py imports models.retinaface inside a function: a deferred import is an edge
    assert "retinaface_polynl.models.retinaface" in graph["retinaface_polynl.checkpoints"]


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


def test_deferred_relative_and_package_imports_make_cycles(tmp_path):
    _write(tmp_path, {
        "pkg/__init__.py": "from .api import Api\n",
        "pkg/api.py": "def f():\n    from .sub.steps import g\n",
        "pkg/sub/__init__.py": "",
        "pkg/sub/steps.py": "def g():\n    from ..api import Api\n",   # deferred, two dots
        "pkg/low.py": "import numpy\n",
        "pkg/uses_init.py": "from . import Api\n",                        # a name from pkg/__init__
        "pkg/uses_sub.py": "from . import low\n",                         # a submodule, not __init__
    })
    graph = import_graph(tmp_path, ("pkg",))
    assert graph["pkg.uses_init"] == {"pkg"} and graph["pkg.uses_sub"] == {"pkg.low"}
    assert graph["pkg.sub.steps"] == {"pkg.api"} and graph["pkg.api"] == {"pkg.sub", "pkg.sub.steps"}
    assert find_cycles(graph) == [["pkg.api", "pkg.sub.steps", "pkg.api"]]
    _write(tmp_path, {"pkg/api.py": "from . import uses_init\n"})  # pkg -> api -> uses_init -> pkg
    assert find_cycles(import_graph(tmp_path, ("pkg",))) == [["pkg", "pkg.api", "pkg.uses_init", "pkg"]]


def test_import_time_imports_leave_out_function_bodies_and_type_checking(tmp_path):
    _write(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a.py": "import numpy\nfrom typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import torch\n"
                    "def f():\n    import scipy\n    from . import b\nclass K:\n    import cv2\n",
        "pkg/b.py": "try:\n    import torch.nn\nexcept ImportError:\n    torch = None\n",
    })
    graph, external = module_imports(tmp_path, ("pkg",), deferred=False)
    assert external["pkg.a"] == {"numpy", "typing", "cv2"} and graph["pkg.a"] == set()
    assert external["pkg.b"] == {"torch"}  # an optional import still runs (and costs) when present
    graph, external = module_imports(tmp_path, ("pkg",))
    assert external["pkg.a"] == {"numpy", "typing", "torch", "scipy", "cv2"} and graph["pkg.a"] == {"pkg.b"}


# The extras' libraries (pyproject.toml): the light install has none of them.
EXTRAS_ONLY = {"torch", "torchvision", "onnx", "onnxscript", "scipy", "matplotlib"}


def light_roots() -> list[str]:
    """What the light install imports first: the package (``import retinaface_polynl``), the command
    line and every command module (``--help`` imports them all), ``Detector``'s module, the evaluator."""
    commands = sorted(m for m in _modules(ROOT, PACKAGES) if m.startswith("retinaface_polynl.commands."))
    return ["retinaface_polynl", "retinaface_polynl.cli", "retinaface_polynl.detector", "widerface_eval", *commands]


def test_the_light_install_imports_no_extra_when_loading():
    """From each of :func:`light_roots`, the modules loaded at import time (imports inside functions
    run later, when the work that needs them is asked for) import none of the extras' libraries: a
    module-level ``import torch`` anywhere on the way breaks ``pip install .`` and costs seconds."""
    graph, external = module_imports(deferred=False)
    found = []
    for root in light_roots():
        previous = {root: None}
        frontier = [root]
        while frontier:  # breadth first, so each chain shown is a shortest one
            module = frontier.pop(0)
            for library in sorted(external[module] & EXTRAS_ONLY):
                chain = [module]
                while previous[chain[-1]] is not None:
                    chain.append(previous[chain[-1]])
                found.append(" -> ".join(chain[::-1]) + f" imports {library}")
            for nxt in sorted(graph[module]):
                if nxt not in previous:
                    previous[nxt] = module
                    frontier.append(nxt)
    assert not found, "imported at load time without being asked for:\n" + "\n".join(sorted(set(found)))


def test_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycles(graph) == [["a", "b", "c", "a"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


# The one cycle left, outside the files issue 21's code change was allowed to touch:
# ModelConfig.validate() and _base_presets() (presets.py) import models.attention for the
# block names, which runs models/__init__.py, which imports models.retinaface, which imports
# presets.  The fix: ATTENTION_BLOCKS defined in presets.py beside BACKBONES and STAGES (it is
# configuration), models/attention.py importing it from there.  Delete this entry with it:
# test_known_cycles_are_still_there fails as soon as the cycle is gone.
def test_no_import_cycles():
    found = import_cycles(import_graph())
    assert not found, "import cycles:\n" + "\n".join(" -> ".join(c) for _members, c in found)


