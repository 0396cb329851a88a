"""``marketplace price CAMPAIGN --period P``: allocate a period's budget and post it to the ledger.

It runs :func:`marketplace.pricing.runner.run_pricing` directly (no Prefect server needed), the same
core call as the ``price`` flow's task: the campaign's pricing policy (its stored ``options["pricing"]``)
with the options given here on top.
"""

from __future__ import annotations

from typing import Any

import typer

from marketplace.cli.common import JsonOpt, emit, handle_errors, money, open_db, print_table
from marketplace.names import escape_unprintable

__all__ = ["register"]


def _policy_overrides(cap_percentile: float | None, reserve: float | None, share_cap: str | None,
                      fee_bps: int | None, netting: str | None = None, screen: str | None = None,
                      provider_split: str | None = None) -> dict[str, Any]:
    given = {"cap_percentile": cap_percentile, "reserve": reserve, "provider_share_cap": share_cap, "fee_bps": fee_bps,
             "netting": netting, "screen": screen, "provider_split": provider_split}
    return {k: v for k, v in given.items() if v is not None}


def price(
    campaign: str = typer.Argument(..., help="Campaign name or id."),
    period: str | None = typer.Option(None, "--period", help="Pricing period: YYYY-MM (or YYYY, YYYY-MM-DD); "
                                      "default: the current UTC month, as `marketplace revalue` and the demo."),
    cap_percentile: float | None = typer.Option(None, "--cap-percentile", help="Outlier cap percentile (0, 100]."),
    reserve: float | None = typer.Option(None, "--reserve", help="Values below this earn nothing (score units)."),
    share_cap: str | None = typer.Option(None, "--share-cap", help="Largest budget share per provider, e.g. 0.25."),
    fee_bps: int | None = typer.Option(None, "--fee-bps", help="Marketplace fee in basis points (0-10000)."),
    netting: str | None = typer.Option(
        None, "--netting", metavar="sample|provider",
        help="'provider': net each provider's negative scores against its positive ones (a provider whose "
             "scores net to <= 0 earns nothing); default: the campaign's, else 'provider'."),
    screen: str | None = typer.Option(
        None, "--screen", metavar="finetune|none",
        help="'finetune': first fine-tune the target model on a few draws of each provider's data and pay only "
             "providers whose data clearly lowers the target loss (a few seconds per provider, kept for reuse); "
             "'none': pay on the scores alone. Default: the campaign's, else 'finetune'."),
    provider_split: str | None = typer.Option(
        None, "--provider-split", metavar="measured|scores",
        help="With the fine-tuning check and provider netting: 'measured' splits the budget between the providers "
             "that pass in proportion to their measured gain per sample times their paid samples (the scores split "
             "each provider's part); 'scores' by their netted scores. Default: the campaign's, else 'measured'."),
    device: str | None = typer.Option(None, "--device", help="Device of the fine-tuning check: cpu, cuda, cuda:N "
                                      "or auto (default MKT_DEVICE)."),
    score_run: int | None = typer.Option(None, "--score-run", help="Price this score run (default: latest complete)."),
    batch_size: int = typer.Option(500, "--batch-size", min=1, help="Transactions per database transaction."),
    override_audit: str | None = typer.Option(
        None, "--override-audit", metavar="REASON",
        help="Pay a score run whose audit was skipped (never one that failed); REASON is recorded on the run."),
    as_json: bool = JsonOpt,
) -> None:
    """Price a campaign's period: allocate its budget over eligible samples and post one transaction per submission.

    Safe to rerun: the same inputs give the same pricing run and post nothing twice; new scores post only
    the difference to what was credited before for the period.
    """
    from marketplace.pricing.runner import run_pricing
    from marketplace.revaluation import current_period
    from marketplace.runtime import pricing_screener

    period = period or current_period()
    _, factory = open_db()
    overrides = _policy_overrides(cap_percentile, reserve, share_cap, fee_bps, netting, screen, provider_split)
    outcome = run_pricing(factory, campaign, period, overrides, score_run_id=score_run, batch_size=batch_size,
                          audit_override=override_audit,
                          screener=pricing_screener(device, progress=_show_progress))
    emit(outcome.as_dict(), as_json, _render)


def _show_progress(done: int, total: int, message: str) -> None:
    """One stderr line per fine-tuning run of the check (stdout stays the result, --json included)."""
    typer.echo(f"fine-tuning check {done}/{total}: {escape_unprintable(message)}", err=True)


def _render(d: dict[str, Any]) -> None:
    """The run's fields, money in major units with the currency (``--json`` keeps minor units)."""
    cur = d["currency"]
    screening = d.get("screening")
    rows = [(k.removesuffix("_minor"), money(v, cur) if k.endswith("_minor") else v) for k, v in d.items()
            if k != "screening"]
    print_table(f"pricing run {d['pricing_run_id']} of {d['campaign']}, period {d['period']}", ["field", "value"], rows)
    if screening:
        checks = [(c["provider_name"], f"{c['gain']:+.2e}", f"{c['sd']:.1e}", c["n_used"],
                   "paid by score" if c["passed"] else "not paid: no clear gain")
                  for c in screening["providers"]]
        print_table("fine-tuning check (target-loss drop per sample, nats/token; pass: gain > sd)",
                    ["provider", "gain", "sd", "samples", "verdict"], checks)


def register(app: typer.Typer) -> None:
    app.command("price")(handle_errors(price))
