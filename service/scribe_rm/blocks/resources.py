"""The data files the package carries, found where the package is installed, never in a source checkout's
working directory.

The package's own `data/` folder holds the held-out routing sets and the consistency data. The shipped card
library (`prototypes/`) and the example requests live at the top of the repository, where people and the
deployment files look for them; a wheel carries copies under `scribe_rm/data/` (pyproject.toml,
`force-include`), and an editable install of a checkout reads them where they are."""

from __future__ import annotations

from pathlib import Path

PACKAGE_DATA = Path(__file__).resolve().parents[1] / "data"
CHECKOUT = Path(__file__).resolve().parents[3]  # only meaningful for an editable install of a checkout


def _carried(in_wheel: str, in_checkout: str) -> Path:
    packaged = PACKAGE_DATA / in_wheel
    return packaged if packaged.exists() else CHECKOUT / in_checkout


def shipped_cards_dir() -> Path:
    """The shipped skill library (one YAML card per skill)."""
    return _carried("cards", "prototypes")


def examples_dir() -> Path:
    """The example requests the inspector page offers."""
    return _carried("examples", "examples")


def heldout_set(name: str) -> Path:
    """A labelled routing set (JSONL: text, expected[, domain]) written apart from the cards."""
    return PACKAGE_DATA / "heldout" / name


def eval_data(name: str) -> Path:
    return PACKAGE_DATA / "eval" / name
