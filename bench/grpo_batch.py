"""Issue 15: one training step's batch in one POST /score, as TRL or verl send it: P prompts x 8 rollouts x
6 steps (64 prompts: 512 items, 3,072 steps), instantaneous judge, every cache cold. Rollouts of a prompt
share early steps as sampled continuations do: step 1 is common to all 8, step 2 to blocks of 4, step 3
to pairs, steps 4-6 are each rollout's own. Prints the service's seconds, the distinct routing texts,
and the floor: the torch embedder encoding only those distinct texts, in this process, in the same run
(ratio floor / service). A second request, the next training step, repeats half of every group's
rollouts and samples the other half anew: the routing cache answers the repeats.
    python bench/grpo_batch.py --prompts 64 --json-out bench/results/grpo_batch.json"""

from __future__ import annotations

import argparse
import random
import time

import httpx

from common import fake_judge, report, service, step_rows

ROLLOUTS = 8
STEPS = 6
ENDINGS = ["so the running total is now {n}.", "which leaves {n} cases to check.", "giving {n} as the value so far.",
           "and the call returns {n} records.", "so we keep {n} for the next step.", "which matches the {n} we expect."]


def step_text(pool: list[str], prompt: int, step: int, variant: tuple) -> str:
    """A step of prompt `prompt`: the same skill phrasing for every rollout, worded on by the variant."""
    rng = random.Random(f"{prompt}/{step}/{variant}")
    base = random.Random(f"{prompt}/{step}").choice(pool).rstrip(".")
    return f"{base}, {rng.choice(ENDINGS).format(n=rng.randint(2, 9999))}"


def rollout(pools: dict[str, list[str]], prompt: int, r: int, generation: int) -> dict:
    """Step j < 3 is shared by the rollouts in blocks of 8 >> j; later steps are the rollout's own."""
    domain = "math" if prompt % 2 == 0 else "tool_use"
    variants = [(0, r // (ROLLOUTS >> j)) if j < 3 else (generation, r) for j in range(STEPS)]
    return {"id": f"p{prompt}-gen{generation}-r{r}", "domain": domain, "outcome": float(r % 2),
            "question": f"Training prompt {prompt}: solve it step by step.",
            "steps": [{"text": step_text(pools[domain], prompt, j, v)} for j, v in enumerate(variants)]}


def batch(pools: dict[str, list[str]], prompts: int, generation: int) -> list[dict]:
    """Generation 0: fresh rollouts. Later: rollouts 0-3 of each group repeat generation 0's, 4-7 are new."""
    return [rollout(pools, p, r, 0 if r < ROLLOUTS // 2 else generation) for p in range(prompts)
            for r in range(ROLLOUTS)]


def score(url: str, items: list[dict], timeout_s: float) -> tuple[float, dict]:
    started = time.perf_counter()
    response = httpx.post(f"{url}/score", json={"items": items, "deadline_s": timeout_s}, timeout=timeout_s + 30)
    seconds = time.perf_counter() - started
    response.raise_for_status()
    reply = response.json()
    statuses = [r["status"] for r in reply["results"]]
    assert statuses.count("ok") == len(items), {s: statuses.count(s) for s in set(statuses)}
    return seconds, reply["cache"]


def floor_seconds(texts: list[str], text_chars: int) -> float:
    """The torch embedder (the service's default model) encoding `texts` as the router cuts them."""
    from scribe_rm.pipeline.embedder import Embedder
    from scribe_rm.settings import Settings

    embedder = Embedder(Settings().embedder_config())
    embedder.load()
    cut = [t[:text_chars] for t in texts]
    embedder.encode_sync(cut[:64])  # warm-up
    started = time.perf_counter()
    embedder.encode_sync(cut)
    seconds = time.perf_counter() - started
    embedder.close()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=64, help="prompts per training step (8 rollouts each)")
    parser.add_argument("--timeout-s", type=float, default=900)
    parser.add_argument("--json-out")
    args = parser.parse_args()
    from scribe_rm.settings import Settings

    rows = step_rows()
    pools = {d: [r["text"] for r in rows if r["domain"] == d] for d in ("math", "tool_use")}
    first, second = batch(pools, args.prompts, 0), batch(pools, args.prompts, 1)
    steps = sum(len(item["steps"]) for item in first)
    distinct = list(dict.fromkeys(s["text"] for item in first for s in item["steps"]))
    new_in_second = {s["text"] for item in second for s in item["steps"]} - set(distinct)

    text_chars = Settings().route_text_chars
    floor = floor_seconds(distinct, text_chars)
    with fake_judge() as judge_url, service(SCRIBE_JUDGE_BACKEND="openai", SCRIBE_JUDGE_BASE_URLS=judge_url,
                                            SCRIBE_JUDGE_MAX_CONCURRENCY="64") as (url, _):
        cold_s, cold_cache = score(url, first, args.timeout_s)
        repeat_s, repeat_cache = score(url, second, args.timeout_s)
    table = [
        ("items x steps per request", f"{len(first)} x {STEPS}", None),
        ("steps in the request", steps, None),
        ("distinct routing texts", len(distinct), None),
        ("service seconds, cold", round(cold_s, 2), "<= 8"),
        ("floor: torch embedder on the distinct texts, s", round(floor, 2), None),
        ("floor / service", round(floor / cold_s, 3), ">= 6"),
        ("routing: embedded / deduplicated / cache hits, cold",
         f"{cold_cache['route_misses']} / {cold_cache['route_deduplicated']} / {cold_cache['route_hits']}", None),
        ("repeat request (half its rollouts seen), seconds", round(repeat_s, 2), "<= 3"),
        ("repeat: new distinct texts", len(new_in_second), None),
        ("routing: embedded / deduplicated / cache hits, repeat",
         f"{repeat_cache['route_misses']} / {repeat_cache['route_deduplicated']} / {repeat_cache['route_hits']}",
         None),
    ]
    report(f"GRPO batch: {args.prompts} prompts x {ROLLOUTS} rollouts x {STEPS} steps in one request, "
           "instantaneous judge", table,
           {"args": vars(args), "steps": steps, "distinct_texts": len(distinct), "cold_seconds": cold_s,
            "floor_seconds": floor, "ratio": floor / cold_s, "repeat_seconds": repeat_s,
            "repeat_new_texts": len(new_in_second), "cold_cache": cold_cache, "repeat_cache": repeat_cache},
           args.json_out)


if __name__ == "__main__":
    main()
