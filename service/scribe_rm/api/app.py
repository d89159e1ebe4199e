"""The HTTP service: the engine built from the settings, the middleware, the routers and the error mapping.
Models load in the background at start-up: /healthz answers at once, /readyz only once the embedder, the
router index and the judge are ready."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from prometheus_fastapi_instrumentator import Instrumentator

from .. import __version__
from ..pipeline.engine import Engine
from ..pipeline.judges import Judge
from ..pipeline.schemas import ErrorBody
from ..settings import Settings, get_settings
from .auth import ApiKeyAuth, load_keys
from .body_limit import BodySizeLimit
from .errors import add_error_handlers
from .inspector import UI_DIR, InspectorHeaders
from .request_id import RequestIdMiddleware
from .routes import cards, compat, library, ops, scoring, ui


def create_app(settings: Settings | None = None, judge: Judge | None = None) -> FastAPI:
    """`judge` replaces the configured judge backend (tests pass a scripted one)."""
    settings = settings or get_settings()
    engine = Engine.build(settings.pipeline_config(), judge)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        background = [asyncio.create_task(engine.load())]
        if settings.library_watch_s > 0:
            background.append(asyncio.create_task(engine.watch_library(settings.library_watch_s)))
        yield
        for task in background:
            task.cancel()
        await engine.aclose()

    app = FastAPI(title="SCRIBE-RM", version=__version__, lifespan=lifespan,
                  description="Skill-rubric process rewards for RL training of tool-using and reasoning LLMs.",
                  responses={422: {"model": ErrorBody}, 503: {"model": ErrorBody}})
    app.state.engine = engine
    app.state.settings = settings
    _add_middleware(app, settings)
    add_error_handlers(app)
    Instrumentator(should_group_status_codes=False, excluded_handlers=["/metrics"]).instrument(app).expose(
        app, endpoint="/metrics", include_in_schema=True, tags=["ops"])  # request count and latency by route
    for area in (ops, cards, scoring, library, ui, compat):
        app.include_router(area.router)
    app.mount("/ui", StaticFiles(directory=UI_DIR, html=True), name="ui")
    return app


def _add_middleware(app: FastAPI, settings: Settings) -> None:
    """Added innermost first: the request id wraps everything (a 413 carries it too), auth runs before any
    body is read."""
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    keys = load_keys([k.get_secret_value() for k in settings.api_keys], settings.api_keys_file)
    admin_keys = load_keys([k.get_secret_value() for k in settings.admin_api_keys], settings.admin_api_keys_file)
    app.add_middleware(ApiKeyAuth, keys=keys, admin_keys=admin_keys, metrics_public=settings.metrics_public)
    app.add_middleware(InspectorHeaders)
    app.add_middleware(RequestIdMiddleware)
