"""A labeling run's plan: which samples, which target data, which checkpoints, where on disk.

:func:`plan_label_run` is the only step of labeling that reads the pool from SQL. It draws the
stratified subsample, snapshots the texts to Parquet in the run folder, and creates (or reuses) the
:class:`~marketplace.db.LabelSet` row. Everything after it works from the run folder alone, so shard
tasks take a path and two integers and can run on any worker that sees the folder.

The run folder is ``{artifacts}/label_runs/campaign-{id}/{run_key}`` where ``run_key`` hashes the
config, every checkpoint digest, the subsample and the target data. Running the same request again
therefore lands in the same folder: an unfinished run resumes at its first unfinished shard, a
finished one is returned as is.

Run folder::

    plan.json                 the plan (this module)
    samples.parquet           sample_id, provider_id, text, prompt_chars, content_hash (row group = shard)
    target.parquet            target_id, text, prompt_chars, content_hash
    projection-c{c}.safetensors
    c{c}/train/, c{c}/target/ gradient stores (marketplace.valuation.store)
    query-c{c}.safetensors    q_c = η_c H_c⁻¹ ḡ_Y,c, written by the scoring step
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import Row, select
from sqlalchemy.orm import Session

from marketplace import __version__
from marketplace.campaigns import get_campaign
from marketplace.db import Campaign, LabelSet, RunStatus, Sample, Submission, TargetSample
from marketplace.db.eligibility import is_payable
from marketplace.db.label_sets import latest_complete_label_set
from marketplace.errors import ConfigError, ManifestMismatchError, NotFoundError, ValidationError
from marketplace.valuation.config import LinFiKConfig, stable_hash
from marketplace.valuation.sampling import stratified_subsample
from marketplace.valuation.target_model import digest_model_dir

__all__ = [
    "PLAN_FORMAT",
    "CheckpointRef",
    "LabelRunPlan",
    "campaign_targets",
    "digest_rows",
    "kept_label_config",
    "plan_label_run",
    "read_plan",
    "read_sample_rows",
    "read_target_rows",
    "resolve_checkpoints",
]

log = logging.getLogger(__name__)

PLAN_FORMAT = "marketplace-label-run/1"
DEFAULT_SHARD_SIZE = 512


@dataclass(frozen=True)
class CheckpointRef:
    path: str
    digest: str
    eta: float


@dataclass(frozen=True)
class LabelRunPlan:
    """What the shard tasks and the scoring step need; JSON-able (plan.json)."""

    run_dir: str
    run_key: str
    campaign_id: int
    label_set_id: int
    already_complete: bool
    n_requested: int
    n_samples: int
    n_target: int
    shard_size: int
    n_train_shards: int
    n_target_shards: int
    config: dict[str, Any]
    config_hash: str
    checkpoints: tuple[CheckpointRef, ...]
    sample_data_digest: str
    target_data_digest: str

    @property
    def linfik_config(self) -> LinFiKConfig:
        return LinFiKConfig.from_stored(self.config)

    def train_shard_ids(self, shard_index: int) -> tuple[int, int]:
        """(first row, row count) of a train shard in samples.parquet."""
        start = shard_index * self.shard_size
        return start, min(self.shard_size, self.n_samples - start)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["format"] = PLAN_FORMAT
        return d


def resolve_checkpoints(campaign: Campaign, config: LinFiKConfig) -> tuple[CheckpointRef, ...]:
    """The campaign's target model (η = config.eta) first, then each extra checkpoint, with digests.

    The campaign's model folder must still have the digest recorded when the campaign was created.
    """
    digest = digest_model_dir(campaign.target_model_path)
    if digest != campaign.target_model_digest:
        raise ManifestMismatchError(
            f"campaign {campaign.name!r}: the target model folder {campaign.target_model_path} has digest "
            f"{digest[:12]} but the campaign recorded {campaign.target_model_digest[:12]}; the model changed "
            "since the campaign was created. Restore it or create a new campaign"
        )
    refs = [CheckpointRef(path=str(Path(campaign.target_model_path).resolve()), digest=digest, eta=config.eta)]
    for spec in config.checkpoints:
        refs.append(CheckpointRef(path=str(Path(spec.path).expanduser().resolve()), digest=digest_model_dir(spec.path),
                                  eta=spec.eta))
    return tuple(refs)


def digest_rows(ids: list[int], hashes: list[str]) -> str:
    h = hashlib.sha256()
    for i, c in zip(ids, hashes, strict=True):
        h.update(f"{i}:{c}\n".encode())
    return h.hexdigest()


def _write_parquet_atomic(table: pa.Table, path: Path, row_group_size: int) -> None:
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, tmp, row_group_size=max(1, row_group_size))
    tmp.replace(path)


def kept_label_config(session: Session, campaign_id: int) -> LinFiKConfig:
    """The LinFiK configuration a campaign labels with when none is asked for: that of its latest
    complete label set (a scheduled run never silently switches back to the defaults), the library
    defaults for its first."""
    latest = latest_complete_label_set(session, campaign_id)
    return LinFiKConfig.from_stored(latest.config) if latest is not None else LinFiKConfig()


def campaign_targets(session: Session, campaign: Campaign) -> tuple[list[Row[Any]], str]:
    """The campaign's target samples in record order (id, text, prompt_chars, content_hash) and their
    digest; a ValidationError when it has none."""
    targets = list(session.execute(
        select(TargetSample.id, TargetSample.text, TargetSample.prompt_chars, TargetSample.content_hash)
        .where(TargetSample.campaign_id == campaign.id).order_by(TargetSample.record_index)
    ).all())
    if not targets:
        raise ValidationError(f"campaign {campaign.name!r} has no target samples; recreate it with target data")
    return targets, digest_rows([t.id for t in targets], [t.content_hash for t in targets])


def plan_label_run(
    session: Session,
    campaign: int | str,
    config: LinFiKConfig | None,
    *,
    n: int,
    artifacts_dir: Path,
    shard_size: int = DEFAULT_SHARD_SIZE,
) -> LabelRunPlan:
    """Draw the subsample, write the run folder's inputs, create or reuse the LabelSet. Never commits.

    ``config`` None: :func:`kept_label_config` (the campaign's latest complete label set's)."""
    check_label_count(n)
    if shard_size <= 0:
        raise ConfigError(f"shard size must be positive, got {shard_size}")
    camp = get_campaign(session, campaign)
    if config is None:
        config = kept_label_config(session, camp.id)
    checkpoints = resolve_checkpoints(camp, config)
    targets, target_digest = campaign_targets(session, camp)
    samples = _draw_samples(session, n, config.seed)
    sample_digest = digest_rows([r.id for r in samples], [r.content_hash for r in samples])
    run_key = stable_hash({
        "campaign": camp.id, "config": config.config_hash(), "checkpoints": [c.digest for c in checkpoints],
        "samples": sample_digest, "target": target_digest,
    })[:20]
    run_dir = (Path(artifacts_dir) / "label_runs" / f"campaign-{camp.id}" / run_key).resolve()
    shard_size = _resumed_shard_size(run_dir, sample_digest, config.config_hash(), shard_size)
    lineage = {
        "checkpoints": [asdict(c) for c in checkpoints],
        "sample_data_digest": sample_digest,
        "target_rows_digest": target_digest,
        "run_key": run_key,
        "code_version": __version__,
        "shard_size": shard_size,
    }
    label_set, already_complete = _find_or_add_label_set(session, camp, config, run_dir, n, lineage)
    plan = LabelRunPlan(
        run_dir=str(run_dir), run_key=run_key, campaign_id=camp.id, label_set_id=label_set.id,
        already_complete=already_complete, n_requested=n, n_samples=len(samples), n_target=len(targets),
        shard_size=shard_size, n_train_shards=_n_shards(len(samples), shard_size),
        n_target_shards=_n_shards(len(targets), shard_size), config=config.summary(),
        config_hash=config.config_hash(), checkpoints=checkpoints, sample_data_digest=sample_digest,
        target_data_digest=target_digest,
    )
    if not (run_dir / "plan.json").exists():
        _write_run_folder(plan, samples, targets)
    log.info("label run %s: %d samples in %d shard(s), %d target samples, %d checkpoint(s)%s",
             run_key, len(samples), plan.n_train_shards, len(targets), len(checkpoints),
             " (already complete)" if already_complete else "")
    return plan


def _n_shards(rows: int, shard_size: int) -> int:
    return (rows + shard_size - 1) // shard_size


#: The most samples one label run takes: exact labels cost a forward and backward pass each (about
#: 10 per second per CPU core on the demo model), so more is days of work; label in several runs.
MAX_LABEL_COUNT = 1_000_000


def check_label_count(n: int) -> None:
    """Raise ConfigError unless 1 <= ``n`` <= :data:`MAX_LABEL_COUNT` (callers check before starting work)."""
    if not 1 <= n <= MAX_LABEL_COUNT:
        raise ConfigError(f"--n must be between 1 and {MAX_LABEL_COUNT:,}, got {n:,}: exact labels take a forward and "
                          "backward pass each; a few hundred to a few thousand are enough to train the approximator")


def preflight_label(session: Session, campaign: int | str, n: int) -> None:
    """What ``marketplace label`` checks before it starts a flow: the count, the campaign, a non-empty pool."""
    check_label_count(n)
    get_campaign(session, campaign)
    if session.scalar(select(Sample.id).join(Submission, Submission.id == Sample.submission_id)
                      .where(is_payable()).limit(1)) is None:
        raise ValidationError("the pool has no accepted first-owner samples to label; ingest provider data first")


def _draw_samples(session: Session, n: int, seed: int) -> list[Row[Any]]:
    """The stratified subsample of the payable pool (id, provider_id, text, prompt_chars, content_hash),
    in draw order; all of it when the pool is smaller than ``n``."""
    pool = session.execute(
        select(Sample.id, Sample.provider_id)
        .join(Submission, Submission.id == Sample.submission_id)
        .where(is_payable())
    ).all()
    if not pool:
        raise ValidationError("the pool has no accepted first-owner samples to label; ingest provider data first")
    pool_ids = np.fromiter((r[0] for r in pool), dtype=np.int64, count=len(pool))
    pool_providers = np.fromiter((r[1] for r in pool), dtype=np.int64, count=len(pool))
    chosen = stratified_subsample(pool_ids, pool_providers, n, seed).tolist()
    if len(chosen) < n:
        log.warning("asked for %d samples but the pool has only %d first-owner samples: labeling all", n, len(chosen))
    rows = {
        r.id: r for r in session.execute(
            select(Sample.id, Sample.provider_id, Sample.text, Sample.prompt_chars, Sample.content_hash)
            .where(Sample.id.in_(chosen))
        ).all()
    }
    return [rows[i] for i in chosen]


def _resumed_shard_size(run_dir: Path, sample_digest: str, config_hash: str, shard_size: int) -> int:
    """``shard_size``, or the original one of a run folder planned before (its shards are on disk)."""
    plan_path = run_dir / "plan.json"
    if not plan_path.exists():
        return shard_size
    old = json.loads(plan_path.read_text(encoding="utf-8"))
    if old.get("sample_data_digest") != sample_digest or old.get("config_hash") != config_hash:
        raise ManifestMismatchError(f"run folder {run_dir} holds another run's plan; delete it to start over")
    if old["shard_size"] != shard_size:
        log.info("resuming with the run's original shard size %d (asked for %d)", old["shard_size"], shard_size)
    return int(old["shard_size"])


def _find_or_add_label_set(session: Session, camp: Campaign, config: LinFiKConfig, run_dir: Path, n: int,
                           lineage: dict[str, Any]) -> tuple[LabelSet, bool]:
    """The label set of ``run_dir`` (running again unless complete), or a new running one; and
    whether it is already complete."""
    existing = session.execute(
        select(LabelSet).where(LabelSet.store_uri == str(run_dir)).order_by(LabelSet.id.desc())
    ).scalars().first()
    if existing is not None:
        if existing.status == RunStatus.COMPLETE:
            return existing, True
        existing.status = RunStatus.RUNNING
        log.info("resuming label set %d in %s", existing.id, run_dir)
        return existing, False
    label_set = LabelSet(
        campaign_id=camp.id, config=config.summary(), config_hash=config.config_hash(),
        projection_seed=config.projection.seed, projection_config_hash=config.projection.config_hash(),
        target_model_digest=lineage["checkpoints"][0]["digest"], target_data_digest=camp.target_data_digest,
        store_uri=str(run_dir), n_requested=n, n_labeled=0, status=RunStatus.RUNNING, lineage=lineage, stats={},
    )
    session.add(label_set)
    session.flush()
    return label_set, False


def _write_run_folder(plan: LabelRunPlan, samples: Sequence[Row[Any]], targets: Sequence[Row[Any]]) -> None:
    """samples.parquet and target.parquet (one row group per shard), then plan.json last: a folder
    with a plan.json is complete."""
    run_dir = Path(plan.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    _write_parquet_atomic(pa.table({
        "sample_id": pa.array([r.id for r in samples], pa.int64()),
        "provider_id": pa.array([r.provider_id for r in samples], pa.int64()),
        **_text_columns(samples),
    }), run_dir / "samples.parquet", plan.shard_size)
    _write_parquet_atomic(pa.table({
        "target_id": pa.array([t.id for t in targets], pa.int64()),
        **_text_columns(targets),
    }), run_dir / "target.parquet", plan.shard_size)
    payload = plan.to_json()
    payload.pop("label_set_id")
    payload.pop("already_complete")
    tmp = run_dir / "plan.json.tmp"
    tmp.write_text(json.dumps(payload, indent=1, sort_keys=True), encoding="utf-8")
    tmp.replace(run_dir / "plan.json")


def _text_columns(rows: Sequence[Row[Any]]) -> dict[str, pa.Array]:
    return {
        "text": pa.array([r.text for r in rows], pa.large_string()),
        "prompt_chars": pa.array([r.prompt_chars for r in rows], pa.int64()),
        "content_hash": pa.array([r.content_hash for r in rows], pa.string()),
    }


def read_plan(run_dir: str | Path, *, label_set_id: int = 0, already_complete: bool = False) -> LabelRunPlan:
    """The plan stored in a run folder (the LabelSet id is not stored there: pass it if needed)."""
    path = Path(run_dir) / "plan.json"
    if not path.exists():
        raise NotFoundError(f"no label run plan at {path}; plan the run first (marketplace label)")
    d = json.loads(path.read_text(encoding="utf-8"))
    if d.pop("format", None) != PLAN_FORMAT:
        raise ManifestMismatchError(f"{path} is not a {PLAN_FORMAT} plan; delete the run folder to start over")
    d["checkpoints"] = tuple(CheckpointRef(**c) for c in d["checkpoints"])
    return LabelRunPlan(label_set_id=label_set_id, already_complete=already_complete, **d)


def read_sample_rows(plan: LabelRunPlan, shard_index: int) -> pa.Table:
    """Rows of one train shard (one Parquet row group)."""
    pf = pq.ParquetFile(Path(plan.run_dir) / "samples.parquet")
    return pf.read_row_group(shard_index)


def read_target_rows(plan: LabelRunPlan, shard_index: int) -> pa.Table:
    pf = pq.ParquetFile(Path(plan.run_dir) / "target.parquet")
    return pf.read_row_group(shard_index)
