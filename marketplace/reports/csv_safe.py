"""CSV that is safe to open in a spreadsheet: no cell can become a formula (CWE-1236).

A cell whose text starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is prefixed with a
single quote, which spreadsheets show as text. Numbers are written as numbers (a negative *number*
is data, not a formula); only strings are neutralised.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from pathlib import Path

__all__ = ["FORMULA_PREFIXES", "sanitize_cell", "write_csv"]

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def sanitize_cell(value: object) -> object:
    """Return ``value`` unchanged unless it is text a spreadsheet would evaluate; then prefix a quote."""
    if value is None:
        return ""
    if isinstance(value, int | float):  # bool is an int: left as is
        return value
    text = str(value)
    if text.startswith(FORMULA_PREFIXES):
        return "'" + text
    return text


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[object]]) -> Path:
    """Write a UTF-8 CSV (RFC 4180 quoting) with every cell sanitised; returns ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, quoting=csv.QUOTE_MINIMAL)
        writer.writerow([sanitize_cell(h) for h in header])
        for row in rows:
            writer.writerow([sanitize_cell(v) for v in row])
    return path
