"""The operator's page: every campaign with its recent label, train (registered approximator versions), score
and pricing runs and its champion in the model registry, the ledger check, the providers, and the audit
trail.

Each part calls the function the CLI or the JSON API calls: :func:`marketplace.api.runs.campaign_runs`,
:func:`marketplace.approx.history.list_version_summaries` (as ``marketplace registry list``),
:func:`marketplace.ledger.verify_ledger`, :func:`marketplace.status.provider_rows` and
:func:`marketplace.status.catalog_status` (as ``marketplace status``),
:func:`marketplace.db.audit.list_audit_events`.
"""

from __future__ import annotations

import json
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from marketplace.api.auth import SessionDep
from marketplace.api.portal.deps import require_portal_roles
from marketplace.api.portal.sessions import SignedIn
from marketplace.api.portal.templating import page
from marketplace.api.runs import campaign_runs
from marketplace.campaigns import CampaignInfo, list_campaigns
from marketplace.db.audit import list_audit_events
from marketplace.ledger import verify_ledger
from marketplace.status import catalog_status, provider_rows

__all__ = ["router"]

log = logging.getLogger(__name__)
router = APIRouter(prefix="/operator")
OperatorOnly = Annotated[SignedIn, Depends(require_portal_roles("operator"))]
RUNS_SHOWN = 5  # of each kind per campaign


def _versions(session: Session, registry: Any, campaign: CampaignInfo) -> dict[str, Any]:
    """The campaign's registered approximator versions (newest first, as ``marketplace registry list``) and its
    champion; an unreadable registry is said on the page, not an error of the whole page."""
    from marketplace.approx.history import list_version_summaries
    from marketplace.approx.names import model_name_for

    name = model_name_for(campaign.name)
    try:
        versions = list_version_summaries(session, campaign.id, name, registry())
    except Exception as exc:  # the registry is another service (MLflow): show the rest of the page
        log.warning("model registry unreadable for %s: %s", name, exc)
        return {"model_name": name, "champion": None, "versions": [], "error": "the model registry could not be read"}
    champion = next((v for v in versions if "champion" in v["aliases"]), None)
    return {"model_name": name, "champion": champion, "versions": list(reversed(versions))[:RUNS_SHOWN],
            "error": None}


@router.get("")
def dashboard(request: Request, session: SessionDep, user: OperatorOnly,
              audit_limit: Annotated[int, Query(ge=1, le=1000)] = 50) -> Response:
    registry = request.app.state.model_registry
    campaigns = [{"info": info, "runs": campaign_runs(session, info.id, RUNS_SHOWN),
                  "registry": _versions(session, registry, info)} for info in list_campaigns(session)]
    events = [{**e, "details": json.dumps(e["details"], ensure_ascii=False, sort_keys=True, default=str)}
              for e in list_audit_events(session, limit=audit_limit)]
    return page(request, "operator.html", signed=user, title="Operator", campaigns=campaigns,
                verify=verify_ledger(session), providers=provider_rows(session), catalog=catalog_status(session),
                events=events)
