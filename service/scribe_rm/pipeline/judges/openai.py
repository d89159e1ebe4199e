"""Judge on any OpenAI-compatible chat server, vLLM first: one constrained score token read via logprobs.

Request fields follow current vLLM: `max_completion_tokens`, `logprobs` + `logprob_token_ids` (or
`top_logprobs`), optional `structured_outputs` choice; never the removed `guided_*` fields.

The transport is aiohttp, as in vLLM's own benchmark client: with 64 connections open, httpx's pool costs
~3.4 ms of CPU per request against aiohttp's ~0.3 ms (docs/benchmarks.md), and this call is made once per
judged step on the service's only event loop. Replicas (several base URLs, or a DNS name that lists them)
are chosen, ejected and discovered by replicas.py."""

from __future__ import annotations

import asyncio
import json
import math
import random
from dataclasses import dataclass, field
from typing import Any, Literal

import aiohttp

from .base import LABELS, JudgeError, parse_json_reply
from .replicas import PoolConfig, ReplicaPool

RETRY_STATUS = {408, 429, 500, 502, 503, 504}
BUSY_STATUS = {408, 429}  # worth a retry, but the replica is alive: never ejected for it
BACKOFF_BASE_S = 0.1  # the n-th retry waits uniform(0, min(max, base * 2**n))
BACKOFF_MAX_S = 5.0


class RetryableJudgeError(JudgeError):
    """A failure worth another attempt: connection trouble, 408, 429 or 5xx. `kind` says which."""

    def __init__(self, message: str, kind: Literal["connection", "timeout", "5xx", "busy"]):
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class OpenAIJudgeConfig:
    model: str = "judge"  # the served model name
    base_urls: tuple[str, ...] = ("http://127.0.0.1:8011",)
    api_key: str | None = None
    score_mode: Literal["token_ids", "top_logprobs"] = "token_ids"
    score_token_ids: tuple[int, ...] = ()  # empty: ask the server's /tokenize
    constrained: bool = False  # add structured_outputs choice 0-3
    max_concurrency: int = 16
    timeout_s: float = 30.0
    retries: int = 3
    seed: int = 0
    replicas: PoolConfig = field(default_factory=PoolConfig)  # ejection and discovery of base_urls' replicas


