"""Render statements and buyer reports: self-contained HTML (inline CSS, base64 PNG plots), CSV, Markdown.

Every piece of provider-supplied text (names, file names, sample excerpts) goes through ``html.escape``
in HTML, through :func:`~marketplace.reports.csv_safe.sanitize_cell` in CSV and through
:func:`~marketplace.reports.md_safe.md_escape` in Markdown.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

from marketplace.money import Money, minor_digits
from marketplace.outputs import check_output_dir, check_output_file, write_text_atomic
from marketplace.reports.buyer import BuyerReport
from marketplace.reports.csv_safe import write_csv
from marketplace.reports.md_safe import md_escape
from marketplace.reports.plots import balance_history_png, bar_chart_svg, value_distribution_png
from marketplace.reports.statements import ProviderStatement, SampleValue

__all__ = [
    "buyer_artifact_rows",
    "buyer_report_body_html",
    "buyer_report_html",
    "buyer_report_markdown",
    "buyer_stem",
    "file_slug",
    "statement_artifact_rows",
    "statement_body_html",
    "statement_html",
    "statement_markdown",
    "statement_stem",
    "write_buyer_report",
    "write_statement",
]

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem auto;max-width:64rem;padding:0 1rem;
color:#1d2330}
h1{font-size:1.5rem;margin-bottom:.2rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #dde}
table{border-collapse:collapse;width:100%;font-size:.85rem;table-layout:auto}
th,td{padding:.3rem .45rem;border-bottom:1px solid #eef;vertical-align:top;overflow-wrap:break-word}
th{text-align:left;background:#f5f7fb;font-weight:600}td.num,th.num{text-align:right;
font-variant-numeric:tabular-nums;white-space:nowrap}
.muted{color:#667}.summary td{font-weight:600}.summary table{width:auto;min-width:22rem}img,svg{max-width:100%}
.note{background:#fff8e5;border-left:3px solid #e0a800;padding:.5rem .8rem;margin:.8rem 0}
.ok{color:#1d7a3c}.bad{color:#b42318}
@media print{body{margin:0;max-width:none}table{font-size:.75rem}}
"""


# What each kind of statement line is, in words.
KIND_LABELS = {"allocation": "credit", "adjustment": "adjustment", "manual": "manual posting"}


def _money(amount_minor: int, currency: str) -> str:
    return str(Money(amount_minor, currency))


def _major(amount_minor: int, currency: str) -> Decimal:
    """An amount in major units as a number (for CSV cells: a spreadsheet sums it)."""
    return Money(amount_minor, currency).to_decimal()


def file_slug(name: str, limit: int = 40) -> str:
    """``name`` as a piece of a file name or artifact key: lowercase ASCII letters, digits and dashes."""
    ascii_name = name.encode("ascii", "ignore").decode().lower()
    slug = "".join(c if c.isalnum() else "-" for c in ascii_name)
    return "-".join(part for part in slug.split("-") if part)[:limit].strip("-") or "unnamed"


def _table(header: Sequence[str], rows: Sequence[Sequence[object]], numeric: set[int] | None = None) -> str:
    numeric = numeric or set()
    head = "".join(f'<th class="num">{html.escape(h)}</th>' if i in numeric else f"<th>{html.escape(h)}</th>"
                   for i, h in enumerate(header))
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


def _notes(notes: Sequence[str]) -> str:
    return "".join(f'<p class="note">{html.escape(n[0].upper() + n[1:])}.</p>' for n in notes)


def _lineage(ln: object) -> str:
    """The pricing run, approximator version and label set behind a statement line, in one cell."""
    run, model, labels = (getattr(ln, "pricing_run_id", None), getattr(ln, "model_version", None),
                          getattr(ln, "label_set_id", None))
    parts = [f"pricing run {run}" if run else "", f"model {model}" if model else "",
             f"label set {labels}" if labels else ""]
    return " · ".join(p for p in parts if p)


