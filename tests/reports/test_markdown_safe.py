"""Markdown (the ``.md`` reports and every Prefect artifact, table cells and descriptions included) shows
provider text as text: ``marketplace/reports/md_safe.py:md_escape`` is the one escaping."""

from __future__ import annotations

import html
import re

import pytest
from markdown_it import MarkdownIt
from sqlalchemy.orm import Session, sessionmaker

from marketplace.pricing import PricingPolicy
from marketplace.pricing.runner import run_pricing
from marketplace.reports import (
    build_buyer_report,
    build_provider_statement,
    buyer_artifact_rows,
    buyer_report_markdown,
    statement_artifact_rows,
    statement_markdown,
)
from marketplace.reports.md_safe import md_escape, md_table_rows
from tests.support.catalog import make_campaign, make_provider, make_score_run, make_submission

HOSTILE = [
    '<script>alert("x")</script>',
    "<img src=x onerror=alert(1)>",
    "[click me](javascript:alert(1))",
    "![pixel](https://evil.example/p.png)",
    "a | b | c",
    "`code` and ``more``",
    "**bold** _em_ ~~gone~~",
    "line one\nline two\r\n# heading\n- item\n1. item",
    "<https://evil.example>",
    "https://evil.example/x and www.evil.example",
    "&amp; &lt;b&gt; \\| \\",
    "plain name",
]
TAGS = re.compile(r"<(?!/?(table|thead|tbody|tr|th|td|p|h1)\b)[a-z]")
MD = MarkdownIt("commonmark").enable("table")


def _cell_text(rendered: str) -> str:
    cell = re.search(r"<td>(.*?)</td>", rendered, re.S)
    assert cell is not None, rendered
    return html.unescape(cell.group(1))


@pytest.mark.parametrize("text", HOSTILE)
def test_escaped_text_renders_as_itself_in_one_cell(text: str) -> None:
    rendered = MD.render(f"| a | b |\n|---|---|\n| {md_escape(text)} | next |\n")
    assert not TAGS.search(rendered), rendered  # no link, image, code, emphasis, script
    assert rendered.count("<td>") == 2  # the pipe did not split the cell, the newline did not end the row
    assert _cell_text(rendered) == re.sub(r"[\r\n]+", " ", text)


def test_table_rows_escape_strings_and_keep_numbers() -> None:
    rows = md_table_rows([{"name": "[x](javascript:y)", "n": 3, "v": -0.5, "none": None}])
    assert rows == [{"name": "\\[x\\]\\(javascript\\:y\\)", "n": 3, "v": -0.5, "none": None}]


EVIL = "[Evil](javascript:alert(1)) | <b>Corp</b> `x`"
EVIL_FILE = "![i](https://evil.example/p.png)|\nrow.jsonl"


def test_statement_and_buyer_markdown_with_a_hostile_provider(session_factory: sessionmaker[Session]) -> None:
    with session_factory() as s, s.begin():
        camp = make_campaign(s, name="camp <i>md</i>", budget_minor=10_000)
        prov = make_provider(s, EVIL)
        _, xs = make_submission(s, prov, ["first sample", "second sample"], filename=EVIL_FILE)
        make_score_run(s, camp, {xs[0].id: 2.0, xs[1].id: 1.0})
        pid, cid = prov.id, camp.id
    run_pricing(session_factory, cid, "2026-10", PricingPolicy(screen="none", cap_percentile=100, fee_bps=500))
    with session_factory() as s:
        st = build_provider_statement(s, pid, "2026-10")
        rep = build_buyer_report(s, "camp <i>md</i>", top_k=2)
    for md in (statement_markdown(st), buyer_report_markdown(rep)):
        rendered = MD.render(md)
        assert not TAGS.search(rendered), rendered
        assert "[Evil](javascript" not in md and "](https" not in md
        text = html.unescape(rendered)
        assert EVIL in text or EVIL_FILE.replace("\n", " ") in text
    assert EVIL_FILE.replace("\n", " ") in html.unescape(MD.render(statement_markdown(st)))
    assert "camp <i>md</i>" in html.unescape(MD.render(buyer_report_markdown(rep)))
    for rows in (md_table_rows(statement_artifact_rows(st)), md_table_rows(buyer_artifact_rows(rep))):
        for row in rows:
            for value in row.values():
                if isinstance(value, str):
                    assert not TAGS.search(MD.render(f"| a |\n|---|\n| {value} |\n"))
