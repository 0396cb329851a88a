"""What a payout validation trains and evaluates on: K payable samples per provider and seed, and the
campaign's target set.

Samples are drawn from each provider's *payable* samples (first owners in accepted submissions,
:func:`marketplace.db.eligibility.is_payable`): a duplicate is never paid, so it never speaks for its
provider here either. The draw is seeded by (seed, provider id), so the same database and config give
the same samples, and a provider's draw does not move when another provider uploads more data.

The evaluation set is the campaign's target data (``TargetSample`` rows, in record order), the same
texts whose mean loss LinFiK predicts the drop of. Prompt/response samples keep their ``prompt_chars``
so the prompt stays masked in the loss, as when they were labeled.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from marketplace.campaigns import get_campaign
from marketplace.db import Provider, Sample, Submission, TargetSample
from marketplace.db.eligibility import is_payable
from marketplace.errors import NotFoundError
from marketplace.validation.config import ValidationConfig

__all__ = ["ProviderDraw", "ValidationData", "draw_samples", "load_validation_data"]

_ID_CHUNK = 1000  # sample ids per IN (...) when reading the drawn texts


@dataclass(frozen=True)
class ProviderDraw:
    """One provider's drawn samples: ``draws[i]`` are the sample ids for ``seeds[i]`` (sorted)."""

    provider_id: int
    provider_name: str
    n_payable: int
    draws: tuple[tuple[int, ...], ...]

    @property
    def n_used(self) -> int:
        """Samples per fine-tuning run: min(K, n_payable)."""
        return len(self.draws[0]) if self.draws else 0


@dataclass(frozen=True)
class ValidationData:
    """Everything :func:`~marketplace.validation.gains.measure_gains` needs, read in one session.

    ``texts`` maps every drawn sample id to (text, prompt_chars); ``target_texts`` and
    ``target_prompt_chars`` are the evaluation set, in record order.
    """

    campaign_id: int
    campaign_name: str
    model_dir: str
    per_provider: int
    seeds: tuple[int, ...]
    providers: tuple[ProviderDraw, ...]
    texts: Mapping[int, tuple[str, int | None]]
    target_texts: tuple[str, ...]
    target_prompt_chars: tuple[int | None, ...]
    model_digest: str = ""  # the digest the campaign pins for its target model ("" when unknown: no reuse)


def draw_samples(payable_ids: Sequence[int], k: int, seed: int, provider_id: int) -> tuple[int, ...]:
    """min(k, n) of ``payable_ids`` without replacement, seeded by (seed, provider_id); sorted ids.

    Independent of the order the ids come in (they are sorted first), so both engines draw alike.
    """
    pool = np.sort(np.asarray(payable_ids, dtype=np.int64))
    n = min(k, pool.size)
    rng = np.random.default_rng([int(seed), int(provider_id)])
    return tuple(int(i) for i in np.sort(rng.choice(pool, size=n, replace=False)))


def _payable_ids_by_provider(session: Session) -> dict[int, list[int]]:
    rows = session.execute(
        select(Sample.provider_id, Sample.id)
        .join(Submission, Submission.id == Sample.submission_id)
        .where(is_payable())
        .order_by(Sample.provider_id, Sample.id)
    ).all()
    out: dict[int, list[int]] = {}
    for provider_id, sample_id in rows:
        out.setdefault(int(provider_id), []).append(int(sample_id))
    return out


def _texts(session: Session, ids: Sequence[int]) -> dict[int, tuple[str, int | None]]:
    out: dict[int, tuple[str, int | None]] = {}
    ordered = sorted(ids)
    for start in range(0, len(ordered), _ID_CHUNK):
        part = ordered[start:start + _ID_CHUNK]
        for sid, text, prompt_chars in session.execute(
                select(Sample.id, Sample.text, Sample.prompt_chars).where(Sample.id.in_(part))):
            out[int(sid)] = (text, prompt_chars)
    return out


def load_validation_data(session: Session, campaign: str | int, config: ValidationConfig) -> ValidationData:
    """Draw K payable samples per provider and seed, and read the campaign's target set (read only).

    Providers without a payable sample are left out (nothing to fine-tune on). Raises
    :class:`NotFoundError` when the campaign has no target samples or no provider has a payable sample.
    """
    camp = get_campaign(session, campaign)
    targets = session.execute(
        select(TargetSample.text, TargetSample.prompt_chars)
        .where(TargetSample.campaign_id == camp.id).order_by(TargetSample.record_index)
    ).all()
    if not targets:
        raise NotFoundError(f"campaign {camp.name!r} has no target samples to evaluate on; recreate it with "
                            "its target data (`marketplace campaign create ... --target-data FILE`)")
    by_provider = _payable_ids_by_provider(session)
    if not by_provider:
        raise NotFoundError("no provider has a payable sample (an accepted first owner); ingest provider data "
                            "with `marketplace ingest` first")
    names = {int(pid): str(name) for pid, name in session.execute(
        select(Provider.id, Provider.name).where(Provider.id.in_(list(by_provider))))}
    providers = tuple(
        ProviderDraw(provider_id=pid, provider_name=names[pid], n_payable=len(ids),
                     draws=tuple(draw_samples(ids, config.per_provider, seed, pid) for seed in config.seeds))
        for pid, ids in sorted(by_provider.items())
    )
    drawn = {sid for p in providers for draw in p.draws for sid in draw}
    return ValidationData(
        campaign_id=camp.id, campaign_name=camp.name, model_dir=camp.target_model_path,
        model_digest=camp.target_model_digest, per_provider=config.per_provider, seeds=config.seeds,
        providers=providers, texts=_texts(session, list(drawn)),
        target_texts=tuple(t.text for t in targets), target_prompt_chars=tuple(t.prompt_chars for t in targets),
    )
