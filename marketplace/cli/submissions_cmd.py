"""``marketplace submissions list PROVIDER`` and ``marketplace submissions show PROVIDER SUBMISSION``:
what happened to a provider's data (the core is :mod:`marketplace.reports.submissions`).

Everything shown is the provider's own: a record already in the market says so and never whose it is.
"""

from __future__ import annotations

from typing import Any

import typer
from sqlalchemy.orm import Session

from marketplace.cli.common import JsonOpt, emit, handle_errors, in_session, print_table

__all__ = ["register"]

submissions_app = typer.Typer(help="A provider's submissions: what was accepted, quarantined (with reason and "
                              "line or row) and already in the market.", no_args_is_help=True)

ProviderArg = typer.Argument(..., help="Provider name or id.")


@submissions_app.command("list")
@handle_errors
def list_(provider: str = ProviderArg, as_json: bool = JsonOpt) -> None:
    """Every file the provider submitted: records, accepted, quarantined, already in the market, payable."""
    from marketplace.reports.statements import get_provider
    from marketplace.reports.submissions import provider_submissions

    def work(s: Session) -> dict[str, Any]:
        prov = get_provider(s, provider)
        return {"provider": prov.name, "provider_id": prov.id, "submissions": provider_submissions(s, prov.id)}

    data = in_session(work)

    def render(d: dict[str, Any]) -> None:
        print_table(f"submissions of {d['provider']} (provider {d['provider_id']})",
                    ["id", "file", "submitted (UTC)", "records", "accepted", "quarantined", "already in the market",
                     "payable", "note"],
                    [(x.submission_id, x.filename, x.submitted_at.strftime("%Y-%m-%d %H:%M"), x.records, x.accepted,
                      x.quarantined, x.already_in_market, x.payable, x.note) for x in d["submissions"]],
                    right=("id", "records", "accepted", "quarantined", "already in the market", "payable"))
        if not d["submissions"]:
            print(f"{d['provider']} has submitted nothing yet")

    emit(data, as_json, render)


@submissions_app.command("show")
@handle_errors
def show(
    provider: str = ProviderArg,
    submission: int = typer.Argument(..., help="Submission id (from `marketplace submissions list`)."),
    as_json: bool = JsonOpt,
) -> None:
    """One submission: every quarantined record with its reason and line or row, and every record that was
    already in the market."""
    from marketplace.reports.statements import get_provider
    from marketplace.reports.submissions import submission_detail

    detail = in_session(lambda s: submission_detail(s, get_provider(s, provider), submission))

    def render(d: Any) -> None:
        x = d.summary
        print(f"submission {x.submission_id} of {d.provider_name}: {x.filename} ({x.status}); {x.records} records, "
              f"{x.accepted} accepted, {x.quarantined} quarantined, {x.already_in_market} already in the market, "
              f"{x.payable} payable")
        if x.note:
            print(f"note: {x.note}")
        if d.quarantined:
            print_table("quarantined records", ["where", "reason", "detail", "record starts with"],
                        [(q.location, q.reason_code, q.detail, q.excerpt or "") for q in d.quarantined])
        if d.duplicates:
            print_table("records already in the market (not paid)", ["record", "match", "note"],
                        [(f"record {r.record_index + 1}", r.kind, r.note) for r in d.duplicates])

    emit(detail, as_json, render)


def register(app: typer.Typer) -> None:
    app.add_typer(submissions_app, name="submissions")
