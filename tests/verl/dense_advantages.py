"""Run by the verl virtualenv (scripts/verl_setup.sh) for tests/test_verl_credit.py: a batch of two responses
as verl's rollout hands it to the reward loop, the dense reward tensor of ScribeDenseRewardManager (against the
SCRIBE-RM service at argv[1]), and verl's own GAE (a toy value) and REINFORCE++ advantages on it. Prints JSON."""

import asyncio
import json
import sys

import numpy as np
import torch
from omegaconf import OmegaConf
from transformers import AutoTokenizer
from verl import DataProto
from verl.trainer.config import AlgoConfig
from verl.trainer.ppo import core_algos

from scribe_client import AsyncScribeClient
from scribe_client.credit import decoded_token_bounds, step_token_spans
from scribe_client.verl_dense import ScribeDenseRewardManager

URL, TOKENIZER = sys.argv[1], sys.argv[2]
PROMPTS = ["What is 2 + 7?", "The rectangle is 4 wide. Find y."]
RESPONSES = ["Step 1: GOOD Let x = 2.\nStep 2: BAD Then x + 7 = 12.\nStep 3: GOOD Answer: 9",
             "Step 1: BAD Take y = 3 from the picture.\nStep 2: GOOD The width is 4, so y = 4.\nStep 3: GOOD Answer: 4"]


def batch(tokenizer) -> DataProto:
    prompts = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in PROMPTS]
    responses = [tokenizer(r, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id] for r in RESPONSES]
    width_p, width_r, pad = max(map(len, prompts)), max(map(len, responses)) + 3, tokenizer.pad_token_id or 0
    prompt_ids = torch.tensor([[pad] * (width_p - len(p)) + p for p in prompts])  # left padded, as rollouts are
    response_ids = torch.tensor([r + [pad] * (width_r - len(r)) for r in responses])  # right padded
    mask = torch.tensor([[0] * (width_p - len(p)) + [1] * len(p) + [1] * len(r) + [0] * (width_r - len(r))
                         for p, r in zip(prompts, responses)])
    return DataProto.from_dict(
        tensors={"prompts": prompt_ids, "responses": response_ids, "attention_mask": mask,
                 "input_ids": torch.cat([prompt_ids, response_ids], dim=1)},
        non_tensors={"data_source": np.array(["toy"] * 2, dtype=object),
                     "reward_model": np.array([{"ground_truth": "9"}, {"ground_truth": "4"}], dtype=object),
                     "extra_info": np.array([{"question": p} for p in PROMPTS], dtype=object)},
        meta_info={"global_steps": 1})


async def rewards(manager: ScribeDenseRewardManager, data: DataProto) -> list:
    return await asyncio.gather(*(manager.run_single(data[i:i + 1]) for i in range(len(data))))


def main() -> None:
    tokenizer = AutoTokenizer.from_pretrained(TOKENIZER)
    data = batch(tokenizer)
    manager = ScribeDenseRewardManager(OmegaConf.create({}), tokenizer, compute_score=None,
                                       client=AsyncScribeClient(URL, timeout_s=60))
    outputs = asyncio.run(rewards(manager, data))
    token_rewards = ScribeDenseRewardManager.assemble_rm_scores(data, [o["reward_score"] for o in outputs])
    response_mask = data.batch["attention_mask"][:, data.batch["prompts"].shape[1]:]
    gae, _ = core_algos.compute_gae_advantage_return(token_level_rewards=token_rewards,
                                                     values=torch.full_like(token_rewards, 0.1),
                                                     response_mask=response_mask, gamma=1.0, lam=1.0)
    rpp, _ = core_algos.compute_reinforce_plus_plus_outcome_advantage(
        token_level_rewards=token_rewards, response_mask=response_mask, config=AlgoConfig(gamma=1.0))
    steps = []  # each response's steps on its tokens, found the same way the manager finds them
    for text, ids in zip(RESPONSES, data.batch["responses"].tolist()):
        bounds = decoded_token_bounds(lambda t: tokenizer.decode(t, skip_special_tokens=True), ids)
        starts = [text.index(f"Step {k}:") for k in (1, 2, 3)] + [len(text)]
        spans = [(a, a + len(text[a:b].rstrip())) for a, b in zip(starts, starts[1:])]  # the service trims steps
        steps.append(step_token_spans(bounds, spans))
    print(json.dumps({"shape": list(token_rewards.shape), "rewards": token_rewards.tolist(), "gae": gae.tolist(),
                      "reinforce_pp": rpp.tolist(), "steps": steps, "extra": [o["reward_extra_info"] for o in outputs],
                      "mask": response_mask.tolist()}))


if __name__ == "__main__":
    main()