def _statement_rows(st: ProviderStatement) -> dict[str, tuple[list[str], list[list[object]]]]:
    cur = st.currency
    return {
        "transactions": (
            ["Posted (UTC)", "Kind", "Campaign", "Submission", "File", f"Amount ({cur})", "Amount (minor units)",
             "Pricing run", "Model version", "Label set", "Transaction key"],
            [[ln.posted_at.strftime("%Y-%m-%d %H:%M"), ln.kind, ln.campaign or "", ln.submission_id or "",
              ln.submission_filename or "", _major(ln.amount_minor, cur), ln.amount_minor, ln.pricing_run_id or "",
              ln.model_version or "", ln.label_set_id or "", ln.idempotency_key] for ln in st.lines],
        ),
        "submissions": (
            ["Submission", "File", "Campaign", "Samples", "Paid samples", "Value (score units)", f"Amount ({cur})",
             "Amount (minor units)"],
            [[s.submission_id, s.filename, s.campaign, s.n_samples, s.n_paid, f"{s.value_total:.6g}",
              _major(s.amount_minor, cur), s.amount_minor] for s in st.submissions],
        ),
        "samples": (
            ["Rank", "Which", "Campaign", "Sample", "Submission", "Excerpt", "Score", "Value (score units)",
             f"Amount ({cur})", "Amount (minor units)"],
            [[i + 1, which, x.campaign, x.sample_id, x.submission_id, x.excerpt, f"{x.score:.6g}", f"{x.value:.6g}",
              _major(x.amount_minor, cur), x.amount_minor]
             for which, xs in (("top", st.top_samples), ("bottom", st.bottom_samples)) for i, x in enumerate(xs)],
        ),
        "files": (
            ["Submission", "File", "Submitted (UTC)", "Records", "Accepted", "Quarantined", "Already in the market",
             "Payable", "Note"],
            [[f.submission_id, f.filename, f.submitted_at.strftime("%Y-%m-%d %H:%M"), f.records, f.accepted,
              f.quarantined, f.already_in_market, f.payable, f.note] for f in st.submitted],
        ),
    }


def statement_html(st: ProviderStatement) -> str:
    """The statement as a self-contained page (inline CSS, plots as ``data:`` PNGs)."""
    return _page(f"Statement {st.provider_name} {st.period}", statement_body_html(st))


