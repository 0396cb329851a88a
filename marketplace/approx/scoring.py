"""Scoring every sample with one approximator version, incrementally, shard by shard.

A score run is planned once (:func:`start_score_run`: which samples this version has not scored yet,
cut into id-range shards); each shard is then loaded, computed and written in three steps so that no
database transaction stays open while the encoder runs (SQLite has one writer; a long-held lock would
stall the other shards):

    load_shard (short read)  →  compute_shard (no DB: cache lookup, embed misses, heads)  →
    write_shard (short write, insert-or-ignore on (version, sample))

Re-running a shard, or a whole run, never scores a sample twice for the same version: the unique
(approximator_version_id, sample_id) constraint and the "not yet scored" filter make it a no-op.

A token-weighted model (``Approximator.token_factor``) multiplies each prediction by the sample's
exact T(x)/L. With a count store (``counts``, token_factor.open_count_store) the counts are cached
like the embeddings and a shard loads only the texts either cache misses (``counts_cached``);
without one it loads every text (``all_texts=True``) and counts them all.

Which samples: every sample in the pool — first owners and duplicates alike (a duplicate has the same
text, so the same score, and its embedding is a cache hit). Pricing pays first owners only; pass
``first_owners_only=True`` to skip the duplicates.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sqlalchemy import ColumnElement, exists, func, select, update
from sqlalchemy.orm import Session

from marketplace.approx.bundle import Approximator, load_bundle
from marketplace.approx.embedding_store import EmbeddingStore, open_embedding_store
from marketplace.approx.token_factor import count_key, open_count_store
from marketplace.db import ApproximatorVersion, Campaign, RunStatus, Sample, Score, ScoreRun, utcnow
from marketplace.db.eligibility import is_first_owner
from marketplace.db.engine import is_postgres
from marketplace.errors import ManifestMismatchError, NotFoundError, ValidationError

__all__ = [
    "DEFAULT_SHARD_SIZE",
    "ScoringPlan",
    "ShardInput",
    "ShardScores",
    "compute_shard",
    "fail_score_run",
    "load_shard",
    "open_scorer",
    "start_score_run",
    "write_shard",
]

log = logging.getLogger(__name__)

DEFAULT_SHARD_SIZE = 2000  # samples per score shard: one short read, one encoder pass, one short write


@dataclass(frozen=True)
class ScoringPlan:
    score_run_id: int
    approximator_version_id: int
    n_todo: int
    shards: list[tuple[int, int]]  # inclusive sample-id ranges, each holding ≤ shard_size unscored samples


def _unscored(version_id: int, first_owners_only: bool) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = [
        ~exists().where(Score.sample_id == Sample.id, Score.approximator_version_id == version_id),
    ]
    if first_owners_only:
        conds.append(is_first_owner())
    return conds


def start_score_run(
    session: Session,
    campaign_id: int,
    version: ApproximatorVersion | int,
    *,
    resolved_from: str,
    shard_size: int = DEFAULT_SHARD_SIZE,
    first_owners_only: bool = False,
) -> ScoringPlan:
    """Create a running ScoreRun and cut the samples ``version`` (a row or its id) has not scored into
    shards."""
    if shard_size < 1:
        raise ValidationError(f"shard size must be positive, got {shard_size}")
    if session.get(Campaign, campaign_id) is None:
        raise NotFoundError(f"campaign {campaign_id} not found")
    if isinstance(version, int):
        found = session.get(ApproximatorVersion, version)
        if found is None:
            raise NotFoundError(f"approximator version row {version} not found; list them with "
                                "`marketplace registry list CAMPAIGN`")
        version = found
    ids = np.asarray(
        session.scalars(
            select(Sample.id).where(*_unscored(version.id, first_owners_only)).order_by(Sample.id)
        ).all(),
        dtype=np.int64,
    )
    run = ScoreRun(
        campaign_id=campaign_id, approximator_version_id=version.id, status=RunStatus.RUNNING,
        resolved_from=resolved_from, n_todo=int(ids.size), n_scored=0, audit={},
    )
    session.add(run)
    session.flush()
    shards = [(int(ids[i]), int(ids[min(i + shard_size, ids.size) - 1])) for i in range(0, ids.size, shard_size)]
    log.info("score run %d: %s v%s has %d samples to score in %d shards",
             run.id, version.model_name, version.version, ids.size, len(shards))
    return ScoringPlan(run.id, version.id, int(ids.size), shards)


@dataclass
class ShardInput:
    score_run_id: int
    approximator_version_id: int
    sample_ids: np.ndarray  # (N,) int64
    content_hashes: list[str]
    texts: dict[int, str] = field(default_factory=dict)  # position -> text, only where needed
    prompt_chars: list[int | None] = field(default_factory=list)  # per position


def load_shard(
    session: Session,
    score_run_id: int,
    lo_id: int,
    hi_id: int,
    *,
    is_cached: Callable[[Sequence[str]], np.ndarray] | None = None,
    first_owners_only: bool = False,
    all_texts: bool = False,
    counts_cached: Callable[[Sequence[str]], np.ndarray] | None = None,
) -> ShardInput:
    """Samples of [lo_id, hi_id] the run's version has not scored, with texts only for cache misses.

    ``is_cached`` maps content hashes to a bool mask (the embedding store); None loads every text
    (a fine-tuned model embeds everything itself). ``all_texts``: every text, whatever the cache
    holds (a token-weighted model without a count store counts every sample's tokens).
    ``counts_cached``: the count store's ``contains`` (over :func:`count_key` keys); texts whose token
    count is not cached are loaded too.
    """
    run = session.get(ScoreRun, score_run_id)
    if run is None:
        raise NotFoundError(f"score run {score_run_id} not found")
    rows = session.execute(
        select(Sample.id, Sample.content_hash, Sample.prompt_chars)
        .where(Sample.id >= lo_id, Sample.id <= hi_id, *_unscored(run.approximator_version_id, first_owners_only))
        .order_by(Sample.id)
    ).all()
    ids = np.array([r.id for r in rows], dtype=np.int64)
    hashes = [r.content_hash for r in rows]
    prompts = [r.prompt_chars for r in rows]
    need = np.ones(len(rows), dtype=bool) if is_cached is None or all_texts else ~is_cached(hashes)
    if counts_cached is not None and len(rows):
        need |= ~counts_cached([count_key(h, p) for h, p in zip(hashes, prompts, strict=True)])
    texts: dict[int, str] = {}
    if need.any():
        pos = np.flatnonzero(need)
        by_id: dict[int, str] = {
            int(r.id): r.text
            for r in session.execute(select(Sample.id, Sample.text).where(Sample.id.in_(ids[pos].tolist())))
        }
        texts = {int(p): by_id[int(ids[p])] for p in pos}
    return ShardInput(score_run_id, run.approximator_version_id, ids, hashes, texts, prompts)


@dataclass(frozen=True)
class ShardScores:
    score_run_id: int
    approximator_version_id: int
    sample_ids: np.ndarray  # (N,)
    scores: np.ndarray  # (N,) float64, LinFiK units
    spreads: np.ndarray  # (N,)
    n_embedded: int


def open_scorer(bundle_dir: str | Path, store_root: str | Path,
                device: str = "cpu") -> tuple[Approximator, EmbeddingStore | None, EmbeddingStore | None]:
    """A bundle loaded for :func:`compute_shard`, with the caches it scores through: the embedding store
    (None for a fine-tuned model, which embeds everything itself) and, for a token-weighted model, the
    token-count store (else None). ``store_root``: the shared cache folder of every campaign."""
    bundle = load_bundle(bundle_dir)
    approx = Approximator(bundle, device=device)
    store = counts = None
    if approx.embedding_cache_key is not None:
        store = open_embedding_store(store_root, bundle.encoder_ref, bundle.config.embed, bundle.dim)
    if bundle.token_factor is not None:
        counts = open_count_store(store_root, bundle.token_factor)
    return approx, store, counts


def compute_shard(shard: ShardInput, approx: Approximator, store: EmbeddingStore | None,
                  counts: EmbeddingStore | None = None) -> ShardScores:
    """Predict the shard. Frozen mode: cached embeddings + embed the misses (and cache them).
    A token-weighted model takes its token counts from ``counts`` (counting and caching the misses),
    or, without a count store, needs the shard loaded with ``all_texts=True``."""
    n = shard.sample_ids.size
    if n == 0:
        empty = np.zeros(0)
        return ShardScores(shard.score_run_id, shard.approximator_version_id, shard.sample_ids, empty, empty, 0)
    if store is not None:
        if store.manifest.get("cache_key") != approx.embedding_cache_key:
            raise ManifestMismatchError(
                f"score run {shard.score_run_id}: the embedding store {store.dir.name} holds another encoder's "
                f"vectors than this model's ({approx.embedding_cache_key}); open the model's own store with open_scorer"
            )
        x, stats = store.ensure(
            shard.content_hashes, lambda positions: [shard.texts[p] for p in positions], approx.embed
        )
        n_embedded = stats.n_computed
    else:
        x = approx.embed([shard.texts[p] for p in range(n)])
        n_embedded = n
    factor = None
    token_factor = approx.token_factor
    if token_factor is not None and counts is not None:
        factor = token_factor.weights_cached(counts, shard.content_hashes, shard.texts, shard.prompt_chars)
    elif token_factor is not None:
        if len(shard.texts) != n:
            raise ValidationError(f"score run {shard.score_run_id}: a token-weighted model without a count store "
                                  "needs every text of the shard; load it with all_texts=True")
        factor = token_factor.weights([shard.texts[p] for p in range(n)], shard.prompt_chars)
    pred = approx.predict_embeddings(x, factor)
    if not (np.isfinite(pred.score).all() and np.isfinite(pred.spread).all()):
        raise ValidationError(f"score run {shard.score_run_id}: the model produced NaN/inf scores; retrain it")
    return ShardScores(shard.score_run_id, shard.approximator_version_id, shard.sample_ids, pred.score, pred.spread,
                       n_embedded)


def write_shard(session: Session, scores: ShardScores) -> int:
    """Insert the shard's scores, ignoring samples this version already scored. Returns rows written."""
    if scores.sample_ids.size == 0:
        return 0
    rows = [
        {"score_run_id": scores.score_run_id, "approximator_version_id": scores.approximator_version_id,
         "sample_id": int(sid), "score": float(s), "score_std": float(sd)}
        for sid, s, sd in zip(scores.sample_ids.tolist(), scores.scores.tolist(), scores.spreads.tolist(), strict=True)
    ]
    if is_postgres(session):
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert  # type: ignore[assignment]
    lo, hi = int(scores.sample_ids.min()), int(scores.sample_ids.max())
    before = _count_scores(session, scores.approximator_version_id, lo, hi)
    session.execute(
        dialect_insert(Score).on_conflict_do_nothing(index_elements=["approximator_version_id", "sample_id"]), rows
    )
    written = _count_scores(session, scores.approximator_version_id, lo, hi) - before
    session.execute(
        update(ScoreRun).where(ScoreRun.id == scores.score_run_id).values(n_scored=ScoreRun.n_scored + written)
    )
    run = session.get(ScoreRun, scores.score_run_id)
    if run is not None:
        log.info("score run %d: %d scores written for samples %d..%d; %d/%d done", run.id, written, lo, hi,
                 run.n_scored, run.n_todo)
    return written


def _count_scores(session: Session, version_id: int, lo_id: int, hi_id: int) -> int:
    """Scores of one version in a sample-id range (served by the unique (version, sample) index)."""
    return int(session.scalar(
        select(func.count()).select_from(Score).where(
            Score.approximator_version_id == version_id, Score.sample_id >= lo_id, Score.sample_id <= hi_id
        )
    ) or 0)


def fail_score_run(session: Session, score_run_id: int, reason: str) -> None:
    """Record that a running score run stopped (its scores stay: rerunning scores only what is missing).
    A run that already finished (or does not exist) is left as it is."""
    run = session.get(ScoreRun, score_run_id)
    if run is None or run.status != RunStatus.RUNNING:
        return
    run.status = RunStatus.FAILED
    run.error = reason
    run.finished_at = utcnow()
    session.flush()

