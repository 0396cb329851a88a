"""Provider statements and buyer reports: data (``statements``, ``buyer``) and rendering (``render``).

CSV output is safe against spreadsheet formula injection (``csv_safe``); HTML is self-contained (inline
CSS, plots as base64 PNG or inline SVG) with every provider-supplied string escaped.
"""

from marketplace.reports.buyer import BuyerReport, build_buyer_report
from marketplace.reports.csv_safe import sanitize_cell, write_csv
from marketplace.reports.produce import produce_buyer_report, produce_statement
from marketplace.reports.render import (
    buyer_artifact_rows,
    buyer_report_html,
    buyer_report_markdown,
    statement_artifact_rows,
    statement_html,
    statement_markdown,
    write_buyer_report,
    write_statement,
)
from marketplace.reports.statements import (
    ProviderStatement,
    build_provider_statement,
    latest_statement_period,
    paid_provider_ids,
    posted_periods,
    submitting_provider_ids,
)
from marketplace.reports.submissions import provider_submissions, submission_detail

__all__ = [
    "BuyerReport",
    "ProviderStatement",
    "build_buyer_report",
    "build_provider_statement",
    "buyer_artifact_rows",
    "buyer_report_html",
    "buyer_report_markdown",
    "latest_statement_period",
    "paid_provider_ids",
    "posted_periods",
    "produce_buyer_report",
    "produce_statement",
    "provider_submissions",
    "sanitize_cell",
    "statement_artifact_rows",
    "statement_html",
    "statement_markdown",
    "submission_detail",
    "submitting_provider_ids",
    "write_buyer_report",
    "write_csv",
    "write_statement",
]
