"""``marketplace registry list|show|history|promote``: the ALinFiK model registry (MLflow) with lineage."""

from __future__ import annotations

from typing import Any

import typer

from marketplace.cli.common import CampaignArg, JsonOpt, emit, handle_errors, in_session, print_fields, print_table
from marketplace.runtime import model_registry

__all__ = ["register"]

registry_app = typer.Typer(help="ALinFiK model registry (MLflow): versions, lineage, aliases, history.",
                           no_args_is_help=True)


def _fmt(x: float | None) -> str:
    return "" if x is None else f"{x:.3f}"


def _with_model(campaign: str, work: Any) -> Any:
    """``work(session, campaign_id, model_name)`` in one committed transaction."""
    from marketplace.approx.registry import model_name_for
    from marketplace.campaigns import get_campaign

    def run(session: Any) -> Any:
        camp = get_campaign(session, campaign)
        return work(session, camp.id, model_name_for(camp.name))

    return in_session(run, write=True)


def _render_list(d: dict[str, Any]) -> None:
    print_table(d["model_name"], ["version", "aliases", "spearman", "tfidf", "cosine", "score runs", "pricing runs",
                                  "decision"], [
        (v["version"], ",".join(v["aliases"]), _fmt(v["metrics"].get("approx_spearman")),
         _fmt(v["metrics"].get("tfidf_ridge_spearman")), _fmt(v["metrics"].get("target_cosine_spearman")),
         len(v["score_runs"]), len(v["pricing_runs"]), v["decision"] or "")
        for v in d["versions"]
    ])


@registry_app.command("list")
@handle_errors
def list_(campaign: str = CampaignArg, as_json: bool = JsonOpt) -> None:
    """Every version of the campaign's model: aliases, held-out metrics, gate decision, usage."""
    from marketplace.approx.history import list_version_summaries

    data = _with_model(campaign, lambda s, cid, name: {
        "model_name": name, "versions": list_version_summaries(s, cid, name, model_registry())})
    emit(data, as_json, _render_list)


def _render_version(d: dict[str, Any]) -> None:
    print_fields(f"version {d['version']}", [
        ("aliases", ",".join(d["aliases"])), ("mode", d["mode"]), ("label set", d["label_set_id"]),
        ("decision", d["decision"]), ("mlflow run", d["mlflow_run_id"]), ("source", d.get("source", "")),
    ])
    print_fields("metrics (held out)", sorted(d["metrics"].items()), columns=("metric", "value"))
    print_fields("lineage", sorted(d["lineage"].items()), columns=("tag", "value"))
    print_table("score runs", ["id", "status", "scored", "audit spearman", "audit passed"], [
        (r["score_run_id"], r["status"], r["n_scored"], _fmt(r["audit_spearman"]), r["audit_passed"])
        for r in d["score_runs"]])
    print_table("pricing runs", ["id", "details"], [(r.get("pricing_run_id"), r) for r in d["pricing_runs"]])
    print_table("events", ["at", "action", "alias", "reason"],
                [(e["at"], e["action"], e["alias"], e["reason"]) for e in d["events"]])


@registry_app.command("show")
@handle_errors
def show(
    campaign: str = CampaignArg,
    version: str = typer.Argument(..., help="Model version number."),
    as_json: bool = JsonOpt,
) -> None:
    """One version: all metrics, lineage tags, aliases, events, and the score/pricing runs that used it."""
    from marketplace.approx.history import describe_version

    data = _with_model(campaign, lambda s, cid, name: describe_version(s, cid, name, model_registry(), version))
    emit(data, as_json, _render_version)


@registry_app.command("history")
@handle_errors
def history(campaign: str = CampaignArg, as_json: bool = JsonOpt) -> None:
    """Every registration, promotion, rejection and demotion of the campaign's versions, with reasons."""
    from marketplace.approx.history import version_history

    events = _with_model(campaign, lambda s, cid, _name: version_history(s, cid))
    emit(events, as_json, lambda d: print_table("registry history", ["at", "version", "action", "alias", "reason"],
                                                [(e["at"], e["version"], e["action"], e["alias"], e["reason"])
                                                 for e in d]))


@registry_app.command("promote")
@handle_errors
def promote(
    campaign: str = CampaignArg,
    version: str = typer.Argument(..., help="Model version to make champion."),
    reason: str = typer.Option(..., "--reason", help="Why (goes on the record)."),
    as_json: bool = JsonOpt,
) -> None:
    """Move the champion alias to VERSION explicitly (an operator's decision, recorded with its reason)."""
    from marketplace.approx.publish import promote_version

    def work(session: Any, campaign_id: int, name: str) -> dict[str, Any]:
        row = promote_version(session, model_registry(), campaign_id, name, version, reason)
        return {"model_name": row.model_name, "version": row.version, "alias": "champion", "reason": reason}

    data = _with_model(campaign, work)
    emit(data, as_json, lambda d: typer.echo(f"{d['model_name']} v{d['version']} is now champion: {d['reason']}"))


def register(app: typer.Typer) -> None:
    app.add_typer(registry_app, name="registry")
