"""Judge on any OpenAI-compatible chat server, vLLM first: one constrained score token read via logprobs.

Request fields follow current vLLM: `max_completion_tokens`, `logprobs` + `logprob_token_ids` (or
`top_logprobs`), optional `structured_outputs` choice; never the removed `guided_*` fields."""

from __future__ import annotations

import asyncio
import itertools
import math
from typing import Any

import httpx
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from ..settings import Settings
from .base import LABELS, JudgeError

RETRY_STATUS = {408, 429, 500, 502, 503, 504}


class RetryableJudgeError(JudgeError):
    """A failure worth another attempt: connection trouble, 408, 429 or 5xx."""


class OpenAIJudge:
    def __init__(self, settings: Settings, transport: httpx.AsyncBaseTransport | None = None):
        self.settings = settings
        self.model_name = settings.judge_model
        self._urls = itertools.cycle(settings.judge_base_urls)
        headers = {}
        if settings.judge_api_key is not None:
            headers["Authorization"] = f"Bearer {settings.judge_api_key.get_secret_value()}"
        limits = httpx.Limits(max_connections=settings.judge_max_concurrency * 2)
        self._client = httpx.AsyncClient(timeout=settings.judge_timeout_s, headers=headers, limits=limits,
                                         transport=transport)
        self._slots = asyncio.Semaphore(settings.judge_max_concurrency)
        self._token_ids: list[int] = list(settings.judge_score_token_ids)

    async def start(self) -> None:
        """Nothing to load; resolve the label token ids if the server can tell us (retried lazily)."""
        if self.settings.judge_score_mode == "token_ids" and not self._token_ids:
            try:
                await self._resolve_token_ids()
            except JudgeError:
                pass  # server not up yet; the first judge call tries again and /readyz says not ready

    async def _resolve_token_ids(self) -> list[int]:
        ids = []
        for label in LABELS:
            body = {"model": self.model_name, "prompt": label, "add_special_tokens": False}
            data = await self._post("/tokenize", body)
            tokens = data.get("tokens") if isinstance(data, dict) else None
            if not isinstance(tokens, list) or len(tokens) != 1:
                raise JudgeError(f"label {label!r} is not one token on the judge server (tokens={tokens}); "
                                 "set SCRIBE_JUDGE_SCORE_TOKEN_IDS or SCRIBE_JUDGE_SCORE_MODE=top_logprobs")
            ids.append(int(tokens[0]))
        self._token_ids = ids
        return ids

    async def ready(self) -> bool:
        for base in self.settings.judge_base_urls:
            try:
                response = await self._client.get(f"{base}/health", timeout=min(2.0, self.settings.judge_timeout_s))
                if response.status_code == 200:
                    return True
            except httpx.HTTPError:
                continue
        return False

    def request_body(self, messages: list[dict[str, str]]) -> dict[str, Any]:
        s = self.settings
        body: dict[str, Any] = {
            "model": self.model_name,
            "messages": messages,
            "max_completion_tokens": 1,
            "temperature": 0,
            "seed": s.judge_seed,
            "logprobs": True,
            "chat_template_kwargs": {"enable_thinking": False},
        }
        if s.judge_score_mode == "token_ids":
            body["logprob_token_ids"] = self._token_ids
        else:
            body["top_logprobs"] = 20
        if s.judge_constrained:
            body["structured_outputs"] = {"choice": list(LABELS)}
        return body

    async def label_logprobs(self, messages: list[dict[str, str]]) -> list[float]:
        if self.settings.judge_score_mode == "token_ids" and not self._token_ids:
            await self._resolve_token_ids()
        data = await self._post("/v1/chat/completions", self.request_body(messages))
        return parse_label_logprobs(data)

    async def _post(self, path: str, body: dict[str, Any]) -> Any:
        retrying = AsyncRetrying(
            retry=retry_if_exception(lambda e: isinstance(e, RetryableJudgeError)),
            stop=stop_after_attempt(self.settings.judge_retries + 1),
            wait=wait_random_exponential(multiplier=0.2, max=5.0),  # full jitter
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                async with self._slots:
                    return await self._post_once(f"{next(self._urls)}{path}", body)

    async def _post_once(self, url: str, body: dict[str, Any]) -> Any:
        try:
            response = await self._client.post(url, json=body)
        except httpx.TimeoutException as exc:
            raise RetryableJudgeError(f"judge call to {url} timed out after {self.settings.judge_timeout_s}s") from exc
        except httpx.TransportError as exc:
            raise RetryableJudgeError(f"judge unreachable at {url}: {type(exc).__name__}: {exc}") from exc
        if response.status_code in RETRY_STATUS:
            raise RetryableJudgeError(f"judge answered {response.status_code}: {response.text[:300]}")
        if response.status_code != 200:
            raise JudgeError(f"judge answered {response.status_code}: {response.text[:300]}")
        try:
            return response.json()
        except ValueError as exc:
            raise JudgeError(f"judge reply is not JSON: {response.text[:200]!r}") from exc

    async def aclose(self) -> None:
        await self._client.aclose()


def parse_label_logprobs(data: Any) -> list[float]:
    """Logprobs of "0".."3" from a chat completion's first generated position (-inf where absent)."""
    try:
        candidates = data["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
    except (KeyError, IndexError, TypeError) as exc:
        raise JudgeError(f"judge reply has no logprobs for the first token: {str(data)[:300]}") from exc
    found = {label: -math.inf for label in LABELS}
    for entry in candidates or []:
        token = str(entry.get("token", "")).strip() if isinstance(entry, dict) else ""
        if token in found and isinstance(entry.get("logprob"), (int, float)):
            found[token] = max(found[token], float(entry["logprob"]))
    if all(v == -math.inf for v in found.values()):
        raise JudgeError(f"judge reply gives no logprob to any label 0-3: {str(candidates)[:300]}")
    return [found[label] for label in LABELS]
