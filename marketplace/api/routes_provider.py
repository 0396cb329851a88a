"""Provider endpoints: upload a file, list and inspect submissions, read statements and the balance.

A provider principal reads only its own provider's rows (:func:`marketplace.api.tenancy.caller_provider`);
the operator reads any provider's, named with ``?provider=NAME``. An upload runs
:func:`marketplace.ingest.ingest_one_file`, the code path of ``marketplace ingest``, so the catalog rows are
the same. A copy of another provider's content is reported as "already in the market", never whose.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Form, Header, Query, Request, UploadFile
from fastapi.encoders import jsonable_encoder
from fastapi.responses import HTMLResponse, JSONResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from marketplace.api.auth import Caller, SessionDep, require_roles
from marketplace.api.errors import error_body
from marketplace.api.idempotency import ApiResult, request_fingerprint, run_idempotent
from marketplace.api.responses import HTML_HEADERS, download_headers, replay_headers
from marketplace.api.tenancy import caller_provider, not_found, visible_submission
from marketplace.api.uploads import saved_upload
from marketplace.db import LedgerAccount, Provider
from marketplace.db.ledger import AccountKind
from marketplace.errors import ValidationError
from marketplace.ingest import FieldMapping, FileIngestResult, IngestOptions, ingest_one_file
from marketplace.ledger.balances import provider_payable_balance
from marketplace.money import Money
from marketplace.reports.render import statement_html, write_statement
from marketplace.reports.statements import ProviderStatement, build_provider_statement, require_postings
from marketplace.reports.submissions import ALREADY_IN_MARKET, copies_explanation, provider_submissions
from marketplace.runtime import ingest_parameters

__all__ = ["field_mapping", "ingest_upload", "provider_balances", "provider_statement", "router",
           "submission_result"]

router = APIRouter(prefix="/api/v1", tags=["provider"])
ProviderOnly = Annotated[Caller, Depends(require_roles("provider"))]
ProviderOrOperator = Annotated[Caller, Depends(require_roles("provider", "operator"))]
ProviderQuery = Annotated[str | None, Query(description="Operator only: the provider whose data to read (name or id).")]
OptionalForm = Annotated[str | None, Form()]
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", description="Repeat a POST safely: the same "
                                                                                   "key and request get the first "
                                                                                   "response.")]
StatementTable = Literal["transactions", "submissions", "samples", "files"]


def field_mapping(text_field: str | None, prompt_field: str | None, response_field: str | None) -> FieldMapping:
    """The field options as the ingestion's FieldMapping (a one-line 422 when they contradict each other)."""
    try:
        return FieldMapping(text_field=text_field or None, prompt_field=prompt_field or None,
                            response_field=response_field or None)
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        first = exc.errors()[0]["msg"] if hasattr(exc, "errors") else str(exc)
        raise ValidationError(f"field options: {first}") from exc


def submission_result(result: FileIngestResult, filename: str) -> dict[str, Any]:
    """What a provider learns of its upload: its own counts, never another provider's submission or name."""
    duplicates = result.exact_duplicates + result.near_duplicates
    notes = []
    if result.status == "copy":
        notes.append(f"the same file was already in the market: its {result.records} records are not paid")
    elif duplicates:
        notes.append(copies_explanation(duplicates))
    if result.quarantined:
        notes.append(f"{result.quarantined} records quarantined (GET /api/v1/submissions/{result.submission_id} "
                     "lists each with its reason and line or row)")
    if result.status == "existing":
        notes.append("you had submitted these exact bytes before: nothing new was written")
    return {"submission_id": result.submission_id, "status": result.status, "filename": filename,
            "records": result.records, "accepted": result.accepted, "quarantined": result.quarantined,
            "already_in_market": duplicates, "exact_duplicates": result.exact_duplicates,
            "near_duplicates": result.near_duplicates, "reasons": dict(result.reasons),
            "field_mapping": dict(result.field_mapping), "notes": notes}


def ingest_upload(state: Any, caller: Caller, file: UploadFile, *, path: str, text_field: str | None = None,
                  prompt_field: str | None = None, response_field: str | None = None,
                  idempotency_key: str | None = None) -> tuple[ApiResult, bool]:
    """Ingest an uploaded file as ``caller``'s provider (the API's and the portal's upload): the field options
    checked, the file streamed to a private temporary folder under the size limit (413 past it), then
    :func:`marketplace.ingest.ingest_one_file` with the caller as the audit trail's actor, once per
    ``idempotency_key``. ``state``: the app's state; ``path``: the request's path (part of the fingerprint).
    Returns ((status, body), replayed): 201 accepted or copy, 200 the same bytes again, 422 rejected."""
    mapping = field_mapping(text_field, prompt_field, response_field)
    limits, dedup = ingest_parameters(settings=state.settings)
    options = IngestOptions(mapping=mapping, limits=limits, dedup_params=dedup)
    max_bytes = min(state.limits.max_upload_bytes, limits.max_file_bytes)
    with saved_upload(file.file, file.filename, max_bytes=max_bytes, chunk_bytes=state.limits.upload_chunk_bytes) as up:
        fingerprint = request_fingerprint("POST", path, {
            "file_sha256": up.sha256, "filename": up.filename, "text_field": text_field, "prompt_field": prompt_field,
            "response_field": response_field})

        def work() -> ApiResult:
            result = ingest_one_file(state.session_factory, up.path, caller.name, options, actor=caller.actor)
            if result.refused:
                return 422, error_body("rejected_file", (result.message or "").replace(str(up.path), up.filename),
                                       reason_code=result.reason_code, location=result.location)
            return (200 if result.status == "existing" else 201), submission_result(result, up.filename)

        return run_idempotent(state.session_factory, caller.principal_id, idempotency_key, fingerprint, work)


