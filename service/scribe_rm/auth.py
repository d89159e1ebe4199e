"""Bearer API keys. When keys are configured, every path except the probes (and /metrics when
`metrics_public`) answers 401 without a valid key. Keys are compared in constant time and never logged."""

from __future__ import annotations

import hmac
import json
from pathlib import Path

from starlette.types import ASGIApp, Receive, Scope, Send

PROBES = frozenset({"/healthz", "/readyz"})


def load_keys(inline: list[str], key_file: Path | None) -> list[bytes]:
    keys = [k.strip() for k in inline if k.strip()]
    if key_file is not None:
        keys += [line.strip() for line in key_file.read_text().splitlines()
                 if line.strip() and not line.startswith("#")]
    return [k.encode() for k in keys]


class ApiKeyAuth:
    def __init__(self, app: ASGIApp, keys: list[bytes], metrics_public: bool = True):
        self.app = app
        self.keys = keys
        self.open_paths = PROBES | ({"/metrics"} if metrics_public else frozenset())

    def _valid(self, presented: bytes) -> bool:
        matched = False
        for key in self.keys:  # no early exit: the time taken does not depend on which key matched
            matched |= hmac.compare_digest(presented, key)
        return matched

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.keys or scope["path"] in self.open_paths:
            await self.app(scope, receive, send)
            return
        header = dict(scope.get("headers") or []).get(b"authorization", b"")
        scheme, _, token = header.partition(b" ")
        if scheme.lower() == b"bearer" and token and self._valid(token.strip()):
            await self.app(scope, receive, send)
            return
        body = json.dumps({"detail": "missing or invalid API key (Authorization: Bearer <key>)"}).encode()
        await send({"type": "http.response.start", "status": 401, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
            (b"www-authenticate", b"Bearer")]})
        await send({"type": "http.response.body", "body": body})
