"""``marketplace ledger verify|balances|audit`` (``marketplace price`` is in :mod:`marketplace.cli.price_cmd`)."""

from __future__ import annotations

import dataclasses
from typing import Any

import typer
from sqlalchemy.orm import Session

from marketplace.cli.common import (
    JsonOpt,
    emit,
    err_console,
    handle_errors,
    in_session,
    money,
    print_fields,
    print_table,
)
from marketplace.errors import LedgerInvariantError

__all__ = ["register"]

ledger_app = typer.Typer(help="The double-entry ledger: verify invariants, list balances.", no_args_is_help=True)


@ledger_app.command("verify")
@handle_errors
def verify(as_json: bool = JsonOpt) -> None:
    """Check every invariant of the books; exit non-zero (7) listing the violations if any fails."""
    from marketplace.ledger import verify_ledger

    report = in_session(verify_ledger)

    def render(r: Any) -> None:
        print_fields("ledger verify", r.checks, columns=("check", "violations"))
        print_fields("stats", r.stats, columns=("what", "count"))
        if r.violations:
            print_table("violations", ["check", "message"], ((v.check, v.message) for v in r.violations))

    emit(report, as_json, render)
    if not report.ok:
        n = sum(report.checks.values())
        err_console.print(f"[bold red]error:[/] ledger verify found {n} violation(s)", highlight=False)
        raise typer.Exit(code=LedgerInvariantError.exit_code)


@ledger_app.command("balances")
@handle_errors
def balances(as_json: bool = JsonOpt) -> None:
    """Every account, named by what it belongs to, with its debit and credit totals and its balance on its
    normal side (money in major units; --json keeps integer minor units)."""
    from marketplace.ledger import list_balances
    from marketplace.status import account_names

    def work(s: Session) -> dict[str, Any]:
        names = account_names(s)
        return {"accounts": [{**dataclasses.asdict(a), "owner": names.get(a.account_id, "")}
                             for a in list_balances(s)]}

    emit(in_session(work), as_json, lambda d: print_table(
        "balances", ["account", "belongs to", "debits", "credits", "balance"],
        ((a["code"], a["owner"], money(a["debits_minor"], a["currency"]), money(a["credits_minor"], a["currency"]),
          money(a["balance_minor"], a["currency"])) for a in d["accounts"]),
        right=("debits", "credits", "balance")))


@ledger_app.command("audit")
@handle_errors
def audit(
    limit: int = typer.Option(50, "--limit", min=1, max=10_000, help="How many events, newest first."),
    campaign: str | None = typer.Option(None, "--campaign", help="Only this campaign's events (name or id:N)."),
    as_json: bool = JsonOpt,
) -> None:
    """The audit trail: who ingested, priced, revalued, promoted, created or changed what (append-only)."""

    from marketplace.campaigns import get_campaign
    from marketplace.db.audit import list_audit_events

    def query(session: Session) -> list[dict[str, Any]]:
        cid = get_campaign(session, campaign).id if campaign is not None else None
        return list_audit_events(session, limit=limit, campaign_id=cid)

    emit({"events": in_session(query)}, as_json, lambda d: print_table(
        "audit trail", ["id", "when", "actor", "action", "campaign", "provider", "submission", "pricing run",
                        "details"],
        ((e["id"], e["occurred_at"], e["actor"], e["action"], e["campaign_id"] or "",
          e["provider_id"] or "", e["submission_id"] or "", e["pricing_run_id"] or "",
          ", ".join(f"{k}={v}" for k, v in sorted(e["details"].items())))
         for e in d["events"])))


def register(app: typer.Typer) -> None:
    app.add_typer(ledger_app, name="ledger")
