"""GRPO with step-level credit (`scribe-train --credit ...`).

TRL's GRPOTrainer gives every token of a completion one advantage, from the scalar reward. The modes:
- `mixed` (default): the scalar reward w_outcome * outcome + w_process * process reward, as before.
- `outcome`: the outcome reward alone (the steps are still scored and logged).
- `process`: DeepSeekMath's process supervision: each step's score, normalized over the group's steps, counts
  for every token up to the step's end (credit.py). A wrong step lowers the advantage of the tokens before it,
  not of those after.
- `process+outcome`: w_process times that plus w_outcome times the group-normalized outcome at the final step.

The reward function still returns the scalar reward (TRL logs it); in the process modes the trainer replaces
the advantages with per-token ones (shape (B, T), which TRL's loss accepts) from the step scores of the same
reward call, their spans placed on the completion's tokens. Every step is logged with the credit mode, the
advantage statistics and the steps that mapped to no token. The groups must be within one process's batch
(one process, as this CPU loop runs)."""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from ..credit import ScoredOutput, decoded_token_bounds, group_token_advantages, step_char_spans, step_token_spans
from .dynamics import DynamicsLog

CREDIT_MODES = ("mixed", "outcome", "process", "process+outcome")


class CapturedResults:
    """The SCRIBE results of the reward function's last call (an `on_results` hook), for the trainer."""

    def __init__(self) -> None:
        self.results: Optional[List[Dict[str, Any]]] = None
        self.library_version: Optional[str] = None

    def __call__(self, results: List[Dict[str, Any]], library_version: Optional[str] = None, **_: Any) -> None:
        self.results, self.library_version = results, library_version


def scored_output(result: Dict[str, Any], token_ids: List[int], decode) -> ScoredOutput:
    """One completion's steps on its tokens."""
    if result.get("status") != "ok":
        return ScoredOutput(length=len(token_ids), scored=False)
    steps = result["steps"]
    spans = step_token_spans(decoded_token_bounds(decode, token_ids), step_char_spans(steps))
    mapped = [(step["score_normalized"], span[1]) for step, span in zip(steps, spans) if span is not None]
    return ScoredOutput(length=len(token_ids), step_rewards=[r for r, _ in mapped], step_ends=[e for _, e in mapped],
                        outcome=result.get("outcome"), unmapped_steps=len(steps) - len(mapped))


def advantage_stats(values: List[float]) -> Dict[str, float]:
    if not values:
        return {"mean": 0.0, "std": 0.0, "min": 0.0, "max": 0.0}
    mean = sum(values) / len(values)
    return {"mean": mean, "std": (sum((v - mean) ** 2 for v in values) / len(values)) ** 0.5,
            "min": min(values), "max": max(values)}


def step_credit_trainer(base: type) -> type:
    """A subclass of TRL's GRPOTrainer (`base`, imported by the caller) that applies the credit mode."""

    class StepCreditGRPOTrainer(base):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, credit: str, captured: CapturedResults, log: DynamicsLog,
                     w_outcome: float, w_process: float, **kwargs: Any):
            if credit not in CREDIT_MODES:
                raise ValueError(f"credit must be one of {', '.join(CREDIT_MODES)}, not {credit!r}")
            super().__init__(*args, **kwargs)
            self.credit, self.captured, self.dynamics = credit, captured, log
            self.w_outcome, self.w_process = w_outcome, w_process

        def _generate_and_score_completions(self, inputs: Any) -> Dict[str, Any]:
            import torch

            output = super()._generate_and_score_completions(inputs)
            mask = output["completion_mask"].bool()
            ids = [row[keep].tolist() for row, keep in zip(output["completion_ids"], mask)]
            results = self.captured.results or []
            unmapped = 0
            if self.credit in ("process", "process+outcome") and len(results) == len(ids):
                decode = lambda tokens: self.processing_class.decode(tokens, skip_special_tokens=True)  # noqa: E731
                outputs = [scored_output(result, token_ids, decode) for result, token_ids in zip(results, ids)]
                unmapped = sum(o.unmapped_steps for o in outputs)
                advantages = torch.zeros(mask.shape, dtype=torch.float32, device=mask.device)
                size = self.num_generations
                for start in range(0, len(outputs), size):
                    group = group_token_advantages(outputs[start:start + size], self.credit, self.w_outcome,
                                                   self.w_process)
                    for i, tokens in enumerate(group, start):
                        advantages[i, torch.nonzero(mask[i]).squeeze(1)] = torch.tensor(tokens, device=mask.device)
                output["advantages"] = advantages
            per_token = output["advantages"]
            values = (per_token[mask] if per_token.dim() == 2 else per_token.unsqueeze(1).expand(mask.shape)[mask])
            self.dynamics.add(results, library_version=self.captured.library_version, trainer_state=self.state,
                              credit=self.credit, advantages=advantage_stats(values.tolist()), unmapped_steps=unmapped)
            return output

    return StepCreditGRPOTrainer
