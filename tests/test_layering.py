"""Imports run one way: the layering of DESIGN.md, checked on the source (AST, no import).

Every module of the package is parsed; every ``import`` statement counts, at module level
or inside a function (a deferred import is still a dependency), except those under
``if TYPE_CHECKING:`` (annotations only, never executed). Three rules:

1. Layers: a module imports only from its own layer or a lower one (``LAYERS``, low to high).
2. No cycles: the module graph has no strongly connected component larger than one module.
3. No private names across modules: no ``from m import _name`` of a module-level private name
   and no ``alias._name`` on an imported synthdata module; a private *module* (``_torch``,
   ``_data``) is imported only from inside the package that holds it. Dunders are fine.
Nothing inside the package imports the top-level package (``synthdata/__init__.py`` is the
public facade for users, above every layer).

Run ``python tests/test_layering.py`` to print the counts.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE = "synthdata"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE

# Low to high. A module's layer is given by its longest matching prefix.
LAYERS: tuple[tuple[str, ...], ...] = (
    # leaves: anyone may import them
    ("synthdata.errors", "synthdata._rng", "synthdata._version", "synthdata.types",
     "synthdata.jsonsafe", "synthdata._progress", "synthdata._threads"),
    ("synthdata.io",),
    # the constraint vocabulary and discovery: the schema holds and proposes constraints
    ("synthdata.constraints.kinds", "synthdata.constraints.discover", "synthdata.constraints"),
    ("synthdata.schema",),
    # rules applied to data described by a schema
    ("synthdata.constraints.enforce", "synthdata.constraints.report", "synthdata.validate"),
    ("synthdata.privacy",),
    ("synthdata.transform", "synthdata.evaluate"),
    ("synthdata.models",),
    ("synthdata.relational",),
    ("synthdata.medical",),
    # fair augmentation samples a fitted generator (models) by group; pipelines use it
    ("synthdata.augmentation",),
    # the empirical audit fits generators (relational ones too): an application of privacy
    ("synthdata.pipeline", "synthdata.privacy.audit"),
    ("synthdata.service",),
    ("synthdata.cli",),
    ("synthdata.__main__", "synthdata.docs"),
)


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> int | None:
    best: tuple[int, int] | None = None
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if module == prefix or module.startswith(prefix + "."):
                if best is None or len(prefix) > best[0]:
                    best = (len(prefix), index)
    return None if best is None else best[1]


@dataclass
class Graph:
    modules: dict[str, Path]
    edges: dict[str, set[str]] = field(default_factory=dict)
    lines: dict[tuple[str, str], int] = field(default_factory=dict)
    private: list[str] = field(default_factory=list)
    top_level: list[str] = field(default_factory=list)


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node except the bodies of ``if TYPE_CHECKING:``."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            stack.extend(node.orelse)
            continue
        yield node
        stack.extend(ast.iter_child_nodes(node))


def _absolute(name: str, path: Path, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    base = package[: len(package) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def _is_private(part: str) -> bool:
    return part.startswith("_") and not part.startswith("__")


def _check_private_module(graph: Graph, importer: str, target: str, where: str) -> None:
    parts = target.split(".")
    for i, part in enumerate(parts):
        if _is_private(part):
            owner = ".".join(parts[:i])  # the package holding the private module
            if not (importer == owner or importer.startswith(owner + ".")):
                graph.private.append(f"{where}: private module {target} used outside {owner}")
            return


def build_graph() -> Graph:
    modules = {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}
    graph = Graph(modules)
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        aliases: set[str] = set()  # local names bound to synthdata modules
        edges = graph.edges.setdefault(name, set())

        def add(target: str, line: int, _name: str = name, _edges: set[str] = edges) -> None:
            if target == _name:
                return
            _edges.add(target)
            graph.lines.setdefault((_name, target), line)

        for node in _runtime_nodes(tree):
            where = f"{path.relative_to(ROOT.parent)}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] != PACKAGE:
                        continue
                    if alias.name == PACKAGE:
                        graph.top_level.append(f"{where}: import {PACKAGE}")
                    add(alias.name, node.lineno)
                    _check_private_module(graph, name, alias.name, where)
                    if alias.asname:
                        aliases.add(alias.asname)
            elif isinstance(node, ast.ImportFrom):
                source = _absolute(name, path, node)
                if source.split(".")[0] != PACKAGE:
                    continue
                for alias in node.names:
                    full = f"{source}.{alias.name}"
                    if full in modules:  # a submodule
                        add(full, node.lineno)
                        _check_private_module(graph, name, full, where)
                        aliases.add(alias.asname or alias.name)
                        continue
                    if source == PACKAGE:
                        graph.top_level.append(f"{where}: from {PACKAGE} import {alias.name}")
                    add(source, node.lineno)
                    _check_private_module(graph, name, source, where)
                    if _is_private(alias.name):
                        graph.private.append(f"{where}: from {source} import {alias.name}")
        for node in _runtime_nodes(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in aliases and _is_private(node.attr)):
                where = f"{path.relative_to(ROOT.parent)}:{node.lineno}"
                graph.private.append(f"{where}: {node.value.id}.{node.attr}")
    for name in graph.edges:  # keep only edges to modules of the package
        graph.edges[name] = {t for t in graph.edges[name] if t in modules}
    return graph


def cycles(graph: Graph) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.edges.get(root, ()))))]
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
                    work.append((child, iter(sorted(graph.edges.get(child, ())))))
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


def layer_violations(graph: Graph) -> list[str]:
    out = []
    for source, targets in sorted(graph.edges.items()):
        if source == PACKAGE:
            continue  # the public facade sits above every layer
        low = layer_of(source)
        for target in sorted(targets):
            high = layer_of(target)
            if target == PACKAGE:
                continue  # reported as a top-level import
            if low is not None and high is not None and high > low:
                out.append(f"{source} (layer {low}) imports {target} (layer {high}), line "
                           f"{graph.lines[(source, target)]}")
    return out


def summary(graph: Graph) -> dict[str, int]:
    return {"modules": len(graph.modules),
            "edges": sum(len(t) for t in graph.edges.values()),
            "cycles": len(cycles(graph)),
            "layer_violations": len(layer_violations(graph)),
            "private_imports": len(graph.private),
            "top_level_imports": len(graph.top_level)}


# -- tests ------------------------------------------------------------------------------------

GRAPH = build_graph()


def test_every_module_has_a_layer() -> None:
    missing = [m for m in GRAPH.modules if m != PACKAGE and layer_of(m) is None]
    assert not missing, f"add these modules to LAYERS in tests/test_layering.py: {missing}"


def test_imports_follow_the_layers() -> None:
    bad = layer_violations(GRAPH)
    assert not bad, "upward imports:\n" + "\n".join(bad)


def test_no_import_cycles() -> None:
    found = cycles(GRAPH)
    assert not found, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_no_private_names_across_modules() -> None:
    assert not GRAPH.private, "private imports:\n" + "\n".join(GRAPH.private)


def test_nothing_inside_imports_the_top_level_package() -> None:
    assert not GRAPH.top_level, "\n".join(GRAPH.top_level)


def test_the_checker_sees_violations(tmp_path: Path) -> None:
    """Negative control: the rules fire on a fabricated graph."""
    fake = Graph({"synthdata.a": tmp_path, "synthdata.b": tmp_path,
                  "synthdata.schema.x": tmp_path, "synthdata.models.y": tmp_path})
    fake.edges = {"synthdata.a": {"synthdata.b"}, "synthdata.b": {"synthdata.a"},
                  "synthdata.schema.x": {"synthdata.models.y"}, "synthdata.models.y": set()}
    fake.lines = {("synthdata.schema.x", "synthdata.models.y"): 3}
    assert cycles(fake) == [["synthdata.a", "synthdata.b"]]
    assert layer_violations(fake) == [
        "synthdata.schema.x (layer 3) imports synthdata.models.y (layer 7), line 3"]


def test_the_parser_sees_private_and_type_checking_imports(tmp_path: Path) -> None:
    tree = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import x\nimport y\n")
    names = [a.name for n in _runtime_nodes(tree) if isinstance(n, ast.Import) for a in n.names]
    assert names == ["y"]


if __name__ == "__main__":
    for key, value in summary(GRAPH).items():
        print(f"{key}: {value}")


MAX_FUNCTION_LINES = 80  # issue 21: no function over 80 lines in service/ and evaluate/


def long_functions(folder: Path, limit: int = MAX_FUNCTION_LINES) -> list[tuple[str, str, int]]:
    """(file, function, lines) of every function in ``folder`` longer than ``limit``."""
    found = []
    for path in sorted(folder.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > limit:
                    found.append((path.name, node.name, lines))
    return found


def test_no_long_functions_in_service_and_evaluate() -> None:
    assert long_functions(ROOT / "service") == []
    assert long_functions(ROOT / "evaluate") == []


def test_the_length_check_sees_a_long_function(tmp_path: Path) -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    (tmp_path / "m.py").write_text(f"def short():\n    pass\n\n\ndef long():\n{body}\n")
    assert long_functions(tmp_path) == [("m.py", "long", MAX_FUNCTION_LINES + 1)]
