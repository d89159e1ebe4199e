"""The card model, at the bottom of the package: one rubric card per skill, its validation, and loading a
library directory (validated, versioned by a hash of its content). Everything else imports cards from here."""

from .cards import (BUILTIN_DOMAINS, EVERY_CARD, MIN_EXAMPLES, SCORE_LEVELS, Card, CardError, Domain, FailureMode,
                    Provenance, admits, domain_of_scope, home_scope, scope_of, validate_card)
from .loader import Library, LibrarySource, card_paths, load_card, load_library

__all__ = ["BUILTIN_DOMAINS", "EVERY_CARD", "MIN_EXAMPLES", "SCORE_LEVELS", "Card", "CardError", "Domain", "FailureMode", "Library",
           "LibrarySource", "Provenance", "admits", "card_paths", "domain_of_scope", "home_scope", "load_card",
           "load_library", "scope_of", "validate_card"]
