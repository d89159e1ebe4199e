"""The one place where the pipeline's errors become HTTP statuses."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from ..blocks.text_policy import json_safe
from ..pipeline.errors import InvalidLibrary, InvalidRequest, NotReady, Overloaded, UnknownLibraryVersion

RETRY_AFTER_S = {NotReady: 5, Overloaded: 2}


def _detail(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid_body(_: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own handler echoes the input and fails to encode NaN or infinities (a 500)
        return JSONResponse({"detail": json_safe(jsonable_encoder(exc.errors()))}, status_code=422)

    @app.exception_handler(InvalidRequest)
    async def _invalid_request(_: Request, exc: InvalidRequest) -> JSONResponse:
        return _detail(422, str(exc))

    @app.exception_handler(InvalidLibrary)
    async def _invalid_library(_: Request, exc: InvalidLibrary) -> JSONResponse:
        return _detail(422, str(exc))

    @app.exception_handler(NotReady)
    async def _not_ready(_: Request, exc: NotReady) -> JSONResponse:
        return _detail(503, str(exc), {"Retry-After": str(RETRY_AFTER_S[NotReady])})

    @app.exception_handler(Overloaded)
    async def _overloaded(_: Request, exc: Overloaded) -> JSONResponse:
        return _detail(503, str(exc), {"Retry-After": str(RETRY_AFTER_S[Overloaded])})

    @app.exception_handler(UnknownLibraryVersion)
    async def _unknown_version(_: Request, exc: UnknownLibraryVersion) -> JSONResponse:
        return JSONResponse({"detail": str(exc), "library_version": exc.version, "available": exc.available},
                            status_code=409)
