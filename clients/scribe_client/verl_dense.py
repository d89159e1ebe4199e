"""verl: a reward manager with dense token rewards from SCRIBE-RM's step scores, for the estimators that take a
reward per token (GAE, REINFORCE++). Each step's reward sits at its last token and the outcome at the last
valid token (credit.dense_rewards), weighted so that a response's rewards sum to the scalar reward
(w_outcome * outcome + w_process * mean step score). A failed item gets zeros and `judge_ok=0`.

It is a manager of verl's reward loop (verl 0.9): `run_single` scores one sample, `assemble_rm_scores` stacks
the per-token rewards into the `[batch, response_len]` rm_scores tensor. Configure verl with

    reward.reward_manager.source=importlib
    reward.reward_manager.module.path=$(python -c "import scribe_client.verl_dense as m; print(m.__file__)")
    reward.reward_manager.name=ScribeDenseRewardManager
    algorithm.adv_estimator=gae            # or reinforce_plus_plus

or, where this module is imported in the reward workers, the name it registers: `scribe_dense`. The outcome
reward is verl's compute_score for the sample (the rule-based default, or reward.custom_reward_function);
the service comes from SCRIBE_URL, SCRIBE_API_KEY and SCRIBE_TIMEOUT_S. The library version is pinned per
training step (the batch's `global_steps`)."""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
from typing import Any, Dict, List, Optional

import torch
from verl import DataProto
from verl.experimental.reward_loop.reward_manager import register
from verl.experimental.reward_loop.reward_manager.base import RewardManagerBase

from .adapters import make_item
from .client import AsyncScribeClient, ScribeError
from .credit import decoded_token_bounds, dense_rewards, step_char_spans, step_token_spans

log = logging.getLogger(__name__)
EXTRA_KEYS = ("scribe_reward", "judge_ok", "n_steps", "unmapped_steps")  # every sample returns all of them


def default_client() -> AsyncScribeClient:
    return AsyncScribeClient(os.environ.get("SCRIBE_URL", "http://127.0.0.1:8000"),
                             timeout_s=float(os.environ.get("SCRIBE_TIMEOUT_S", "300")),
                             api_key=os.environ.get("SCRIBE_API_KEY"))


@register("scribe_dense")
class ScribeDenseRewardManager(RewardManagerBase):
    def __init__(self, config: Any, tokenizer: Any, compute_score: Any = None, reward_router_address: Any = None,
                 reward_model_tokenizer: Any = None, client: Optional[AsyncScribeClient] = None,
                 w_outcome: float = 0.7, w_process: float = 0.3, **_: Any):
        super().__init__(config, tokenizer, compute_score)
        self.client = client or default_client()
        self.w_outcome, self.w_process = w_outcome, w_process
        self._step: Any = None
        self._step_lock = asyncio.Lock()

    async def run_single(self, data: DataProto) -> Dict[str, Any]:
        item = data[-1:][0]
        response_ids = item.batch["responses"]
        prompt_ids = item.batch["prompts"]
        response_length = response_ids.shape[-1]
        valid = int(item.batch["attention_mask"][-response_length:].sum())
        valid_ids = response_ids[:valid].tolist()
        decode = lambda ids: self.tokenizer.decode(ids, skip_special_tokens=True)  # noqa: E731
        response = decode(valid_ids)
        prompt_mask = item.batch["attention_mask"][:prompt_ids.shape[-1]].bool()
        extra_info = dict(item.non_tensor_batch.get("extra_info", {}) or {})
        question = extra_info.get("question") or decode(prompt_ids[prompt_mask].tolist())
        outcome = await self._outcome(item, response, extra_info)
        await self._pin(data.meta_info.get("global_steps"))
        scribe_item = make_item("0", question, response, outcome, extra_info.get("domain"),
                                tools=extra_info.get("tools"), policy=extra_info.get("policy"))
        try:
            result = await self.client.score_one(scribe_item)
        except ScribeError as exc:
            log.warning("SCRIBE-RM call failed: %s", exc)
            result = {"status": "error"}
        rewards = [0.0] * response_length
        extra = {"scribe_reward": 0.0, "judge_ok": 0.0, "n_steps": 0.0, "unmapped_steps": 0.0}
        if result.get("status") == "ok":
            steps = result["steps"]
            spans = step_token_spans(decoded_token_bounds(decode, valid_ids), step_char_spans(steps))
            dense = dense_rewards(valid, [s["score_normalized"] for s in steps],
                                  [span[1] if span else None for span in spans], outcome, self.w_outcome,
                                  self.w_process)
            rewards[:valid] = dense
            extra = {"scribe_reward": float(result["reward"]), "judge_ok": 1.0, "n_steps": float(len(steps)),
                     "unmapped_steps": float(sum(span is None for span in spans))}
        return {"reward_score": rewards, "reward_extra_info": extra}

    async def _outcome(self, item: Any, response: str, extra_info: Dict[str, Any]) -> Optional[float]:
        """verl's own score for the sample (its verifier of the final answer), or None without one."""
        if self.compute_score is None:
            return None
        kwargs = dict(data_source=item.non_tensor_batch.get("data_source"), solution_str=response,
                      ground_truth=(item.non_tensor_batch.get("reward_model") or {}).get("ground_truth"),
                      extra_info=extra_info)
        try:
            score = self.compute_score(**kwargs)
            if inspect.isawaitable(score):
                score = await score
        except Exception as exc:  # no verifier for this data source: the steps alone
            log.debug("no outcome for the sample: %s", exc)
            return None
        return float(score["score"] if isinstance(score, dict) else score)

    async def _pin(self, step: Any) -> None:
        """One library version per training step: a new `global_steps` is a step boundary."""
        async with self._step_lock:
            if step != self._step or self.client.library_version is None:
                self._step = step
                await self.client.begin_step()

    @classmethod
    def assemble_rm_scores(cls, data: DataProto, scores: List[List[float]]) -> torch.Tensor:
        """The per-token rewards of the batch, [batch, response_len]."""
        return torch.tensor(scores, dtype=torch.float32, device=data.batch["responses"].device)
