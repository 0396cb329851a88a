"""The provider inbox: a folder with one sub-folder per provider, as ``marketplace corpus build`` writes.

Order matters: the first accepted owner of a content keeps the credit, so providers are ingested in
the order the inbox's ``manifest.json`` lists them (the order they arrived), else by name.
"""

from __future__ import annotations

import json
from pathlib import Path

from marketplace.errors import ConfigError

__all__ = ["list_provider_folders"]

RESERVED = {"target"}  # the corpus builder's campaign target data live beside the providers


def list_provider_folders(inbox: Path) -> list[tuple[str, Path]]:
    """(provider name, folder) pairs in ingestion order."""
    if not inbox.is_dir():
        raise ConfigError(f"inbox {inbox} is not a folder; it should hold one sub-folder per provider")
    folders = {
        p.name: p for p in inbox.iterdir() if p.is_dir() and p.name not in RESERVED and not p.name.startswith(".")
    }
    manifest = inbox / "manifest.json"
    order: list[str] = []
    if manifest.is_file():
        data = json.loads(manifest.read_text(encoding="utf-8"))
        for entry in data.get("providers", []):
            name = entry.get("name") if isinstance(entry, dict) else entry
            if isinstance(name, str) and name in folders:
                order.append(name)
    order += sorted(set(folders) - set(order))
    return [(name, folders[name]) for name in order]
