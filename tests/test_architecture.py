"""The package layout rule of docs/architecture.md, checked on the source.

Every module under ``src/yoloxdet`` is parsed with ``ast``; every import counts: top of the file, inside
functions, under ``if TYPE_CHECKING``, and ``importlib.import_module("yoloxdet....")`` with a constant string
(a computed target is itself an error, since it would hide an arrow). A *unit* is a top-level module
(``config``) or a top-level package (``engine``); the package root ``yoloxdet/__init__.py`` is the unit
``__init__``. Checked:

(a) no import cycle between units, nor between modules anywhere (so none inside a package either);
(b) each unit imports only units of strictly lower layers (:data:`LAYERS`, the table in docs/architecture.md);
(c) at most 8 modules directly in ``src/yoloxdet``.

Importing ``yoloxdet.a.b`` also runs ``yoloxdet/__init__`` and ``a/__init__``; those implicit parent imports
are not arrows (every module would otherwise depend on the package root).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import pytest

PACKAGE = "yoloxdet"
SRC = Path(__file__).resolve().parents[1] / "src" / PACKAGE
MAX_TOP_LEVEL_MODULES = 8

# lowest first; a unit may import units of strictly lower layers only (units of one layer are independent)
LAYERS: tuple[tuple[str, ...], ...] = (
    ("structures", "config", "io"),  # data types, every default and choice, files and images
    ("ops", "viz"),  # tensor maths shared by training and inference; drawing
    ("models", "data", "assign", "loss"),  # networks; datasets; label assignment; the loss
    ("weights",),  # checkpoint formats, official weights, ONNX import
    ("export",),  # exported files and their metadata
    ("inference",),  # Detector, runtimes, results
    ("engine", "track"),  # training and evaluation; multi-object tracking
    ("experiments", "bench", "serve"),  # tools on the library: ablations, pictures, benchmarks, serving
    ("__init__",),  # the public facade: from yoloxdet import Detector
    ("commands",),  # one module per CLI command
    ("cli",),  # the yoloxdet command
    ("__main__", "demo"),  # python -m yoloxdet, python -m yoloxdet.demo
)


# ---------------------------------------------------------------------------------------------- the checker
class DynamicImport(Exception):
    """``importlib.import_module`` with a target that is not a constant string."""


def module_name(path: Path, root: Path, package: str) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join([package, *parts])


def _resolve_relative(current: str, is_package: bool, level: int, module: str | None) -> str:
    base = current.split(".") if is_package else current.split(".")[:-1]
    base = base[: len(base) - (level - 1)] if level > 1 else base
    return ".".join(base + ([module] if module else []))


def imports_of(source: str, current: str, is_package: bool, modules: Iterable[str], package: str) -> set[str]:
    """The modules of ``package`` that ``source`` (module ``current``) imports, anywhere in the file.

    ``from X import name`` is an arrow to ``X.name`` when that is a module, else to ``X``.
    """
    known = set(modules)
    found: set[str] = set()

    def add(target: str) -> None:
        while target and target not in known:  # yoloxdet.a.b.Name -> the module that defines it
            target = target.rpartition(".")[0]
        if target and target != current:
            found.add(target)

    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == package or alias.name.startswith(package + "."):
                    add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = (
                _resolve_relative(current, is_package, node.level, node.module) if node.level else node.module
            )
            if base is None or not (base == package or base.startswith(package + ".")):
                continue
            for alias in node.names:
                add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
        elif isinstance(node, ast.Call) and _is_import_module(node.func):
            arg = node.args[0] if node.args else None
            if not (isinstance(arg, ast.Constant) and isinstance(arg.value, str)):
                raise DynamicImport(
                    f"{current}: importlib.import_module with a computed target (line {node.lineno})"
                )
            target = arg.value
            if target.startswith("."):
                level = len(target) - len(target.lstrip("."))
                target = _resolve_relative(current, is_package, level, target.lstrip(".") or None)
            if target == package or target.startswith(package + "."):
                add(target)
    return found


def _is_import_module(func: ast.expr) -> bool:
    return (isinstance(func, ast.Attribute) and func.attr == "import_module") or (
        isinstance(func, ast.Name) and func.id == "import_module"
    )


def module_graph(root: Path, package: str) -> dict[str, set[str]]:
    files = {module_name(p, root, package): p for p in sorted(root.rglob("*.py"))}
    return {
        name: imports_of(path.read_text(), name, path.name == "__init__.py", files, package)
        for name, path in files.items()
    }


def unit_of(module: str, package: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def unit_graph(graph: Mapping[str, set[str]], package: str) -> dict[str, set[str]]:
    units: dict[str, set[str]] = {}
    for source, targets in graph.items():
        here = unit_of(source, package)
        units.setdefault(here, set()).update(
            unit_of(t, package) for t in targets if unit_of(t, package) != here
        )
    return units


def find_cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (or a self-arrow), by Tarjan's algorithm."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1 or node in graph.get(node, ()):
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def layer_violations(units: Mapping[str, Iterable[str]], layers: Sequence[Sequence[str]]) -> list[str]:
    """Arrows that do not point to a strictly lower layer, and units missing from the table."""
    rank = {unit: i for i, layer in enumerate(layers) for unit in layer}
    problems = [f"{u}: not in the layer table" for u in sorted(units) if u not in rank]
    for source, targets in sorted(units.items()):
        for target in sorted(targets):
            if source in rank and target in rank and rank[target] >= rank[source]:
                problems.append(f"{source} (layer {rank[source]}) imports {target} (layer {rank[target]})")
    return problems


def top_level_modules(root: Path) -> list[str]:
    return sorted(p.name for p in root.glob("*.py"))


# ---------------------------------------------------------------------------------------------- the package
@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return module_graph(SRC, PACKAGE)


def test_no_import_cycle_between_modules(graph):
    assert find_cycles(graph) == []


def test_no_import_cycle_between_units(graph):
    assert find_cycles(unit_graph(graph, PACKAGE)) == []


def test_every_arrow_points_to_a_lower_layer(graph):
    assert layer_violations(unit_graph(graph, PACKAGE), LAYERS) == []


def test_at_most_eight_top_level_modules():
    assert len(top_level_modules(SRC)) <= MAX_TOP_LEVEL_MODULES, top_level_modules(SRC)


def test_the_layer_table_lists_every_unit_once():
    listed = [unit for layer in LAYERS for unit in layer]
    on_disk = {p.stem for p in SRC.glob("*.py")} | {
        p.name for p in SRC.iterdir() if p.is_dir() and any(p.glob("*.py"))
    }
    assert len(listed) == len(set(listed))
    assert set(listed) == on_disk


def test_the_library_never_imports_the_bench_tools(graph):
    tools = ("bench",)
    users = {
        unit_of(m, PACKAGE)
        for m, targets in graph.items()
        if any(unit_of(t, PACKAGE) in tools for t in targets)
    }
    assert users <= {"commands", "bench"}


# ---------------------------------------------------------------------------------------- the checker itself
FAKE = ["pkg", "pkg.a", "pkg.b", "pkg.sub", "pkg.sub.c", "pkg.sub.d"]


def test_checker_sees_local_from_relative_and_importlib_imports():
    source = (
        "import importlib\n"
        "import os\n"
        "from . import b\n"
        "from .sub.c import thing\n"
        "def later():\n"
        "    from pkg.sub import d\n"
        "    return importlib.import_module('pkg.sub')\n"
    )
    assert imports_of(source, "pkg.a", False, FAKE, "pkg") == {"pkg.b", "pkg.sub.c", "pkg.sub.d", "pkg.sub"}
    assert imports_of("from .. import a\nfrom ..b import X\n", "pkg.sub.c", False, FAKE, "pkg") == {
        "pkg.a",
        "pkg.b",
    }
    assert imports_of("from . import c\n", "pkg.sub", True, FAKE, "pkg") == {"pkg.sub.c"}
    with pytest.raises(DynamicImport):
        imports_of("import importlib\nimportlib.import_module(f'pkg.{x}')\n", "pkg.a", False, FAKE, "pkg")


def test_checker_finds_a_cycle_hidden_in_a_function(tmp_path):
    root = tmp_path / "pkg"
    (root / "sub").mkdir(parents=True)
    for name in ("__init__.py", "sub/__init__.py", "sub/c.py"):
        (root / name).write_text("")
    (root / "a.py").write_text("from .sub.c import f\n")
    (root / "sub" / "d.py").write_text("def g():\n    from pkg.a import x\n")
    (root / "sub" / "c.py").write_text("from .d import g\n")
    graph = module_graph(root, "pkg")
    assert find_cycles(graph) == [["pkg.a", "pkg.sub.c", "pkg.sub.d"]]
    assert find_cycles(unit_graph(graph, "pkg")) == [["a", "sub"]]
    assert find_cycles({"x": {"y"}, "y": set()}) == []


def test_checker_rejects_upward_and_same_layer_arrows():
    layers = (("low", "side"), ("high",))
    assert layer_violations({"high": {"low"}, "low": set(), "side": set()}, layers) == []
    assert layer_violations({"low": {"high"}}, layers) == ["low (layer 0) imports high (layer 1)"]
    assert layer_violations({"low": {"side"}}, layers) == ["low (layer 0) imports side (layer 0)"]
    assert layer_violations({"stray": set()}, layers) == ["stray: not in the layer table"]
