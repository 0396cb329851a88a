"""Pricing a campaign's period end to end: the one code path of ``marketplace price`` and the ``price`` flow.

:func:`run_pricing` owns its transactions (through :func:`~marketplace.db.retry.run_in_transaction`,
which retries transient conflicts): one unit of work to allocate, then one per batch of postings; the
core functions it calls never commit. Every step is idempotent, so a crash anywhere (even SIGKILL)
followed by a rerun ends in the same books.

``hook(stage, n_posted)`` is a test seam: stages are ``"allocated"`` (run committed), ``"flushed"``
(a batch written, not yet committed) and ``"committed"``; ``n_posted`` counts transactions so far.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from marketplace.campaigns import get_campaign
from marketplace.db import Campaign, PricingRun
from marketplace.db.retry import run_in_transaction
from marketplace.db.screening import Screener
from marketplace.errors import ConfigError
from marketplace.names import display_name
from marketplace.pricing.eligible import check_audit, choose_score_run
from marketplace.pricing.policy import PolicyOverrides, campaign_policy
from marketplace.pricing.posting import BatchOutcome, post_pricing_batch
from marketplace.pricing.runs import create_pricing_run

__all__ = ["PricingOutcome", "post_until_done", "run_pricing"]

log = logging.getLogger(__name__)
Hook = Callable[[str, int], None]


@dataclass(frozen=True)
class PricingOutcome:
    """A pricing run after :func:`run_pricing`: its lineage, policy and totals (minor units of ``currency``),
    whether this call created it, and how many transactions this call posted."""

    pricing_run_id: int
    created: bool
    status: str
    campaign: str
    period: str
    score_run_id: int
    approximator_version_id: int
    label_set_id: int
    policy: dict[str, Any]
    policy_hash: str
    currency: str
    budget_minor: int
    allocated_minor: int
    unallocated_minor: int
    n_eligible: int
    n_paid: int
    n_submissions: int
    n_posted: int
    superseded_by: int | None
    audit_override: str | None = None
    screening: dict[str, Any] | None = None  # the fine-tuning check the run paid by (pricing_runs.screening)

    def as_dict(self) -> dict[str, Any]:
        """The JSON document of ``marketplace price --json`` and of the ``price`` flow."""
        data = asdict(self)
        data["transactions_posted"] = data.pop("n_posted")
        data["superseded_by"] = data.pop("superseded_by")
        return data


def post_until_done(
    factory: sessionmaker[Session], pricing_run_id: int, *, batch_size: int = 500, hook: Hook | None = None
) -> tuple[int, int | None]:
    """Post a run's transactions batch by batch; returns (transactions posted, superseding run id or None)."""
    total = 0
    while True:
        outcome = run_in_transaction(factory, partial(_post_batch, pricing_run_id=pricing_run_id,
                                                      batch_size=batch_size, hook=hook, posted_before=total))
        total += outcome.n_posted
        if hook is not None and outcome.n_posted:
            hook("committed", total)
        if outcome.done:
            return total, outcome.superseded_by


def _post_batch(session: Session, *, pricing_run_id: int, batch_size: int, hook: Hook | None,
                posted_before: int) -> BatchOutcome:
    outcome = post_pricing_batch(session, pricing_run_id, batch_size)
    if hook is not None and outcome.n_posted:
        hook("flushed", posted_before + outcome.n_posted)
    return outcome


def run_pricing(
    factory: sessionmaker[Session],
    campaign: str | int,
    period: str,
    policy: PolicyOverrides = None,
    *,
    score_run_id: int | None = None,
    batch_size: int = 500,
    hook: Hook | None = None,
    audit_override: str | None = None,
    actor: str | None = None,
    screener: Screener | None = None,
) -> PricingOutcome:
    """Create (or find) the pricing run of ``campaign``'s ``period`` and post it to completion.

    ``policy``: overrides of the campaign's pricing policy (see
    :func:`~marketplace.pricing.policy.campaign_policy`); None prices with the campaign's own policy.
    ``audit_override``: the operator's reason to pay a score run without a passed audit (recorded on the run).
    ``actor``: who prices, for the audit trail (default: the OS user).

    When the policy's ``screen`` is ``"finetune"`` (the default), the providers are first put through the
    fine-tuning check by ``screener`` (from the edge: :func:`marketplace.runtime.pricing_screener`, or
    :func:`marketplace.validation.screening.screener`), with no database session open; the score run and
    its audit are checked before that, so a run that cannot be paid fails fast.
    """
    screening = _screen_if_needed(factory, campaign, policy, score_run_id, audit_override, screener)
    run, created = run_in_transaction(
        factory, lambda s: create_pricing_run(s, campaign, period, policy, score_run_id=score_run_id,
                                              audit_override=audit_override, actor=actor, screening=screening)
    )
    if hook is not None:
        hook("allocated", 0)
    n_posted, superseded_by = post_until_done(factory, run.id, batch_size=batch_size, hook=hook)
    return run_in_transaction(factory, lambda s: _outcome(s, run.id, created, n_posted, superseded_by))


def _screen_if_needed(factory: sessionmaker[Session], campaign: str | int, policy: PolicyOverrides,
                      score_run_id: int | None, audit_override: str | None,
                      screener: Screener | None) -> dict[str, Any] | None:
    with factory() as session:
        camp = get_campaign(session, campaign)
        if campaign_policy(camp.options, policy).screen != "finetune":
            return None
        check_audit(camp, choose_score_run(session, camp, score_run_id), audit_override)
        camp_id, name = camp.id, camp.name
    if screener is None:
        raise ConfigError(f"campaign {display_name(name)!r} is priced with the fine-tuning check (policy "
                          "screen='finetune') but this caller gave no screener; pass "
                          "marketplace.runtime.pricing_screener(), or price with screen='none'")
    return screener(factory, camp_id)


def _outcome(session: Session, run_id: int, created: bool, n_posted: int, superseded_by: int | None) -> PricingOutcome:
    run = session.get(PricingRun, run_id)
    campaign = session.get(Campaign, run.campaign_id) if run is not None else None
    if run is None or campaign is None:  # runs are never deleted (RESTRICT); keep a real error anyway
        raise AssertionError(f"pricing run {run_id} vanished after it was posted")
    return PricingOutcome(
        pricing_run_id=run.id, created=created, status=run.status.value, campaign=campaign.name, period=run.period,
        score_run_id=run.score_run_id, approximator_version_id=run.approximator_version_id,
        label_set_id=run.label_set_id, policy=dict(run.policy), policy_hash=run.policy_hash, currency=run.currency,
        budget_minor=run.budget_minor, allocated_minor=run.allocated_minor,
        unallocated_minor=run.unallocated_minor, n_eligible=run.n_eligible, n_paid=run.n_paid,
        n_submissions=run.n_submissions, n_posted=n_posted, superseded_by=superseded_by,
        audit_override=run.audit_override, screening=run.screening,
    )
