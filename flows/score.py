"""The ``score`` flow: score every sample with the campaign's champion, then audit (docs/valuation.md).

resolve ``models:/alinfik-<campaign>@champion`` once (the concrete version is recorded on the score
run and on every score) → plan the samples that version has not scored yet → score shards mapped
over the task runner the settings name (flows.runners) → audit a random subset against exact
LinFiK. An audit below the campaign's threshold fails the run (AuditFailedError): payouts stop.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, unmapped

from flows.runners import build_task_runner
from tasks.score import (
    audit_scores_task,
    fail_score_run_task,
    plan_scores_task,
    resolve_champion_task,
    score_shard_task,
)

__all__ = ["score"]


@flow(name="score", task_runner=build_task_runner(), log_prints=False)
def score(
    campaign: str,
    version: str | None = None,
    shard_size: int = 2000,
    first_owners_only: bool = False,
    audit_n: int = 100,
    audit_seed: int = 0,
    audit_labeler: str = "linfik",
    device: str | None = None,
) -> dict[str, Any]:
    """Score ``campaign`` (id or name) with its champion (or ``version``); returns a run summary."""
    champion = resolve_champion_task(campaign, version)
    plan = plan_scores_task(champion["campaign_id"], champion["approximator_version_id"], champion["resolved_from"],
                       shard_size, first_owners_only)
    run_id = plan["score_run_id"]
    try:
        futures = score_shard_task.map(
            unmapped(run_id), [lo for lo, _ in plan["shards"]], [hi for _, hi in plan["shards"]],
            unmapped(champion["bundle_dir"]), unmapped(first_owners_only), unmapped(device),
        )
        shards = [f.result() for f in futures]
    except BaseException as exc:
        fail_score_run_task(run_id, f"{type(exc).__name__}: {exc}")
        raise
    audit = audit_scores_task(run_id, champion["campaign_id"], champion["label_set_id"], audit_n, audit_seed,
                         audit_labeler, device)
    return {
        "campaign_id": champion["campaign_id"],
        "score_run_id": run_id,
        "model_name": champion["model_name"],
        "version": champion["version"],
        "resolved_from": champion["resolved_from"],
        "n_todo": plan["n_todo"],
        "n_scored": sum(s["n_scored"] for s in shards),
        "n_embedded": sum(s["n_embedded"] for s in shards),
        "n_shards": len(plan["shards"]),
        "audit": audit,
    }
