"""``marketplace status``: what is in the store, and where the store is."""

from __future__ import annotations

from typing import Any

import typer
from sqlalchemy.orm import Session

from marketplace.cli.common import JsonOpt, emit, handle_errors, in_session, print_fields, print_table, settings

__all__ = ["register"]


@handle_errors
def status(as_json: bool = JsonOpt) -> None:
    """What is in the store: providers and campaigns by name; counts of submissions, samples, quarantine,
    duplicates; the ledger.

    Never creates a store: a missing home is an error saying where it looked (MKT_HOME)."""
    from marketplace.settings import redact_url
    from marketplace.status import campaign_rows, collect_status, provider_rows

    def work(s: Session) -> dict[str, Any]:
        return {**collect_status(s), "providers": provider_rows(s), "campaigns": campaign_rows(s)}

    data = in_session(work)
    cfg = settings()
    data["store"] = {
        "home": str(cfg.home),
        "home set": cfg.home_origin,
        "database": redact_url(cfg.resolved_database_url),
        "mlflow": redact_url(cfg.resolved_mlflow_tracking_uri),
    }

    def render(d: dict[str, Any]) -> None:
        for section, values in d.items():
            if section == "providers":
                print_table("providers", ["name", "id", "submissions", "samples", "already in the market", "owed"],
                            [(p["name"], p["id"], p["submissions"], p["samples"], p["already_in_market"], p["owed"])
                             for p in values] or [("(none yet)", "", "", "", "", "")],
                            right=("id", "submissions", "samples", "already in the market", "owed"))
            elif section == "campaigns":
                print_table("campaigns", ["name", "id", "budget per period", "audit threshold"],
                            [(c["name"], c["id"], c["budget"], c["audit_threshold"]) for c in values]
                            or [("(none yet)", "", "", "")], right=("id", "budget per period"))
            else:
                print_fields(section, values, columns=("what", "value"))

    emit(data, as_json, render)


def register(app: typer.Typer) -> None:
    app.command("status")(status)
