"""The inspector page: its static files are mounted by app.py; this serves the example items it offers."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from ...settings import Settings
from ..inspector import load_examples
from ..state import settings_of

router = APIRouter(tags=["ui"])


@router.get("/ui-examples")
async def ui_examples(settings: Settings = Depends(settings_of)) -> list[dict]:
    """The example items of the repository's examples/ requests, for the inspector's picker."""
    return load_examples(settings.examples_dir)
