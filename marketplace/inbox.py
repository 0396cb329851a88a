"""The provider inbox: a folder with one sub-folder per provider, as ``marketplace corpus build`` writes.

Order matters: the first accepted owner of a content keeps the credit, so providers are ingested in
the order the inbox's ``manifest.json`` lists them (the order they arrived), else by name.

The inbox is checked whole before anything is ingested, so a bad one is a one-line ConfigError and no
work starts: the manifest must be a JSON object whose ``providers`` is a list of names (strings, or
objects with a string ``name``), each listed once; every name, listed or taken from a folder, must be a
valid provider name (:func:`marketplace.names.validate_name`).
"""

from __future__ import annotations

import json
from pathlib import Path

from marketplace.errors import ConfigError, ValidationError
from marketplace.names import display_name, validate_name

__all__ = ["MANIFEST_NAME", "list_provider_folders", "read_manifest_order"]

RESERVED = {"target"}  # the corpus builder's campaign target data live beside the providers
MANIFEST_NAME = "manifest.json"
_MAX_MANIFEST_BYTES = 10 * 1024 * 1024


def _provider_name(raw: object, where: str) -> str:
    try:
        return validate_name(raw, "provider")
    except ValidationError as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def read_manifest_order(manifest: Path) -> list[str]:
    """The provider names ``manifest`` lists, in order; ConfigError (one line) for a malformed manifest."""
    where = f"inbox manifest {display_name(str(manifest))}"
    try:
        if manifest.stat().st_size > _MAX_MANIFEST_BYTES:
            raise ConfigError(f"{where} is larger than {_MAX_MANIFEST_BYTES} bytes; it should list provider names")
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{where} is not UTF-8 ({exc.reason} at byte {exc.start}); rewrite it as UTF-8 JSON") from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{where} is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); fix it "
                          "or remove it (providers are then ingested by name)") from exc
    except OSError as exc:
        raise ConfigError(f"{where} cannot be read ({exc.strerror or exc}); check its permissions") from exc
    if not isinstance(data, dict):
        raise ConfigError(f'{where} must be a JSON object like {{"providers": ["name", ...]}}, '
                          f"not {type(data).__name__}")
    providers = data.get("providers", [])
    if not isinstance(providers, list):
        raise ConfigError(f'{where}: "providers" must be a list of provider names, not {type(providers).__name__}')
    order: list[str] = []
    for i, entry in enumerate(providers):
        raw = entry.get("name") if isinstance(entry, dict) else entry
        if not isinstance(raw, str):
            raise ConfigError(f'{where}: providers[{i}] must be a name or an object with a string "name", '
                              f"not {type(entry).__name__}")
        name = _provider_name(raw, f"{where} providers[{i}]")
        if name in order:
            raise ConfigError(f"{where}: provider {display_name(name)} is listed twice; list each provider once")
        order.append(name)
    return order


def list_provider_folders(inbox: Path) -> list[tuple[str, Path]]:
    """(provider name, folder) pairs in ingestion order; ConfigError (one line) for a bad inbox."""
    if not inbox.is_dir():
        raise ConfigError(f"inbox {display_name(str(inbox))} is not a folder; it should hold one sub-folder per "
                          "provider")
    folders: dict[str, Path] = {}
    for p in inbox.iterdir():
        if not p.is_dir() or p.name in RESERVED or p.name.startswith("."):
            continue
        name = _provider_name(p.name, f"inbox folder {display_name(str(p))}")
        if name != p.name:
            raise ConfigError(f"inbox folder {display_name(str(p))}: rename it to {display_name(name)} "
                              "(no leading or trailing spaces)")
        folders[name] = p
    manifest = inbox / MANIFEST_NAME
    order: list[str] = []
    if manifest.exists():
        order = [name for name in read_manifest_order(manifest) if name in folders]
    order += sorted(set(folders) - set(order))
    return [(name, folders[name]) for name in order]
