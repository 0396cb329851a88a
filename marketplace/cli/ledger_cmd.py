"""``marketplace ledger verify|balances`` (``marketplace price`` is in :mod:`marketplace.cli.price_cmd`)."""

from __future__ import annotations

from typing import Any

import typer

from marketplace.cli.common import JsonOpt, emit, err_console, handle_errors, in_session, print_fields, print_table
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
    """Every account with its stored debit and credit totals and its balance on its normal side."""
    from marketplace.ledger import list_balances

    emit({"accounts": in_session(list_balances)}, as_json, lambda d: print_table(
        "balances", ["account", "currency", "debits_minor", "credits_minor", "balance_minor"],
        ((a.code, a.currency, a.debits_minor, a.credits_minor, a.balance_minor) for a in d["accounts"])))


def register(app: typer.Typer) -> None:
    app.add_typer(ledger_app, name="ledger")
