"""Buyer endpoints: create campaigns, list them, their runs, the buyer report, the selection download and
the validation report. A buyer sees only campaigns whose ``buyer_name`` is its own name; the operator sees
every campaign (:func:`marketplace.api.tenancy.visible_campaign`).

Creating a campaign takes the target data as an upload and the target model by the name of a model folder
the operator put under the models folder (``MKT_MODELS_DIR``, default ``$MKT_HOME/models``): a buyer never
names a path on the server.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.encoders import jsonable_encoder
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from sqlalchemy.orm import Session
from starlette.background import BackgroundTask

from marketplace.api.auth import Caller, SessionDep, require_roles
from marketplace.api.errors import PermissionDeniedError
from marketplace.api.idempotency import ApiResult, request_fingerprint, run_idempotent
from marketplace.api.responses import HTML_HEADERS, download_headers, replay_headers
from marketplace.api.routes_provider import IdempotencyKey, OptionalForm, field_mapping
from marketplace.api.runs import campaign_runs
from marketplace.api.tenancy import not_found, visible_campaign, visible_campaigns
from marketplace.api.uploads import clean_filename, saved_upload
from marketplace.campaigns import CampaignInfo, create_campaign, describe_campaign
from marketplace.db import Campaign
from marketplace.errors import ConflictError, ValidationError
from marketplace.names import display_name, validate_name
from marketplace.outputs import atomic_output
from marketplace.runtime import ingest_limits
from marketplace.settings import Settings

__all__ = ["campaign_validation", "campaign_view", "router", "selection_download"]

router = APIRouter(prefix="/api/v1", tags=["buyer"])
BuyerOrOperator = Annotated[Caller, Depends(require_roles("buyer", "operator"))]


def campaign_view(info: CampaignInfo) -> dict[str, Any]:
    """A campaign as the API shows it: no server paths."""
    return {"id": info.id, "name": info.name, "buyer": info.buyer_name, "budget": info.budget,
            "budget_minor": info.budget_minor, "currency": info.currency, "audit_threshold": info.audit_threshold,
            "n_target_samples": info.n_target_samples, "target_model_digest": info.target_model_digest,
            "target_data_digest": info.target_data_digest}


def target_model_folder(settings: Settings, name: str) -> Path:
    """The model folder ``name`` under the models folder; a 422 naming the available ones otherwise."""
    root = settings.resolved_models_dir
    available = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")) \
        if root.is_dir() else []
    folder = root / name
    if name in available and folder.resolve().parent == root.resolve():
        return folder
    hint = f"one of {', '.join(available[:20])}" if available else "none is installed yet (ask the operator)"
    raise ValidationError(f"target_model {display_name(name)} is not a model folder of this service; pass {hint}")


def _keep_target_data(settings: Settings, path: Path, sha256: str) -> Path:
    """A lasting copy of the uploaded target data (the campaign records where its target data came from)."""
    kept = settings.resolved_artifacts_dir / "campaign-targets" / sha256 / path.name
    if not kept.is_file():
        with atomic_output(kept) as tmp:
            shutil.copyfile(path, tmp)
    return kept


@router.post("/campaigns", status_code=201, summary="Create a campaign (target data uploaded, target model named)")
def post_campaign(
    request: Request,
    target_data: Annotated[UploadFile, File(description="The target data (any format ingestion reads).")],
    name: Annotated[str, Form()],
    budget: Annotated[str, Form(description="Budget per pricing period in major units, e.g. 1000.00.")],
    target_model: Annotated[str, Form(description="A model folder name under the service's models folder.")],
    caller: BuyerOrOperator,
    currency: Annotated[str, Form()] = "EUR", audit_threshold: Annotated[float, Form()] = 0.5,
    buyer: Annotated[str | None, Form(description="Operator only: the buyer that owns the campaign.")] = None,
    text_field: OptionalForm = None, prompt_field: OptionalForm = None, response_field: OptionalForm = None,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    from marketplace.ingest import read_normalised_records
    from marketplace.money import parse_amount
    from marketplace.valuation import digest_model_dir

    state = request.app.state
    settings: Settings = state.settings
    if caller.role == "buyer":
        if buyer is not None and buyer.strip(" ") != caller.name:
            raise PermissionDeniedError("a buyer creates campaigns for itself; leave out 'buyer'")
        owner: str | None = caller.name
    else:
        owner = validate_name(buyer, "buyer") if buyer else None
    name = validate_name(name, "campaign")
    mapping = field_mapping(text_field, prompt_field, response_field)
    money = parse_amount(budget, currency.strip().upper())
    model_dir = target_model_folder(settings, target_model)
    limits = ingest_limits(settings)
    max_bytes = min(state.limits.max_upload_bytes, limits.max_file_bytes)
    with saved_upload(target_data.file, clean_filename(target_data.filename, "target.jsonl"), max_bytes=max_bytes,
                      chunk_bytes=state.limits.upload_chunk_bytes, what="target data") as up:
        fingerprint = request_fingerprint("POST", request.url.path, {
            "name": name, "budget": str(money), "target_model": target_model, "audit_threshold": audit_threshold,
            "buyer": owner, "target_data_sha256": up.sha256, "filename": up.filename, "text_field": text_field,
            "prompt_field": prompt_field, "response_field": response_field})

        def work() -> ApiResult:
            records = read_normalised_records(up.path, mapping=mapping, limits=limits)
            digest = digest_model_dir(model_dir)
            kept = _keep_target_data(settings, up.path, up.sha256)
            with state.session_factory() as session, session.begin():
                try:
                    campaign = create_campaign(
                        session, name=name, target_model_path=str(model_dir.resolve()), target_model_digest=digest,
                        target_data_path=str(kept), target_records=records, budget=money,
                        audit_threshold=audit_threshold, actor=caller.actor, buyer=owner)
                except ConflictError as exc:
                    if caller.role == "operator":
                        raise
                    # the core's message names the other campaign: a buyer learns only that the name is taken
                    raise ConflictError(f"campaign name {display_name(name)} is taken, or differs from a taken "
                                        "name only in case, spaces or punctuation; choose another name") from exc
                session.flush()
                return 201, campaign_view(describe_campaign(session, campaign.id))

        (status, body), replayed = run_idempotent(state.session_factory, caller.principal_id, idempotency_key,
                                                  fingerprint, work)
    return JSONResponse(body, status, headers=replay_headers(replayed))


@router.get("/campaigns", summary="Your campaigns (every campaign for the operator)")
def get_campaigns(caller: BuyerOrOperator, session: SessionDep) -> dict[str, Any]:
    return {"campaigns": [campaign_view(i) for i in visible_campaigns(session, caller)]}


@router.get("/campaigns/{name}", summary="A campaign and the status of its runs")
def get_campaign_status(name: str, request: Request, caller: BuyerOrOperator, session: SessionDep) -> dict[str, Any]:
    campaign = visible_campaign(session, caller, name)
    launcher = request.app.state.revalue_launcher
    return {"campaign": campaign_view(describe_campaign(session, campaign.id)),
            "runs": campaign_runs(session, campaign.id),
            "revaluations": [r.as_dict() for r in launcher.for_campaign(campaign.id)] if launcher else []}


@router.get("/campaigns/{name}/report", summary="The buyer report (JSON or HTML)", response_model=None)
def get_report(name: str, caller: BuyerOrOperator, session: SessionDep, period: str | None = None,
               top_k: Annotated[int, Query(ge=1, le=1000)] = 20,
               format: Literal["json", "html"] = "json") -> Response | dict[str, Any]:
    from marketplace.reports import build_buyer_report, buyer_report_html

    campaign = visible_campaign(session, caller, name)
    report = build_buyer_report(session, campaign.id, period, top_k=top_k)
    if format == "html":
        return HTMLResponse(buyer_report_html(report), headers=HTML_HEADERS)
    data = jsonable_encoder(dataclasses.asdict(report))
    data.pop("values", None)
    return data


@router.get("/campaigns/{name}/selection", summary="The best unique samples as a JSONL download",
            response_class=FileResponse)
def get_selection(name: str, caller: BuyerOrOperator, session: SessionDep,
                  top: Annotated[float, Query(gt=0.0, le=1.0, description="Fraction to keep, e.g. 0.2.")],
                  version: Annotated[str | None, Query(description="Model version (default: the latest "
                                                                   "scored).")] = None) -> FileResponse:
    return selection_download(session, visible_campaign(session, caller, name), top, version)


def selection_download(session: Session, campaign: Campaign, top: float, version: str | None = None) -> FileResponse:
    """The campaign's best unique samples (the fraction ``top``, by the latest scored model version or
    ``version``) as a JSONL download (the API's and the portal's): written by
    :func:`marketplace.approx.export.select_top` into a private temporary folder that is removed once sent;
    the headers say how many rows and which model version."""
    from marketplace.approx.export import select_top

    folder = Path(tempfile.mkdtemp(prefix="mkt-selection-"))
    try:
        filename = f"selection_campaign{campaign.id}_top{top:g}.jsonl"
        result = select_top(session, campaign.id, top, folder / filename, version=version)
        session.commit()
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return FileResponse(result.path, media_type="application/x-ndjson",
                        headers={**download_headers(filename), "X-Selected-Rows": str(result.n_rows),
                                 "X-Model-Version": f"{result.model_name}:{result.model_version}"},
                        background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True))


@router.get("/campaigns/{name}/validation", summary="The fine-tuning validation of the latest payouts, when run")
def get_validation(name: str, request: Request, caller: BuyerOrOperator, session: SessionDep) -> dict[str, Any]:
    campaign = visible_campaign(session, caller, name)
    data = campaign_validation(request.app.state.settings, campaign.id)
    if data is None:
        raise not_found("validation of campaign", name)
    return data


def campaign_validation(settings: Settings, campaign_id: int) -> dict[str, Any] | None:
    """The newest validation report of the campaign (``marketplace validate``'s JSON), or None when the campaign
    was never validated."""
    from marketplace.validation.render import latest_validation_json

    path = latest_validation_json(settings.resolved_artifacts_dir / "validation", campaign_id)
    if path is None:
        return None
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data
