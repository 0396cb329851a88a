"""Reading what training needs from the database: which label set to learn from, its labels with
their texts, and the campaign's target texts, plus the lineage the registered model will carry."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from marketplace.approx.names import model_name_for
from marketplace.campaigns import get_campaign
from marketplace.db import Campaign, Label, LabelSet, RunStatus, Sample, TargetSample
from marketplace.db.label_sets import require_latest_label_set
from marketplace.errors import NotFoundError, ValidationError

__all__ = ["LabeledData", "TrainingInput", "load_labeled_data", "resolve_training_input"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LabeledData:
    """Labels of one label set, ordered by sample id (so a seeded split is reproducible)."""

    campaign_id: int
    campaign_name: str
    label_set_id: int
    sample_ids: np.ndarray  # (N,) int64, increasing
    content_hashes: list[str]
    texts: list[str]
    labels: np.ndarray  # (N,) float64, exact LinFiK
    target_hashes: list[str]
    target_texts: list[str]
    lineage: dict[str, str]
    prompt_chars: list[int | None] | None = None  # per label; None: no sample has a prompt
    # The label set's weighting ("sample" or "token", see LinFiKConfig) and, for "token", what
    # TokenFactor needs: the config's max_length and the target model folder (its tokenizer).
    weighting: str = "sample"
    max_length: int | None = None
    target_model_path: str | None = None

    def __len__(self) -> int:
        return int(self.sample_ids.shape[0])


@dataclass(frozen=True)
class TrainingInput:
    """What a training run learns from and registers as."""

    campaign_id: int
    campaign_name: str
    label_set_id: int
    model_name: str  # the registered model's name, ``alinfik-<campaign slug>``


def resolve_training_input(session: Session, campaign: int | str, label_set_id: int | None = None) -> TrainingInput:
    """The campaign (id or name) and the label set to learn from: ``label_set_id``, or by default the
    campaign's latest complete one (NotFoundError when it has none)."""
    camp = get_campaign(session, campaign)
    if label_set_id is None:
        label_set_id = require_latest_label_set(session, camp.id).id
    return TrainingInput(camp.id, camp.name, label_set_id, model_name_for(camp.name))


def load_labeled_data(session: Session, campaign_id: int, label_set_id: int | None = None) -> LabeledData:
    campaign = session.get(Campaign, campaign_id)
    if campaign is None:
        raise NotFoundError(f"campaign {campaign_id} not found; list them with `marketplace campaign list`")
    if label_set_id is None:
        label_set = require_latest_label_set(session, campaign_id)
    else:
        found = session.get(LabelSet, label_set_id)
        if found is None or found.campaign_id != campaign_id:
            raise NotFoundError(f"label set {label_set_id} does not belong to campaign {campaign.name!r}")
        if found.status != RunStatus.COMPLETE:
            raise ValidationError(
                f"label set {label_set_id} is {found.status.value}, not complete; finish or rerun the label flow"
            )
        label_set = found
    rows = session.execute(
        select(Sample.id, Sample.content_hash, Sample.text, Sample.prompt_chars, Label.score)
        .join(Label, Label.sample_id == Sample.id)
        .where(Label.label_set_id == label_set.id)
        .order_by(Sample.id)
    ).all()
    targets = session.execute(
        select(TargetSample.content_hash, TargetSample.text)
        .where(TargetSample.campaign_id == campaign_id)
        .order_by(TargetSample.record_index)
    ).all()
    labels = np.array([r.score for r in rows], dtype=np.float64)
    if not np.isfinite(labels).all():
        raise ValidationError(f"label set {label_set.id} holds NaN or infinite labels; relabel those samples")
    lineage = {
        "campaign_id": str(campaign.id),
        "campaign": campaign.name,
        "label_set_id": str(label_set.id),
        "target_model_digest": label_set.target_model_digest,
        "target_data_digest": label_set.target_data_digest,
        "projection_config_hash": label_set.projection_config_hash,
        "label_config_hash": label_set.config_hash,
        "projection_seed": str(label_set.projection_seed),
    }
    weighting = str(label_set.config.get("weighting", "sample"))
    max_length = target_model_path = None
    if weighting == "token":
        lineage["label_weighting"] = weighting
        max_length = int(label_set.config["max_length"])  # type: ignore[call-overload]
        checkpoints = label_set.lineage.get("checkpoints") or []
        if not checkpoints:
            raise ValidationError(
                f"label set {label_set.id} records no checkpoint; token weighting needs its tokenizer"
            )
        target_model_path = str(checkpoints[0]["path"])  # type: ignore[index]
    prompts = [r.prompt_chars for r in rows]
    log.info("label set %d: %d labels, %d target samples", label_set.id, len(rows), len(targets))
    return LabeledData(
        campaign_id=campaign.id,
        campaign_name=campaign.name,
        label_set_id=label_set.id,
        sample_ids=np.array([r.id for r in rows], dtype=np.int64),
        content_hashes=[r.content_hash for r in rows],
        texts=[r.text for r in rows],
        labels=labels,
        target_hashes=[t.content_hash for t in targets],
        target_texts=[t.text for t in targets],
        lineage=lineage,
        prompt_chars=prompts if any(p is not None for p in prompts) else None,
        weighting=weighting,
        max_length=max_length,
        target_model_path=target_model_path,
    )
