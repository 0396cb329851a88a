"""``marketplace price`` and ``marketplace ledger verify|balances``.

``price`` runs the pricing core directly through the retrying edge driver (no Prefect server needed);
``flows/price.py`` wires the same two steps as Prefect tasks for scheduled runs. The pricing policy is
the campaign's ``options["pricing"]`` (if any) overridden by the options given here.
"""

from __future__ import annotations

from typing import Any

import typer

from marketplace.cli.common import JsonOpt, emit, err_console, handle_errors, open_db, print_table
from marketplace.errors import LedgerInvariantError

__all__ = ["register"]

ledger_app = typer.Typer(help="The double-entry ledger: verify invariants, list balances.", no_args_is_help=True)


def _policy_overrides(cap_percentile: float | None, reserve: float | None, share_cap: str | None,
                      fee_bps: int | None) -> dict[str, Any]:
    given = {"cap_percentile": cap_percentile, "reserve": reserve, "provider_share_cap": share_cap, "fee_bps": fee_bps}
    return {k: v for k, v in given.items() if v is not None}


def price(
    campaign: str = typer.Argument(..., help="Campaign name or id."),
    period: str = typer.Option(..., "--period", help="Pricing period: YYYY-MM (or YYYY, YYYY-MM-DD)."),
    cap_percentile: float | None = typer.Option(None, "--cap-percentile", help="Outlier cap percentile (0, 100]."),
    reserve: float | None = typer.Option(None, "--reserve", help="Values below this earn nothing (score units)."),
    share_cap: str | None = typer.Option(None, "--share-cap", help="Largest budget share per provider, e.g. 0.25."),
    fee_bps: int | None = typer.Option(None, "--fee-bps", help="Marketplace fee in basis points (0-10000)."),
    score_run: int | None = typer.Option(None, "--score-run", help="Price this score run (default: latest complete)."),
    batch_size: int = typer.Option(500, "--batch-size", min=1, help="Transactions per database transaction."),
    as_json: bool = JsonOpt,
) -> None:
    """Price a campaign's period: allocate its budget over eligible samples and post one transaction per submission.

    Safe to rerun: the same inputs give the same pricing run and post nothing twice; new scores post only
    the difference to what was credited before for the period.
    """
    from marketplace.campaigns import get_campaign
    from marketplace.db import PricingRun
    from marketplace.pricing import parse_policy
    from marketplace.pricing.runner import run_pricing

    _, factory = open_db()
    with factory() as session:
        camp = get_campaign(session, campaign)
        configured = (camp.options or {}).get("pricing")
        base: dict[str, Any] = dict(configured) if isinstance(configured, dict) else {}
    policy = parse_policy({**base, **_policy_overrides(cap_percentile, reserve, share_cap, fee_bps)})
    outcome = run_pricing(factory, camp.id, period, policy, score_run_id=score_run, batch_size=batch_size)
    with factory() as session:
        run = session.get(PricingRun, outcome.pricing_run_id)
        assert run is not None
        data = {
            "pricing_run_id": run.id, "created": outcome.created, "status": run.status.value,
            "campaign": camp.name, "period": run.period, "score_run_id": run.score_run_id,
            "approximator_version_id": run.approximator_version_id, "label_set_id": run.label_set_id,
            "policy": run.policy, "policy_hash": run.policy_hash, "currency": run.currency,
            "budget_minor": run.budget_minor, "allocated_minor": run.allocated_minor,
            "unallocated_minor": run.unallocated_minor, "n_eligible": run.n_eligible, "n_paid": run.n_paid,
            "n_submissions": run.n_submissions, "transactions_posted": outcome.n_posted,
            "superseded_by": outcome.superseded_by,
        }
    emit(data, as_json, lambda d: print_table(f"pricing run {d['pricing_run_id']}", ["field", "value"], d.items()))


@ledger_app.command("verify")
@handle_errors
def verify(as_json: bool = JsonOpt) -> None:
    """Check every invariant of the books; exit non-zero (7) listing the violations if any fails."""
    from marketplace.ledger import verify_ledger

    _, factory = open_db()
    with factory() as session:
        report = verify_ledger(session)

    def render(r: Any) -> None:
        print_table("ledger verify", ["check", "violations"], r.checks.items())
        print_table("stats", ["what", "count"], r.stats.items())
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

    _, factory = open_db()
    with factory() as session:
        rows = list_balances(session)
    emit({"accounts": rows}, as_json, lambda d: print_table(
        "balances", ["account", "currency", "debits_minor", "credits_minor", "balance_minor"],
        ((a.code, a.currency, a.debits_minor, a.credits_minor, a.balance_minor) for a in d["accounts"])))


def register(app: typer.Typer) -> None:
    app.command("price")(handle_errors(price))
    app.add_typer(ledger_app, name="ledger")
