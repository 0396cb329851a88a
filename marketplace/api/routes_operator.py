"""Operator endpoints: start a revaluation, read the audit trail, verify the ledger, follow a run.

Every other endpoint is readable by the operator too (naming the provider where one is needed).
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from marketplace.api.auth import Caller, SessionDep, require_roles
from marketplace.api.errors import PermissionDeniedError
from marketplace.api.idempotency import ApiResult, request_fingerprint, run_idempotent
from marketplace.api.responses import replay_headers
from marketplace.api.routes_provider import IdempotencyKey
from marketplace.api.tenancy import not_found, visible_campaign
from marketplace.db import Campaign, Provider
from marketplace.db.audit import list_audit_events, record_audit
from marketplace.db.lookup import find_by_name_or_id
from marketplace.ledger import verify_ledger
from marketplace.pricing.period import validate_period

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["operator"])
OperatorOnly = Annotated[Caller, Depends(require_roles("operator"))]


class RevalueRequest(BaseModel):
    """What to revalue: the period (default: the current UTC month) and whether to relabel and retrain
    even when the pool did not change."""

    model_config = ConfigDict(extra="forbid")
    period: str | None = Field(None, description="YYYY, YYYY-MM or YYYY-MM-DD.")
    force: bool = False


@router.post("/campaigns/{name}/revalue", status_code=202, summary="Start the revalue flow for a campaign")
def post_revalue(name: str, request: Request, caller: OperatorOnly, session: SessionDep,
                 body: RevalueRequest | None = None, idempotency_key: IdempotencyKey = None) -> JSONResponse:
    state = request.app.state
    launcher = state.revalue_launcher
    if launcher is None:
        raise PermissionDeniedError("this server was started without a way to run revaluations")
    wanted = body or RevalueRequest(period=None)
    period = validate_period(wanted.period) if wanted.period is not None else None
    campaign = visible_campaign(session, caller, name)
    campaign_id, campaign_name = campaign.id, campaign.name
    session.rollback()
    fingerprint = request_fingerprint("POST", request.url.path, {"campaign_id": campaign_id, "period": period,
                                                                 "force": wanted.force})

    def work() -> ApiResult:
        run = launcher.start(campaign_id, campaign_name, period=period, force=wanted.force, actor=caller.actor)
        with state.session_factory() as s, s.begin():
            record_audit(s, "revalue_requested", actor=caller.actor, campaign_id=campaign_id, run_id=run.run_id,
                         kind=run.kind, period=period, force=wanted.force)
        return 202, run.as_dict()

    (status, body_out), replayed = run_idempotent(state.session_factory, caller.principal_id, idempotency_key,
                                                  fingerprint, work)
    return JSONResponse(body_out, status, headers=replay_headers(replayed))


@router.get("/runs/{run_id}", summary="A revaluation started through the API")
def get_run(run_id: str, request: Request, caller: OperatorOnly) -> dict[str, Any]:
    launcher = request.app.state.revalue_launcher
    run = launcher.get(run_id) if launcher is not None else None
    if run is None:
        raise not_found("run", run_id)
    return run.as_dict()


@router.get("/audit", summary="The audit trail, newest first")
def get_audit(caller: OperatorOnly, session: SessionDep, limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
              campaign: str | None = None, provider: str | None = None) -> dict[str, Any]:
    campaign_id = provider_id = None
    if campaign is not None:
        found = find_by_name_or_id(session, Campaign, campaign)
        if found is None:
            raise not_found("campaign", campaign)
        campaign_id = found.id
    if provider is not None:
        prov = find_by_name_or_id(session, Provider, provider)
        if prov is None:
            raise not_found("provider", provider)
        provider_id = prov.id
    return {"events": list_audit_events(session, limit=limit, campaign_id=campaign_id, provider_id=provider_id)}


@router.get("/ledger/verify", summary="Check every invariant of the books")
def get_ledger_verify(caller: OperatorOnly, session: SessionDep) -> dict[str, Any]:
    report = verify_ledger(session)
    data: dict[str, Any] = jsonable_encoder(dataclasses.asdict(report))
    data["ok"] = report.ok
    return data
