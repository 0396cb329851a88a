"""``Idempotency-Key`` on POST requests: the same key with the same request gets the first response again,
the same key with another request is a 409, and the work runs at most once per key.

The first request *reserves* the key (a row with no response yet, committed before the work starts), so a
second request with that key while the first still runs gets 409 ("still running; retry") instead of a
second run. When the work ends, its response (success or a refusal the client caused, any status below
500) is stored on the row; on a server error or an unexpected exception the reservation is removed, so a
retry runs the work again. Keys are per principal: two principals never see each other's records.

What "the same request" means is the endpoint's *fingerprint* (method, path and the meaningful content:
form fields and the sha256 of an uploaded file, or the parsed JSON body), not the raw bytes, so a client
re-sending a file with another multipart boundary is still the same request.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from marketplace.api.errors import error_parts
from marketplace.db.base import utcnow
from marketplace.db.principals import IdempotencyRecord
from marketplace.errors import ConflictError, MarketplaceError, ValidationError

__all__ = ["MAX_KEY_CHARS", "ApiResult", "request_fingerprint", "run_idempotent"]

MAX_KEY_CHARS = 200
ApiResult = tuple[int, dict[str, Any]]  # HTTP status and JSON body


def request_fingerprint(method: str, path: str, content: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of what makes two requests the same."""
    canonical = json.dumps({"method": method.upper(), "path": path, "content": content}, sort_keys=True,
                           separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _check_key(key: str) -> str:
    if not 1 <= len(key) <= MAX_KEY_CHARS or not all("!" <= ch <= "~" for ch in key):
        raise ValidationError(f"Idempotency-Key must be 1-{MAX_KEY_CHARS} visible ASCII characters without spaces "
                              "(a UUID is a good choice)")
    return key


def _outcome(record: IdempotencyRecord, fingerprint: str, key: str) -> ApiResult | None:
    """The stored response for a matching finished record; ConflictError for another request or one still
    running; None when there is no record."""
    if record.request_sha256 != fingerprint:
        raise ConflictError(f"Idempotency-Key {key!r} was already used with a different request; use a new key "
                            "for a new request")
    if record.status_code is None:
        raise ConflictError(f"the request with Idempotency-Key {key!r} is still running; retry it later to get its "
                            "response")
    return record.status_code, json.loads(record.response_body or "{}")


def _reserve(factory: sessionmaker[Session], principal_id: int, key: str, fingerprint: str) -> ApiResult | None:
    """A stored response to replay, or None once this request holds the key."""
    for _ in range(2):
        with factory() as session:
            found = session.scalar(select(IdempotencyRecord).where(IdempotencyRecord.principal_id == principal_id,
                                                                   IdempotencyRecord.key == key))
            if found is not None:
                return _outcome(found, fingerprint, key)
            session.add(IdempotencyRecord(principal_id=principal_id, key=key, request_sha256=fingerprint))
            try:
                session.commit()
                return None
            except IntegrityError:  # another request reserved the key in between: read what it stored
                session.rollback()
    raise ConflictError(f"the request with Idempotency-Key {key!r} is still running; retry it later")


def _finish(factory: sessionmaker[Session], principal_id: int, key: str, result: ApiResult | None) -> None:
    with factory() as session, session.begin():
        where = (IdempotencyRecord.principal_id == principal_id, IdempotencyRecord.key == key)
        if result is None:
            session.execute(delete(IdempotencyRecord).where(*where))
            return
        record = session.scalar(select(IdempotencyRecord).where(*where))
        if record is not None:
            record.status_code, record.response_body = result[0], json.dumps(result[1], default=str)
            record.completed_at = utcnow()


def run_idempotent(factory: sessionmaker[Session], principal_id: int, key: str | None, fingerprint: str,
                   work: Callable[[], ApiResult]) -> tuple[ApiResult, bool]:
    """``work()``'s status and body, or the stored ones of an earlier request with ``key``; the flag says
    whether it was replayed. Without a key the work simply runs. A MarketplaceError from ``work`` is a
    response like any other (stored when its status is below 500)."""
    if key is None:
        try:
            return work(), False
        except MarketplaceError as exc:
            return error_parts(exc), False
    key = _check_key(key)
    stored = _reserve(factory, principal_id, key, fingerprint)
    if stored is not None:
        return stored, True
    try:
        try:
            result = work()
        except MarketplaceError as exc:
            result = error_parts(exc)
    except BaseException:
        _finish(factory, principal_id, key, None)
        raise
    _finish(factory, principal_id, key, result if result[0] < 500 else None)
    return result, False
