"""The pipeline's errors, in its own terms. The API maps each to an HTTP status in one place (api/errors.py);
nothing below the API knows about status codes."""

from __future__ import annotations


class PipelineError(Exception):
    """Base of the errors a caller of the pipeline is expected to handle."""


class InvalidRequest(PipelineError, ValueError):
    """The request as a whole cannot be served as sent: a limit, an unknown card, a bad split pattern."""


class UnknownCard(InvalidRequest, KeyError):
    def __init__(self, card_id: str):
        super().__init__(f"unknown prototype_id '{card_id}'")
        self.card_id = card_id

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


class NotReady(PipelineError):
    """The models are still loading, or loading failed (the message says which)."""


class Overloaded(PipelineError):
    """Too much judge work is queued; try again shortly."""


class InvalidLibrary(PipelineError):
    """A library reload was refused (an invalid card, a duplicate id); the serving version is unchanged."""


class UnknownLibraryVersion(PipelineError):
    """A request pinned a library version this replica does not serve (never had it, or dropped it)."""

    def __init__(self, version: str, available: list[str]):
        super().__init__(f"library version '{version}' is not served here; this replica serves "
                         f"{', '.join(available)} (the first is current)")
        self.version = version
        self.available = available
