"""``marketplace status``: what is in the store, and where the store is."""

from __future__ import annotations

import typer

from marketplace.cli.common import JsonOpt, emit, handle_errors, in_session, print_fields, settings

__all__ = ["register"]


@handle_errors
def status(as_json: bool = JsonOpt) -> None:
    """What is in the store: providers, submissions, samples, quarantine, duplicates, campaigns, ledger.

    Never creates a store: a missing home is an error saying where it looked (MKT_HOME)."""
    from marketplace.settings import redact_url
    from marketplace.status import collect_status

    data = in_session(collect_status)
    cfg = settings()
    data["store"] = {
        "home": str(cfg.home),
        "home set": cfg.home_origin,
        "database": redact_url(cfg.resolved_database_url),
        "mlflow": redact_url(cfg.resolved_mlflow_tracking_uri),
    }

    def render(d: dict[str, dict[str, object]]) -> None:
        for section, values in d.items():
            print_fields(section, values, columns=("what", "value"))

    emit(data, as_json, render)


def register(app: typer.Typer) -> None:
    app.command("status")(status)
