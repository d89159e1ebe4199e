"""Scoring and routing."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from ...blocks.logs import REQUEST_ID
from ...pipeline.engine import Engine
from ...pipeline.schemas import RouteRequest, RouteResponse, ScoreRequest, ScoreResponse, VersionConflict
from ..state import engine_of

router = APIRouter(tags=["scoring"], responses={409: {"model": VersionConflict,
                                                      "description": "The pinned library_version is not served here."}})


@router.post("/route", response_model=RouteResponse)
async def route(body: RouteRequest, engine: Engine = Depends(engine_of)) -> RouteResponse:
    return await engine.route(body)


@router.post("/score", response_model=ScoreResponse)
async def score(body: ScoreRequest, engine: Engine = Depends(engine_of)) -> ScoreResponse:
    if body.request_id is None:
        body.request_id = REQUEST_ID.get()
    return await engine.score(body)
