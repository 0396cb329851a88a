"""Publishing a training run: register it, run the promotion gate, record the lineage in SQL.

``publish_outcome`` talks to the registry only through the small :class:`Registry` protocol
(``MlflowRegistry`` implements it), so the gate logic is testable without MLflow and the adapter
stays the only MLflow importer. ``record_publication`` writes our SQL copy (an
``ApproximatorVersion`` row and its events) in the caller's session.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from marketplace.approx.gate import DEFAULT_FLOOR, GateDecision, decide_promotion, evaluate_bundle_on_holdout
from marketplace.approx.training import TrainingOutcome
from marketplace.db import ApproximatorEvent, ApproximatorVersion
from marketplace.db.audit import record_audit
from marketplace.errors import MarketplaceError, NotFoundError, ValidationError

__all__ = [
    "CANDIDATE",
    "CHAMPION",
    "Publication",
    "Registry",
    "promote_version",
    "publish_outcome",
    "record_publication",
    "recorded_version",
]

log = logging.getLogger(__name__)

CANDIDATE = "candidate"
CHAMPION = "champion"


class LoggedLike(Protocol):
    @property
    def model_name(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def run_id(self) -> str: ...


class Registry(Protocol):
    """What publishing needs of a model registry."""

    def log_candidate(self, outcome: TrainingOutcome, model_name: str) -> LoggedLike: ...
    def version_for_alias(self, model_name: str, alias: str) -> str | None: ...
    def set_alias(self, model_name: str, alias: str, version: str) -> None: ...
    def download_bundle(self, model_name: str, version: str, dst: str | Path) -> Path: ...
    def record_decision(self, logged: LoggedLike, decision: GateDecision) -> None: ...


@dataclass(frozen=True)
class Publication:
    model_name: str
    version: str
    run_id: str
    promoted: bool
    reason: str
    decision: dict[str, object]
    metrics: dict[str, float]

    @property
    def model_uri(self) -> str:
        return f"models:/{self.model_name}/{self.version}"

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "model_uri": self.model_uri}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Publication:
        """The inverse of :meth:`as_dict` (extra keys such as ``model_uri`` are ignored)."""
        return cls(**{name: data[name] for name in cls.__dataclass_fields__})


def publish_outcome(
    outcome: TrainingOutcome,
    registry: Registry,
    model_name: str,
    *,
    store_root: str | Path,
    download_dir: str | Path,
    floor: float = DEFAULT_FLOOR,
    device: str = "cpu",
) -> Publication:
    """Register ``outcome`` as a ``candidate`` version, re-evaluate the champion on the same held-out
    labels, and move ``champion`` to the new version when the gate says so."""
    champion = registry.version_for_alias(model_name, CHAMPION)
    logged = registry.log_candidate(outcome, model_name)
    candidate_spearman = float(outcome.metrics["approx_spearman"])
    champion_spearman = None
    failure = None
    if champion is not None:
        try:
            bundle = registry.download_bundle(model_name, champion, download_dir)
            holdout = pd.read_parquet(outcome.holdout_path)
            champion_spearman = evaluate_bundle_on_holdout(
                bundle, holdout, store_root=store_root, device=device
            ).spearman
        except MarketplaceError as exc:  # e.g. its encoder is no longer installed
            failure = str(exc)
            log.warning("champion %s v%s could not be re-evaluated: %s", model_name, champion, exc)
    if failure is not None:
        decision = GateDecision(
            False,
            f"champion v{champion} could not be re-evaluated on the held-out labels ({failure}); kept out to be "
            "safe — promote explicitly with `marketplace registry promote` if intended",
            candidate_spearman, floor, champion, None,
        )
    else:
        decision = decide_promotion(
            candidate_spearman, floor=floor, champion_version=champion, champion_spearman=champion_spearman
        )
    if decision.promote:
        registry.set_alias(model_name, CHAMPION, logged.version)
    registry.record_decision(logged, decision)
    log.info("%s v%s: %s — %s", model_name, logged.version, "promoted" if decision.promote else "kept out",
             decision.reason)
    return Publication(
        model_name=model_name, version=logged.version, run_id=logged.run_id, promoted=decision.promote,
        reason=decision.reason, decision=decision.as_dict(), metrics=dict(outcome.metrics),
    )


def recorded_version(session: Session, model_name: str, version: str) -> ApproximatorVersion | None:
    """The SQL copy of a registered version (a model name and version name one row), or None."""
    return session.scalar(
        select(ApproximatorVersion).where(
            ApproximatorVersion.model_name == model_name, ApproximatorVersion.version == str(version)
        )
    )


def record_publication(
    session: Session, campaign_id: int, label_set_id: int, outcome: TrainingOutcome, publication: Publication,
    *, actor: str | None = None,
) -> ApproximatorVersion:
    """Insert the SQL lineage copy of a registered version and its events (idempotent per version); an
    automatic promotion also goes to the audit trail (``promoted`` by ``actor``, default the OS user)."""
    existing = recorded_version(session, publication.model_name, publication.version)
    if existing is not None:
        return existing
    row = ApproximatorVersion(
        campaign_id=campaign_id,
        label_set_id=label_set_id,
        model_name=publication.model_name,
        version=publication.version,
        model_uri=publication.model_uri,
        mlflow_run_id=publication.run_id,
        mode=str(outcome.config["mode"]),
        config_hash=outcome.config_hash,
        encoder_digest=outcome.lineage.get("encoder_digest", ""),
        metrics={k: float(v) for k, v in publication.metrics.items()},
        lineage=dict(outcome.lineage),
        promoted=publication.promoted,
        decision=publication.reason,
    )
    session.add(row)
    session.flush()
    session.add(ApproximatorEvent(campaign_id=campaign_id, approximator_version_id=row.id, action="registered",
                                  alias=CANDIDATE, reason=f"trained on label set {label_set_id}"))
    if publication.promoted:
        previous = publication.decision.get("champion_version")
        if previous is not None:
            _add_demotion(session, campaign_id, publication.model_name, str(previous), row.version, publication.reason)
        session.add(ApproximatorEvent(campaign_id=campaign_id, approximator_version_id=row.id, action="promoted",
                                      alias=CHAMPION, reason=publication.reason))
        record_audit(session, "promoted", actor=actor, campaign_id=campaign_id, model_name=publication.model_name,
                     version=publication.version, how="gate", reason=publication.reason)
    else:
        session.add(ApproximatorEvent(campaign_id=campaign_id, approximator_version_id=row.id, action="rejected",
                                      alias=CHAMPION, reason=publication.reason))
    session.flush()
    return row


def _add_demotion(session: Session, campaign_id: int, model_name: str, version: str, by: str, reason: str) -> None:
    old = recorded_version(session, model_name, version)
    if old is not None:
        session.add(ApproximatorEvent(campaign_id=campaign_id, approximator_version_id=old.id, action="demoted",
                                      alias=CHAMPION, reason=f"replaced by v{by}: {reason}"))


def promote_version(
    session: Session, registry: Registry, campaign_id: int, model_name: str, version: str, reason: str,
    *, actor: str | None = None,
) -> ApproximatorVersion:
    """Move ``champion`` to ``version`` by hand (an operator's decision), with the reason on record and in
    the audit trail (``promoted`` by ``actor``, default the OS user)."""
    if not reason.strip():
        raise ValidationError("a manual promotion needs a reason (--reason 'why'); it goes on the record")
    row = recorded_version(session, model_name, version)
    if row is None:
        raise NotFoundError(
            f"{model_name} v{version} is not recorded for this campaign; see `marketplace registry list CAMPAIGN`"
        )
    previous = registry.version_for_alias(model_name, CHAMPION)
    registry.set_alias(model_name, CHAMPION, str(version))
    text = f"manual promotion: {reason.strip()}"
    if previous is not None and previous != str(version):
        _add_demotion(session, campaign_id, model_name, previous, str(version), text)
    session.add(ApproximatorEvent(campaign_id=campaign_id, approximator_version_id=row.id, action="promoted",
                                  alias=CHAMPION, reason=text))
    row.promoted = True
    record_audit(session, "promoted", actor=actor, campaign_id=campaign_id, model_name=model_name,
                 version=str(version), how="manual", previous=previous, reason=reason.strip())
    session.flush()
    return row
