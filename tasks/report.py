"""Tasks of the ``reports`` flow: statements and buyer reports as files and as Prefect artifacts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from marketplace.db import session_scope
from marketplace.reports import (
    build_buyer_report,
    build_provider_statement,
    buyer_report_markdown,
    statement_markdown,
    write_buyer_report,
    write_statement,
)
from marketplace.reports.statements import paid_provider_ids
from tasks.common import retry_on_transient_db_error, session_factory

__all__ = ["buyer_report_task", "paid_providers_task", "provider_statement_task"]


def _key(*parts: object) -> str:
    """Prefect artifact keys: lowercase letters, digits and dashes only."""
    raw = "-".join(str(p) for p in parts).lower()
    return "".join(c if c.isalnum() else "-" for c in raw).strip("-")


@task(name="paid-providers", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2,
      retry_condition_fn=retry_on_transient_db_error)
def paid_providers_task(campaign: str, period: str) -> list[int]:
    with session_scope(session_factory()) as session:
        return paid_provider_ids(session, campaign, period)


@task(name="provider-statement", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2,
      retry_condition_fn=retry_on_transient_db_error)
def provider_statement_task(provider_id: int, period: str, out_dir: str) -> dict[str, str]:
    """Write one provider's statement (HTML + CSV) and publish it as artifacts; returns the file paths."""
    with session_scope(session_factory()) as session:
        st = build_provider_statement(session, provider_id, period)
    files = write_statement(st, Path(out_dir))
    create_markdown_artifact(markdown=statement_markdown(st), key=_key("statement", provider_id, period),
                             description=f"Statement of provider {provider_id} for {period}")
    create_table_artifact(
        table=[{"submission_id": s.submission_id, "file": s.filename, "samples": s.n_samples,
                "amount_minor": s.amount_minor} for s in st.submissions],
        key=_key("statement-submissions", provider_id, period),
        description=f"Value per submission, provider {provider_id}, {period}",
    )
    return {k: str(p) for k, p in files.items()}


@task(name="buyer-report", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2,
      retry_condition_fn=retry_on_transient_db_error)
def buyer_report_task(campaign: str, period: str | None, out_dir: str, top_k: int = 20) -> dict[str, Any]:
    """Write the campaign's buyer report and publish it as artifacts; returns the file paths and the period."""
    with session_scope(session_factory()) as session:
        rep = build_buyer_report(session, campaign, period, top_k=top_k)
    files = write_buyer_report(rep, Path(out_dir))
    create_markdown_artifact(markdown=buyer_report_markdown(rep), key=_key("buyer", rep.campaign_id, rep.period),
                             description=f"Buyer report, campaign {rep.campaign_name}, {rep.period}")
    create_table_artifact(
        table=[{"rank": x.rank, "sample_id": x.sample_id, "provider": x.provider_name, "value": x.value,
                "amount_minor": x.amount_minor} for x in rep.top_samples],
        key=_key("buyer-top", rep.campaign_id, rep.period),
        description=f"Top {len(rep.top_samples)} samples selected",
    )
    return {"period": rep.period, "files": {k: str(p) for k, p in files.items()}}