def statement_body_html(st: ProviderStatement) -> str:
    """The statement's content without the page around it: classed elements (``summary``, ``note``,
    ``muted``, ``num``), no inline style or script, plots as ``data:`` PNGs; every text escaped. The web
    portal shows it under its own stylesheet."""
    cur = st.currency
    summary = _table(["", cur], [
        ["Opening balance", _money(st.opening_minor, cur)],
        ["Credits", _money(st.credits_minor, cur)],
        ["Adjustments", _money(st.adjustments_minor, cur)],
        ["Closing balance", _money(st.closing_minor, cur)],
    ], numeric={1})
    lines = _table(["Posted (UTC)", "Kind", "Campaign", "File", "Amount", "Behind it"],
                   [[ln.posted_at.strftime("%Y-%m-%d %H:%M"), KIND_LABELS.get(ln.kind, ln.kind), ln.campaign or "",
                     f"{ln.submission_filename or ''} (#{ln.submission_id})" if ln.submission_id else "",
                     _money(ln.amount_minor, cur), _lineage(ln)] for ln in st.lines], numeric={4})
    per_submission = _table(["File", "Campaign", "Samples", "Paid", "Value (score units)", "Amount"],
                            [[f"{s.filename} (#{s.submission_id})", s.campaign, s.n_samples, s.n_paid,
                              f"{s.value_total:.4g}", _money(s.amount_minor, cur)] for s in st.submissions],
                            numeric={2, 3, 4, 5})
    files = _table(["File", "Records", "Accepted", "Quarantined", "Already in the market", "Payable"],
                   [[f"{f.filename} (#{f.submission_id})", f.records, f.accepted, f.quarantined, f.already_in_market,
                     f.payable] for f in st.submitted], numeric={1, 2, 3, 4, 5})

    several = len({x.campaign for x in st.top_samples + st.bottom_samples}) > 1

    def samples(xs: Sequence[SampleValue]) -> str:  # a campaign column only when they differ
        return _table(["Sample", *(["Campaign"] if several else []), "Excerpt", "Score", "Amount"],
                      [[x.sample_id, *([x.campaign] if several else []), x.excerpt, f"{x.score:.4g}",
                        _money(x.amount_minor, cur)] for x in xs],
                      numeric={0, 3, 4} if several else {0, 2, 3})

    body = (
        f"<h1>Statement for {html.escape(st.provider_name)}</h1>"
        f'<p class="muted">Period {html.escape(st.period)} · amounts in {html.escape(cur)} · generated '
        f"{html.escape(st.generated_at.strftime('%Y-%m-%d %H:%M UTC'))}</p>"
        f'<div class="summary">{summary}</div>' + _notes(st.notes)
        + "<h2>Credits and adjustments</h2>"
        "<p class=\"muted\">Each line names the pricing run, the approximator version and the label set behind it;"
        " an adjustment is a later revaluation of the same period. The CSV files add the transaction keys.</p>"
        + (lines if st.lines else '<p class="muted">None in this period.</p>')
        + "<h2>Value per submission</h2>"
        + (per_submission if st.submissions else '<p class="muted">No sample of yours was priced in this period.</p>')
        + "<h2>Your files</h2>"
        "<p class=\"muted\">What became of every record you submitted. Records already in the market (exact or near"
        " copies of content another submission brought first) and quarantined records are not paid.</p>" + files
        + ("<h2>Top samples</h2>" + samples(st.top_samples) + "<h2>Bottom samples</h2>" + samples(st.bottom_samples)
           if st.top_samples else "")
        + "<h2>Plots</h2>"
        + _img(value_distribution_png(st.values, "Value of your samples"), "value distribution")
        + _img(balance_history_png(st.balance_history, minor_digits(cur), cur), "balance over time")
    )
    return body


def statement_markdown(st: ProviderStatement) -> str:
    cur = st.currency
    lines = [
        f"# Statement: {md_escape(st.provider_name)}, period {md_escape(st.period)}", "",
        "| | amount |", "|---|---:|",
        f"| opening | {_money(st.opening_minor, cur)} |", f"| credits | {_money(st.credits_minor, cur)} |",
        f"| adjustments | {_money(st.adjustments_minor, cur)} |", f"| closing | {_money(st.closing_minor, cur)} |",
        "",
    ]
    lines += [f"- {md_escape(n)}" for n in st.notes]
    lines += ["", "| submission | file | campaign | amount |", "|---|---|---|---:|"]
    lines += [f"| {s.submission_id} | {md_escape(s.filename)} | {md_escape(s.campaign)} | "
              f"{_money(s.amount_minor, cur)} |" for s in st.submissions]
    return "\n".join(lines) + "\n"


def _write_files(out_dir: Path, stem: str, page: str,
                 tables: dict[str, tuple[list[str], list[list[object]]]]) -> dict[str, Path]:
    """``{stem}.html`` and one ``{stem}_{name}.csv`` per table under ``out_dir``; returns the paths by kind.

    Every path is checked before the first is written, and each file is written atomically
    (:mod:`marketplace.outputs`)."""
    check_output_dir(out_dir)
    paths = {"html": out_dir / f"{stem}.html", **{f"csv_{name}": out_dir / f"{stem}_{name}.csv" for name in tables}}
    for path in paths.values():
        check_output_file(path)
    write_text_atomic(paths["html"], page)
    for name, (header, rows) in tables.items():
        write_csv(paths[f"csv_{name}"], header, rows)
    return paths


def statement_stem(st: ProviderStatement) -> str:
    """The file name stem of a statement: the provider's name and id, and the period."""
    return f"statement_{file_slug(st.provider_name)}-provider{st.provider_id}_{st.period}"


def buyer_stem(rep: BuyerReport) -> str:
    """The file name stem of a buyer report: the campaign's name and id, and the period."""
    return f"buyer_{file_slug(rep.campaign_name)}-campaign{rep.campaign_id}_{rep.period}"


