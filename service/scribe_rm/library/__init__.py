"""The skill library's life cycle, beside the serving pipeline: the card model and its validation, loading
and versioning, and the induction of new cards from trajectories (decompose, cluster, distill, merge,
review). Serving modules import cards from here."""

from .cards import (BUILTIN_DOMAINS, SCORE_LEVELS, Card, CardError, Domain, FailureMode, Provenance, admits,
                    scope_of, validate_card)
from .loader import Library, card_paths, load_card, load_library

__all__ = ["BUILTIN_DOMAINS", "SCORE_LEVELS", "Card", "CardError", "Domain", "FailureMode", "Library",
           "Provenance", "admits", "card_paths", "load_card", "load_library", "scope_of", "validate_card"]
