"""Render statements and buyer reports: self-contained HTML (inline CSS, base64 PNG plots), CSV, Markdown.

Every piece of provider-supplied text (names, file names, sample excerpts) goes through ``html.escape``
in HTML, through :func:`~marketplace.reports.csv_safe.sanitize_cell` in CSV and through
:func:`~marketplace.reports.md_safe.md_escape` in Markdown.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path

from marketplace.money import Money, minor_digits
from marketplace.reports.buyer import BuyerReport
from marketplace.reports.csv_safe import write_csv
from marketplace.reports.md_safe import md_escape
from marketplace.reports.plots import balance_history_png, value_distribution_png
from marketplace.reports.statements import ProviderStatement

__all__ = [
    "buyer_artifact_rows",
    "buyer_report_html",
    "buyer_report_markdown",
    "statement_artifact_rows",
    "statement_html",
    "statement_markdown",
    "write_buyer_report",
    "write_statement",
]

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem auto;max-width:60rem;color:#1d2330}
h1{font-size:1.5rem;margin-bottom:.2rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #dde}
table{border-collapse:collapse;width:100%;font-size:.9rem}th,td{padding:.3rem .5rem;border-bottom:1px solid #eef}
th{text-align:left;background:#f5f7fb}td.num{text-align:right;font-variant-numeric:tabular-nums}
.muted{color:#667}.summary td{font-weight:600}img{max-width:100%}
"""


def _money(amount_minor: int, currency: str) -> str:
    return str(Money(amount_minor, currency))


def _table(header: Sequence[str], rows: Sequence[Sequence[object]], numeric: set[int] | None = None) -> str:
    numeric = numeric or set()
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(
            f'<td class="num">{html.escape(str(v))}</td>' if i in numeric else f"<td>{html.escape(str(v))}</td>"
            for i, v in enumerate(row)
        ) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _page(title: str, body: str) -> str:
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{CSS}</style></head><body>{body}</body></html>\n")


