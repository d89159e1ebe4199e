"""OpenRLHF `--remote_rm_url reward_func.py` mode: point it at this file (or a copy).

It forwards to the service's `/compat/openrlhf/get_reward` route (the URL mode uses that route
directly), so response extraction and failure mapping live in one place: a failed item gets the
service's `compat_failure_reward` and `extra_logs["scribe_judge_ok"] = 0`."""

from __future__ import annotations

import os
from typing import Any, Dict, List, Optional

import httpx

_http: Optional[httpx.Client] = None


def _client() -> httpx.Client:
    global _http
    if _http is None:
        key = os.environ.get("SCRIBE_API_KEY")
        _http = httpx.Client(base_url=os.environ.get("SCRIBE_URL", "http://127.0.0.1:8000"),
                             timeout=float(os.environ.get("SCRIBE_TIMEOUT_S", "170")),
                             headers={"Authorization": f"Bearer {key}"} if key else {})
    return _http


def reward_func(queries: List[str], prompts: List[str], labels: List[Any], **kwargs: Any) -> Dict[str, Any]:
    import torch

    response = _client().post("/compat/openrlhf/get_reward",
                              json={"query": list(queries), "prompts": list(prompts), "labels": list(labels)})
    response.raise_for_status()  # OpenRLHF retries the call; content problems never reach here
    data = response.json()
    return {"rewards": torch.tensor(data["rewards"]), "scores": torch.tensor(data["scores"]),
            "extra_logs": {k: torch.tensor(v) for k, v in data["extra_logs"].items()}}
