"""Thin client for the SCRIBE-RM reward service (runtime dependency: httpx)."""

from .client import AsyncScribeClient, RetryPolicy, ScribeClient, ScribeError

__all__ = ["AsyncScribeClient", "RetryPolicy", "ScribeClient", "ScribeError"]
