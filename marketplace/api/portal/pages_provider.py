"""The provider's pages: the dashboard (balance, statements, submissions, the upload form), one submission
with its quarantined records, and a statement with its plots.

Each page calls what the JSON API's provider routes call (:mod:`marketplace.api.routes_provider`,
:mod:`marketplace.api.tenancy`, :mod:`marketplace.reports`): a provider sees only its own provider, the
operator any provider named with ``?provider=NAME``. The upload runs the API's upload
(:func:`marketplace.api.routes_provider.ingest_upload`: the same streaming, size limit, ingestion and audit
record) and then shows the new submission.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import RedirectResponse, Response

from marketplace.api.auth import SessionDep
from marketplace.api.portal.deps import csrf_checked, require_portal_roles
from marketplace.api.portal.sessions import SignedIn
from marketplace.api.portal.templating import PORTAL_PREFIX, inert_markup, page
from marketplace.api.routes_provider import ingest_upload, provider_balances, provider_statement
from marketplace.api.tenancy import caller_provider, visible_submission
from marketplace.api.uploads import clean_filename
from marketplace.db import Provider
from marketplace.reports.render import statement_body_html
from marketplace.reports.statements import posted_periods
from marketplace.reports.submissions import ALREADY_IN_MARKET, provider_submissions

__all__ = ["router"]

router = APIRouter(prefix="/provider")
ProviderOrOperator = Annotated[SignedIn, Depends(require_portal_roles("provider", "operator"))]
ProviderUpload = Annotated[SignedIn, Depends(csrf_checked("provider"))]
ProviderQuery = Annotated[str | None, Query(max_length=200)]
OptionalForm = Annotated[str | None, Form(max_length=200)]
UPLOAD_NOTES = {"accepted": "Your file was accepted.", "copy": "The same file was already in the market.",
                "existing": "You had sent these exact bytes before: nothing new was written."}


def _suffix(user: SignedIn, provider: Provider | None) -> str:
    """The query that names the provider on the operator's links (providers need none)."""
    return f"?{urlencode({'provider': provider.name})}" if user.caller.role == "operator" and provider else ""


def _dashboard(request: Request, session: SessionDep, user: SignedIn, provider: str | None, *, status: int = 200,
               upload_error: str | None = None) -> Response:
    prov = caller_provider(session, user.caller, provider)
    context: dict[str, Any] = {
        "provider_name": prov.name if prov else user.caller.name,
        "balances": provider_balances(session, prov.id) if prov else [],
        "periods": list(reversed(posted_periods(session, prov.id))) if prov else [],
        "submissions": provider_submissions(session, prov.id) if prov else [],
        "suffix": _suffix(user, prov), "can_upload": user.caller.role == "provider", "upload_error": upload_error,
    }
    return page(request, "provider.html", status, signed=user, title="Provider dashboard", **context)


@router.get("")
def dashboard(request: Request, session: SessionDep, user: ProviderOrOperator,
              provider: ProviderQuery = None) -> Response:
    return _dashboard(request, session, user, provider)


@router.post("/upload")
def upload(request: Request, session: SessionDep, user: ProviderUpload,
           file: Annotated[UploadFile, File()], text_field: OptionalForm = None, prompt_field: OptionalForm = None,
           response_field: OptionalForm = None) -> Response:
    (status, body), _ = ingest_upload(request.app.state, user.caller, file, path=request.url.path,
                                      text_field=text_field, prompt_field=prompt_field, response_field=response_field)
    if status >= 400:
        reason = f" ({body['reason_code']}{', ' + body['location'] if body.get('location') else ''})" \
            if body.get("reason_code") else ""
        return _dashboard(request, session, user, None, status=status,
                          upload_error=f"{clean_filename(file.filename)} was not accepted: {body['detail']}{reason}")
    return RedirectResponse(f"{PORTAL_PREFIX}/provider/submissions/{body['submission_id']}?uploaded={body['status']}",
                            303)


@router.get("/submissions/{submission_id}")
def submission(request: Request, session: SessionDep, user: ProviderOrOperator, submission_id: int,
               uploaded: Annotated[str | None, Query(max_length=20)] = None) -> Response:
    detail = visible_submission(session, user.caller, submission_id)
    suffix = f"?{urlencode({'provider': detail.provider_name})}" if user.caller.role == "operator" else ""
    return page(request, "submission.html", signed=user, title=f"Submission {submission_id}", detail=detail,
                already_in_market=ALREADY_IN_MARKET, upload_note=UPLOAD_NOTES.get(uploaded or ""), suffix=suffix)


@router.get("/statements/{period}")
def statement(request: Request, session: SessionDep, user: ProviderOrOperator, period: str,
              provider: ProviderQuery = None,
              currency: Annotated[str | None, Query(max_length=10)] = None) -> Response:
    prov = caller_provider(session, user.caller, provider)
    st = provider_statement(session, prov, period, currency)
    return page(request, "statement.html", signed=user, title=f"Statement {st.period}", statement=st,
                body=inert_markup(statement_body_html(st)), suffix=_suffix(user, prov))
