"""Plots as base64 PNG for self-contained HTML (matplotlib's Agg canvas; no pyplot, no global state)."""

from __future__ import annotations

import base64
import datetime as dt
import io
from collections.abc import Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import date2num
from matplotlib.figure import Figure

__all__ = ["balance_history_png", "value_distribution_png"]


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
        ax.xaxis_date()
        fig.autofmt_xdate()
    else:
        ax.text(0.5, 0.5, "no postings", ha="center", va="center", transform=ax.transAxes)
    ax.set_title("Balance over time")
    ax.set_ylabel(f"{currency} (minor units, 1/{10**digits})")
    return _to_base64(fig)
