"""Campaigns: a buyer's target model + target data + budget per pricing period (docs/architecture.md).

The target data are read and normalised exactly like provider data (any ingestible format) and stored
as :class:`~marketplace.db.TargetSample` rows; they are never paid and never scored. Their digest, and
the target model's, are stamped on everything valued for the campaign.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from marketplace.db import Campaign, TargetSample
from marketplace.db.audit import record_audit
from marketplace.db.locks import lock_campaign_names
from marketplace.db.lookup import find_by_name_or_id
from marketplace.errors import ConflictError, NotFoundError, ValidationError
from marketplace.ledger.limits import check_budget_minor
from marketplace.money import Money
from marketplace.names import display_name, registry_model_name, validate_name

__all__ = [
    "CampaignInfo",
    "TargetRecord",
    "check_registry_name_free",
    "create_campaign",
    "describe_campaign",
    "digest_target_records",
    "get_campaign",
    "list_campaigns",
]

log = logging.getLogger(__name__)


class TargetRecord(Protocol):
    """What campaign creation needs of a normalised record (marketplace.ingest provides these)."""

    @property
    def text(self) -> str: ...

    @property
    def prompt_chars(self) -> int | None: ...

    @property
    def content_hash(self) -> str: ...


@dataclass(frozen=True)
class CampaignInfo:
    id: int
    name: str
    target_model_path: str
    target_model_digest: str
    target_data_path: str
    target_data_digest: str
    n_target_samples: int
    budget_minor: int
    currency: str
    budget: str
    audit_threshold: float
    buyer_name: str | None = None  # the owning buyer (None: the operator's own campaign)


def digest_target_records(records: Sequence[TargetRecord]) -> str:
    """sha256 over the ordered content hashes of the normalised target records (format-independent)."""
    h = hashlib.sha256()
    for rec in records:
        h.update(rec.content_hash.encode("ascii"))
        h.update(b"\n")
    return h.hexdigest()


def create_campaign(
    session: Session,
    *,
    name: str,
    target_model_path: str,
    target_model_digest: str,
    target_data_path: str,
    target_records: Sequence[TargetRecord],
    budget: Money,
    audit_threshold: float = 0.5,
    options: dict[str, Any] | None = None,
    actor: str | None = None,
    buyer: str | None = None,
) -> Campaign:
    """Insert a campaign and its target samples, and the ``campaign_created`` audit event by ``actor``
    (default: the OS user). ``buyer``: the name of the buyer that owns it (its API principal sees it);
    None: the operator's own. Caller commits.

    Raises ValidationError for a name :func:`marketplace.names.validate_name` refuses, ConflictError when
    the name is taken or maps to the registered model name of another campaign
    (:func:`marketplace.names.registry_model_name`), ValidationError for an empty target set, a negative
    budget or one too large to post for every period (:func:`marketplace.ledger.limits.check_budget_minor`),
    or an audit threshold outside [-1, 1].
    """
    name = validate_name(name, "campaign")
    buyer = validate_name(buyer, "buyer") if buyer is not None else None
    check_budget_minor(budget.amount_minor, budget.currency)
    if not -1.0 <= audit_threshold <= 1.0:
        raise ValidationError(f"audit threshold {audit_threshold} is not a correlation in [-1, 1]")
    if not target_records:
        raise ValidationError(
            f"target data {target_data_path} has no valid record; the campaign needs at least one target sample"
        )
    lock_campaign_names(session)  # concurrent creations take turns (marketplace/db/locks.py)
    if session.scalar(select(Campaign.id).where(Campaign.name == name)) is not None:
        raise ConflictError(f"a campaign named {display_name(name)} already exists; choose another name")
    check_registry_name_free(session, name)
    campaign = Campaign(
        name=name,
        target_model_path=target_model_path,
        target_model_digest=target_model_digest,
        target_data_path=target_data_path,
        target_data_digest=digest_target_records(target_records),
        budget_minor=budget.amount_minor,
        currency=budget.currency,
        audit_threshold=audit_threshold,
        options=dict(options or {}),
        buyer_name=buyer,
    )
    session.add(campaign)
    session.flush()
    session.execute(
        insert(TargetSample),
        [
            {
                "campaign_id": campaign.id,
                "record_index": i,
                "text": rec.text,
                "prompt_chars": rec.prompt_chars,
                "content_hash": rec.content_hash,
            }
            for i, rec in enumerate(target_records)
        ],
    )
    record_audit(session, "campaign_created", actor=actor, campaign_id=campaign.id, name=name,
                 budget_minor=budget.amount_minor, currency=budget.currency, audit_threshold=audit_threshold,
                 target_model_digest=target_model_digest, target_data_digest=campaign.target_data_digest,
                 buyer=buyer)
    log.info("campaign %s created with %d target samples", display_name(name), len(target_records))
    return campaign


def check_registry_name_free(session: Session, name: str) -> None:
    """ConflictError when another campaign's registered model name (``registry_model_name``) equals ``name``'s:
    each campaign has its own model in the registry, and never sees another's champion."""
    wanted = registry_model_name(name)
    for other_id, other in session.execute(select(Campaign.id, Campaign.name)):
        if other != name and registry_model_name(other) == wanted:
            raise ConflictError(
                f"campaign name {display_name(name)} maps to the registered model {wanted} of campaign "
                f"{display_name(other)} (id {other_id}); choose a name that differs in its letters or digits, "
                "not only in case, spaces or punctuation"
            )


def get_campaign(session: Session, name_or_id: str | int) -> Campaign:
    """The campaign ``name_or_id`` names (see :func:`marketplace.db.lookup.find_by_name_or_id`); a
    NotFoundError listing known campaigns otherwise. The one campaign lookup of every command and flow."""
    found = find_by_name_or_id(session, Campaign, name_or_id)
    if found is None:
        known = session.scalars(select(Campaign.name).order_by(Campaign.id).limit(10)).all()
        hint = f"known campaigns: {', '.join(display_name(k) for k in known)}" if known else "no campaign exists yet"
        raise NotFoundError(
            f"campaign {display_name(name_or_id)} not found ({hint}); create one with `marketplace campaign create`"
        )
    return found


def _info(session: Session, c: Campaign) -> CampaignInfo:
    n = session.scalar(select(func.count()).select_from(TargetSample).where(TargetSample.campaign_id == c.id)) or 0
    return CampaignInfo(
        id=c.id,
        name=c.name,
        target_model_path=c.target_model_path,
        target_model_digest=c.target_model_digest,
        target_data_path=c.target_data_path,
        target_data_digest=c.target_data_digest,
        n_target_samples=int(n),
        budget_minor=c.budget_minor,
        currency=c.currency,
        budget=str(Money(c.budget_minor, c.currency)),
        audit_threshold=c.audit_threshold,
        buyer_name=c.buyer_name,
    )


def describe_campaign(session: Session, name_or_id: str | int) -> CampaignInfo:
    return _info(session, get_campaign(session, name_or_id))


def list_campaigns(session: Session) -> list[CampaignInfo]:
    return [_info(session, c) for c in session.scalars(select(Campaign).order_by(Campaign.id))]
