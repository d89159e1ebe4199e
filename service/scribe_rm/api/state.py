"""What a route handler reads from the app: the engine and the settings."""

from __future__ import annotations

from fastapi import Request

from ..pipeline.engine import Engine
from ..settings import Settings


def engine_of(request: Request) -> Engine:
    return request.app.state.engine


def settings_of(request: Request) -> Settings:
    return request.app.state.settings
