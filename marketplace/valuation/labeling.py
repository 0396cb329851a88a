"""Labeling: exact LinFiK for a campaign's subsample, persisted as a LabelSet with its lineage.

The steps (each one core call, so the Prefect flow can wrap them one task each):

1. :func:`~marketplace.valuation.runs.plan_label_run` — subsample, snapshot, LabelSet row;
2. :func:`~marketplace.valuation.gradients.compute_target_shards` per checkpoint — ḡ_Y's inputs;
3. :func:`~marketplace.valuation.gradients.compute_train_shard` per (checkpoint, shard);
4. :func:`~marketplace.valuation.scoring.score_label_run` — preconditioner, query, scores, Label
   rows, status ``complete``.

:func:`create_label_set` runs them in order in one process (the label flow maps step 3 over a task
runner instead). Exact labels of samples outside any label set (the ALinFiK audit) are
:func:`marketplace.valuation.exact_labels.label_sample_ids`.

Sessions: the caller owns them; nothing here commits.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

import torch
from sqlalchemy.orm import Session

from marketplace.valuation.config import LinFiKConfig
from marketplace.valuation.gradients import ShardOutcome, compute_target_shards, compute_train_shard
from marketplace.valuation.runs import DEFAULT_SHARD_SIZE, plan_label_run
from marketplace.valuation.scoring import score_label_run
from marketplace.valuation.summary import LabelRunSummary, get_label_set, summary_of

__all__ = ["create_label_set"]


def create_label_set(
    session: Session,
    campaign: int | str,
    config: LinFiKConfig | None,
    *,
    n: int,
    artifacts_dir: Path,
    device: str | torch.device = "cpu",
    batch_size: int = 8,
    shard_size: int = DEFAULT_SHARD_SIZE,
    on_shard_done: Callable[[ShardOutcome], None] | None = None,
) -> LabelRunSummary:
    """Label ``n`` samples of a campaign's pool in this process. Never commits (the caller does).

    ``config`` None keeps the campaign's latest label configuration (see
    :func:`~marketplace.valuation.runs.kept_label_config`). A second call with the same arguments
    after an interruption resumes from the stores on disk; after success it returns the finished
    label set (``reused=True``). ``on_shard_done`` is called after every train shard (progress
    reporting; tests use it to simulate a crash).
    """
    t0 = time.perf_counter()
    plan = plan_label_run(session, campaign, config, n=n, artifacts_dir=artifacts_dir, shard_size=shard_size)
    if plan.already_complete:
        return summary_of(get_label_set(session, plan.label_set_id), reused=True)
    computed = skipped = 0
    for c in range(len(plan.checkpoints)):
        compute_target_shards(plan, c, device=device, batch_size=batch_size)
        for s in range(plan.n_train_shards):
            outcome = compute_train_shard(plan, c, s, device=device, batch_size=batch_size)
            computed += outcome.computed
            skipped += not outcome.computed
            if on_shard_done is not None:
                on_shard_done(outcome)
    summary = score_label_run(session, plan.label_set_id, device=device)
    return dataclasses.replace(summary, shards_computed=computed, shards_skipped=skipped,
                               seconds=round(time.perf_counter() - t0, 3))
