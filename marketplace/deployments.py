"""The deployment definitions in ``infra/prefect.yaml``, read and checked without Prefect.

``marketplace serve`` turns them into locally served deployments (one process, no server, no work
pool); ``prefect deploy`` reads the same file for a Prefect server. One file, two ways to run it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from marketplace.errors import ConfigError

__all__ = ["DeploymentSpec", "default_prefect_yaml", "load_deployment_specs"]


@dataclass(frozen=True)
class DeploymentSpec:
    name: str
    entrypoint: str  # "flows/revalue.py:revalue"
    parameters: dict[str, Any] = field(default_factory=dict)
    crons: tuple[str, ...] = ()
    description: str = ""

    @property
    def module(self) -> str:
        path, _, _ = self.entrypoint.partition(":")
        return path.removesuffix(".py").replace("/", ".")

    @property
    def attribute(self) -> str:
        return self.entrypoint.partition(":")[2]


def default_prefect_yaml() -> Path:
    """infra/prefect.yaml of this checkout."""
    return Path(__file__).resolve().parents[1] / "infra" / "prefect.yaml"


def load_deployment_specs(path: Path) -> list[DeploymentSpec]:
    if not path.is_file():
        raise ConfigError(f"deployment file {path} not found; pass --file infra/prefect.yaml from a checkout")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    entries = data.get("deployments") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{path} has no 'deployments' list")
    specs = []
    for i, entry in enumerate(entries):
        where = f"{path}: deployments[{i}]"
        if not isinstance(entry, dict) or not entry.get("name") or ":" not in str(entry.get("entrypoint", "")):
            raise ConfigError(f"{where} needs a name and an entrypoint like flows/revalue.py:revalue")
        crons = tuple(str(s["cron"]) for s in entry.get("schedules") or [] if isinstance(s, dict) and "cron" in s)
        params = entry.get("parameters") or {}
        if not isinstance(params, dict):
            raise ConfigError(f"{where}: parameters must be a mapping")
        specs.append(
            DeploymentSpec(
                name=str(entry["name"]),
                entrypoint=str(entry["entrypoint"]),
                parameters=dict(params),
                crons=crons,
                description=str(entry.get("description", "")),
            )
        )
    return specs
