"""Probes: /healthz answers as soon as the process runs, /readyz once the models are loaded."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from ...pipeline.engine import Engine
from ..state import engine_of

router = APIRouter(tags=["ops"])


@router.get("/healthz")
async def healthz() -> dict:
    return {"status": "alive"}


@router.get("/readyz")
async def readyz(engine: Engine = Depends(engine_of)) -> JSONResponse:
    ready, detail = await engine.readiness()
    return JSONResponse({"ready": ready, **detail}, status_code=200 if ready else 503)
