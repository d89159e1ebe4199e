"""The HTTP service. Models load in the background at start-up: /healthz answers at once, /readyz only
once the embedder, the router index and the judge are ready."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from . import __version__
from .auth import ApiKeyAuth, load_keys
from .batching import ItemFailed
from .compat import router as compat_router
from .gaps import gap_clusters
from .inspector import UI_DIR, InspectorHeaders, load_examples
from .judges import Judge
from .library import CardError
from .limits import BodySizeLimit
from .logs import REQUEST_ID, RequestIdMiddleware
from .router import Route, UnknownPrototypeError
from .sanitize import json_safe
from .schemas import (Alternative, ErrorBody, GapsResponse, PrototypeDetail, PrototypeList, PrototypeSummary,
                      ReloadResponse, RouteRequest, RouteResponse, RouteResult, ScoreRequest, ScoreResponse)
from .scorer import OverloadedError, RequestError
from .services import Services
from .settings import Settings, get_settings


def create_app(settings: Settings | None = None, judge: Judge | None = None) -> FastAPI:
    settings = settings or get_settings()
    services = Services.build(settings, judge)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        background = [asyncio.create_task(services.load())]
        if settings.library_watch_s > 0:
            background.append(asyncio.create_task(services.watch_library(settings.library_watch_s)))
        yield
        for task in background:
            task.cancel()
        await services.aclose()

    app = FastAPI(title="SCRIBE-RM", version=__version__, lifespan=lifespan,
                  description="Skill-rubric process rewards for RL training of tool-using and reasoning LLMs.",
                  responses={422: {"model": ErrorBody}, 503: {"model": ErrorBody}})
    app.state.services = services
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    keys = load_keys([k.get_secret_value() for k in settings.api_keys], settings.api_keys_file)
    admin_keys = load_keys([k.get_secret_value() for k in settings.admin_api_keys], settings.admin_api_keys_file)
    app.add_middleware(ApiKeyAuth, keys=keys, admin_keys=admin_keys,  # before reading any body
                       metrics_public=settings.metrics_public)
    app.add_middleware(InspectorHeaders)
    app.add_middleware(RequestIdMiddleware)  # outermost: every answer, 413 included, carries the id
    _add_error_handlers(app)
    _add_metrics(app)

    def require_ready() -> None:
        if not services.loaded:
            detail = services.load_error or "the service is still loading models"
            raise HTTPException(503, detail=detail, headers={"Retry-After": "5"})

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict:
        return {"status": "alive"}

    @app.get("/readyz", tags=["ops"])
    async def readyz() -> JSONResponse:
        ready, detail = await services.readiness()
        return JSONResponse({"ready": ready, **detail}, status_code=200 if ready else 503)

    @app.get("/prototypes", response_model=PrototypeList, tags=["prototypes"])
    async def list_prototypes() -> PrototypeList:
        library = services.library
        cards = library.cards.values()
        return PrototypeList(library_version=library.version, prototypes=[
            PrototypeSummary(id=c.id, name=c.name, domain=c.domain, when_to_use=c.when_to_use) for c in cards])

    @app.get("/prototypes/{prototype_id}", response_model=PrototypeDetail, tags=["prototypes"])
    async def get_prototype(prototype_id: str) -> PrototypeDetail:
        library = services.library
        card = library.get(prototype_id)
        if card is None:
            raise HTTPException(404, detail=f"unknown prototype '{prototype_id}'")
        return PrototypeDetail(library_version=library.version, prototype=card)

    @app.post("/route", response_model=RouteResponse, tags=["scoring"])
    async def route(body: RouteRequest) -> RouteResponse:
        if len(body.items) > settings.max_route_texts:
            raise RequestError(f"too many items: {len(body.items)} > max_route_texts={settings.max_route_texts}")
        for i, q in enumerate(body.items):
            if len(q.text) > settings.max_step_chars:
                raise RequestError(f"item {i} has {len(q.text)} characters > max_step_chars={settings.max_step_chars}")
        pipeline = services.pipeline  # one library version for the whole request
        explicit = {i: pipeline.router.explicit(q.prototype_id) for i, q in enumerate(body.items) if q.prototype_id}
        require_ready()
        todo = [i for i in range(len(body.items)) if i not in explicit]
        routed = await pipeline.router.route(
            [body.items[i].text for i in todo], [body.items[i].domain for i in todo])
        for i, route in zip(todo, routed):
            if isinstance(route, ItemFailed):
                raise RequestError(f"item {i}: the text could not be embedded ({route})")
        by_index = {**explicit, **dict(zip(todo, routed))}
        return RouteResponse(library_version=pipeline.library.version,
                             results=[_route_result(by_index[i]) for i in range(len(body.items))])

    @app.post("/score", response_model=ScoreResponse, tags=["scoring"])
    async def score(body: ScoreRequest) -> ScoreResponse:
        scorer = services.scorer  # one library version for the whole request
        prepared = scorer.prepare(body)  # answer 4xx before 503-not-ready
        require_ready()
        if body.request_id is None:
            body.request_id = REQUEST_ID.get()
        return await scorer.score(body, prepared)

    @app.post("/admin/library/reload", response_model=ReloadResponse, tags=["library"],
              responses={401: {"model": ErrorBody}, 403: {"model": ErrorBody}})
    async def reload_library() -> ReloadResponse:
        """Load the library directory again and swap it in without a restart (admin key). Requests in
        flight finish on the library they started with. An invalid library answers 422 naming the file and
        field, and the old one keeps serving."""
        require_ready()
        try:
            result = await services.reload()
        except CardError as exc:
            raise RequestError(f"library not reloaded, {services.library.version} keeps serving: {exc}") from exc
        return ReloadResponse(**result.__dict__)

    @app.get("/library/gaps", response_model=GapsResponse, tags=["library"])
    async def library_gaps(
        domain: str | None = Query(None, description="One domain's gaps ('none': texts sent without a domain); "
                                                     "default: all."),
        min_cluster_size: int = Query(3, ge=2),
        max_clusters: int = Query(12, ge=2, le=20),
        max_texts: int = Query(500, ge=2, le=2000, description="Cluster at most this many sampled texts (a random "
                                                               "subset)."),
    ) -> GapsResponse:
        """Routing texts from live traffic that no card fits well (fell back, or the best card led the
        runner-up by less than gap_margin), sampled per domain and clustered like induction clusters."""
        require_ready()
        report = await gap_clusters(services.gaps, services.embedder, domain, min_cluster_size, max_clusters,
                                    max_texts)
        return GapsResponse(library_version=services.library.version, sample_size=settings.gap_sample_size,
                            margin=settings.gap_margin, **report)

    @app.get("/ui-examples", tags=["ui"])
    async def ui_examples() -> list[dict]:
        """The example items of the repository's examples/ requests, for the inspector's picker."""
        return load_examples(settings.examples_dir)

    app.include_router(compat_router)
    app.mount("/ui", StaticFiles(directory=UI_DIR, html=True), name="ui")
    return app


def _route_result(route: Route) -> RouteResult:
    return RouteResult(
        prototype_id=route.card.id, prototype_name=route.card.name, domain=route.card.domain,
        similarity=route.similarity, fallback=route.fallback,
        alternatives=[Alternative(prototype_id=c.card_id, similarity=c.similarity) for c in route.alternatives])


def _add_metrics(app: FastAPI) -> None:
    from prometheus_fastapi_instrumentator import Instrumentator

    # request count and latency by route template and status; /metrics itself is not counted
    Instrumentator(should_group_status_codes=False, excluded_handlers=["/metrics"]).instrument(app).expose(
        app, endpoint="/metrics", include_in_schema=True, tags=["ops"])


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid_body(_: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own handler echoes the input and fails to encode NaN or infinities (a 500)
        return JSONResponse({"detail": json_safe(jsonable_encoder(exc.errors()))}, status_code=422)

    @app.exception_handler(RequestError)
    async def _request_error(_: Request, exc: RequestError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=exc.status_code)

    @app.exception_handler(UnknownPrototypeError)
    async def _unknown_prototype(_: Request, exc: UnknownPrototypeError) -> JSONResponse:
        return JSONResponse({"detail": f"unknown prototype_id '{exc.card_id}'"}, status_code=422)

    @app.exception_handler(OverloadedError)
    async def _overloaded(_: Request, exc: OverloadedError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503, headers={"Retry-After": str(exc.retry_after_s)})
