"""Trainer-compatible routes. OpenRLHF: `--reward.remote_url http://HOST:PORT/compat/openrlhf/get_reward`.

OpenRLHF stops training when a reward call fails, so content problems never produce an error status
here: a failed item gets `compat_failure_reward` and `extra_logs["scribe_judge_ok"] = 0` (never silent)."""

from __future__ import annotations

import re

from fastapi import APIRouter, Depends

from ...pipeline.engine import Engine
from ...pipeline.errors import InvalidRequest
from ...pipeline.schemas import OpenRLHFRequest, OpenRLHFResponse, ScoreItem, ScoreRequest
from ...settings import Settings
from ..state import engine_of, settings_of

SPECIAL_TOKEN = re.compile(r"<\|[^<>|]{1,40}\|>|</?s>|\[/?INST\]")
ASSISTANT_MARKERS = ("<|im_start|>assistant", "<|start_header_id|>assistant<|end_header_id|>", "[/INST]",
                     "<|assistant|>")

router = APIRouter(prefix="/compat", tags=["compat"])


def clean(text: str) -> str:
    return SPECIAL_TOKEN.sub("", text).strip()


def response_of(query: str, prompt: str) -> str:
    """The response part of prompt+response; prompts can be left-truncated, so fall back to the text
    after the last assistant marker, then to the whole query."""
    if prompt and query.startswith(prompt):
        return clean(query[len(prompt):])
    cut = max((query.rfind(m) + len(m) for m in ASSISTANT_MARKERS if m in query), default=0)
    return clean(query[cut:])


@router.post("/openrlhf/get_reward", response_model=OpenRLHFResponse)
async def openrlhf_get_reward(body: OpenRLHFRequest, engine: Engine = Depends(engine_of),
                              settings: Settings = Depends(settings_of)) -> OpenRLHFResponse:
    engine.require_ready()  # infrastructure, not content: OpenRLHF retries the 503
    failure = settings.compat_failure_reward
    items = [ScoreItem(id=str(i), question=clean(body.prompts[i]) if i < len(body.prompts) else "",
                       response=response_of(query, body.prompts[i] if i < len(body.prompts) else ""))
             for i, query in enumerate(body.query)]
    scorer = engine.scorer  # one library version for the whole request
    scorer.config.limits.check_items(len(items))
    accepted, prepared = [], []
    for item in items:  # step limits apply per item here: one oversized sample must not fail the batch
        try:
            prepared += scorer.prepare(ScoreRequest(items=[item]))
            accepted.append(item)
        except InvalidRequest:
            pass
    results = {}
    if accepted:
        response = await scorer.score(ScoreRequest(items=accepted), prepared)
        results = {r.id: r for r in response.results}
    rewards, ok, process = [], [], []
    for item in items:
        result = results.get(item.id)
        good = result is not None and result.status == "ok"
        rewards.append(result.reward if good else failure)
        process.append(result.process_reward if good else failure)
        ok.append(float(good))
    return OpenRLHFResponse(rewards=rewards, scores=[min(1.0, max(0.0, r)) for r in rewards],
                            extra_logs={"scribe_judge_ok": ok, "scribe_process_reward": process} if items else {})
