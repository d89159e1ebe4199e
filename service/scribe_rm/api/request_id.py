"""Request ids: taken from the caller's X-Request-ID (or made), exposed to every log line, echoed in the
response; one access log line per request."""

from __future__ import annotations

import logging
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..blocks.logs import REQUEST_ID

HEADER = "x-request-id"
log = logging.getLogger("scribe_rm.access")


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers") or []).get(HEADER.encode(), b"").decode("latin-1")[:128]
        request_id = given or uuid.uuid4().hex
        token = REQUEST_ID.set(request_id)
        started = time.monotonic()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (HEADER.encode(), request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed_ms = round((time.monotonic() - started) * 1000, 2)
            log.info("%s %s %s %.1fms", scope["method"], scope["path"], status, elapsed_ms,
                     extra={"fields": {"method": scope["method"], "path": scope["path"], "status": status,
                                       "latency_ms": elapsed_ms}})
            REQUEST_ID.reset(token)
