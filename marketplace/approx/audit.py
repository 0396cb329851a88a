"""The audit guardrail (docs/valuation.md): label a small random subset exactly and compare.

Every score run draws ``n`` samples at random (seeded) among the first owners this version has
scored, *excluding* the samples of the label set it was trained on (agreement on training data
would flatter it), asks an exact labeler for their LinFiK, and records the Spearman agreement with
the stored scores. Below the campaign's ``audit_threshold`` the run is marked failed and the edge
raises :class:`~marketplace.errors.AuditFailedError`: pricing must not pay out on it.

The exact labeler is a plain callable ``sample_ids -> {sample_id: LinFiK}`` so tests can pass a
fake and the flow wires ``marketplace.valuation.label_sample_ids``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from marketplace.approx.metrics import spearman
from marketplace.db import (
    ApproximatorVersion,
    Campaign,
    Label,
    RunStatus,
    Sample,
    Score,
    ScoreRun,
    Submission,
    utcnow,
)
from marketplace.db.eligibility import is_payable
from marketplace.errors import AuditFailedError, NotFoundError, ValidationError

__all__ = [
    "AuditLabels",
    "AuditResult",
    "ExactLabeler",
    "conclude_audit",
    "pick_audit_samples",
    "raise_if_failed",
    "record_audit",
    "skip_audit",
]

log = logging.getLogger(__name__)

ExactLabeler = Callable[[Sequence[int]], dict[int, float]]
MIN_AUDIT = 5


@dataclass(frozen=True)
class AuditResult:
    score_run_id: int
    n: int
    spearman: float | None
    threshold: float
    passed: bool | None  # None: skipped
    reason: str
    sample_ids: list[int]

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _run_and_version(session: Session, score_run_id: int) -> tuple[ScoreRun, ApproximatorVersion]:
    run = session.get(ScoreRun, score_run_id)
    if run is None:
        raise NotFoundError(f"score run {score_run_id} not found")
    version = session.get(ApproximatorVersion, run.approximator_version_id)
    assert version is not None  # foreign key
    return run, version


def pick_audit_samples(session: Session, score_run_id: int, n: int, *, seed: int) -> list[int]:
    """Up to ``n`` first-owner samples scored by the run's version, not in its training label set."""
    if n < 0:
        raise ValidationError(f"audit size must be ≥ 0, got {n}")
    run, version = _run_and_version(session, score_run_id)
    trained_on = select(Label.sample_id).where(Label.label_set_id == version.label_set_id)
    ids = np.asarray(
        session.scalars(
            select(Score.sample_id)
            .join(Sample, Sample.id == Score.sample_id)
            .join(Submission, Submission.id == Sample.submission_id)
            .where(
                Score.approximator_version_id == run.approximator_version_id,
                is_payable(),  # the audit guards the payout: audit what pricing pays
                Score.sample_id.not_in(trained_on),
            )
            .order_by(Score.sample_id)
        ).all(),
        dtype=np.int64,
    )
    if ids.size <= n:
        return ids.tolist()
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(ids, size=n, replace=False)).tolist()


def record_audit(session: Session, score_run_id: int, exact: dict[int, float]) -> AuditResult:
    """Compare exact labels with the stored scores; write ScoreRun.audit and the run's status."""
    run, _ = _run_and_version(session, score_run_id)
    campaign = session.get(Campaign, run.campaign_id)
    assert campaign is not None  # foreign key
    threshold = float(campaign.audit_threshold)
    ids = sorted(int(i) for i in exact)
    stored: dict[int, float] = {
        int(r.sample_id): float(r.score)
        for r in session.execute(
            select(Score.sample_id, Score.score).where(
                Score.approximator_version_id == run.approximator_version_id, Score.sample_id.in_(ids)
            )
        )
    }
    missing = [i for i in ids if i not in stored]
    if missing:
        raise ValidationError(f"audit labels for samples {missing[:5]} that this score run's version never scored")
    if len(ids) < MIN_AUDIT:
        return _store(session, run, AuditResult(
            run.id, len(ids), None, threshold, None,
            f"audit skipped: only {len(ids)} unlabeled scored samples (need {MIN_AUDIT})", ids))
    rho = spearman(np.array([stored[i] for i in ids]), np.array([exact[i] for i in ids]))
    passed = rho >= threshold
    reason = (
        f"Spearman {rho:.3f} between ALinFiK and exact LinFiK on {len(ids)} audit samples "
        f"{'meets' if passed else 'is below'} the campaign's threshold {threshold:.3f}"
    )
    log.info("score run %d audit: %s", run.id, reason)
    return _store(session, run, AuditResult(run.id, len(ids), rho, threshold, passed, reason, ids))


@dataclass(frozen=True)
class AuditLabels:
    """Exact labels of the audit sample, or why there are none (``labels`` None, ``skip_reason`` set)."""

    labels: dict[int, float] | None
    skip_reason: str | None = None


def conclude_audit(session: Session, score_run_id: int, exact: AuditLabels) -> AuditResult:
    """:func:`record_audit` of the exact labels, or :func:`skip_audit` with the reason there are none."""
    if exact.labels is None:
        return skip_audit(session, score_run_id, exact.skip_reason or "no exact labels")
    return record_audit(session, score_run_id, exact.labels)


def skip_audit(session: Session, score_run_id: int, reason: str) -> AuditResult:
    run, _ = _run_and_version(session, score_run_id)
    campaign = session.get(Campaign, run.campaign_id)
    threshold = float(campaign.audit_threshold) if campaign else 0.0
    return _store(session, run, AuditResult(run.id, 0, None, threshold, None, f"audit skipped: {reason}", []))


def _store(session: Session, run: ScoreRun, result: AuditResult) -> AuditResult:
    run.audit = result.as_dict()
    run.finished_at = utcnow()
    if result.passed is False:
        run.status = RunStatus.FAILED
        run.error = result.reason
    else:
        run.status = RunStatus.COMPLETE
        run.error = None
    session.flush()
    return result


def raise_if_failed(result: AuditResult) -> None:
    """At the edge, after the audit was committed: stop the pipeline when agreement is too low."""
    if result.passed is False:
        raise AuditFailedError(
            f"score run {result.score_run_id}: {result.reason}; payouts are stopped. Retrain the approximator on "
            "more or fresher labels (`marketplace label`, `marketplace train`) or, if the audit sample is too small "
            "to judge, rerun the score with a larger --audit-n"
        )