def write_statement(st: ProviderStatement, out_dir: Path) -> dict[str, Path]:
    """HTML + four CSVs (transactions, submissions, samples, files) under ``out_dir``; returns the paths."""
    return _write_files(out_dir, statement_stem(st), statement_html(st), _statement_rows(st))


def statement_artifact_rows(st: ProviderStatement) -> list[dict[str, object]]:
    """The value per submission as table rows (the report flow's table artifact)."""
    return [{"submission": s.submission_id, "file": s.filename, "campaign": s.campaign, "samples": s.n_samples,
             "amount": _money(s.amount_minor, st.currency)} for s in st.submissions]


def _buyer_rows(rep: BuyerReport) -> dict[str, tuple[list[str], list[list[object]]]]:
    cur = rep.currency
    return {
        "providers": (
            ["Provider id", "Provider", "Samples", "Paid samples", "Value (score units)", f"Amount ({cur})",
             "Amount (minor units)"],
            [[p.provider_id, p.provider_name, p.n_samples, p.n_paid, f"{p.value_total:.6g}",
              _major(p.amount_minor, cur), p.amount_minor] for p in rep.providers],
        ),
        "top_samples": (
            ["Rank", "Sample", "Provider", "Excerpt", "Score", "Value (score units)", f"Amount ({cur})",
             "Amount (minor units)"],
            [[x.rank, x.sample_id, x.provider_name, x.excerpt, f"{x.score:.6g}", f"{x.value:.6g}",
              _major(x.amount_minor, cur), x.amount_minor] for x in rep.top_samples],
        ),
        "unpaid": (
            ["Provider id", "Provider", "Samples", "Why nothing is paid"],
            [[u.provider_id, u.provider_name, u.n_samples, u.reason] for u in rep.unpaid],
        ),
    }


def _quality(rep: BuyerReport) -> str:
    """The approximator's held-out agreement against its baselines, the gate's decision and the audit."""
    from marketplace.reports.buyer import HELDOUT_METRICS

    heldout = _table(["Held-out Spearman with the exact labels", ""],
                     [[HELDOUT_METRICS[k], f"{v:.3f}"] for k, v in rep.heldout.items()], numeric={1})
    audit = rep.audit
    rho, threshold, passed = audit.get("spearman"), audit.get("threshold"), audit.get("passed")
    if passed is None:
        verdict = f"skipped ({audit.get('reason', 'no audit recorded')})"
    else:
        rho_text = f"{float(rho):.3f}" if isinstance(rho, int | float) else "n/a"
        verdict = (f"{'passed' if passed else 'FAILED'}: Spearman {rho_text} with exact LinFiK on "
                   f"{audit.get('n', '?')} random samples (threshold {threshold})")
    return ("<h2>How far to trust the scores</h2>"
            f"<p>The approximator learned from {rep.n_labels} exact labels. On labels it never saw:</p>"
            + (heldout if rep.heldout else '<p class="muted">No held-out metrics recorded.</p>')
            + (f'<p>Promotion gate: {html.escape(rep.gate_decision)}</p>' if rep.gate_decision else "")
            + f'<p>Audit of this scoring run: <span class="{"bad" if passed is False else "ok"}">'
              f"{html.escape(verdict)}</span></p>")


def buyer_report_html(rep: BuyerReport) -> str:
    """The buyer report as a self-contained page (inline CSS, an SVG chart, plots as ``data:`` PNGs)."""
    return _page(f"Buyer report {rep.campaign_name} {rep.period}", buyer_report_body_html(rep))


