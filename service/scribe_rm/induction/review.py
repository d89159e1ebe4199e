"""Review induced cards: what changed between two libraries, how routing moves, and accepting drafts and
patches into a library directory (each written card passes the card validator first)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..evaluation.routing import AGENT_SET, DEFAULT_SET, evaluate_routing, load_labelled
from ..library import Card, CardError, Library, card_paths, load_card, load_library, scope_of, validate_card
from ..pipeline.embedder import Embedder, EmbedderConfig, make_embedder
from ..pipeline.router import Router, RouterConfig
from ..pipeline.schemas import SplitOptions
from .decompose import decompose
from .induce import route_by_item
from .merge import Patch


@dataclass
class LibraryDiff:
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: dict[str, list[str]] = field(default_factory=dict)  # card id -> the fields that differ

    def as_dict(self) -> dict:
        return {"added": self.added, "removed": self.removed, "changed": self.changed}


def diff_libraries(old: Library, new: Library) -> LibraryDiff:
    diff = LibraryDiff(added=sorted(new.cards.keys() - old.cards.keys()),
                       removed=sorted(old.cards.keys() - new.cards.keys()))
    for card_id in sorted(old.cards.keys() & new.cards.keys()):
        before, after = old.cards[card_id].model_dump(), new.cards[card_id].model_dump()
        fields = [name for name in before if before[name] != after[name]]
        if fields:
            diff.changed[card_id] = fields
    return diff


def card_yaml(card: Card) -> str:
    return yaml.safe_dump(card.model_dump(exclude_none=True), sort_keys=False, allow_unicode=True, width=110)


def write_card(card: Card, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(card_yaml(card), encoding="utf-8")


def find_card(directory: Path, card_id: str) -> tuple[Path, Card] | None:
    for path in card_paths(directory):
        try:
            card = load_card(path)
        except CardError:
            continue
        if card.id == card_id:
            return path, card
    return None


def accept(library_dir: Path, ids: list[str], drafts_dir: Path | None = None,
           patches: list[Patch] = ()) -> list[str]:
    """Make each id active in `library_dir`: a draft there is switched to active in place; a draft in
    `drafts_dir` is written into the library as `<domain>/<name>.yaml`; a patch adds its examples to the
    library's card of that id. Returns one line per id; CardError if an id is none of these."""
    done = []
    by_card = {patch.card_id: patch for patch in patches}
    for card_id in ids:
        found = find_card(library_dir, card_id)
        if found and found[1].status == "draft":
            write_card(found[1].model_copy(update={"status": "active"}), found[0])
            done.append(f"{card_id}: draft accepted in place ({found[0]})")
        elif found and card_id in by_card:
            path, card = found
            examples = card.examples + [e for e in by_card[card_id].add_examples
                                        if e.strip().lower() not in {x.strip().lower() for x in card.examples}]
            write_card(validate_card({**card.model_dump(exclude_none=True), "examples": examples}, path), path)
            done.append(f"{card_id}: {len(examples) - len(card.examples)} anchors added ({path})")
        elif drafts_dir is not None and (draft := find_card(drafts_dir, card_id)) is not None:
            if found:
                raise CardError(f"{found[0]}: field 'id': '{card_id}' is already defined in the library")
            card = draft[1].model_copy(update={"status": "active"})
            path = library_dir / card.domain / f"{card_id.split('.', 1)[1]}.yaml"
            write_card(card, path)
            done.append(f"{card_id}: accepted into {path}")
        elif found:
            done.append(f"{card_id}: already active ({found[0]})")
        else:
            raise CardError(f"{card_id}: no draft card or patch with this id in {library_dir}"
                            + (f" or {drafts_dir}" if drafts_dir else ""))
    return done


def scoped_rows(rows: list[dict]) -> list[dict]:
    """Held-out rows with their domain kept only where it selects a scope of its own (agent, a library's
    own domain), whose cards no unfiltered text reaches; default-scope rows route unfiltered."""
    return [{**row, "domain": row.get("domain") if scope_of(row.get("domain")) != "default" else None}
            for row in rows]


async def routing_comparison(embedder_config: EmbedderConfig, static_config: EmbedderConfig | None,
                             router_config: RouterConfig, old_dir: Path, new_dir: Path, items: list,
                             domain: str | None, heldout: list[Path] | None) -> dict:
    """The diff of two library directories (drafts in NEW included) and how their routers differ on the
    items' steps and on labelled held-out sets."""
    old = load_library(old_dir, router_config.fallback_id)
    new = load_library(new_dir, router_config.fallback_id, include_drafts=True)
    embedder = Embedder(embedder_config)
    static = make_embedder(static_config) if static_config else None
    for loaded in (embedder, static):
        if loaded is not None:
            loaded.load()
    routers = {}
    for name, library in (("old", old), ("new", new)):
        routers[name] = Router(library, embedder, router_config, static_embedder=static)
        routers[name].build_sync()
    report: dict = {"diff": diff_libraries(old, new).as_dict(), "members": None, "heldout": {}}
    units, _ = await decompose(items, "rule", None, SplitOptions(), domain)
    if units:
        before, after = await route_by_item(routers["old"], units), await route_by_item(routers["new"], units)
        moves = Counter(f"{a.card.id} -> {b.card.id}" for a, b in zip(before, after) if a.card.id != b.card.id)
        report["members"] = {"n": len(before), "changed": sum(moves.values()), "moves": moves.most_common(10),
                             "fallback_old": sum(r.fallback for r in before),
                             "fallback_new": sum(r.fallback for r in after)}
    for path in heldout or [DEFAULT_SET, AGENT_SET]:
        rows = scoped_rows(load_labelled(path))
        scores = {name: (await evaluate_routing(router, rows, use_domain=True)).top1 for name, router in routers.items()}
        report["heldout"][path.name] = scores
    for loaded in (embedder, static):
        if loaded is not None:
            loaded.close()
    return report
