"""infra/compose.yaml ships safe defaults: no password written in it (every secret is a required variable,
``${VAR:?...}``), the application connects as the app role and migrations as the owner, and the servers
without authentication (MLflow, Prefect, the Dask dashboard) and the plain-HTTP API are published on 127.0.0.1
only."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

INFRA = Path(__file__).resolve().parents[2] / "infra"
_URL_PASSWORD = re.compile(r"://[^:/@\s]+:([^@\s]+)@")


def _strings(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [s for v in node.values() for s in _strings(v)]
    if isinstance(node, list):
        return [s for v in node for s in _strings(v)]
    return [node] if isinstance(node, str) else []


def _compose() -> dict[str, Any]:
    return yaml.safe_load((INFRA / "compose.yaml").read_text())


def test_no_password_is_written_in_the_compose_file() -> None:
    doc = _compose()
    strings = _strings(doc)
    for value in strings:
        for password in _URL_PASSWORD.findall(value):
            assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]+\}|\$\$\{[A-Z_]+\}", password), value
    postgres_env = doc["services"]["postgres"]["environment"]
    for key in ("POSTGRES_PASSWORD", "MKT_OWNER_DB_PASSWORD", "MKT_APP_DB_PASSWORD"):
        assert re.fullmatch(rf"\$\{{{key}:\?[^}}]+\}}", postgres_env[key]), key


def test_roles_and_published_ports() -> None:
    services = _compose()["services"]
    assert "marketplace_app:" in services["worker"]["environment"]["MKT_DATABASE_URL"]
    assert "marketplace_owner:" in services["migrate"]["environment"]["MKT_DATABASE_URL"]
    published = {name: svc.get("ports", []) for name, svc in services.items()}
    assert not published["postgres"]  # the database is reachable from the compose network only
    for name, ports in published.items():
        for port in ports:
            assert str(port).startswith("127.0.0.1:"), (name, port)
    assert {n for n, p in published.items() if p} == {"mlflow", "prefect-server", "dask-scheduler", "api"}
    init = (INFRA / "postgres-init-roles.sh").read_text()
    assert "postgres-roles.sql" in init and "PASSWORD :'app_password'" in init


def test_the_api_runs_the_shared_image_as_the_app_role_with_a_health_check() -> None:
    services = _compose()["services"]
    api, worker = services["api"], services["worker"]
    assert api["image"] == worker["image"] and api["command"][:2] == ["api", "serve"]
    assert api["environment"] == worker["environment"]  # the same MKT_ settings, the app role, the Prefect server
    assert api["environment"]["MKT_HOME"] == "/data" and "marketplace-data:/data" in api["volumes"]
    assert api["depends_on"]["postgres"] == {"condition": "service_healthy"}
    assert "/healthz" in " ".join(api["healthcheck"]["test"])
    assert api["ports"] == ["127.0.0.1:8000:8000"]  # plain HTTP: this machine only, behind a TLS proxy
