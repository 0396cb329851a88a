"""A report from the database to files in one call: what the ``report`` flow's tasks (and any other
edge) run. Reading happens in the caller's session; the files are written under ``out_dir``."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.orm import Session

from marketplace.reports.buyer import BuyerReport, build_buyer_report
from marketplace.reports.render import write_buyer_report, write_statement
from marketplace.reports.statements import ProviderStatement, build_provider_statement

__all__ = ["produce_buyer_report", "produce_statement"]


def produce_statement(session: Session, provider: str | int, period: str, out_dir: Path, *,
                      currency: str | None = None) -> tuple[ProviderStatement, dict[str, Path]]:
    """The provider's statement for ``period`` and the files written (HTML + CSVs, by kind)."""
    statement = build_provider_statement(session, provider, period, currency=currency)
    return statement, write_statement(statement, out_dir)


def produce_buyer_report(session: Session, campaign: str | int, period: str | None, out_dir: Path, *,
                         top_k: int = 20) -> tuple[BuyerReport, dict[str, Path]]:
    """The campaign's buyer report for ``period`` (None: the latest priced) and the files written."""
    report = build_buyer_report(session, campaign, period, top_k=top_k)
    return report, write_buyer_report(report, out_dir)
