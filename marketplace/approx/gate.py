"""The promotion gate: a candidate becomes ``champion`` only if it beats the current champion's
Spearman *on the candidate's own held-out labels* and clears a floor.

Re-evaluating the champion on the new run's held-out split matters: two versions trained on
different label sets are otherwise scored on different samples, and a comparison of their logged
metrics says little.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from marketplace.approx.bundle import Approximator, load_bundle
from marketplace.approx.embedding_store import open_embedding_store
from marketplace.approx.metrics import Agreement, agreement
from marketplace.errors import ValidationError

__all__ = ["DEFAULT_FLOOR", "GateDecision", "decide_promotion", "evaluate_bundle_on_holdout"]

log = logging.getLogger(__name__)

DEFAULT_FLOOR = 0.5


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    reason: str
    candidate_spearman: float
    floor: float
    champion_version: str | None = None
    champion_spearman: float | None = None

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def decide_promotion(
    candidate_spearman: float,
    *,
    floor: float = DEFAULT_FLOOR,
    champion_version: str | None = None,
    champion_spearman: float | None = None,
) -> GateDecision:
    """Pure decision. Strictly better than the champion (a tie keeps the incumbent) and ≥ floor."""
    if not -1.0 <= floor <= 1.0:
        raise ValidationError(f"promotion floor {floor} is not a Spearman correlation in [-1, 1]")

    def decision(promote: bool, reason: str) -> GateDecision:
        return GateDecision(promote, reason, candidate_spearman, floor, champion_version, champion_spearman)

    if candidate_spearman < floor:
        return decision(False, f"held-out Spearman {candidate_spearman:.4f} is below the floor {floor:.4f}")
    if champion_version is None or champion_spearman is None:
        return decision(
            True, f"no champion yet and held-out Spearman {candidate_spearman:.4f} clears the floor {floor:.4f}"
        )
    if candidate_spearman > champion_spearman:
        return decision(
            True,
            f"held-out Spearman {candidate_spearman:.4f} beats champion v{champion_version} "
            f"({champion_spearman:.4f} on the same held-out labels) and clears the floor {floor:.4f}",
        )
    return decision(
        False,
        f"held-out Spearman {candidate_spearman:.4f} does not beat champion v{champion_version} "
        f"({champion_spearman:.4f} on the same held-out labels)",
    )


def evaluate_bundle_on_holdout(
    bundle_dir: str | Path, holdout: pd.DataFrame, *, store_root: str | Path, device: str = "cpu"
) -> Agreement:
    """Score a (champion's) bundle on held-out rows (content_hash, text, label; prompt_chars if any)."""
    approx = Approximator(load_bundle(bundle_dir), device=device)
    texts = holdout["text"].tolist()
    prompts = None
    if "prompt_chars" in holdout.columns:
        prompts = [None if pd.isna(p) else int(p) for p in holdout["prompt_chars"].tolist()]
    if approx.embedding_cache_key is not None:
        b = approx.bundle
        store = open_embedding_store(store_root, b.encoder_ref, b.config.embed, b.dim)
        x, _ = store.ensure(holdout["content_hash"].tolist(), texts, approx.encoder.embed)
        pred = approx.predict_embeddings(x, approx.factor(texts, prompts))
    else:
        pred = approx.predict_texts(texts, prompts)
    return agreement(pred.score, holdout["label"].to_numpy())
