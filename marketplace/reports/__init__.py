"""Provider statements and buyer reports: data (``statements``, ``buyer``) and rendering (``render``).

CSV output is safe against spreadsheet formula injection (``csv_safe``); HTML is self-contained (inline
CSS, plots as base64 PNG) with every provider-supplied string escaped.
"""

from marketplace.reports.buyer import BuyerReport, build_buyer_report
from marketplace.reports.csv_safe import sanitize_cell, write_csv
from marketplace.reports.render import (
    buyer_report_html,
    buyer_report_markdown,
    statement_html,
    statement_markdown,
    write_buyer_report,
    write_statement,
)
from marketplace.reports.statements import ProviderStatement, build_provider_statement

__all__ = [
    "BuyerReport",
    "ProviderStatement",
    "build_buyer_report",
    "build_provider_statement",
    "buyer_report_html",
    "buyer_report_markdown",
    "sanitize_cell",
    "statement_html",
    "statement_markdown",
    "write_buyer_report",
    "write_csv",
    "write_statement",
]
