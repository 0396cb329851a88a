"""Active labeling: which samples to label exactly next.

The ensemble heads disagree most where the approximator has seen nothing like the sample; their
spread (std over heads, stored with every score as ``score_std``) ranks unlabeled first-owner samples
by how much an exact label would teach. Samples of any label set of the campaign are excluded.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from marketplace.approx.export import resolve_scored_version
from marketplace.db import Label, LabelSet, Provider, Sample, Score, Submission
from marketplace.db.eligibility import is_payable
from marketplace.errors import ValidationError

__all__ = ["LabelCandidate", "rank_for_labeling"]


@dataclass(frozen=True, slots=True)
class LabelCandidate:
    sample_id: int
    provider: str
    score: float
    spread: float


def rank_for_labeling(
    session: Session, campaign_id: int, n: int, *, version: str | None = None
) -> tuple[str, list[LabelCandidate]]:
    """The ``n`` unlabeled first-owner samples with the largest ensemble spread (ties: lower id).

    Returns (model version used, candidates). Needs a score run of that version (the spreads are
    stored with the scores).
    """
    if n < 1:
        raise ValidationError(f"--n must be at least 1, got {n}")
    row = resolve_scored_version(session, campaign_id, version)
    labeled = (
        select(Label.sample_id)
        .join(LabelSet, LabelSet.id == Label.label_set_id)
        .where(LabelSet.campaign_id == campaign_id)
    )
    rows = session.execute(
        select(Sample.id, Provider.name, Score.score, Score.score_std)
        .join(Score, Score.sample_id == Sample.id)
        .join(Provider, Provider.id == Sample.provider_id)
        .join(Submission, Submission.id == Sample.submission_id)
        .where(
            Score.approximator_version_id == row.id,
            is_payable(),  # the labeling pool (marketplace.valuation.runs)
            Sample.id.not_in(labeled),
            Score.score_std.is_not(None),
        )
        .order_by(Score.score_std.desc(), Sample.id)
        .limit(n)
    ).all()
    return f"{row.model_name}/{row.version}", [
        LabelCandidate(int(r[0]), str(r[1]), float(r[2]), float(r[3])) for r in rows
    ]