@router.post("/submissions", status_code=201, summary="Upload a data file (the same ingestion as the CLI)",
             responses={413: {"description": "File too large"}, 422: {"description": "File rejected, with its "
                                                                                      "reason"}})
def create_submission(
    request: Request,
    file: Annotated[UploadFile, File(description="A data file: .jsonl/.csv/.tsv/.parquet, optionally .gz, or .zip.")],
    caller: ProviderOnly,
    text_field: OptionalForm = None, prompt_field: OptionalForm = None, response_field: OptionalForm = None,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    (status, body), replayed = ingest_upload(request.app.state, caller, file, path=request.url.path,
                                             text_field=text_field, prompt_field=prompt_field,
                                             response_field=response_field, idempotency_key=idempotency_key)
    return JSONResponse(body, status, headers=replay_headers(replayed))


def _summary(s: Any) -> dict[str, Any]:
    return {**jsonable_encoder(dataclasses.asdict(s)), "note": s.note}


@router.get("/submissions", summary="Your submissions and what became of their records")
def list_submissions(caller: ProviderOrOperator, session: SessionDep,
                     provider: ProviderQuery = None) -> dict[str, Any]:
    prov = caller_provider(session, caller, provider)
    subs = provider_submissions(session, prov.id) if prov is not None else []
    return {"provider": prov.name if prov is not None else caller.name,
            "submissions": [_summary(s) for s in subs]}


@router.get("/submissions/{submission_id}", summary="One submission, with its quarantined records")
def get_submission(submission_id: int, caller: ProviderOrOperator, session: SessionDep) -> dict[str, Any]:
    detail = visible_submission(session, caller, submission_id)
    return {"provider": detail.provider_name, "submission": _summary(detail.summary),
            "quarantined": [dataclasses.asdict(q) for q in detail.quarantined],
            "already_in_market": [{"record_index": d.record_index, "kind": d.kind, "note": ALREADY_IN_MARKET}
                                  for d in detail.duplicates]}


def provider_statement(session: Session, prov: Provider | None, period: str,
                       currency: str | None = None) -> ProviderStatement:
    """``prov``'s statement for ``period`` (``latest``: the latest period with postings); the one 404 when the
    provider has submitted nothing, a one-line error listing the periods with postings for an empty one."""
    if prov is None:
        raise not_found("statement", period)
    wanted = None if period == "latest" else period
    if wanted is not None:
        require_postings(session, prov.id, wanted)
    return build_provider_statement(session, prov.id, wanted, currency=currency)


@router.get("/statements/{period}", summary="Your statement for a period (JSON, CSV or HTML)",
            response_model=None)
def get_statement(
    period: str, caller: ProviderOrOperator, session: SessionDep,
    format: Literal["json", "csv", "html"] = "json",
    table: Annotated[StatementTable, Query(description="Which table ?format=csv returns.")] = "transactions",
    currency: Annotated[str | None, Query(description="Only for providers paid in several currencies.")] = None,
    provider: ProviderQuery = None,
) -> Response | dict[str, Any]:
    statement = provider_statement(session, caller_provider(session, caller, provider), period, currency)
    if format == "html":
        return HTMLResponse(statement_html(statement), headers=HTML_HEADERS)
    if format == "csv":
        with tempfile.TemporaryDirectory(prefix="mkt-statement-") as folder:
            path = write_statement(statement, Path(folder))[f"csv_{table}"]
            content = path.read_bytes()
            name = path.name
        return Response(content, media_type="text/csv; charset=utf-8", headers=download_headers(name))
    data = jsonable_encoder(dataclasses.asdict(statement))
    data.pop("values", None)
    data["balance_history"] = [{"at": at, "balance_minor": v} for at, v in data.get("balance_history", [])]
    data["notes"] = statement.notes
    return data


def provider_balances(session: Session, provider_id: int) -> list[dict[str, Any]]:
    """What the marketplace owes the provider, one entry per currency it is paid in (sorted):
    ``currency``, ``amount_minor`` (integer minor units) and ``amount`` (as text, e.g. ``12.34 EUR``)."""
    currencies = sorted(set(session.scalars(select(LedgerAccount.currency).where(
        LedgerAccount.provider_id == provider_id, LedgerAccount.kind == AccountKind.PROVIDER_PAYABLE))))
    balances = []
    for cur in currencies:
        owed = provider_payable_balance(session, provider_id, cur)
        balances.append({"currency": cur, "amount_minor": owed, "amount": str(Money(owed, cur))})
    return balances


@router.get("/balance", summary="What the marketplace owes you, per currency")
def get_balance(caller: ProviderOrOperator, session: SessionDep, provider: ProviderQuery = None) -> dict[str, Any]:
    prov = caller_provider(session, caller, provider)
    if prov is None:
        return {"provider": caller.name, "balances": []}
    return {"provider": prov.name, "balances": provider_balances(session, prov.id)}
