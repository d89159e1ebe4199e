"""ScribeClient and AsyncScribeClient: POST /score with deadlines, retries and bounded concurrency.

Retries (jittered exponential backoff, Retry-After honoured) on connection errors, 408, 429 and 5xx;
never on other 4xx. One request_id per logical call, reused by its retries, so they are idempotent.

Library versions: the client pins one library version per training step (`begin_step()` at each step
boundary; `set_next_version()` from a library refresh takes effect at the next one) and sends it with every
request, so a step is never scored partly with an old library and partly with a new one while the replicas
of a fleet reload at different moments. A 409 (this replica does not serve the pinned version) is retried,
which a load balancer sends to another replica; if no replica has the version any more, the client moves to
the current one, logs it, and counts it in `repins`."""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

import httpx

log = logging.getLogger(__name__)
RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
VERSION_CONFLICT = 409  # the replica does not serve the pinned library version: another one may


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
        payload = response.json()
        detail = payload if response.status_code == VERSION_CONFLICT else payload.get("detail")
    except ValueError:
        detail = response.text[:500]
    return ScribeError(f"SCRIBE-RM answered {response.status_code}: {detail}", response.status_code, detail)


def _body(items: List[Dict[str, Any]], deadline_s: float, options: Dict[str, Any]) -> Dict[str, Any]:
    body = {"items": items, "deadline_s": deadline_s, "request_id": uuid.uuid4().hex}
    body.update({k: v for k, v in options.items() if v is not None})
    return body


class VersionPin:
    """The library version a training step is scored with."""

    def __init__(self, version: Optional[str] = None, follow_latest: bool = True):
        self.version = version  # sent with every request; None: none pinned
        self.follow_latest = follow_latest  # at a step boundary move to the service's current version
        self.next: Optional[str] = None  # set by a library refresh; taken at the next step boundary
        self.repins = 0  # times the pinned version was gone from every replica and the pin moved mid-step

    def apply(self, body: Dict[str, Any]) -> Dict[str, Any]:
        if self.version is not None and "library_version" not in body:
            body["library_version"] = self.version
        return body

    def step_version(self, current: Optional[str]) -> Optional[str]:
        """The pin of a new step, given the service's current version (None: not asked)."""
        if self.next is not None:
            self.version, self.next = self.next, None
        elif self.follow_latest and current is not None:
            self.version = current
        return self.version

    def moved(self, conflict: ScribeError) -> bool:
        """After a 409 that every attempt got: pin the replica's current version. False if it names none."""
        available = conflict.detail.get("available") if isinstance(conflict.detail, dict) else None
        if not available:
            return False
        log.warning("library version %s is served by no replica reached any more; moving to %s", self.version,
                    available[0])
        self.version = available[0]
        self.repins += 1
        return True


class _Base:
    def __init__(self, base_url: str, *, timeout_s: float = 120.0, deadline_margin_s: float = 5.0,
                 retry: RetryPolicy = RetryPolicy(), api_key: Optional[str] = None,
                 library_version: Optional[str] = None, follow_latest: bool = True):
        """`timeout_s` is your budget per call (keep it below your trainer's own timeout); the server is
        asked to answer `deadline_margin_s` earlier, with explicit `timeout` items rather than a hang.
        `library_version` pins a version from the start; `follow_latest` moves the pin to the service's
        current version at each `begin_step()` (unless a refresh named the next one)."""
        if timeout_s <= deadline_margin_s:
            raise ValueError("timeout_s must exceed deadline_margin_s")
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.deadline_s = timeout_s - deadline_margin_s
        self.retry = retry
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.pin = VersionPin(library_version, follow_latest)

    @property
    def library_version(self) -> Optional[str]:
        return self.pin.version

    def set_next_version(self, version: str) -> None:
        """Score with `version` from the next step boundary on (a library refresh calls this)."""
        self.pin.next = version

    def _give_up_at(self) -> float:
        return time.monotonic() + self.timeout_s

    def _outcome(self, response: httpx.Response, attempt: int, give_up_at: float) -> Optional[float]:
        """None on success; raise on a final failure; else the delay before the next attempt."""
        if response.status_code == 200:
            return None
        if response.status_code == VERSION_CONFLICT:
            if self._retry_conflict(response, attempt):
                return 0.0
            raise _error_of(response)
        if response.status_code not in RETRY_STATUS:
            raise _error_of(response)
        return self._next_delay(attempt, give_up_at, _error_of(response), response.headers.get("Retry-After"))

    def _retry_conflict(self, response: httpx.Response, attempt: int) -> bool:
        """After a 409: send again at once while attempts remain (a load balancer sends it to another replica);
        after the last, once more with the pin moved to the current version, if the 409 names one."""
        if attempt + 1 < self.retry.attempts:
            return True
        return attempt + 1 == self.retry.attempts and self.pin.moved(_error_of(response))

    @staticmethod
    def _current_of(response: httpx.Response) -> Optional[str]:
        return response.json().get("current") if response.status_code == 200 else None

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

    def begin_step(self) -> Optional[str]:
        """A training step begins: the library version its requests pin (see VersionPin). If the service
        cannot be asked, the step keeps the previous pin (a failed call here never fails the step)."""
        current = None
        if self.pin.next is None and self.pin.follow_latest:
            try:
                current = self._current_of(self._http.get("/library/versions"))
            except httpx.HTTPError as exc:
                log.warning("could not ask SCRIBE-RM for its library version (%s); keeping %s", exc, self.pin.version)
        return self.pin.step_version(current)

    def score(self, items: List[Dict[str, Any]], **options: Any) -> Dict[str, Any]:
        body = _body(items, self.deadline_s, options)
        give_up_at = self._give_up_at()
        for attempt in range(self.retry.attempts + 1):  # + 1: the attempt after a pin moved
            try:
                response = self._http.post("/score", json=self.pin.apply(dict(body)))
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

    async def begin_step(self) -> Optional[str]:
        """A training step begins: the library version its requests pin (see VersionPin). If the service
        cannot be asked, the step keeps the previous pin (a failed call here never fails the step)."""
        current = None
        if self.pin.next is None and self.pin.follow_latest:
            try:
                current = self._current_of(await self._http.get("/library/versions"))
            except httpx.HTTPError as exc:
                log.warning("could not ask SCRIBE-RM for its library version (%s); keeping %s", exc, self.pin.version)
        return self.pin.step_version(current)

    async def score(self, items: List[Dict[str, Any]], **options: Any) -> Dict[str, Any]:
        body = _body(items, self.deadline_s, options)
        give_up_at = self._give_up_at()
        for attempt in range(self.retry.attempts + 1):  # + 1: the attempt after a pin moved
            try:
                async with self._slots:
                    response = await self._http.post("/score", json=self.pin.apply(dict(body)))
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
        """Score many items as concurrent chunks; results in input order, all with one library version: if the
        pin had to move while the chunks were scored, the chunks scored with the old version are scored again."""
        chunks = [items[i:i + chunk_size] for i in range(0, len(items), chunk_size)]
        responses = list(await asyncio.gather(*(self.score(chunk, **options) for chunk in chunks)))
        for k, response in enumerate(responses):
            if self.pin.version is not None and response["library_version"] != self.pin.version:
                responses[k] = await self.score(chunks[k], **options)
        return [result for response in responses for result in response["results"]]

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> "AsyncScribeClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()
