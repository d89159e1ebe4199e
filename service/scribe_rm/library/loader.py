"""Load a library directory: every `*.yaml` card below it, validated, versioned by a hash of its content."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml

from .cards import Card, CardError, validate_card

log = logging.getLogger(__name__)


def load_card(path: Path) -> Card:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise CardError(f"{path}: not valid YAML: {exc}") from exc
    return validate_card(data, path)


def card_paths(directory: Path) -> list[Path]:
    """Every *.yaml / *.yml below `directory`, following directory symlinks, skipping hidden names: a mounted
    Kubernetes ConfigMap holds each file twice more under `..data/` and `..<timestamp>/`."""
    paths = []
    for root, dirs, files in os.walk(directory, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        paths += [Path(root) / f for f in sorted(files) if f.endswith((".yaml", ".yml")) and not f.startswith(".")]
    return sorted(paths)


def library_fingerprint(directory: Path) -> tuple:
    """Changes when a card file is added, removed or rewritten (ConfigMap updates swap the files)."""
    entries = []
    for path in card_paths(directory):
        try:
            stat = path.stat()
        except OSError:
            continue
        entries.append((str(path), stat.st_mtime_ns, stat.st_size, stat.st_ino))
    return tuple(entries)


@dataclass(frozen=True)
class Library:
    cards: dict[str, Card]
    version: str
    skipped: list[str] = field(default_factory=list)  # messages for cards left out (on_invalid="skip")
    drafts_left_out: int = 0  # draft cards present but not loaded
    sources: dict[str, Path] = field(default_factory=dict)  # card id -> its file

    def get(self, card_id: str) -> Card | None:
        return self.cards.get(card_id)

    @property
    def domains(self) -> list[str]:
        return sorted({card.domain for card in self.cards.values()})

    @staticmethod
    def content_version(cards: dict[str, Card]) -> str:
        canonical = json.dumps([cards[k].model_dump(mode="json") for k in sorted(cards)], sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def load_library(directory: Path, fallback_id: str, on_invalid: Literal["fail", "skip"] = "fail",
                 include_drafts: bool = False) -> Library:
    """Load every card below `directory`. Invalid cards fail the load or are skipped and reported; draft
    cards are left out unless `include_drafts`. Ids must be unique across the whole directory."""
    paths = card_paths(directory)
    if not paths:
        raise CardError(f"{directory}: no *.yaml cards found")
    cards: dict[str, Card] = {}
    sources: dict[str, Path] = {}
    skipped: list[str] = []
    drafts = 0
    for path in paths:
        try:
            card = load_card(path)
            if card.id in sources:
                raise CardError(f"{path}: field 'id': '{card.id}' is already defined in {sources[card.id]}")
        except CardError as exc:
            if on_invalid == "fail":
                raise
            log.warning("skipping card: %s", exc)
            skipped.append(str(exc))
            continue
        sources[card.id] = path
        if card.status == "draft" and not include_drafts:
            drafts += 1
            continue
        cards[card.id] = card
    if fallback_id not in cards:
        raise CardError(f"{directory}: the fallback card '{fallback_id}' is missing")
    return Library(cards=cards, version=Library.content_version(cards), skipped=skipped, drafts_left_out=drafts,
                   sources={k: v for k, v in sources.items() if k in cards})


@dataclass(frozen=True)
class LibrarySource:
    """Where a service's library comes from and how it is loaded."""
    directory: Path
    fallback_id: str = "general.step_validity"
    on_invalid: Literal["fail", "skip"] = "fail"
    include_drafts: bool = False

    def load(self) -> Library:
        return load_library(self.directory, self.fallback_id, self.on_invalid, self.include_drafts)

    def fingerprint(self) -> tuple:
        return library_fingerprint(self.directory)
