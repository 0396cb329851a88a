"""What the marketplace paid, per provider, in the pricing run a validation checks.

The run is the one the buyer report shows (:func:`marketplace.reports.buyer.build_buyer_report`, the
home of that choice): the latest *complete* pricing run of the given period, or of the latest period
priced. Per provider: the amount allocated and the number of paid samples (allocation > 0). Providers
whose samples were all valued at 0 appear with 0; providers without any allocation are added by
:func:`~marketplace.validation.compare.compare_with_payouts` from the measurement, also with 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from marketplace.db import PricingRun
from marketplace.reports.buyer import build_buyer_report

__all__ = ["PayoutSnapshot", "ProviderPayout", "load_payouts"]


@dataclass(frozen=True)
class ProviderPayout:
    provider_id: int
    provider_name: str
    n_paid: int  # samples with a positive allocation
    amount_minor: int  # integer minor units of the run's currency


@dataclass(frozen=True)
class PayoutSnapshot:
    pricing_run_id: int
    period: str
    currency: str
    budget_minor: int
    allocated_minor: int  # the sum of every provider's amount (the budget less what the cap left)
    providers: tuple[ProviderPayout, ...]
    # provider id -> passed, from the run's fine-tuning check (marketplace.validation.screening); empty when
    # the run was priced without it
    checked: dict[int, bool] = field(default_factory=dict)


def load_payouts(session: Session, campaign: str | int, period: str | None = None) -> PayoutSnapshot:
    """Per-provider payouts of the campaign's latest complete pricing run (of ``period`` when given).

    Raises :class:`~marketplace.errors.NotFoundError` when there is none: run ``marketplace price`` first.
    """
    report = build_buyer_report(session, campaign, period, top_k=0)
    run = session.get(PricingRun, report.pricing_run_id)
    checks = (run.screening or {}).get("providers", []) if run is not None else []
    return PayoutSnapshot(
        pricing_run_id=report.pricing_run_id, period=report.period, currency=report.currency,
        budget_minor=report.budget_minor, allocated_minor=report.allocated_minor,
        providers=tuple(ProviderPayout(p.provider_id, p.provider_name, p.n_paid, p.amount_minor)
                        for p in sorted(report.providers, key=lambda p: p.provider_id)),
        checked={int(c["provider_id"]): bool(c["passed"]) for c in checks},
    )
