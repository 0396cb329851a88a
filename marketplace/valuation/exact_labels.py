"""Exact LinFiK of arbitrary samples against a campaign's query: the ALinFiK audit's labeler.

Same definition and projection as the campaign's label sets, for samples in none of them. The
per-checkpoint query q_c is cached under ``work_dir`` by (campaign, config hash, checkpoint digests,
target data) on first use (marketplace.valuation.queries finds or builds it); the projection is
rebuilt from the config (it is deterministic) and checked against the query's.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from sqlalchemy import select
from sqlalchemy.orm import Session

from marketplace.campaigns import get_campaign
from marketplace.db import Sample
from marketplace.errors import NotFoundError
from marketplace.valuation.config import LinFiKConfig, stable_hash
from marketplace.valuation.gradients import compute_text_gradients
from marketplace.valuation.linfik import score_against_query
from marketplace.valuation.projection import build_projection
from marketplace.valuation.queries import find_or_build_query, load_query, query_meta, save_query
from marketplace.valuation.runs import campaign_targets, resolve_checkpoints
from marketplace.valuation.scoring import token_weights
from marketplace.valuation.target_model import load_target_model_cached

__all__ = ["label_sample_ids"]


def label_sample_ids(
    session: Session,
    campaign: int | str,
    sample_ids: Sequence[int],
    config: LinFiKConfig,
    *,
    work_dir: Path,
    device: str | torch.device = "cpu",
    batch_size: int = 8,
) -> dict[int, float]:
    """Exact LinFiK of the given samples for a campaign (same definition and projection as its labels).

    When nothing is cached yet, the query of the newest finished label set with this config is
    reused; failing that, identity preconditioning computes ḡ_Y here, while ``fisher``/``kfac`` and
    the ``pool`` reference (which need a label set's train statistics) raise NotFoundError. Returns {sample id: score}.
    """
    camp = get_campaign(session, campaign)
    checkpoints = resolve_checkpoints(camp, config)
    targets, target_digest = campaign_targets(session, camp)
    key = stable_hash({"config": config.config_hash(), "checkpoints": [c.digest for c in checkpoints],
                       "target": target_digest})[:20]
    cache = Path(work_dir) / "linfik_queries" / f"campaign-{camp.id}" / key
    cache.mkdir(parents=True, exist_ok=True)
    ids = list(dict.fromkeys(int(i) for i in sample_ids))
    rows = {r.id: r for r in session.execute(
        select(Sample.id, Sample.text, Sample.prompt_chars).where(Sample.id.in_(ids))).all()}
    missing = [i for i in ids if i not in rows]
    if missing:
        raise NotFoundError(f"samples {missing[:10]} do not exist")
    texts = [rows[i].text for i in ids]
    prompts = [rows[i].prompt_chars for i in ids]

    total = torch.zeros(len(ids), dtype=torch.float32)
    for c, ckpt in enumerate(checkpoints):
        model = load_target_model_cached(ckpt.path, device=device)
        projection = build_projection(model.model, config.projection)
        path = cache / f"query-c{c}.safetensors"
        expected = {"config_hash": config.config_hash(), "model_digest": ckpt.digest,
                    "projection_digest": projection.digest(), "target_data_digest": target_digest}
        if not path.exists():
            query = find_or_build_query(session, camp.id, config, c, ckpt, projection, model, targets, expected,
                                        batch_size)
            save_query(path, query, query_meta(config.config_hash(), target_digest, ckpt, query))
        query = load_query(path, expected)
        grads = compute_text_gradients(model, projection, texts, prompts, max_length=config.max_length,
                                       batch_size=batch_size).grads
        part = score_against_query(grads, query, cosine=config.cosine)
        if config.weighting == "token":
            part = part * token_weights(model, texts, prompts, config.max_length)
        total += part
    return dict(zip(ids, total.tolist(), strict=True))
