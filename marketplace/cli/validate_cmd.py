"""``marketplace validate CAMPAIGN``: check the latest payouts against what fine-tuning really gains.

It calls :func:`marketplace.validation.validate_campaign` directly, the same core call as the
``validate`` flow's task, and prints per provider the measured gain per sample, the payout share and
the ideal share, then the misallocated and harmful shares of the budget.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from marketplace.cli.common import (
    CampaignArg,
    JsonOpt,
    emit,
    handle_errors,
    open_db,
    option_error,
    print_fields,
    print_table,
    progress,
    settings,
)

__all__ = ["register"]


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _check(passed: bool | None) -> str:
    return "-" if passed is None else ("pass" if passed else "not paid")


def _render(d: dict[str, Any]) -> None:
    result, headline = d["result"], d["result"]["headline"]
    print_table(
        f"payout validation {result['campaign_name']} · pricing run {result['pricing_run_id']} ({result['period']})",
        ["provider", "pricing check", "paid samples", "payout share", f"gain/sample ({headline})", "± sd",
         "ideal share"],
        ((p["provider_name"], _check(p.get("check_passed")), p["n_paid"], _pct(p["payout_share"]),
          "n/a" if p["gain"][headline] is None else f"{p['gain'][headline]:+.3e}",
          "n/a" if p["gain_sd"][headline] is None else f"{p['gain_sd'][headline]:.1e}",
          _pct(p["ideal_share"][headline]))
         for p in sorted(result["providers"], key=lambda p: -p["amount_minor"])),
    )
    print_fields("verdict", [
        (f"{v['regime']}: misallocated share", _pct(v["misallocated_share"])) for v in result["verdicts"]
    ] + [(f"{v['regime']}: harmful share", _pct(v["harmful_share"])) for v in result["verdicts"]]
      + [(f"{v['regime']}: note", v["note"]) for v in result["verdicts"] if v["note"]])
    print_fields("files", d["files"], columns=("kind", "path"))


@handle_errors
def validate(
    campaign: str = CampaignArg,
    per_provider: int = typer.Option(64, "--per-provider", "-k", help="Payable samples per provider and seed (K)."),
    seeds: list[int] = typer.Option([0, 1], "--seeds", help="One fine-tuning run per seed and regime (repeat)."),
    period: str | None = typer.Option(None, "--period", help="Pricing period (default: the latest priced)."),
    device: str | None = typer.Option(None, "--device", help="cpu, cuda, cuda:N or auto (default MKT_DEVICE)."),
    out: Path | None = typer.Option(None, "--out", help="Output folder (default $MKT_HOME/artifacts/validation)."),
    remeasure: bool = typer.Option(False, "--remeasure",
                                   help="Fine-tune again even when the same samples, target, model and settings "
                                        "were measured before (the stored measurement is reused by default)."),
    as_json: bool = JsonOpt,
) -> None:
    """Fine-tune copies of the target model on K samples of each provider alone and compare the measured
    gain per sample with the latest pricing run: ideal shares, misallocated share, harmful share."""
    from pydantic import ValidationError as PydanticValidationError

    from marketplace.outputs import check_output_dir
    from marketplace.runtime import resolve_device
    from marketplace.validation import ValidationConfig, measurement_cache_dir, validate_campaign

    try:
        config = ValidationConfig(per_provider=per_provider, seeds=tuple(seeds))
    except PydanticValidationError as exc:
        raise option_error(exc, "validate") from exc
    resolved = resolve_device(device)
    out_dir = out if out is not None else settings().resolved_artifacts_dir / "validation"
    check_output_dir(out_dir)  # before the fine-tuning: a file at the output folder is a one-line error
    _, factory = open_db()
    result, files = validate_campaign(
        factory, campaign, config, out_dir, period=period, device=resolved,
        progress=lambda done, total, msg: progress(f"[{done}/{total}] {msg}"),
        cache_dir=None if remeasure else measurement_cache_dir(settings()),
    )
    emit({"result": result.to_dict(), "files": {k: str(p) for k, p in files.items()}}, as_json, _render)


def register(app: typer.Typer) -> None:
    app.command("validate")(validate)
