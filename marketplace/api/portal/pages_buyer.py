"""The buyer's pages: its campaigns, and per campaign the value by provider, the top samples, the runs, the
selection download (JSONL) and the validation report when one was run.

Each page calls what the JSON API's buyer routes call (:mod:`marketplace.api.routes_buyer`,
:func:`marketplace.api.tenancy.visible_campaign`, :func:`marketplace.reports.build_buyer_report`): a buyer
sees only its own campaigns (another buyer's is the API's one 404), the operator every campaign.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, Response

from marketplace.api.auth import SessionDep
from marketplace.api.portal.deps import require_portal_roles
from marketplace.api.portal.sessions import SignedIn
from marketplace.api.portal.templating import inert_markup, page
from marketplace.api.routes_buyer import campaign_validation, selection_download
from marketplace.api.runs import campaign_runs
from marketplace.api.tenancy import visible_campaign, visible_campaigns
from marketplace.campaigns import describe_campaign
from marketplace.errors import NotFoundError
from marketplace.money import Money

__all__ = ["router"]

router = APIRouter(prefix="/buyer")
BuyerOrOperator = Annotated[SignedIn, Depends(require_portal_roles("buyer", "operator"))]


def _validation_view(data: dict[str, Any] | None) -> dict[str, Any] | None:
    """The headline of a validation report (its JSON as ``marketplace validate`` wrote it) for the page."""
    if data is None:
        return None
    currency = str(data.get("currency", ""))
    verdicts = [{"regime": v.get("regime"), "description": v.get("description"),
                 "misallocated": v.get("misallocated_share"), "harmful": v.get("harmful_share")}
                for v in data.get("verdicts", [])]
    providers = [{"name": p.get("provider_name"), "paid": str(Money(int(p.get("amount_minor", 0)), currency))
                  if currency else p.get("amount_minor"), "payout_share": p.get("payout_share"),
                  "ideal_share": (p.get("ideal_share") or {}).get(data.get("headline", ""))}
                 for p in data.get("providers", [])]
    return {"pricing_run_id": data.get("pricing_run_id"), "period": data.get("period"),
            "headline": data.get("headline"), "verdicts": verdicts, "providers": providers}


@router.get("")
def dashboard(request: Request, session: SessionDep, user: BuyerOrOperator) -> Response:
    return page(request, "buyer.html", signed=user, title="Buyer dashboard",
                campaigns=visible_campaigns(session, user.caller))


@router.get("/campaigns/{ref}")
def campaign(request: Request, session: SessionDep, user: BuyerOrOperator, ref: str,
             top_k: Annotated[int, Query(ge=1, le=1000)] = 20) -> Response:
    from marketplace.reports import build_buyer_report
    from marketplace.reports.render import buyer_report_body_html

    camp = visible_campaign(session, user.caller, ref)
    info = describe_campaign(session, camp.id)
    try:
        report = inert_markup(buyer_report_body_html(build_buyer_report(session, camp.id, None, top_k=top_k)))
        no_report = None
    except NotFoundError as exc:  # not priced yet: the page says so and shows the rest
        report, no_report = None, str(exc)
    validation = _validation_view(campaign_validation(request.app.state.settings, camp.id))
    return page(request, "campaign.html", signed=user, title=f"Campaign {info.name}", info=info, report=report,
                no_report=no_report, runs=campaign_runs(session, camp.id), validation=validation)


@router.get("/campaigns/{ref}/selection", response_model=None)
def selection(session: SessionDep, user: BuyerOrOperator, ref: str,
              top: Annotated[float, Query(gt=0.0, le=1.0)] = 0.2,
              version: Annotated[str | None, Query(max_length=50)] = None) -> FileResponse:
    return selection_download(session, visible_campaign(session, user.caller, ref), top, version or None)
