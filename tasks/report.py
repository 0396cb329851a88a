"""Tasks of the ``report`` flow: statements and buyer reports as files and as Prefect artifacts.

Each task is one core call (:mod:`marketplace.reports`) in a session of its own, then its artifacts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from marketplace.db import session_scope
from marketplace.reports import (
    buyer_artifact_rows,
    buyer_report_markdown,
    paid_provider_ids,
    produce_buyer_report,
    produce_statement,
    statement_artifact_rows,
    statement_markdown,
    submitting_provider_ids,
)
from marketplace.reports.md_safe import md_escape, md_table_rows
from tasks.artifacts import artifact_key
from tasks.common import retry_on_transient_db_error, session_factory

__all__ = ["list_paid_providers_task", "list_statement_providers_task", "write_buyer_report_task",
           "write_provider_statement_task"]


@task(name="list-paid-providers", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2,
      retry_condition_fn=retry_on_transient_db_error)
def list_paid_providers_task(campaign: str, period: str) -> list[int]:
    with session_scope(session_factory()) as session:
        return paid_provider_ids(session, campaign, period)


@task(name="list-statement-providers", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2,
      retry_condition_fn=retry_on_transient_db_error)
def list_statement_providers_task() -> list[int]:
    """Every provider that submitted anything: each gets a statement, paid or not."""
    with session_scope(session_factory()) as session:
        return submitting_provider_ids(session)


@task(name="write-provider-statement", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2,
      retry_condition_fn=retry_on_transient_db_error)
def write_provider_statement_task(provider_id: int, period: str, out_dir: str) -> dict[str, str]:
    """Write one provider's statement (HTML + CSV) and publish it as artifacts; returns the file paths."""
    with session_scope(session_factory()) as session:
        st, files = produce_statement(session, provider_id, period, Path(out_dir))
    who = md_escape(f"{st.provider_name} (provider {provider_id})")
    create_markdown_artifact(markdown=statement_markdown(st),
                             key=artifact_key("statement", st.provider_name, provider_id, period),
                             description=f"Statement of {who} for {md_escape(period)}")
    create_table_artifact(table=md_table_rows(statement_artifact_rows(st)),
                          key=artifact_key("statement-submissions", st.provider_name, provider_id, period),
                          description=f"Value per submission, {who}, {md_escape(period)}")
    return {k: str(p) for k, p in files.items()}


@task(name="write-buyer-report", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2,
      retry_condition_fn=retry_on_transient_db_error)
def write_buyer_report_task(campaign: str, period: str | None, out_dir: str, top_k: int = 20) -> dict[str, Any]:
    """Write the campaign's buyer report and publish it as artifacts; returns the file paths and the period."""
    with session_scope(session_factory()) as session:
        rep, files = produce_buyer_report(session, campaign, period, Path(out_dir), top_k=top_k)
    create_markdown_artifact(markdown=buyer_report_markdown(rep),
                             key=artifact_key("buyer", rep.campaign_name, rep.campaign_id, rep.period),
                             description=f"Buyer report, campaign {md_escape(rep.campaign_name)}, "
                                         f"{md_escape(rep.period)}")
    create_table_artifact(table=md_table_rows(buyer_artifact_rows(rep)),
                          key=artifact_key("buyer-top", rep.campaign_name, rep.campaign_id, rep.period),
                          description=f"Top {len(rep.top_samples)} samples selected")
    return {"period": rep.period, "files": {k: str(p) for k, p in files.items()}}
