"""ScribeClient and AsyncScribeClient: POST /score with deadlines, retries and bounded concurrency.

Retries (jittered exponential backoff, Retry-After honoured) on connection errors, 408, 429 and 5xx;
never on other 4xx. One request_id per logical call, reused by its retries, so they are idempotent."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

import httpx

RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})


class ScribeError(RuntimeError):
    """A call that failed for good. `status_code` is None when the server was never reached."""

    def __init__(self, message: str, status_code: Optional[int] = None, detail: Any = None):
        super().__init__(message)
        self.status_code = status_code
        self.detail = detail


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4
    base_delay_s: float = 0.25
    max_delay_s: float = 8.0

    def delay(self, attempt: int, retry_after: Optional[str] = None) -> float:
        if retry_after:  # the server knows best; the caller's overall timeout still bounds it
            try:
                return max(0.0, float(retry_after))
            except ValueError:
                pass  # an HTTP date: fall back to backoff
        return random.uniform(0, min(self.max_delay_s, self.base_delay_s * 2 ** attempt))


def _error_of(response: httpx.Response) -> ScribeError:
    try:
        detail = response.json().get("detail")
    except ValueError:
        detail = response.text[:500]
    return ScribeError(f"SCRIBE-RM answered {response.status_code}: {detail}", response.status_code, detail)


def _body(items: List[Dict[str, Any]], deadline_s: float, options: Dict[str, Any]) -> Dict[str, Any]:
    body = {"items": items, "deadline_s": deadline_s, "request_id": uuid.uuid4().hex}
    body.update({k: v for k, v in options.items() if v is not None})
    return body


class _Base:
    def __init__(self, base_url: str, *, timeout_s: float = 120.0, deadline_margin_s: float = 5.0,
                 retry: RetryPolicy = RetryPolicy(), api_key: Optional[str] = None):
        """`timeout_s` is your budget per call (keep it below your trainer's own timeout); the server is
        asked to answer `deadline_margin_s` earlier, with explicit `timeout` items rather than a hang."""
        if timeout_s <= deadline_margin_s:
            raise ValueError("timeout_s must exceed deadline_margin_s")
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.deadline_s = timeout_s - deadline_margin_s
        self.retry = retry
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}

    def _give_up_at(self) -> float:
        return time.monotonic() + self.timeout_s

    def _outcome(self, response: httpx.Response, attempt: int, give_up_at: float) -> Optional[float]:
        """None on success; raise on a final failure; else the delay before the next attempt."""
        if response.status_code == 200:
            return None
        if response.status_code not in RETRY_STATUS:
            raise _error_of(response)
        return self._next_delay(attempt, give_up_at, _error_of(response), response.headers.get("Retry-After"))

    def _next_delay(self, attempt: int, give_up_at: float, error: ScribeError,
                    retry_after: Optional[str] = None) -> float:
        delay = self.retry.delay(attempt, retry_after)
        if attempt + 1 >= self.retry.attempts or time.monotonic() + delay >= give_up_at:
            raise error
        return delay


class ScribeClient(_Base):
    """Blocking client (connection pooled). Use from synchronous reward functions."""

    def __init__(self, base_url: str, **kwargs: Any):
        super().__init__(base_url, **kwargs)
        self._http = httpx.Client(base_url=self.base_url, headers=self.headers, timeout=self.timeout_s)

    def score(self, items: List[Dict[str, Any]], **options: Any) -> Dict[str, Any]:
        body = _body(items, self.deadline_s, options)
        give_up_at = self._give_up_at()
        for attempt in range(self.retry.attempts):
            try:
                response = self._http.post("/score", json=body)
            except httpx.TransportError as exc:
                time.sleep(self._next_delay(attempt, give_up_at, ScribeError(f"SCRIBE-RM unreachable: {exc}")))
                continue
            delay = self._outcome(response, attempt, give_up_at)
            if delay is None:
                return response.json()
            time.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def score_one(self, item: Dict[str, Any], **options: Any) -> Dict[str, Any]:
        return self.score([item], **options)["results"][0]

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "ScribeClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class AsyncScribeClient(_Base):
    """Async client with at most `max_concurrency` calls in flight."""

    def __init__(self, base_url: str, *, max_concurrency: int = 32, **kwargs: Any):
        super().__init__(base_url, **kwargs)
        limits = httpx.Limits(max_connections=max_concurrency, max_keepalive_connections=max_concurrency)
        self._http = httpx.AsyncClient(base_url=self.base_url, headers=self.headers, timeout=self.timeout_s,
                                       limits=limits)
        self._slots = asyncio.Semaphore(max_concurrency)

    async def score(self, items: List[Dict[str, Any]], **options: Any) -> Dict[str, Any]:
        body = _body(items, self.deadline_s, options)
        give_up_at = self._give_up_at()
        for attempt in range(self.retry.attempts):
            try:
                async with self._slots:
                    response = await self._http.post("/score", json=body)
            except httpx.TransportError as exc:
                await asyncio.sleep(self._next_delay(attempt, give_up_at, ScribeError(f"SCRIBE-RM unreachable: {exc}")))
                continue
            delay = self._outcome(response, attempt, give_up_at)
            if delay is None:
                return response.json()
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    async def score_one(self, item: Dict[str, Any], **options: Any) -> Dict[str, Any]:
        return (await self.score([item], **options))["results"][0]

    async def score_batch(self, items: List[Dict[str, Any]], chunk_size: int = 64, **options: Any) -> List[Dict[str, Any]]:
        """Score many items as concurrent chunks; results in input order."""
        chunks = [items[i:i + chunk_size] for i in range(0, len(items), chunk_size)]
        responses = await asyncio.gather(*(self.score(chunk, **options) for chunk in chunks))
        return [result for response in responses for result in response["results"]]

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> "AsyncScribeClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()
