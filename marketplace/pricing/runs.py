"""The pricing run: a campaign's period priced from one score run under one policy, with its allocations.

:func:`create_pricing_run` picks the score run (:mod:`marketplace.pricing.eligible`), reads the scores
of payable samples, allocates the budget (:func:`~marketplace.pricing.allocation.allocate_budget`) and
stores the run with one :class:`~marketplace.db.Allocation` row per eligible sample. The run is unique
on (campaign, period, score run, policy hash, budget): a second call, concurrent or later, gets the
same run back (``INSERT ... ON CONFLICT DO NOTHING``), so it is never allocated twice. The policy is
always the campaign's (:func:`~marketplace.pricing.policy.campaign_policy`): its stored options with
the caller's overrides on top. The caller owns the session; nothing here commits.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from marketplace.campaigns import get_campaign
from marketplace.db import Allocation, ApproximatorVersion, PricingRun, PricingRunStatus, utcnow
from marketplace.db.audit import record_audit
from marketplace.db.engine import insert_on_conflict_do_nothing
from marketplace.db.priced_catalog import catalog_fingerprints
from marketplace.db.screening import passed_provider_gains, passed_provider_ids
from marketplace.errors import ConfigError, NotFoundError
from marketplace.ledger.limits import check_budget_minor
from marketplace.names import display_name
from marketplace.pricing.allocation import AllocationResult, allocate_budget
from marketplace.pricing.eligible import check_audit, choose_score_run, load_eligible_scores, only_providers
from marketplace.pricing.period import check_campaign_period
from marketplace.pricing.policy import PolicyOverrides, campaign_policy

__all__ = ["create_pricing_run"]

log = logging.getLogger(__name__)
ALLOCATION_CHUNK = 5000
# The unique key of a pricing run (marketplace.db.ledger.PricingRun).
_RUN_KEY = ["campaign_id", "period", "score_run_id", "policy_hash", "budget_minor"]


def _find_run(session: Session, key: dict[str, object]) -> PricingRun | None:
    return session.scalar(select(PricingRun).filter_by(**key))


def create_pricing_run(
    session: Session,
    campaign: str | int,
    period: str,
    policy: PolicyOverrides = None,
    *,
    score_run_id: int | None = None,
    audit_override: str | None = None,
    actor: str | None = None,
    screening: dict[str, Any] | None = None,
) -> tuple[PricingRun, bool]:
    """Get or create the pricing run (and its allocations) of ``campaign``'s ``period``. Returns (run, created).

    ``policy``: overrides of the campaign's pricing policy (a mapping of fields, or a whole
    :class:`~marketplace.pricing.policy.PricingPolicy`); None prices with the campaign's own policy.
    ``audit_override``: the operator's reason to pay a score run without a passed audit
    (:func:`~marketplace.pricing.eligible.check_audit`); stored on the run when it was needed.
    A new run is recorded in the audit trail (``priced``, or ``revalued`` when the period was priced
    before) by ``actor`` (default: the OS user); each allocation stores its sample's ownership fingerprint
    (:mod:`marketplace.db.priced_catalog`) for ``ledger verify``.
    """
    camp = get_campaign(session, campaign)
    period = check_campaign_period(session, camp.id, period)
    check_budget_minor(camp.budget_minor, camp.currency)
    pricing_policy = campaign_policy(camp.options, policy)
    score_run = choose_score_run(session, camp, score_run_id)
    key: dict[str, object] = {"campaign_id": camp.id, "period": period, "score_run_id": score_run.id,
                              "policy_hash": pricing_policy.policy_hash, "budget_minor": camp.budget_minor}
    existing = _find_run(session, key)
    if existing is not None:
        return existing, False
    overridden = check_audit(camp, score_run, audit_override)
    if pricing_policy.screen == "finetune" and screening is None:
        raise ConfigError(f"campaign {display_name(camp.name)!r} is priced with the fine-tuning check "
                          "(policy screen='finetune') but no check was given; price through "
                          "marketplace.pricing.runner.run_pricing, which measures it, or set screen='none'")
    version = session.get(ApproximatorVersion, score_run.approximator_version_id)
    if version is None:  # the foreign key makes this impossible; keep a real error anyway
        raise NotFoundError(f"approximator version {score_run.approximator_version_id} of score run {score_run.id}")

    eligible = load_eligible_scores(session, score_run)
    if pricing_policy.screen == "finetune" and screening is not None:
        eligible = only_providers(eligible, passed_provider_ids(screening))
    gains = passed_provider_gains(screening) if pricing_policy.measured_split and screening is not None else None
    result = allocate_budget(camp.budget_minor, eligible.sample_ids, eligible.scores, eligible.submission_ids,
                             eligible.provider_ids, pricing_policy, provider_gains=gains)
    row = {
        **key, "approximator_version_id": version.id, "label_set_id": version.label_set_id,
        "policy": pricing_policy.model_dump(mode="json"), "currency": camp.currency,
        "cap_value": result.cap_value, "n_eligible": int(result.sample_ids.size),
        "n_paid": int((result.amounts_minor > 0).sum()), "n_submissions": len(result.per_submission),
        "allocated_minor": result.allocated_minor, "unallocated_minor": result.unallocated_minor,
        "status": PricingRunStatus.ALLOCATED, "created_at": utcnow(),
        "audit_override": audit_override.strip() if overridden and audit_override else None,
        "screening": dict(screening) if pricing_policy.screen == "finetune" and screening is not None else None,
    }
    stmt = insert_on_conflict_do_nothing(session, PricingRun, _RUN_KEY).values(**row).returning(PricingRun.id)
    run_id = session.execute(stmt).scalar_one_or_none()
    if run_id is None:  # a concurrent caller created it first and has committed
        existing = _find_run(session, key)
        if existing is None:
            raise AssertionError("pricing run vanished after a unique conflict")
        return existing, False
    _store_allocations(session, run_id, result)
    run = session.get(PricingRun, run_id)
    assert run is not None
    earlier = session.scalar(select(PricingRun.id).where(PricingRun.campaign_id == camp.id,
                                                         PricingRun.period == period, PricingRun.id != run_id)
                             .limit(1))
    record_audit(session, "revalued" if earlier is not None else "priced", actor=actor, campaign_id=camp.id,
                 pricing_run_id=run_id, period=period, score_run_id=score_run.id,
                 policy_hash=pricing_policy.policy_hash, budget_minor=camp.budget_minor,
                 allocated_minor=result.allocated_minor, n_eligible=int(result.sample_ids.size),
                 audit_override=row["audit_override"])
    log.info("pricing run %d: campaign %s period %s, score run %d, %d eligible samples, %d of %d minor units "
             "allocated", run_id, display_name(camp.name), period, score_run.id, run.n_eligible, run.allocated_minor,
             run.budget_minor)
    return run, True


def _store_allocations(session: Session, run_id: int, result: AllocationResult) -> None:
    """One :class:`~marketplace.db.Allocation` row per eligible sample, ``ALLOCATION_CHUNK`` rows (and their
    ownership fingerprints) at a time: memory holds one chunk of dicts, never one per sample."""
    for start in range(0, int(result.sample_ids.size), ALLOCATION_CHUNK):
        part = slice(start, start + ALLOCATION_CHUNK)
        sample_ids = result.sample_ids[part].tolist()
        fingerprints = catalog_fingerprints(session, sample_ids)
        cols = zip(sample_ids, result.submission_ids[part].tolist(), result.provider_ids[part].tolist(),
                   result.scores[part].tolist(), result.values[part].tolist(), result.amounts_minor[part].tolist(),
                   strict=True)
        session.execute(insert(Allocation), [
            {"pricing_run_id": run_id, "sample_id": s, "submission_id": sub, "provider_id": p, "score": sc,
             "value": v, "amount_minor": a, "catalog_sha256": fingerprints[s]}
            for s, sub, p, sc, v, a in cols
        ])
