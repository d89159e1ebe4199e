"""Issue 8b: SCRIBE scoring against a naive rationale judge, on the same vLLM server and the same steps.

SCRIBE: the service's judge backend, one constrained score token read through logprobs. Naive: the same
rubric card and step, but the judge writes a rationale of up to 128 tokens and a regex reads "Score: N"
from it, as common judge libraries do. Both at the same concurrency. Prints steps/s of each, their ratio,
and the naive judge's parse-failure rate.
    python bench/naive_judge.py --vllm-url http://127.0.0.1:8011 --steps 32 --json-out bench/results/naive_judge.json"""

from __future__ import annotations

import argparse
import asyncio
import re

import aiohttp

from common import in_process_engine, post_json, prompts_for, report, run_bounded, trajectories

NAIVE_INSTRUCTION = ("First explain in a few sentences how the step compares with the card, then end with a "
                     "final line of the form 'Score: N' where N is 0, 1, 2 or 3.")
SCORE_PATTERN = re.compile(r"score\s*[:=]?\s*\**\s*([0-3])\b", re.I)


def naive_messages(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """The SCRIBE prompt with its 'reply with one digit' instructions swapped for rationale-then-score."""
    from scribe_rm.pipeline.prompt import SCORE_QUESTION

    system = messages[0]["content"].replace("Reply with a single digit, 0, 1, 2 or 3, and nothing else.",
                                            NAIVE_INSTRUCTION)
    user = messages[1]["content"].replace(SCORE_QUESTION, NAIVE_INSTRUCTION)
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def parse_score(text: str) -> int | None:
    found = SCORE_PATTERN.findall(text)
    return int(found[-1]) if found else None


async def naive_judge(session: aiohttp.ClientSession, url: str, model: str, messages, max_tokens: int):
    body = {"model": model, "messages": naive_messages(messages), "max_completion_tokens": max_tokens,
            "temperature": 0, "chat_template_kwargs": {"enable_thinking": False}}
    reply = await post_json(session, f"{url}/v1/chat/completions", body)
    text = reply["choices"][0]["message"]["content"] or ""
    return parse_score(text), reply["usage"]["completion_tokens"]


async def main_async(args: argparse.Namespace) -> None:
    engine = await in_process_engine(args.vllm_url, judge_model=args.model, judge_timeout_s=args.timeout_s,
                                         judge_max_concurrency=args.concurrency)
    try:
        items = trajectories(args.steps // 3 + 1, 3, tag="naive-bench", seed=1)
        prompts = (await prompts_for(engine, items))[: args.steps]
        judge = engine.judge
        await judge.label_logprobs(prompts[0])  # warm-up: token ids resolved, connection open
        scribe, scribe_s = await run_bounded([judge.label_logprobs(m) for m in prompts], args.concurrency)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=args.timeout_s)) as session:
            naive, naive_s = await run_bounded(
                [naive_judge(session, args.vllm_url, args.model, m, args.max_tokens) for m in prompts],
                args.concurrency)
    finally:
        await engine.aclose()
    failures = sum(score is None for score, _ in naive)
    scribe_rate, naive_rate = len(prompts) / scribe_s, len(prompts) / naive_s
    rows = [
        ("steps judged (each method)", len(prompts), None),
        ("SCRIBE one-token steps/s", round(scribe_rate, 3), None),
        ("naive rationale steps/s", round(naive_rate, 3), None),
        ("speed-up (SCRIBE / naive)", round(scribe_rate / naive_rate, 2), None),
        ("naive parse-failure rate", round(failures / len(prompts), 3), None),
        ("naive mean generated tokens", round(sum(t for _, t in naive) / len(naive), 1), None),
    ]
    report(f"8b SCRIBE vs naive judge on {args.vllm_url} ({args.model}), concurrency {args.concurrency}", rows,
           {"args": vars(args), "scribe_seconds": scribe_s, "naive_seconds": naive_s,
            "naive_scores": [s for s, _ in naive], "scribe_logprobs": scribe}, args.json_out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vllm-url", default="http://127.0.0.1:8011")
    parser.add_argument("--model", default="judge", help="the served model name")
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--timeout-s", type=float, default=1800)
    parser.add_argument("--json-out")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