def _img(b64: str, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{b64}">'


def _statement_rows(st: ProviderStatement) -> dict[str, tuple[list[str], list[list[object]]]]:
    cur = st.currency
    return {
        "transactions": (
            ["posted_at", "kind", "campaign", "submission_id", "file", "amount_minor", "amount", "pricing_run",
             "model_version", "label_set", "key"],
            [[ln.posted_at.isoformat(timespec="seconds"), ln.kind, ln.campaign or "", ln.submission_id or "",
              ln.submission_filename or "", ln.amount_minor, _money(ln.amount_minor, cur), ln.pricing_run_id or "",
              ln.model_version or "", ln.label_set_id or "", ln.idempotency_key] for ln in st.lines],
        ),
        "submissions": (
            ["submission_id", "file", "campaign", "samples", "paid_samples", "value_total", "amount_minor", "amount"],
            [[s.submission_id, s.filename, s.campaign, s.n_samples, s.n_paid, f"{s.value_total:.6g}",
              s.amount_minor, _money(s.amount_minor, cur)] for s in st.submissions],
        ),
        "samples": (
            ["rank", "which", "sample_id", "submission_id", "excerpt", "score", "value", "amount_minor"],
            [[i + 1, which, x.sample_id, x.submission_id, x.excerpt, f"{x.score:.6g}", f"{x.value:.6g}",
              x.amount_minor]
             for which, xs in (("top", st.top_samples), ("bottom", st.bottom_samples)) for i, x in enumerate(xs)],
        ),
    }


def statement_html(st: ProviderStatement) -> str:
    cur = st.currency
    rows = _statement_rows(st)
    summary = _table(["", cur], [
        ["Opening balance", _money(st.opening_minor, cur)],
        ["Credits", _money(st.credits_minor, cur)],
        ["Adjustments", _money(st.adjustments_minor, cur)],
        ["Closing balance", _money(st.closing_minor, cur)],
    ], numeric={1})
    txn_header, txn_rows = rows["transactions"]
    keep = [0, 1, 2, 3, 4, 6, 7, 8, 9]
    body = (
        f"<h1>Statement for {html.escape(st.provider_name)}</h1>"
        f'<p class="muted">Period {html.escape(st.period)} · {html.escape(cur)} · generated '
        f"{html.escape(st.generated_at.isoformat(timespec='seconds'))}</p>"
        f'<div class="summary">{summary}</div>'
        "<h2>Credits and adjustments</h2>"
        "<p class=\"muted\">Each line names the pricing run, the approximator version and the label set behind it.</p>"
        + _table([txn_header[i] for i in keep], [[r[i] for i in keep] for r in txn_rows], numeric={5})
        + "<h2>Value per submission</h2>" + _table(*rows["submissions"], numeric={3, 4, 5, 6, 7})
        + "<h2>Top samples</h2>"
        + _table(["sample", "excerpt", "value", "amount"], [[x.sample_id, x.excerpt, f"{x.value:.6g}",
                                                              _money(x.amount_minor, cur)] for x in st.top_samples])
        + "<h2>Bottom samples</h2>"
        + _table(["sample", "excerpt", "value", "amount"], [[x.sample_id, x.excerpt, f"{x.value:.6g}",
                                                              _money(x.amount_minor, cur)] for x in st.bottom_samples])
        + "<h2>Plots</h2>"
        + _img(value_distribution_png(st.values, "Value of your samples"), "value distribution")
        + _img(balance_history_png(st.balance_history, minor_digits(cur), cur), "balance over time")
    )
    return _page(f"Statement {st.provider_name} {st.period}", body)


def statement_markdown(st: ProviderStatement) -> str:
    cur = st.currency
    lines = [
        f"# Statement: {md_escape(st.provider_name)}, period {md_escape(st.period)}", "",
        "| | amount |", "|---|---:|",
        f"| opening | {_money(st.opening_minor, cur)} |", f"| credits | {_money(st.credits_minor, cur)} |",
        f"| adjustments | {_money(st.adjustments_minor, cur)} |", f"| closing | {_money(st.closing_minor, cur)} |",
        "", "| submission | file | amount |", "|---|---|---:|",
    ]
    lines += [f"| {s.submission_id} | {md_escape(s.filename)} | {_money(s.amount_minor, cur)} |"
              for s in st.submissions]
    return "\n".join(lines) + "\n"


def _write_files(out_dir: Path, stem: str, page: str,
                 tables: dict[str, tuple[list[str], list[list[object]]]]) -> dict[str, Path]:
    """``{stem}.html`` and one ``{stem}_{name}.csv`` per table under ``out_dir``; returns the paths by kind."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"html": out_dir / f"{stem}.html"}
    paths["html"].write_text(page, encoding="utf-8")
    for name, (header, rows) in tables.items():
        paths[f"csv_{name}"] = write_csv(out_dir / f"{stem}_{name}.csv", header, rows)
    return paths


def write_statement(st: ProviderStatement, out_dir: Path) -> dict[str, Path]:
    """HTML + three CSVs (transactions, submissions, samples) under ``out_dir``; returns the paths."""
    return _write_files(out_dir, f"statement_provider{st.provider_id}_{st.period}", statement_html(st),
                        _statement_rows(st))


def statement_artifact_rows(st: ProviderStatement) -> list[dict[str, object]]:
    """The value per submission as table rows (the report flow's table artifact)."""
    return [{"submission_id": s.submission_id, "file": s.filename, "samples": s.n_samples,
             "amount_minor": s.amount_minor} for s in st.submissions]


def _buyer_rows(rep: BuyerReport) -> dict[str, tuple[list[str], list[list[object]]]]:
    cur = rep.currency
    return {
        "providers": (
            ["provider_id", "provider", "samples", "paid_samples", "value_total", "amount_minor", "amount"],
            [[p.provider_id, p.provider_name, p.n_samples, p.n_paid, f"{p.value_total:.6g}", p.amount_minor,
              _money(p.amount_minor, cur)] for p in rep.providers],
        ),
        "top_samples": (
            ["rank", "sample_id", "provider", "excerpt", "score", "value", "amount_minor"],
            [[x.rank, x.sample_id, x.provider_name, x.excerpt, f"{x.score:.6g}", f"{x.value:.6g}", x.amount_minor]
             for x in rep.top_samples],
        ),
    }


def buyer_report_html(rep: BuyerReport) -> str:
    cur = rep.currency
    rows = _buyer_rows(rep)
    lineage = _table(["", ""], [
        ["Pricing run", rep.pricing_run_id], ["Score run", rep.score_run_id], ["Model version", rep.model_version],
        ["Label set", rep.label_set_id], ["Policy hash", rep.policy_hash[:16]],
        ["Budget", _money(rep.budget_minor, cur)], ["Allocated", _money(rep.allocated_minor, cur)],
        ["Unallocated", _money(rep.unallocated_minor, cur)],
    ])
    body = (
        f"<h1>Buyer report: {html.escape(rep.campaign_name)}</h1>"
        f'<p class="muted">Period {html.escape(rep.period)} · generated '
        f"{html.escape(rep.generated_at.isoformat(timespec='seconds'))}</p>"
        + lineage + "<h2>Value by provider</h2>" + _table(*rows["providers"], numeric={2, 3, 4, 5, 6})
        + f"<h2>Top {len(rep.top_samples)} samples selected</h2>" + _table(*rows["top_samples"], numeric={0, 4, 5, 6})
        + "<h2>Value distribution</h2>" + _img(value_distribution_png(rep.values, "Value of all eligible samples"),
                                               "value distribution")
    )
    return _page(f"Buyer report {rep.campaign_name} {rep.period}", body)


def buyer_report_markdown(rep: BuyerReport) -> str:
    cur = rep.currency
    lines = [f"# Buyer report: {md_escape(rep.campaign_name)}, period {md_escape(rep.period)}", "",
             f"Pricing run {rep.pricing_run_id}, model {md_escape(rep.model_version)}, "
             f"label set {rep.label_set_id}.", "",
             "| provider | samples | amount |", "|---|---:|---:|"]
    lines += [f"| {md_escape(p.provider_name)} | {p.n_samples} | {_money(p.amount_minor, cur)} |"
              for p in rep.providers]
    return "\n".join(lines) + "\n"


def write_buyer_report(rep: BuyerReport, out_dir: Path) -> dict[str, Path]:
    """HTML + two CSVs (providers, top samples) under ``out_dir``; returns the paths."""
    return _write_files(out_dir, f"buyer_campaign{rep.campaign_id}_{rep.period}", buyer_report_html(rep),
                        _buyer_rows(rep))


def buyer_artifact_rows(rep: BuyerReport) -> list[dict[str, object]]:
    """The top samples selected as table rows (the report flow's table artifact)."""
    return [{"rank": x.rank, "sample_id": x.sample_id, "provider": x.provider_name, "value": x.value,
             "amount_minor": x.amount_minor} for x in rep.top_samples]
