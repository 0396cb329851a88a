"""Which objects a caller may see: the one place the API decides tenancy, always by lookup, never by trust.

- a provider sees its own provider row (named by its principal) and that row's submissions and money;
- a buyer sees the campaigns whose ``buyer_name`` is its name;
- the operator sees everything (it names the provider with ``?provider=NAME`` where one is needed).

Another tenant's object and a missing one give the *same* 404, word for word (:func:`not_found`), so a
caller learns nothing about what others have. Lookups go through the shared rules
(:func:`marketplace.db.lookup.find_by_name_or_id`, :func:`marketplace.campaigns.get_campaign`,
:func:`marketplace.reports.submissions.submission_detail`); only their error messages are replaced, because
those list the names that exist.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from marketplace.api.auth import Caller
from marketplace.campaigns import CampaignInfo, get_campaign, list_campaigns
from marketplace.db import Campaign, Provider, Submission
from marketplace.db.lookup import find_by_name_or_id
from marketplace.errors import ConflictError, NotFoundError, ValidationError
from marketplace.names import display_name
from marketplace.reports.submissions import SubmissionDetail, submission_detail

__all__ = ["caller_provider", "not_found", "visible_campaign", "visible_campaigns", "visible_submission"]


def not_found(kind: str, ref: object) -> NotFoundError:
    """The one 404 of the API for an object: the same for a missing object and another tenant's."""
    return NotFoundError(f"{kind} {display_name(ref)} not found")


def caller_provider(session: Session, caller: Caller, provider: str | None) -> Provider | None:
    """The provider whose data the request reads: a provider principal's own (None when it has submitted
    nothing yet; naming another is a 404), or for the operator the one ``provider`` names (required)."""
    if caller.role == "provider":
        if provider is not None and provider.strip(" ") != caller.name:
            raise not_found("provider", provider)
        return find_by_name_or_id(session, Provider, caller.name)
    if provider is None:
        raise ValidationError("name the provider with ?provider=NAME (the operator reads every provider's data)")
    try:
        found = find_by_name_or_id(session, Provider, provider)
    except ConflictError as exc:
        raise ValidationError(str(exc)) from exc
    if found is None:
        raise not_found("provider", provider)
    return found


def visible_campaign(session: Session, caller: Caller, ref: str) -> Campaign:
    """The campaign ``ref`` (name, id or ``id:N``) names, if the caller may see it; else the one 404."""
    try:
        campaign = get_campaign(session, ref)
    except (NotFoundError, ConflictError):
        raise not_found("campaign", ref) from None
    if caller.role == "operator" or (caller.role == "buyer" and campaign.buyer_name == caller.name):
        return campaign
    raise not_found("campaign", ref)


def visible_campaigns(session: Session, caller: Caller) -> list[CampaignInfo]:
    """The campaigns the caller may see, in :func:`marketplace.campaigns.list_campaigns` order: a buyer's own,
    every campaign for the operator, none for a provider."""
    infos = list_campaigns(session)
    if caller.role == "operator":
        return infos
    return [i for i in infos if caller.role == "buyer" and i.buyer_name == caller.name]


def visible_submission(session: Session, caller: Caller, submission_id: int) -> SubmissionDetail:
    """One submission with its quarantined records, if it is the caller's (any, for the operator)."""
    if caller.role == "provider":
        provider = find_by_name_or_id(session, Provider, caller.name)
    else:
        sub = session.get(Submission, submission_id)
        provider = session.get(Provider, sub.provider_id) if sub is not None else None
    if provider is None:
        raise not_found("submission", submission_id)
    try:
        return submission_detail(session, provider, submission_id)
    except NotFoundError:
        raise not_found("submission", submission_id) from None
