"""``marketplace api serve``: the HTTP API (FastAPI) on uvicorn. See docs/api.md.

The edge decides how ``POST /campaigns/{name}/revalue`` runs the ``revalue`` flow: with ``PREFECT_API_URL``
set it starts a run of the Prefect deployment (``--revalue-deployment``), otherwise the server runs
``marketplace revalue`` in a background worker with this process's settings.
"""

from __future__ import annotations

import os
import threading
import uuid
from typing import Any

import typer

from marketplace.cli.common import handle_errors, progress, settings
from marketplace.errors import ConfigError

__all__ = ["PrefectDeploymentRevalue", "register"]

api_app = typer.Typer(help="The marketplace as a service: the authenticated HTTP API.", no_args_is_help=True)


class PrefectDeploymentRevalue:
    """Starts the ``revalue`` flow as a run of a Prefect deployment (a Prefect server and workers run it)."""

    kind = "prefect"

    def __init__(self, deployment: str) -> None:
        self.deployment = deployment
        self._runs: dict[str, Any] = {}
        self._lock = threading.Lock()

    def start(self, campaign_id: int, campaign: str, *, period: str | None, force: bool, actor: str) -> Any:
        from prefect.deployments import run_deployment

        from marketplace.api.runs import RunState
        from marketplace.db import utcnow

        params: dict[str, Any] = {"campaign": f"id:{campaign_id}", "force": force}
        if period is not None:
            params["period"] = period
        flow_run: Any = run_deployment(self.deployment, parameters=params, timeout=0, tags=["api"])
        state = RunState(str(flow_run.id), self.kind, campaign_id, campaign, period, "scheduled", actor, utcnow())
        with self._lock:
            self._runs[state.run_id] = state
        return state

    def get(self, run_id: str) -> Any:
        from dataclasses import replace

        from prefect import get_client

        with self._lock:
            known = self._runs.get(run_id)
        if known is None:
            return None
        try:
            with get_client(sync_client=True) as client:
                flow_run = client.read_flow_run(uuid.UUID(run_id))
        except Exception:  # the server is away: what we knew
            return known
        status = flow_run.state.type.value.lower() if flow_run.state is not None else known.status
        return replace(known, status=status)

    def for_campaign(self, campaign_id: int) -> list[Any]:
        with self._lock:
            ids = [r.run_id for r in self._runs.values() if r.campaign_id == campaign_id]
        return [r for r in (self.get(i) for i in ids) if r is not None]


@api_app.command("serve")
@handle_errors
def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (127.0.0.1: this machine only)."),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="TCP port."),
    max_upload_mb: int = typer.Option(256, "--max-upload-mb", min=1,
                                      help="Largest uploaded file in MiB (also capped by MKT_MAX_FILE_BYTES)."),
    timeout_s: float = typer.Option(300.0, "--timeout", min=1.0, help="Seconds a request may take before a 504."),
    auth_failures: int = typer.Option(10, "--auth-failures", min=1,
                                      help="Failed authentications per address per minute before 429."),
    revalue_deployment: str = typer.Option("revalue/revalue-nightly", "--revalue-deployment",
                                           help="The Prefect deployment POST .../revalue starts when "
                                                "PREFECT_API_URL is set."),
) -> None:
    """Serve the HTTP API (OpenAPI at /docs) until interrupted."""
    import uvicorn

    from marketplace.api import ApiLimits, create_app
    from marketplace.api.runs import BackgroundRevalue

    cfg = settings()
    cfg.ensure_home()
    limits = ApiLimits(max_upload_bytes=max_upload_mb * 1024 * 1024, request_timeout_s=timeout_s,
                       auth_failures=auth_failures)
    if os.environ.get("PREFECT_API_URL"):
        launcher: Any = PrefectDeploymentRevalue(revalue_deployment)
        how = f"Prefect deployment {revalue_deployment}"
    else:  # the subprocess gets this store named explicitly, whatever folder it starts in
        launcher = BackgroundRevalue(env={**os.environ, "MKT_HOME": str(cfg.home),
                                          "MKT_DATABASE_URL": cfg.resolved_database_url})
        how = "a background worker of this server"
    try:
        app = create_app(cfg, limits=limits, revalue_launcher=launcher)
    except ValueError as exc:
        raise ConfigError(f"api serve: {exc}") from exc
    progress(f"serving the API on http://{host}:{port} (OpenAPI at /docs); revaluations run through {how}")
    uvicorn.run(app, host=host, port=port, log_level="info", timeout_keep_alive=5,
                limit_concurrency=limits.max_concurrency, server_header=False)


def register(app: typer.Typer) -> None:
    app.add_typer(api_app, name="api")
