"""Registry lookups for humans: versions with metrics, lineage and aliases, and what used each one.

Joins the registry's view (aliases, tags, run metrics) with our SQL lineage copy (approximator
versions, their events, the score runs that used them and, when the ledger's ``pricing_runs`` table
is there, the pricing runs too). The registry is any object with ``list_versions`` and ``aliases``
(``MlflowRegistry``); this module itself never imports MLflow.
"""

from __future__ import annotations

from typing import Any, Protocol

from sqlalchemy import inspect, select
from sqlalchemy.orm import Session

from marketplace.db import ApproximatorEvent, ApproximatorVersion, Base, ScoreRun
from marketplace.errors import NotFoundError

__all__ = ["describe_version", "list_version_summaries", "pricing_runs_by_version", "version_history"]

HEADLINE_METRICS = ("approx_spearman", "approx_pearson", "approx_kendall", "approx_precision_at_10",
                    "tfidf_ridge_spearman", "target_cosine_spearman")


class VersionSource(Protocol):
    def list_versions(self, model_name: str) -> list[Any]: ...
    def aliases(self, model_name: str) -> dict[str, str]: ...


def _score_runs(session: Session, version_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    out: dict[int, list[dict[str, Any]]] = {v: [] for v in version_ids}
    if not version_ids:
        return out
    for run in session.scalars(
        select(ScoreRun).where(ScoreRun.approximator_version_id.in_(version_ids)).order_by(ScoreRun.id)
    ):
        audit = run.audit or {}
        out[run.approximator_version_id].append({
            "score_run_id": run.id, "status": run.status.value, "n_scored": run.n_scored,
            "audit_spearman": audit.get("spearman"), "audit_passed": audit.get("passed"),
            "created_at": run.created_at.isoformat(),
        })
    return out


def pricing_runs_by_version(session: Session, version_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    """Pricing runs per approximator version, if the ledger's pricing_runs table exists (else empty)."""
    out: dict[int, list[dict[str, Any]]] = {v: [] for v in version_ids}
    table = Base.metadata.tables.get("pricing_runs")
    if (not version_ids or table is None or "approximator_version_id" not in table.c
            or not inspect(session.connection()).has_table("pricing_runs")):
        return out
    cols = [c for c in ("id", "period", "score_run_id", "status", "allocated_minor", "currency") if c in table.c]
    stmt = select(table.c.approximator_version_id, *(table.c[c] for c in cols)).where(
        table.c.approximator_version_id.in_(version_ids)
    ).order_by(table.c.id)
    for row in session.execute(stmt):
        data = dict(zip(["approximator_version_id", *cols], row, strict=True))
        vid = data.pop("approximator_version_id")
        data = {("pricing_run_id" if k == "id" else k): (str(v.value) if hasattr(v, "value") else v)
                for k, v in data.items()}
        out[vid].append(data)
    return out


def list_version_summaries(
    session: Session, campaign_id: int, model_name: str, registry: VersionSource
) -> list[dict[str, Any]]:
    """One row per registered version: aliases, headline metrics, decision, lineage, usage."""
    rows = {
        r.version: r
        for r in session.scalars(
            select(ApproximatorVersion).where(
                ApproximatorVersion.campaign_id == campaign_id, ApproximatorVersion.model_name == model_name
            )
        )
    }
    registry_versions = {v.version: v for v in registry.list_versions(model_name)}
    ids = [r.id for r in rows.values()]
    runs, pricing = _score_runs(session, ids), pricing_runs_by_version(session, ids)
    out = []
    for version in sorted(set(rows) | set(registry_versions), key=int):
        db_row, reg = rows.get(version), registry_versions.get(version)
        metrics = (reg.metrics if reg else None) or (db_row.metrics if db_row else {})
        out.append({
            "version": version,
            "aliases": sorted(reg.aliases) if reg else [],
            "recorded": db_row is not None,
            "mode": db_row.mode if db_row else (reg.tags.get("mode") if reg else None),
            "label_set_id": db_row.label_set_id if db_row else None,
            "metrics": {k: metrics[k] for k in HEADLINE_METRICS if k in metrics},
            "decision": db_row.decision if db_row else (reg.tags.get("promotion_reason") if reg else None),
            "lineage": (reg.tags if reg else {}) or (db_row.lineage if db_row else {}),
            "mlflow_run_id": reg.run_id if reg else (db_row.mlflow_run_id if db_row else None),
            "score_runs": runs.get(db_row.id, []) if db_row else [],
            "pricing_runs": pricing.get(db_row.id, []) if db_row else [],
            "created_at": db_row.created_at.isoformat() if db_row else None,
        })
    return out


def describe_version(
    session: Session, campaign_id: int, model_name: str, registry: VersionSource, version: str
) -> dict[str, Any]:
    for item in list_version_summaries(session, campaign_id, model_name, registry):
        if item["version"] == str(version):
            reg = {v.version: v for v in registry.list_versions(model_name)}.get(str(version))
            if reg is not None:
                item["metrics"] = dict(reg.metrics)
                item["tags"] = dict(reg.tags)
                item["source"] = reg.source
            item["events"] = [e for e in version_history(session, campaign_id) if e["version"] == str(version)]
            return item
    raise NotFoundError(f"{model_name} has no version {version}; see `marketplace registry list CAMPAIGN`")


def version_history(session: Session, campaign_id: int) -> list[dict[str, Any]]:
    """Every registration and alias move of the campaign's versions, oldest first, with reasons."""
    rows = session.execute(
        select(ApproximatorEvent, ApproximatorVersion.version, ApproximatorVersion.model_name)
        .join(ApproximatorVersion, ApproximatorVersion.id == ApproximatorEvent.approximator_version_id)
        .where(ApproximatorEvent.campaign_id == campaign_id)
        .order_by(ApproximatorEvent.id)
    ).all()
    return [
        {"at": ev.created_at.isoformat(), "model_name": name, "version": version, "action": ev.action,
         "alias": ev.alias, "reason": ev.reason}
        for ev, version, name in rows
    ]
