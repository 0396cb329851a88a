"""One-line outcomes of a valuation run, as the ``revalue`` summary and the demo's summary print them: the
promotion gate's decision and the scoring run's audit (from the flows' summary dictionaries)."""

from __future__ import annotations

from typing import Any

__all__ = ["audit_outcome", "gate_outcome", "heldout_outcome"]


def gate_outcome(train: dict[str, Any] | None) -> str:
    """The promotion gate's decision in one line: the new version promoted, or kept out and why."""
    if train is None:
        return "not trained (pool unchanged): the champion keeps scoring"
    verdict = "promoted to champion" if train.get("promoted") else "kept out (the champion keeps scoring)"
    return f"{train.get('model_name', 'approximator')} v{train.get('version')} {verdict}: {train.get('reason', '')}"


def audit_outcome(audit: dict[str, Any] | None) -> str:
    """The scoring run's audit in one line."""
    audit = audit or {}
    if audit.get("passed") is None:
        return str(audit.get("reason") or "no audit recorded")
    rho = audit.get("spearman")
    return (f"{'passed' if audit['passed'] else 'FAILED (payouts blocked)'}: Spearman "
            f"{float(rho):.3f} on {audit.get('n')} samples, threshold {audit.get('threshold')}"
            if isinstance(rho, int | float) else str(audit.get("reason", "")))


def heldout_outcome(metrics: dict[str, float]) -> str:
    """The approximator's held-out Spearman against its two baselines, in one line."""
    from marketplace.reports.buyer import HELDOUT_METRICS

    names = {"approx_spearman": "ALinFiK", "tfidf_ridge_spearman": "TF-IDF + ridge",
             "target_cosine_spearman": "target cosine"}
    parts = [f"{names[k]} {metrics[k]:.3f}" for k in HELDOUT_METRICS if k in metrics]
    return ", ".join(parts) if parts else "no held-out metrics recorded"
