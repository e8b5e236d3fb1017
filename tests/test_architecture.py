"""The package's shape: data flows one way (no import cycle), modules stay small, one place for
each file format (checkpoints, images).

``python tests/test_architecture.py`` prints the import graph (module -> the modules it
imports), its cycles and the longest modules.
"""
from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "bore_depth_lite"
MAX_LINES = 400
#: A longer module states why at the top of its docstring, in these words.
LONG_REASON = re.compile(r"Longer than 400 lines because")


def module_name(path: Path, package: Path = PACKAGE) -> str:
    parts = list(path.relative_to(package.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """Module -> the package modules it imports, counting every import statement: at the top,
    inside functions (lazy) and under ``if TYPE_CHECKING`` alike."""
    modules = {module_name(p, package): p for p in package.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        here = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                if node.module == "__future__":
                    continue
                if node.level:
                    base = here.split(".")[: len(here.split(".")) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                candidates = [target] + [f"{target}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                candidates = [alias.name for alias in node.names]
            else:
                continue
            deps.update(c for c in candidates if c in modules and c != name)
        graph[name] = deps
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), i.e. the import cycles."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
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
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_cycle_finder_finds_a_cycle_through_a_lazy_import(tmp_path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from .b import f\n")
    (package / "b.py").write_text("def f():\n    from . import c\n")
    (package / "c.py").write_text("from pkg.a import f\n")
    (package / "d.py").write_text("from .a import f\n")
    graph = import_graph(package)
    assert graph["pkg.b"] == {"pkg", "pkg.c"}
    assert cycles(graph) == [["pkg.a", "pkg.b", "pkg.c"]]


def test_the_package_has_no_import_cycle():
    graph = import_graph()
    assert len(graph) > 40, "the graph misses modules"
    assert cycles(graph) == []


def test_every_module_is_short_or_says_why():
    long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        lines = path.read_text().count("\n")
        docstring = ast.get_docstring(ast.parse(path.read_text())) or ""
        if lines > MAX_LINES and not LONG_REASON.search(docstring.split("\n\n")[0] + docstring):
            long.append(f"{path.relative_to(PACKAGE.parent)}: {lines} lines")
    assert not long, f"modules over {MAX_LINES} lines without 'Longer than 400 lines because' in their docstring: {long}"


def _calls(pattern: str) -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and re.fullmatch(pattern, ast.unparse(node.func)):
                found.append(module_name(path))
    return sorted(set(found))


def test_one_checkpoint_loader_and_one_writer():
    assert _calls(r"torch\.load") == ["bore_depth_lite.checkpoint.io"]
    assert _calls(r"torch\.save") == ["bore_depth_lite.checkpoint.io"]


def test_one_image_reader():
    assert _calls(r"(PIL\.)?Image\.open") == ["bore_depth_lite.images"]
    names = [module_name(p) for p in PACKAGE.rglob("*.py") if re.search(r"^IMAGE_EXTENSIONS\b.*=", p.read_text(), re.M)]
    assert names == ["bore_depth_lite.images"]


if __name__ == "__main__":
    graph = import_graph()
    for name in sorted(graph):
        print(f"{name} -> {', '.join(sorted(graph[name])) or '-'}")
    print(f"\n{len(graph)} modules, {sum(map(len, graph.values()))} edges; cycles: {cycles(graph) or 'none'}")
    sizes = sorted(((p.read_text().count(chr(10)), module_name(p)) for p in PACKAGE.rglob("*.py")), reverse=True)
    print("longest:", ", ".join(f"{n} ({lines})" for lines, n in sizes[:5]))
    sys.exit(1 if cycles(graph) else 0)
