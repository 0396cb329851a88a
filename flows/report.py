"""The ``report`` flow: the buyer report of a campaign and a statement for every provider that submitted
(paid or not: a provider paid nothing learns why from its statement)."""

from __future__ import annotations

from typing import Any

from prefect import flow

from tasks.report import list_statement_providers_task, write_buyer_report_task, write_provider_statement_task

__all__ = ["report"]


@flow(name="report", log_prints=False)
def report(campaign: str, out_dir: str, period: str | None = None, top_k: int = 20) -> dict[str, Any]:
    """Write and publish the buyer report and every submitting provider's statement for ``period`` (default
    latest)."""
    buyer = write_buyer_report_task(campaign, period, out_dir, top_k)
    providers = list_statement_providers_task()
    statements = {pid: write_provider_statement_task(pid, buyer["period"], out_dir) for pid in providers}
    return {"period": buyer["period"], "buyer": buyer["files"], "statements": statements}
