"""Write a payout validation: CSV (one row per provider), a self-contained HTML page, a Markdown summary.

Provider names are provider-supplied: they go through ``html.escape`` in HTML, through
:func:`~marketplace.reports.csv_safe.sanitize_cell` in CSV (no cell can become a formula), and through
:func:`~marketplace.reports.md_safe.md_escape` in Markdown (HTML and Markdown metacharacters escaped).
"""

from __future__ import annotations

import html
import json
from pathlib import Path

from marketplace.money import Money
from marketplace.outputs import check_output_dir, check_output_file, write_text_atomic
from marketplace.reports.csv_safe import write_csv
from marketplace.reports.md_safe import md_escape
from marketplace.validation.compare import PayoutValidation, ProviderComparison, RegimeVerdict

__all__ = ["latest_validation_json", "validation_csv_rows", "validation_html", "validation_markdown", "validation_stem",
           "write_validation"]

_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:64rem;color:#1d2330}"
    "table{border-collapse:collapse;margin:.6rem 0}th,td{padding:.25rem .6rem;border-bottom:1px solid #e4e6ef}"
    "th{background:#f3f5fa;text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}"
    ".muted{color:#667}.headline{background:#fff7dd}"
)


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _gain(x: float | None) -> str:
    return "n/a" if x is None else f"{x:+.3e}"


def _regimes(v: PayoutValidation) -> list[str]:
    """The headline regime first, then the others in config order."""
    return [v.headline] + [r.regime for r in v.verdicts if r.regime != v.headline]


def validation_csv_rows(v: PayoutValidation) -> tuple[list[str], list[list[object]]]:
    """(header, rows): one row per provider; per regime its gain (nats/token per sample), sd, ideal share
    and within-noise flag. Shares are fractions (0..1); empty cells where a value is undefined."""
    regimes = _regimes(v)
    header = ["provider_id", "provider", "payable_samples", "samples_used", "paid_samples", "amount_minor",
              "amount", "payout_share", "pricing_check_passed"]
    for r in regimes:
        header += [f"gain_{r}", f"gain_sd_{r}", f"ideal_share_{r}", f"within_noise_{r}"]
    rows: list[list[object]] = []
    for p in v.providers:
        row: list[object] = [p.provider_id, p.provider_name, p.n_payable, p.n_used, p.n_paid, p.amount_minor,
                             str(Money(p.amount_minor, v.currency)), p.payout_share, p.check_passed]
        for r in regimes:
            row += [p.gain[r], p.gain_sd[r], p.ideal_share[r], p.within_noise[r]]
        rows.append(row)
    return header, rows


def _verdict_line(r: RegimeVerdict) -> str:
    return (f"misallocated {_pct(r.misallocated_share)}, harmful {_pct(r.harmful_share)} "
            f"(beyond one sd {_pct(r.clearly_harmful_share)}), paid to gains within noise {_pct(r.uncertain_share)}")


def _html_table(header: list[str], rows: list[list[str]], *, numeric_from: int, marked: int | None = None) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = []
    for i, row in enumerate(rows):
        cells = "".join(f'<td class="n">{html.escape(c)}</td>' if j >= numeric_from else f"<td>{html.escape(c)}</td>"
                        for j, c in enumerate(row))
        body.append(f'<tr class="headline">{cells}</tr>' if i == marked else f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _provider_cells(p: ProviderComparison, regimes: list[str], currency: str) -> list[str]:
    cells = [p.provider_name, _check(p.check_passed), str(p.n_used), str(p.n_paid),
             str(Money(p.amount_minor, currency)), _pct(p.payout_share)]
    for r in regimes:
        sd = p.gain_sd[r]
        noise = " ~0" if p.within_noise[r] else ""
        cells += [f"{_gain(p.gain[r])} ± {0.0 if sd is None else sd:.1e}{noise}", _pct(p.ideal_share[r])]
    return cells


def validation_html(v: PayoutValidation) -> str:
    """A self-contained page (inline CSS, no scripts, no external resources)."""
    regimes = _regimes(v)
    cfg = v.config
    verdicts = {r.regime: r for r in v.verdicts}
    verdict_rows = [[f"{r}{' (headline)' if r == v.headline else ''}", verdicts[r].description,
                     _pct(verdicts[r].misallocated_share), _pct(verdicts[r].harmful_share),
                     _pct(verdicts[r].clearly_harmful_share), _pct(verdicts[r].uncertain_share)] for r in regimes]
    provider_header = ["provider", "pricing check", "samples used", "paid samples", "paid", "payout share"]
    for r in regimes:
        provider_header += [f"gain/sample {r}", f"ideal share {r}"]
    notes = [verdicts[r].note for r in regimes if verdicts[r].note]
    meta = (f"Pricing run {v.pricing_run_id}, period {v.period}; paid {Money(v.allocated_minor, v.currency)} of "
            f"{Money(v.budget_minor, v.currency)}. Up to {cfg['per_provider']} payable samples per provider, seeds "
            f"{cfg['seeds']}, max {cfg['max_length']} tokens; target loss before fine-tuning {v.loss_before:.4f} "
            f"nats/token on {v.n_target} target texts; config {v.config_hash[:12]}, model {v.model_digest[:12]}, "
            f"{v.device}, {v.seconds:.0f} s.")
    body = (
        f"<h1>Payout validation: {html.escape(v.campaign_name)}</h1>"
        f'<p class="muted">{html.escape(meta)}</p>'
        "<p>Each provider's payable samples fine-tune a fresh copy of the target model; the gain per sample is "
        "the drop of the target loss divided by the samples used. The ideal share is proportional to max(gain, 0) "
        "x payable samples; <b>misallocated</b> is the total variation distance between payout and ideal shares, "
        "<b>harmful</b> the share paid to providers whose gain is negative. Gains marked ~0 are within one "
        "standard deviation (over seeds) of zero. The pricing check is the pricing run's own fine-tuning check "
        "(other seeds and draws than this validation): providers that did not pass it were not paid.</p>"
        "<h2>Verdict</h2>"
        + _html_table(["regime", "fine-tuning", "misallocated", "harmful", "harmful beyond 1 sd",
                       "paid to gains ~0"], verdict_rows, numeric_from=2, marked=0)
        + "".join(f"<p>{html.escape(n)}</p>" for n in notes)
        + "<h2>Providers</h2>"
        + _html_table(provider_header, [_provider_cells(p, regimes, v.currency) for p in v.providers], numeric_from=2)
    )
    title = html.escape(f"Payout validation {v.campaign_name}")
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
            f"<style>{_STYLE}</style></head><body>{body}</body></html>\n")


