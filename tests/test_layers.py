"""The layering rules of STYLE.md, enforced on the import statements of every module.

- ``marketplace/`` (the domain core) never imports Prefect; the CLI (``marketplace/cli``) is the edge
  and may, lazily, inside commands that run flows.
- MLflow is imported only by the registry adapter(s) under ``marketplace/approx/registry*.py`` and
  the CLI.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def _core_modules() -> list[Path]:
    return [p for p in (ROOT / "marketplace").rglob("*.py") if "cli" not in p.relative_to(ROOT).parts]


def test_core_never_imports_prefect() -> None:
    offenders = [str(p.relative_to(ROOT)) for p in _core_modules() if "prefect" in _imports(p)]
    assert offenders == [], f"the domain core must not import prefect: {offenders}"


def test_mlflow_only_in_registry_adapter() -> None:
    offenders = [
        str(p.relative_to(ROOT))
        for p in _core_modules()
        if "mlflow" in _imports(p) and not p.name.startswith("registry")
    ]
    assert offenders == [], f"only the registry adapter may import mlflow: {offenders}"


def test_core_does_not_read_environment() -> None:
    """Core functions get values; only settings.py (and the CLI edge) read os.environ."""
    offenders = []
    for p in _core_modules():
        if p.name == "settings.py":
            continue
        if "os.environ" in p.read_text(encoding="utf-8") or "os.getenv" in p.read_text(encoding="utf-8"):
            offenders.append(str(p.relative_to(ROOT)))
    assert offenders == [], f"core modules must not read the environment: {offenders}"
