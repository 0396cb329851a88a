"""The one CSV writer of the product: no cell can become a spreadsheet formula (CWE-1236).

Every CSV the marketplace writes for people (statements, validation reports, score and label
exports, selections, active-labeling lists) goes through :func:`write_csv` / :func:`write_frame`.
A *string* cell whose text starts with ``=``, ``+``, ``-``, ``@``, ``|``, a tab, a carriage return or a
line feed (also after leading white space, and their full-width forms) is prefixed with a single
quote, which spreadsheets show as text. Numbers are written as numbers (a negative *number* is data,
not a formula) and missing values (None, NaN) as empty cells; only strings are neutralised.
"""

from __future__ import annotations

import csv
import numbers
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from marketplace.outputs import atomic_output

__all__ = ["FORMULA_PREFIXES", "sanitize_cell", "write_csv", "write_frame"]

FORMULA_PREFIXES = ("=", "+", "-", "@", "|", "\t", "\r", "\n", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def sanitize_cell(value: object) -> object:
    """Return ``value`` unchanged unless it is text a spreadsheet would evaluate; then prefix a quote."""
    if value is None:
        return ""
    if isinstance(value, numbers.Number):  # int, float, bool, Decimal, numpy scalars: data, kept numeric
        return "" if value != value else value  # NaN is a missing value
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    if text.startswith(FORMULA_PREFIXES) or text.lstrip().startswith(FORMULA_PREFIXES):
        return "'" + text
    return text


def write_csv(
    path: Path, header: Sequence[str] | None, rows: Iterable[Sequence[object]], *, append: bool = False
) -> Path:
    """Write a UTF-8 CSV (RFC 4180 quoting) with every cell sanitised; returns ``path``.

    ``append=True`` adds rows to an existing file (streamed exports writing their own temporary file);
    ``header=None`` writes none. Otherwise the file is written atomically through
    :func:`marketplace.outputs.atomic_output` (no link followed, no folder overwritten, nothing half-written).
    """
    if append:
        with path.open("a", newline="", encoding="utf-8") as fh:
            _write_rows(fh, header, rows)
        return path
    with atomic_output(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as fh:
        _write_rows(fh, header, rows)
    return path


def _write_rows(fh: Any, header: Sequence[str] | None, rows: Iterable[Sequence[object]]) -> None:
    writer = csv.writer(fh, quoting=csv.QUOTE_MINIMAL)
    if header is not None:
        writer.writerow([sanitize_cell(h) for h in header])
    for row in rows:
        writer.writerow([sanitize_cell(v) for v in row])


def write_frame(path: Path, df: Any, *, header: bool = True, append: bool = False) -> Path:
    """:func:`write_csv` for a pandas DataFrame: its columns as the header, missing values empty."""
    clean = df.astype(object).where(df.notna(), None)
    return write_csv(path, list(df.columns) if header else None, clean.itertuples(index=False, name=None),
                     append=append)
