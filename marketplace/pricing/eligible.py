"""What a pricing run prices: the chosen score run (audited) and the scores of the payable samples.

The score run is the campaign's *latest complete* one (highest id; its approximator version is the
champion that scored it) unless the caller names one. Guardrail (:func:`check_audit`): a score run is
paid only when its audit passed; a failed audit (``audit["passed"] is False``, or ``audit["spearman"]``
below the campaign's ``audit_threshold``) stops the payout, and a skipped or missing audit needs an
operator override that the pricing run records. The scores are those of payable samples
(:func:`marketplace.db.eligibility.is_payable`) by the chosen run's approximator version, in any
complete score run of that version up to the chosen one (scoring is incremental: a run scores only
what the version had not scored before).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import select
from sqlalchemy.orm import Session

from marketplace.db import Campaign, RunStatus, Sample, Score, ScoreRun, Submission
from marketplace.db.eligibility import is_payable
from marketplace.errors import AuditFailedError, NotFoundError, ValidationError

__all__ = ["EligibleScores", "check_audit", "choose_score_run", "latest_complete_score_run", "load_eligible_scores",
           "only_providers"]


ELIGIBLE_BATCH = 50_000  # eligible rows read per round trip


@dataclass(frozen=True)
class EligibleScores:
    """Scores of payable samples in ascending sample id: ids (N,) int64, ``scores`` (N,) float64 (score units)."""

    sample_ids: NDArray[np.int64]
    submission_ids: NDArray[np.int64]
    provider_ids: NDArray[np.int64]
    scores: NDArray[np.float64]


def latest_complete_score_run(session: Session, campaign_id: int) -> ScoreRun:
    """The campaign's newest complete score run, or a NotFoundError that says how to make one."""
    run = session.scalar(
        select(ScoreRun)
        .where(ScoreRun.campaign_id == campaign_id, ScoreRun.status == RunStatus.COMPLETE)
        .order_by(ScoreRun.id.desc())
        .limit(1)
    )
    if run is None:
        raise NotFoundError(
            f"campaign {campaign_id} has no complete score run; score the pool first (`marketplace score CAMPAIGN`)"
        )
    return run


def choose_score_run(session: Session, campaign: Campaign, score_run_id: int | None) -> ScoreRun:
    """``score_run_id`` (a complete run of ``campaign``), or the campaign's latest complete run when None."""
    if score_run_id is None:
        return latest_complete_score_run(session, campaign.id)
    found = session.get(ScoreRun, score_run_id)
    if found is None or found.campaign_id != campaign.id:
        raise NotFoundError(f"score run {score_run_id} not found for campaign {campaign.name!r}")
    if found.status != RunStatus.COMPLETE:
        raise ValidationError(f"score run {score_run_id} is {found.status.value}; only complete runs are priced")
    return found


def check_audit(campaign: Campaign, score_run: ScoreRun, override: str | None = None) -> bool:
    """The audit guardrail of payouts (its one home). Returns True when ``override`` was needed (and used).

    A score run is paid when its audit passed (``audit["passed"] is True`` and its Spearman, when stored,
    meets the campaign's ``audit_threshold``). A failed audit always stops the payout. A run without a
    passed audit (skipped, ``passed`` null, or never audited) is paid only with ``override``: the
    operator's reason, which the caller records on the pricing run.
    """
    audit = score_run.audit or {}
    spearman = audit.get("spearman")
    passed = audit.get("passed")
    if passed is False or (isinstance(spearman, int | float) and float(spearman) < float(campaign.audit_threshold)):
        raise AuditFailedError(
            f"score run {score_run.id} failed its audit (spearman={spearman!r}, threshold "
            f"{campaign.audit_threshold}): payouts are stopped. Label more data, retrain and rescore, then price again"
        )
    if passed is True:
        return False
    if override is not None and override.strip():
        return True
    why = audit.get("reason") or "no audit was recorded"
    raise AuditFailedError(
        f"score run {score_run.id} has no passed audit ({why}): payouts need one. Rescore with a larger "
        "--audit-n, or price with --override-audit REASON to pay anyway (the reason is recorded on the pricing run)"
    )


def load_eligible_scores(session: Session, score_run: ScoreRun) -> EligibleScores:
    """Scores of payable samples by the score run's approximator version (complete runs <= it).

    One query, read ``ELIGIBLE_BATCH`` rows at a time (``yield_per``: a server-side cursor on PostgreSQL)
    straight into NumPy columns: 32 bytes per sample are kept, never a list of rows.
    """
    version_id = score_run.approximator_version_id
    runs = select(ScoreRun.id).where(
        ScoreRun.approximator_version_id == version_id,
        ScoreRun.status == RunStatus.COMPLETE,
        ScoreRun.id <= score_run.id,
    )
    stmt = (
        select(Score.sample_id, Sample.submission_id, Sample.provider_id, Score.score)
        .join(Sample, Sample.id == Score.sample_id)
        .join(Submission, Submission.id == Sample.submission_id)
        .where(Score.approximator_version_id == version_id, Score.score_run_id.in_(runs), is_payable())
        .order_by(Score.sample_id)
        .execution_options(yield_per=ELIGIBLE_BATCH)
    )
    parts: tuple[list[NDArray[np.int64]], list[NDArray[np.int64]], list[NDArray[np.int64]],
                 list[NDArray[np.float64]]] = ([], [], [], [])
    for rows in session.execute(stmt).partitions():
        sids, subs, provs, scores = zip(*rows, strict=True)
        parts[0].append(np.array(sids, np.int64))
        parts[1].append(np.array(subs, np.int64))
        parts[2].append(np.array(provs, np.int64))
        parts[3].append(np.array(scores, np.float64))
    if not parts[0]:
        empty = np.zeros(0, np.int64)
        return EligibleScores(empty, empty.copy(), empty.copy(), np.zeros(0, np.float64))
    return EligibleScores(np.concatenate(parts[0]), np.concatenate(parts[1]), np.concatenate(parts[2]),
                          np.concatenate(parts[3]))


def only_providers(eligible: EligibleScores, provider_ids: frozenset[int]) -> EligibleScores:
    """The rows of ``eligible`` whose provider is in ``provider_ids`` (the ones the fine-tuning check passed)."""
    keep = np.isin(eligible.provider_ids, np.fromiter(provider_ids, dtype=np.int64, count=len(provider_ids)))
    return EligibleScores(eligible.sample_ids[keep], eligible.submission_ids[keep], eligible.provider_ids[keep],
                          eligible.scores[keep])
