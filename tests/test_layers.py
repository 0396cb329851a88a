"""The layering rules, enforced on the import statements of every module (module level and inside
functions alike).

- ``marketplace/`` (the domain core, and ``marketplace/runtime.py``, the edge helpers every edge
  shares) imports neither Prefect nor ``prefect_dask``, nor ``tasks`` or ``flows``; the CLI
  (``marketplace/cli``) is the edge and may import Prefect and run ``flows``, lazily, inside commands.
- ``marketplace/cli`` never imports ``tasks`` (a command runs a flow or calls the core).
- ``tasks/`` never import ``flows/`` (flows wire tasks, not the other way round).
- MLflow is imported only by the registry adapter(s) under ``marketplace/approx/registry*.py`` and
  the CLI.
- The core reads no environment: only ``settings.py`` (which reads it) and ``runtime.py`` (which sets
  the offline defaults of the process) touch ``os.environ``.
- No import cycles between the core's packages and modules (``marketplace.<name>``).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EDGE_MODULES = {"settings.py", "runtime.py"}  # may touch os.environ


def _imported_modules(path: Path) -> Iterator[str]:
    """Every absolute module name ``path`` imports, dotted (``from a.b import c`` yields ``a.b.c`` and ``a.b``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def _top_level_imports(path: Path) -> set[str]:
    return {name.split(".")[0] for name in _imported_modules(path)}


def _python_files(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def _core_modules() -> list[Path]:
    return [p for p in _python_files("marketplace") if "cli" not in p.relative_to(ROOT).parts]


def _offenders(paths: list[Path], forbidden: set[str]) -> dict[str, list[str]]:
    found = {str(p.relative_to(ROOT)): sorted(_top_level_imports(p) & forbidden) for p in paths}
    return {path: names for path, names in found.items() if names}


def test_core_never_imports_prefect_tasks_or_flows() -> None:
    offenders = _offenders(_core_modules(), {"prefect", "prefect_dask", "tasks", "flows"})
    assert offenders == {}, f"the domain core must not import prefect, prefect_dask, tasks or flows: {offenders}"


def test_cli_never_imports_tasks() -> None:
    offenders = _offenders(_python_files("marketplace/cli"), {"tasks"})
    assert offenders == {}, f"the CLI runs flows or calls the core, never tasks directly: {offenders}"


def test_tasks_never_import_flows() -> None:
    offenders = _offenders(_python_files("tasks"), {"flows"})
    assert offenders == {}, f"tasks must not import flows: {offenders}"


def test_mlflow_only_in_registry_adapter() -> None:
    offenders = [
        str(p.relative_to(ROOT))
        for p in _core_modules()
        if "mlflow" in _top_level_imports(p) and not p.name.startswith("registry")
    ]
    assert offenders == [], f"only the registry adapter may import mlflow: {offenders}"


def test_core_does_not_read_environment() -> None:
    """Core functions get values; only settings.py (and the edges) touch os.environ."""
    offenders = []
    for p in _core_modules():
        if p.parent == ROOT / "marketplace" and p.name in EDGE_MODULES:
            continue
        text = p.read_text(encoding="utf-8")
        if "os.environ" in text or "os.getenv" in text:
            offenders.append(str(p.relative_to(ROOT)))
    assert offenders == [], f"core modules must not read the environment: {offenders}"


def _core_unit(module: str) -> str | None:
    """``marketplace.<name>`` of a dotted module name inside the package (None outside it, or the root)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "marketplace" else None


def _core_graph() -> dict[str, set[str]]:
    """marketplace.<name> -> the other marketplace.<name> it imports (migrations excluded: Alembic loads them)."""
    graph: dict[str, set[str]] = {}
    for path in _core_modules():
        rel = path.relative_to(ROOT / "marketplace")
        if "migrations" in rel.parts or (rel.name == "__init__.py" and len(rel.parts) == 1):
            continue
        unit = rel.parts[0].removesuffix(".py")
        targets = graph.setdefault(unit, set())
        for name in _imported_modules(path):
            other = _core_unit(name)
            if other and other != unit and ((ROOT / "marketplace" / other).is_dir()
                                            or (ROOT / "marketplace" / f"{other}.py").is_file()):
                targets.add(other)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every elementary cycle found by a depth-first search, each once (rotated to start at its least name)."""
    found: set[tuple[str, ...]] = set()

    def visit(node: str, path: list[str]) -> None:
        for nxt in sorted(graph.get(node, ())):
            if nxt == path[0]:
                i = path.index(min(path))
                found.add(tuple(path[i:] + path[:i]))
            elif nxt not in path and nxt > path[0]:
                visit(nxt, [*path, nxt])

    for start in sorted(graph):
        visit(start, [start])
    return sorted(list(c) for c in found)


def test_cycle_finder_finds_cycles() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_between_core_packages() -> None:
    cycles = _cycles(_core_graph())
    readable = [" -> ".join([*c, c[0]]) for c in cycles]
    assert readable == [], f"import cycles between core packages (break them; imports inside functions count): " \
                           f"{readable}"
