"""ASGI middleware of the service: the request-size limit, the timeout and the last-resort error handler.

They are plain ASGI (no ``BaseHTTPMiddleware``) so that an upload is never read twice or held in memory:
the size limit counts the body as it streams past and stops it at the limit (413), whatever the route
would have done with it; the timeout answers 504 when a request runs too long; any exception nothing else
handled becomes a JSON 500 (the traceback only in the server log, with the same reference).
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from marketplace.api.errors import error_body

__all__ = ["BodyLimitMiddleware", "CatchAllMiddleware", "TimeoutMiddleware", "send_json"]

log = logging.getLogger(__name__)


async def send_json(send: Send, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
    payload = json.dumps(body).encode("utf-8")
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": payload})


class _TooLarge(Exception):
    pass


class BodyLimitMiddleware:
    """413 for a body over ``limit_for(method, path)`` bytes: at once when ``Content-Length`` says so, else
    as soon as the streamed body passes it (the route's own answer is then replaced)."""

    def __init__(self, app: ASGIApp, limit_for: Callable[[str, str], int]) -> None:
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["method"], scope["path"])
        detail = f"the request body is larger than {limit} bytes; send a smaller file or split it"
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await send_json(send, 413, error_body("payload_too_large", detail), {"connection": "close"})
            return
        state = {"received": 0, "exceeded": False, "started": False}

        async def limited_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                if state["received"] > limit:
                    state["exceeded"] = True
                    raise _TooLarge
            return message

        async def guarded_send(message: Message) -> None:
            if state["exceeded"]:
                return  # whatever the route made of the cut body is dropped: the answer is 413
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except _TooLarge:
            pass
        except Exception:
            if not state["exceeded"]:
                raise
        if state["exceeded"] and not state["started"]:
            await send_json(send, 413, error_body("payload_too_large", detail), {"connection": "close"})


class _StartTracking:
    """Wraps ``send`` to remember whether the response has started (headers sent): after that, an error can
    no longer be answered with a JSON body of its own."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.started = False

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
        await self._send(message)


class TimeoutMiddleware:
    """504 when a request has not answered within ``timeout_s`` seconds. Work already running in a worker
    thread cannot be interrupted and finishes on its own; with an ``Idempotency-Key`` the client can ask
    again and gets its result once it is stored."""

    def __init__(self, app: ASGIApp, timeout_s: float) -> None:
        self.app = app
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        tracked = _StartTracking(send)
        try:
            await asyncio.wait_for(self.app(scope, receive, tracked.send), self.timeout_s)
        except TimeoutError:
            if not tracked.started:
                await send_json(send, 504, error_body(
                    "timeout", f"the request took longer than {self.timeout_s:g} s; retry it (with the same "
                               "Idempotency-Key for a POST)"))


class CatchAllMiddleware:
    """Any exception that reached here becomes a JSON 500 with a reference; the traceback is logged."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        tracked = _StartTracking(send)
        try:
            await self.app(scope, receive, tracked.send)
        except Exception:
            reference = uuid.uuid4().hex[:12]
            log.exception("unexpected error in %s %s (reference %s)", scope.get("method"), scope.get("path"),
                          reference)
            if not tracked.started:
                await send_json(send, 500, error_body(
                    "internal", f"an unexpected error occurred (reference {reference}); the operator's server log "
                                "has the details"))
