"""Plots for self-contained HTML: base64 PNG (matplotlib's Agg canvas; no pyplot, no global state) and
inline SVG for bar charts whose labels are text a reader can select (no network, no script)."""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
from collections.abc import Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import date2num
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

__all__ = ["balance_history_png", "bar_chart_svg", "value_distribution_png"]


def _to_base64(fig: Figure) -> str:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def value_distribution_png(values: Sequence[float], title: str = "Value distribution") -> str:
    """Histogram of sample values (score units) as a base64 PNG."""
    fig = Figure(figsize=(6, 3))
    ax = fig.add_subplot()
    if len(values):
        ax.hist(list(values), bins=min(30, max(5, len(values) // 3)), color="#3b7dd8", edgecolor="white")
    else:
        ax.text(0.5, 0.5, "no eligible samples", ha="center", va="center", transform=ax.transAxes)
    ax.set_title(title)
    ax.set_xlabel("value (score units, after cap and reserve)")
    ax.set_ylabel("samples")
    return _to_base64(fig)


def balance_history_png(points: Sequence[tuple[dt.datetime, int]], digits: int, currency: str) -> str:
    """Step plot of a running balance (minor units, shown in major units) over posting time."""
    fig = Figure(figsize=(6, 3))
    ax = fig.add_subplot()
    if points:
        times = date2num([t for t, _ in points])
        balances = [b for _, b in points]  # integer minor units: no float ever touches money
        ax.step(times, balances, where="post", color="#2a9d55")
        ax.plot(times, balances, "o", color="#2a9d55", markersize=3)
        if max(times) - min(times) < 1:  # postings within a day: a week around them, not years
            ax.set_xlim(min(times) - 3.5, max(times) + 3.5)
        ax.xaxis_date()
        fig.autofmt_xdate()
        # the axis reads in major units; the data stay integers
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v / 10**digits:,.{digits}f}"))
    else:
        ax.text(0.5, 0.5, "no postings", ha="center", va="center", transform=ax.transAxes)
    ax.set_title("Balance over time")
    ax.set_ylabel(currency)
    return _to_base64(fig)


def bar_chart_svg(bars: Sequence[tuple[str, int, str]], title: str) -> str:
    """A horizontal bar chart as inline SVG: one bar per (label, amount in minor units, amount as text),
    in the order given; bar lengths are proportional to the integer amounts. Labels are escaped."""
    row, label_w, bar_w, text_w = 24, 190, 360, 130
    width, height = label_w + bar_w + text_w, 30 + row * max(1, len(bars))
    top = max((amount for _, amount, _ in bars), default=0)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" font-family="system-ui,sans-serif" font-size="12">',
             f"<title>{html.escape(title)}</title>",
             f'<text x="0" y="16" font-weight="600">{html.escape(title)}</text>']
    for i, (label, amount, text) in enumerate(bars):
        y = 30 + i * row
        length = 0 if top <= 0 else round(bar_w * max(amount, 0) / top)
        shown = label if len(label) <= 28 else label[:27] + "…"
        parts.append(f'<text x="{label_w - 8}" y="{y + 15}" text-anchor="end">{html.escape(shown)}</text>')
        parts.append(f'<rect x="{label_w}" y="{y + 3}" width="{max(length, 1)}" height="{row - 8}" '
                     f'fill="{"#3b7dd8" if amount > 0 else "#c5cad3"}"/>')
        parts.append(f'<text x="{label_w + max(length, 1) + 6}" y="{y + 15}">{html.escape(text)}</text>')
    if not bars:
        parts.append(f'<text x="{label_w}" y="45">nothing allocated</text>')
    parts.append("</svg>")
    return "".join(parts)
