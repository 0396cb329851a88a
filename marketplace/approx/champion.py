"""Which approximator version scores a campaign: the registry's ``champion`` alias (or a version asked
for by name), resolved once to a concrete version and its SQL row.

A score run records the concrete version it used, so that a promotion while it runs changes nothing
for it; every shard then loads that version's bundle by path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.orm import Session

from marketplace.approx.names import model_name_for
from marketplace.approx.publish import CHAMPION, recorded_version
from marketplace.campaigns import get_campaign
from marketplace.db import ApproximatorVersion
from marketplace.errors import NotFoundError, ValidationError

__all__ = ["ChampionRef", "find_version", "resolve_champion"]


class AliasLookup(Protocol):
    def version_for_alias(self, model_name: str, alias: str) -> str | None: ...


@dataclass(frozen=True)
class ChampionRef:
    """A concrete registered version of a campaign's model, with the label set it learned from."""

    campaign_id: int
    model_name: str
    version: str
    approximator_version_id: int
    label_set_id: int
    resolved_from: str  # what was asked for: ``models:/<name>@champion`` or ``models:/<name>/<version>``


def find_version(session: Session, campaign_id: int, model_name: str, version: str) -> ApproximatorVersion:
    """The SQL row of a registered version; refuses a version of another campaign."""
    row = recorded_version(session, model_name, version)
    if row is None:
        raise NotFoundError(
            f"{model_name} v{version} is in the registry but not recorded here; register versions through "
            "`marketplace train` (or record this one) before scoring with it"
        )
    if row.campaign_id != campaign_id:
        raise ValidationError(f"{model_name} v{version} was trained for campaign {row.campaign_id}, not {campaign_id}")
    return row


def resolve_champion(
    session: Session, registry: AliasLookup, campaign: int | str, version: str | None = None
) -> ChampionRef:
    """``models:/alinfik-<campaign>@champion`` (or ``version`` when given) → a concrete version."""
    camp = get_campaign(session, campaign)
    name = model_name_for(camp.name)
    resolved_from = f"models:/{name}/{version}" if version else f"models:/{name}@{CHAMPION}"
    concrete = version or registry.version_for_alias(name, CHAMPION)
    if concrete is None:
        raise NotFoundError(
            f"{name} has no champion yet (no version passed the gate); train a better approximator "
            "(`marketplace train CAMPAIGN`) or promote one (`marketplace registry promote`)"
        )
    row = find_version(session, camp.id, name, concrete)
    return ChampionRef(camp.id, name, concrete, row.id, row.label_set_id, resolved_from)
