"""Reading the fine-tuning check a pricing run stored (``pricing_runs.screening``).

The check itself is :mod:`marketplace.validation.screening`; reports read what a run stored through
these two functions, so every report gives a provider left out the same reason, with its own numbers only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

#: What pricing calls to run the fine-tuning check of a campaign (by id): returns the document that
#: ``pricing_runs.screening`` stores (``Screening.to_json()``). Built at the edge
#: (:func:`marketplace.runtime.pricing_screener`, :func:`marketplace.validation.screening.screener`), so the
#: pricing package needs no import of the fine-tuning code.
Screener = Callable[[sessionmaker[Session], int], dict[str, Any]]

__all__ = ["Screener", "failed_check_reason", "failed_checks", "passed_provider_gains", "passed_provider_ids"]


def failed_checks(screening: dict[str, Any] | None) -> dict[int, dict[str, Any]]:
    """provider id -> its stored check, for the providers a run's check (``pricing_runs.screening``) left out."""
    return {int(c["provider_id"]): c for c in (screening or {}).get("providers", []) if not c["passed"]}


def failed_check_reason(check: dict[str, Any]) -> str:
    """Why a provider left out by the check is paid nothing, in one sentence (its own numbers only)."""
    return (f"fine-tuning the target model on {check['n_used']} of its samples did not clearly lower the target "
            f"loss (gain {float(check['gain']):+.2e} ± {float(check['sd']):.1e} nats/token per sample over "
            f"{len(check['per_seed'])} runs), so this period's run pays it nothing")


def passed_provider_ids(screening: dict[str, Any]) -> frozenset[int]:
    """Provider ids a stored check passed (the only ones its pricing run may pay)."""
    return frozenset(int(c["provider_id"]) for c in screening.get("providers", []) if c["passed"])


def passed_provider_gains(screening: dict[str, Any]) -> dict[int, float]:
    """Provider id -> measured gain per sample (nats/token), for the providers a stored check passed: the
    weights of the measured split between providers (``PricingPolicy.provider_split``)."""
    return {int(c["provider_id"]): float(c["gain"]) for c in screening.get("providers", []) if c["passed"]}
