"""Code version for lineage tags: ``git describe --always --dirty`` of the checkout the package runs
from, else the installed package version (``0.1.0+nogit``)."""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

import marketplace

__all__ = ["code_version"]


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    root = Path(marketplace.__file__).resolve().parents[1]
    if (root / ".git").exists():
        try:
            described = subprocess.run(
                ["git", "-C", str(root), "describe", "--always", "--dirty", "--tags"],
                capture_output=True, text=True, timeout=10, check=True,
            ).stdout.strip()
            if described:
                return f"{marketplace.__version__}+g{described}"
        except (OSError, subprocess.SubprocessError):
            pass
    return f"{marketplace.__version__}+nogit"
