"""The one Markdown escaping of the product: provider-supplied text shown in Markdown (Prefect artifacts,
their descriptions, the ``.md`` reports) can neither inject HTML nor Markdown structure.

:func:`md_escape` HTML-escapes (Markdown renders raw HTML), puts a backslash before every Markdown
metacharacter (emphasis, code, links and images, table pipes, headings, lists, autolinks) and turns
line breaks into spaces, so a value stays inside its table cell or line. The text still *reads* the
same once rendered. :func:`md_table_rows` applies it to the string cells of table-artifact rows.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["md_escape", "md_table_rows"]

# ASCII punctuation with a Markdown meaning ("&" and ";" stay: they are the HTML entities' own).
_META = re.compile(r"([\\`*_{}\[\]()#+\-.!|~:<>=$])")
_LINE_BREAKS = re.compile(r"[\r\n\v\f\x1c-\x1e\x85\u2028\u2029]+")


def md_escape(text: object) -> str:
    """``text`` as Markdown that renders to exactly that text, on one line, with no HTML and no links."""
    escaped = html.escape(_LINE_BREAKS.sub(" ", str(text)), quote=False)
    return _META.sub(r"\\\1", escaped)


def md_table_rows(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Rows for a table artifact: string cells escaped by :func:`md_escape`, numbers and None kept."""
    return [{k: md_escape(v) if isinstance(v, str) else v for k, v in row.items()} for row in rows]
