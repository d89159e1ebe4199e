"""The inspector page's server side: its static files (ui/), the strict security headers they are served
with, and the example items the page offers."""

from __future__ import annotations

import json
from pathlib import Path

from starlette.types import ASGIApp, Message, Receive, Scope, Send

UI_DIR = Path(__file__).with_name("ui")
EXAMPLE_REQUESTS = ("score_request.json", "agent_request.json")
# Scripts and styles from the page's own files only: no inline script, no eval, nothing from elsewhere.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
HEADERS = [(b"content-security-policy", CSP.encode()), (b"x-content-type-options", b"nosniff"),
           (b"referrer-policy", b"no-referrer"), (b"x-frame-options", b"DENY")]


def is_ui_path(path: str) -> bool:
    return path == "/ui" or path.startswith("/ui/")


class InspectorHeaders:
    """Adds the CSP and related headers to every /ui response (the API's JSON needs none; /docs loads
    Swagger UI from a CDN, which this CSP would block)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_ui_path(scope["path"]):
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + HEADERS
            await send(message)

        await self.app(scope, receive, with_headers)


def load_examples(directory: Path) -> list[dict]:
    """Each item of the example requests, named "<file>: <id>"; none when the examples are not installed."""
    examples = []
    for name in EXAMPLE_REQUESTS:
        path = directory / name
        if path.is_file():
            for item in json.loads(path.read_text(encoding="utf-8")).get("items", []):
                examples.append({"name": f"{name}: {item.get('id')}", "item": item})
    return examples
