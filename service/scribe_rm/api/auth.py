"""Bearer API keys. When keys are configured, every path except the probes (and /metrics when
`metrics_public`) answers 401 without a valid key. /admin/* takes only admin keys, a separate set: with
none configured it answers 403. Keys are compared in constant time and never logged."""

from __future__ import annotations

import hmac
import json
from pathlib import Path

from starlette.types import ASGIApp, Receive, Scope, Send

from .inspector import is_ui_path

PROBES = frozenset({"/healthz", "/readyz"})


def load_keys(inline: list[str], key_file: Path | None) -> list[bytes]:
    keys = [k.strip() for k in inline if k.strip()]
    if key_file is not None:
        keys += [line.strip() for line in key_file.read_text().splitlines()
                 if line.strip() and not line.startswith("#")]
    return [k.encode() for k in keys]


class ApiKeyAuth:
    def __init__(self, app: ASGIApp, keys: list[bytes], metrics_public: bool = True, admin_keys: list[bytes] = ()):
        self.app = app
        self.keys = keys
        self.admin_keys = list(admin_keys)
        self.open_paths = PROBES | ({"/metrics"} if metrics_public else frozenset())

    @staticmethod
    def _valid(presented: bytes, keys: list[bytes]) -> bool:
        matched = False
        for key in keys:  # no early exit: the time taken does not depend on which key matched
            matched |= hmac.compare_digest(presented, key)
        return matched

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"].startswith("/admin/"):
            if not self.admin_keys:
                await _deny(send, 403, "admin endpoints are off: set SCRIBE_ADMIN_API_KEYS (or _FILE)")
            elif self._valid(_bearer(scope), self.admin_keys):
                await self.app(scope, receive, send)
            else:
                await _deny(send, 401, "missing or invalid admin API key (Authorization: Bearer <key>)")
            return
        path = scope["path"]
        public = path in self.open_paths or is_ui_path(path)  # the page holds no data
        if not self.keys or public or self._valid(_bearer(scope), self.keys):
            await self.app(scope, receive, send)
            return
        await _deny(send, 401, "missing or invalid API key (Authorization: Bearer <key>)")


def _bearer(scope: Scope) -> bytes:
    header = dict(scope.get("headers") or []).get(b"authorization", b"")
    scheme, _, token = header.partition(b" ")
    return token.strip() if scheme.lower() == b"bearer" else b""


async def _deny(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (b"www-authenticate", b"Bearer")]})
    await send({"type": "http.response.body", "body": body})