def buyer_report_body_html(rep: BuyerReport) -> str:
    """The buyer report's content without the page around it (as :func:`statement_body_html`)."""
    cur = rep.currency
    lineage = _table(["", ""], [
        ["Budget", _money(rep.budget_minor, cur)], ["Allocated", _money(rep.allocated_minor, cur)],
        ["Unallocated", _money(rep.unallocated_minor, cur)],
        ["Pricing run", rep.pricing_run_id], ["Score run", rep.score_run_id], ["Model version", rep.model_version],
        ["Label set", rep.label_set_id], ["Policy hash", rep.policy_hash[:16]],
    ])
    chart = bar_chart_svg([(p.provider_name, p.amount_minor, _money(p.amount_minor, cur)) for p in rep.providers]
                          + [(u.provider_name, 0, _money(0, cur)) for u in rep.unpaid
                             if u.provider_id not in {p.provider_id for p in rep.providers}],
                          f"Payout per provider ({cur})")
    providers = _table(["Provider", "Samples", "Paid samples", "Value (score units)", "Amount"],
                       [[p.provider_name, p.n_samples, p.n_paid, f"{p.value_total:.4g}", _money(p.amount_minor, cur)]
                        for p in rep.providers], numeric={1, 2, 3, 4})
    unpaid = _table(["Provider", "Samples", "Why nothing is paid"],
                    [[u.provider_name, u.n_samples, u.reason] for u in rep.unpaid], numeric={1})
    top = _table(["Rank", "Provider", "Excerpt", "Score", "Amount"],
                 [[x.rank, x.provider_name, x.excerpt, f"{x.score:.4g}", _money(x.amount_minor, cur)]
                  for x in rep.top_samples], numeric={0, 3, 4})
    body = (
        f"<h1>Buyer report: {html.escape(rep.campaign_name)}</h1>"
        f'<p class="muted">Period {html.escape(rep.period)} · amounts in {html.escape(cur)} · generated '
        f"{html.escape(rep.generated_at.strftime('%Y-%m-%d %H:%M UTC'))}</p>"
        f'<div class="summary">{lineage}</div>'
        + "<h2>Value by provider</h2>" + chart + providers
        + ("<h2>Providers paid nothing</h2>" + unpaid if rep.unpaid else "")
        + _quality(rep)
        + f"<h2>Top {len(rep.top_samples)} samples by score</h2>"
        "<p class=\"muted\">Ranked by the approximator's score, highest first (equal scores by sample id). Scores "
        "above the pricing cap share the capped value, so their amounts can be equal; a high score can still be paid "
        "nothing when the pricing policy nets a provider's values and they come to zero or less.</p>" + top
        + "<h2>Value distribution</h2>" + _img(value_distribution_png(rep.values, "Value of all eligible samples"),
                                               "value distribution")
    )
    return body


def buyer_report_markdown(rep: BuyerReport) -> str:
    cur = rep.currency
    lines = [f"# Buyer report: {md_escape(rep.campaign_name)}, period {md_escape(rep.period)}", "",
             f"Pricing run {rep.pricing_run_id}, model {md_escape(rep.model_version)}, "
             f"label set {rep.label_set_id} ({rep.n_labels} labels).", "",
             "| provider | samples | amount |", "|---|---:|---:|"]
    lines += [f"| {md_escape(p.provider_name)} | {p.n_samples} | {_money(p.amount_minor, cur)} |"
              for p in rep.providers]
    lines += [f"| {md_escape(u.provider_name)} | {u.n_samples} | {_money(0, cur)}: {md_escape(u.reason)} |"
              for u in rep.unpaid if u.provider_id not in {p.provider_id for p in rep.providers}]
    return "\n".join(lines) + "\n"


def write_buyer_report(rep: BuyerReport, out_dir: Path) -> dict[str, Path]:
    """HTML + three CSVs (providers, top samples, providers paid nothing) under ``out_dir``; returns the paths."""
    return _write_files(out_dir, buyer_stem(rep), buyer_report_html(rep), _buyer_rows(rep))


def buyer_artifact_rows(rep: BuyerReport) -> list[dict[str, object]]:
    """The top samples selected as table rows (the report flow's table artifact)."""
    return [{"rank": x.rank, "sample_id": x.sample_id, "provider": x.provider_name, "score": x.score,
             "amount": _money(x.amount_minor, rep.currency)} for x in rep.top_samples]
