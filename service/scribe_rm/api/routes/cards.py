"""The library's cards. The routes keep the paper's word, prototype, which the API has always used."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException

from ...pipeline.engine import Engine
from ...pipeline.schemas import PrototypeDetail, PrototypeList, PrototypeSummary
from ..state import engine_of

router = APIRouter(tags=["prototypes"])


@router.get("/prototypes", response_model=PrototypeList)
async def list_cards(engine: Engine = Depends(engine_of)) -> PrototypeList:
    library = engine.library
    return PrototypeList(library_version=library.version, prototypes=[
        PrototypeSummary(id=c.id, name=c.name, domain=c.domain, when_to_use=c.when_to_use)
        for c in library.cards.values()])


@router.get("/prototypes/{prototype_id}", response_model=PrototypeDetail)
async def get_card(prototype_id: str, engine: Engine = Depends(engine_of)) -> PrototypeDetail:
    library = engine.library
    card = library.get(prototype_id)
    if card is None:
        raise HTTPException(404, detail=f"unknown prototype '{prototype_id}'")
    return PrototypeDetail(library_version=library.version, prototype=card)