def validation_markdown(v: PayoutValidation) -> str:
    """A short summary (headline verdict, every regime, providers by payout) for an artifact or a log."""
    head = v.headline_verdict
    lines = [
        f"# Payout validation: {md_escape(v.campaign_name)}, pricing run {v.pricing_run_id} ({md_escape(v.period)})",
        "",
        f"**{md_escape(head.regime)}** ({md_escape(head.description)}): {_verdict_line(head)}.",
        "",
        "| regime | misallocated | harmful | harmful beyond 1 sd | paid to gains ~0 |",
        "|---|---:|---:|---:|---:|",
    ]
    lines += [f"| {md_escape(r.regime)} | {_pct(r.misallocated_share)} | {_pct(r.harmful_share)} | "
              f"{_pct(r.clearly_harmful_share)} | {_pct(r.uncertain_share)} |" for r in v.verdicts]
    lines += [f"\n{md_escape(r.regime)}: {md_escape(r.note)}" for r in v.verdicts if r.note]
    lines += ["", f"| provider | pricing check | payout share | gain/sample ({md_escape(v.headline)}) | ideal share |",
              "|---|---|---:|---:|---:|"]
    for p in sorted(v.providers, key=lambda p: (-p.amount_minor, p.provider_id)):
        noise = " (~0)" if p.within_noise[v.headline] else ""
        lines.append(f"| {md_escape(p.provider_name)} | {_check(p.check_passed)} | {_pct(p.payout_share)} | "
                     f"{_gain(p.gain[v.headline])}{noise} | "
                     f"{_pct(p.ideal_share[v.headline])} |")
    return "\n".join(lines) + "\n"


def _check(passed: bool | None) -> str:
    return "-" if passed is None else ("pass" if passed else "not paid")


def validation_stem(campaign_id: int, pricing_run_id: int) -> str:
    """The file name stem of a campaign's validation of one pricing run."""
    return f"validation_campaign{campaign_id}_run{pricing_run_id}"


def latest_validation_json(out_dir: Path, campaign_id: int) -> Path | None:
    """The JSON of the campaign's validation of its newest validated pricing run under ``out_dir``, if any."""
    found: list[tuple[int, Path]] = []
    prefix = validation_stem(campaign_id, 0)[:-1]
    for path in out_dir.glob(f"{prefix}*.json") if out_dir.is_dir() else ():
        run = path.stem[len(prefix):]
        if run.isdigit() and path.name == f"{validation_stem(campaign_id, int(run))}.json" and path.is_file():
            found.append((int(run), path))
    return max(found)[1] if found else None


def write_validation(v: PayoutValidation, out_dir: Path) -> dict[str, Path]:
    """Write ``validation_campaign{id}_run{run}.{html,csv,md,json}`` into ``out_dir``; returns the paths."""
    stem = validation_stem(v.campaign_id, v.pricing_run_id)
    check_output_dir(out_dir)  # marketplace/outputs.py: every path checked first, each file written atomically
    paths = {"html": out_dir / f"{stem}.html", "md": out_dir / f"{stem}.md", "json": out_dir / f"{stem}.json",
             "csv": out_dir / f"{stem}.csv"}
    for path in paths.values():
        check_output_file(path)
    write_text_atomic(paths["html"], validation_html(v))
    write_text_atomic(paths["md"], validation_markdown(v))
    write_text_atomic(paths["json"], json.dumps(v.to_dict(), indent=2, sort_keys=True))
    write_csv(paths["csv"], *validation_csv_rows(v))
    return paths