class OpenAIJudge:
    backend = "openai"

    def __init__(self, config: OpenAIJudgeConfig):
        self.config = config
        self.model_name = config.model
        self.pool = ReplicaPool(config.base_urls, config.replicas)
        self._headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
        self._http: aiohttp.ClientSession | None = None
        self._slots = asyncio.Semaphore(config.max_concurrency)
        self._token_ids: list[int] = list(config.score_token_ids)
        self._maintenance: asyncio.Task | None = None

    def _session(self) -> aiohttp.ClientSession:
        """Created on first use: an aiohttp session belongs to the event loop it is made in."""
        if self._http is None or self._http.closed:
            connector = aiohttp.TCPConnector(limit=self.config.max_concurrency * 2)
            self._http = aiohttp.ClientSession(
                connector=connector, headers=self._headers,
                timeout=aiohttp.ClientTimeout(total=self.config.timeout_s))
        return self._http

    async def start(self) -> None:
        """Find the replicas and keep them checked; resolve the label token ids if a server can tell us (else
        the first judge call tries again)."""
        if self.pool.discovers:
            await self.pool.discover()
        if self._maintenance is None:
            self._maintenance = asyncio.get_running_loop().create_task(self.pool.maintain(self._healthy))
        if self.config.score_mode == "token_ids" and not self._token_ids:
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
        for replica in list(self.pool.replicas.values()):
            if replica.up and await self._healthy(replica.url):
                return True
        return False

    async def _healthy(self, base: str) -> bool:
        timeout = aiohttp.ClientTimeout(total=min(2.0, self.config.timeout_s))
        try:
            async with self._session().get(f"{base}/health", timeout=timeout) as response:
                return response.status == 200
        except (aiohttp.ClientError, asyncio.TimeoutError):
            return False

    def request_body(self, messages: list[dict[str, str]]) -> dict[str, Any]:
        c = self.config
        body: dict[str, Any] = {
            "model": self.model_name,
            "messages": messages,
            "max_completion_tokens": 1,
            "temperature": 0,
            "seed": c.seed,
            "logprobs": True,
            "chat_template_kwargs": {"enable_thinking": False},
        }
        if c.score_mode == "token_ids":
            body["logprob_token_ids"] = self._token_ids
        else:
            body["top_logprobs"] = 20
        if c.constrained:
            body["structured_outputs"] = {"choice": list(LABELS)}
        return body

    async def label_logprobs(self, messages: list[dict[str, str]]) -> list[float]:
        if self.config.score_mode == "token_ids" and not self._token_ids:
            await self._resolve_token_ids()
        data = await self._post("/v1/chat/completions", self.request_body(messages))
        return parse_label_logprobs(data)

    async def generate_json(self, messages: list[dict[str, str]], schema: dict[str, Any], max_tokens: int,
                            repetition_penalty: float = 1.0) -> Any:
        """Greedy decoding under vLLM structured outputs with a JSON schema. Start vLLM with
        `--structured-outputs-config={"backend":"xgrammar","disable_any_whitespace":true}` (vllm_start.sh
        does): with free whitespace a small model can emit newlines until max_tokens, and vLLM 0.32 takes
        compact JSON only as a server setting."""
        body = {"model": self.model_name, "messages": messages, "max_completion_tokens": max_tokens,
                "temperature": 0, "seed": self.config.seed, "structured_outputs": {"json": schema},
                "repetition_penalty": repetition_penalty,
                "chat_template_kwargs": {"enable_thinking": False}}
        data = await self._post("/v1/chat/completions", body)
        try:
            text = data["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError) as exc:
            raise JudgeError(f"judge reply has no message content: {str(data)[:300]}") from exc
        return parse_json_reply(text or "", max_tokens)

    async def _post(self, path: str, body: dict[str, Any]) -> Any:
        """POST with retries on RetryableJudgeError, each attempt to a replica this call has not failed on,
        full-jitter exponential backoff between attempts. A plain loop rather than tenacity: this runs once per
        judged step, and tenacity's per-call set-up was a fifth of the event loop's CPU under load (py-spy,
        bench/overhead.py)."""
        failed: set[str] = set()
        retries = 0
        while True:
            async with self._slots:
                try:
                    replica = self.pool.pick(failed)
                except LookupError as exc:
                    raise JudgeError(str(exc)) from exc
                self.pool.started(replica, first_attempt=retries == 0)
                failure = None  # what the replica is blamed for (a busy one is alive)
                try:
                    return await self._post_once(f"{replica.url}{path}", body)
                except RetryableJudgeError as exc:
                    failure = None if exc.kind == "busy" else exc.kind
                    failed.add(replica.url)
                    retries += 1
                    if retries > self.config.retries:
                        raise
                finally:
                    self.pool.finished(replica, failure)
            await asyncio.sleep(random.uniform(0, min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2**retries)))

    async def _post_once(self, url: str, body: dict[str, Any]) -> Any:
        try:
            async with self._session().post(url, json=body) as response:
                status, payload = response.status, await response.read()
        except asyncio.TimeoutError as exc:
            raise RetryableJudgeError(f"judge call to {url} timed out after {self.config.timeout_s}s",
                                      "timeout") from exc
        except aiohttp.ClientError as exc:
            raise RetryableJudgeError(f"judge unreachable at {url}: {type(exc).__name__}: {exc}", "connection") from exc
        text = payload.decode("utf-8", "replace")
        if status in RETRY_STATUS:
            raise RetryableJudgeError(f"judge answered {status}: {text[:300]}", "busy" if status in BUSY_STATUS else "5xx")
        if status != 200:
            raise JudgeError(f"judge answered {status}: {text[:300]}")
        try:
            return json.loads(payload)
        except ValueError as exc:
            raise JudgeError(f"judge reply is not JSON: {text[:200]!r}") from exc

    async def aclose(self) -> None:
        if self._maintenance is not None:
            self._maintenance.cancel()
        if self._http is not None:
            await self._http.close()


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
