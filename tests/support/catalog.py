"""Tiny builders for pricing/ledger tests: campaigns, providers, submissions, samples and made-up scores.

The scoring pipeline is someone else's; these create the rows it would leave behind, directly.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Mapping, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from marketplace.db import (
    ApproximatorVersion,
    Campaign,
    DuplicateKind,
    LabelSet,
    Provider,
    RunStatus,
    Sample,
    Score,
    ScoreRun,
    Submission,
    SubmissionStatus,
    utcnow,
)

_counter = itertools.count(1)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def make_campaign(session: Session, name: str | None = None, budget_minor: int = 100_000,
                  currency: str = "EUR", audit_threshold: float = 0.5, screen: str = "none") -> Campaign:
    """A campaign over a model that is not on disk: priced on its scores alone (``screen="none"``) unless a
    test gives the fine-tuning check's result itself (``create_pricing_run(..., screening=...)``)."""
    name = name or f"campaign-{next(_counter)}"
    c = Campaign(name=name, target_model_path="/models/tiny", target_model_digest=_sha("model"),
                 target_data_path="/data/target.jsonl", target_data_digest=_sha("target"),
                 budget_minor=budget_minor, currency=currency, audit_threshold=audit_threshold,
                 options={"pricing": {"screen": screen}})
    session.add(c)
    session.flush()
    return c


def make_provider(session: Session, name: str | None = None) -> Provider:
    p = Provider(name=name or f"provider-{next(_counter)}")
    session.add(p)
    session.flush()
    return p


def make_submission(session: Session, provider: Provider, texts: Sequence[str], *,
                    filename: str | None = None) -> tuple[Submission, list[Sample]]:
    """An accepted submission whose samples are all first owners (texts must be new to the pool)."""
    blob = "\n".join(texts) + f"#{next(_counter)}"
    sub = Submission(provider_id=provider.id, filename=filename or f"data-{next(_counter)}.jsonl", format="jsonl",
                     content_sha256=_sha(blob), byte_size=len(blob), status=SubmissionStatus.ACCEPTED,
                     n_records=len(texts), n_accepted=len(texts), n_quarantined=0)
    session.add(sub)
    session.flush()
    samples = [
        Sample(submission_id=sub.id, provider_id=provider.id, record_index=i, text=t, content_hash=_sha(t),
               n_chars=len(t))
        for i, t in enumerate(texts)
    ]
    session.add_all(samples)
    session.flush()
    return sub, samples


def make_copy_submission(session: Session, provider: Provider, original: Submission,
                         original_samples: Sequence[Sample]) -> tuple[Submission, list[Sample]]:
    """Another provider uploads the same file: status copy, every sample a duplicate of the original's."""
    sub = Submission(provider_id=provider.id, filename=f"copy-{next(_counter)}.jsonl", format="jsonl",
                     content_sha256=original.content_sha256, byte_size=original.byte_size,
                     status=SubmissionStatus.COPY, copy_of_submission_id=original.id,
                     n_records=original.n_records, n_accepted=original.n_accepted, n_quarantined=0)
    session.add(sub)
    session.flush()
    samples = [
        Sample(submission_id=sub.id, provider_id=provider.id, record_index=o.record_index, text=o.text,
               content_hash=o.content_hash, n_chars=o.n_chars, duplicate_of_id=o.id,
               duplicate_kind=DuplicateKind.EXACT)
        for o in original_samples
    ]
    session.add_all(samples)
    session.flush()
    return sub, samples


def make_score_run(session: Session, campaign: Campaign, scores: Mapping[int, float], *,
                   status: RunStatus = RunStatus.COMPLETE, audit: dict[str, object] | None = None) -> ScoreRun:
    """A new approximator version (from the campaign's label set) and a score run with ``scores`` by sample id.

    ``audit``: the run's stored audit; None stores one that passed (pricing needs a passed audit)."""
    label_set = session.scalar(select(LabelSet).where(LabelSet.campaign_id == campaign.id).limit(1))
    if label_set is None:
        extra = {"projection_config_hash": _sha("proj")} if hasattr(LabelSet, "projection_config_hash") else {}
        label_set = LabelSet(campaign_id=campaign.id, config={"k": 1}, config_hash=_sha("cfg"), projection_seed=0,
                             target_model_digest=campaign.target_model_digest,
                             target_data_digest=campaign.target_data_digest, store_uri="file:///tmp/labels",
                             n_requested=10, n_labeled=10, status=RunStatus.COMPLETE, **extra)
        session.add(label_set)
        session.flush()
    n = next(_counter)
    version = ApproximatorVersion(campaign_id=campaign.id, label_set_id=label_set.id,
                                  model_name=f"alinfik-{campaign.id}", version=str(n),
                                  model_uri=f"models:/alinfik-{campaign.id}/{n}", mlflow_run_id=f"run{n}",
                                  metrics={"spearman": 0.9}, promoted=True)
    session.add(version)
    session.flush()
    run = ScoreRun(campaign_id=campaign.id, approximator_version_id=version.id, status=status,
                   n_scored=len(scores), audit=audit if audit is not None else {"passed": True, "spearman": 1.0},
                   finished_at=utcnow())
    session.add(run)
    session.flush()
    session.add_all(
        Score(score_run_id=run.id, approximator_version_id=version.id, sample_id=sid, score=float(s))
        for sid, s in scores.items()
    )
    session.flush()
    return run
