"""Issues 15 and 25: one training step's batch in one POST /score, as TRL or verl send it: P prompts x 8
rollouts x 6 steps (64 prompts: 512 items, 3,072 steps), instantaneous judge, every cache cold. Rollouts of a
prompt share early steps as sampled continuations do: step 1 is common to all 8, step 2 to blocks of 4, step 3
to pairs, steps 4-6 are each rollout's own. A second request, the next training step, repeats half of every
group's rollouts and samples the other half anew: the routing cache answers the repeats.

Both requests run against a fresh service per routing tier setting (the default, static+mpnet, and mpnet
alone), in the same run, sent in each of two ways: `request`, the batch in one POST /score; `client`, the batch
as the TRL adapter sends it (AsyncScribeClient.score_batch: chunks of 64 items in flight together, so the
service judges one chunk while it routes the next), each way on a fresh service. Prints each one's seconds,
the share of steps the second tier decided (one request), and the floor: the torch embedder encoding only the
distinct texts in this process (ratio floor / mpnet service), and how many texts the service's transformer
embedded (its /metrics).
    python bench/grpo_batch.py --prompts 64 --json-out bench/results/grpo_batch.json"""

from __future__ import annotations

import argparse
import asyncio
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


def transformer_texts(url: str) -> float:
    """How many routing texts the service's transformer has embedded so far (its /metrics)."""
    from prometheus_client.parser import text_string_to_metric_families

    families = text_string_to_metric_families(httpx.get(f"{url}/metrics", timeout=30).text)
    return sum(sample.value for family in families if family.name == "scribe_route_embedded"
               for sample in family.samples
               if sample.name == "scribe_route_embedded_total" and sample.labels["space"] == "mpnet")


def score_as_trl_does(url: str, items: list[dict], timeout_s: float) -> float:
    """Seconds for the batch sent as the TRL adapter sends it (clients/scribe_client/trl.py): a step's pin, then
    AsyncScribeClient.score_batch."""
    from scribe_client import AsyncScribeClient

    async def run() -> float:
        async with AsyncScribeClient(url, timeout_s=timeout_s + 30) as client:
            started = time.perf_counter()
            await client.begin_step()
            results = await client.score_batch(items)
            seconds = time.perf_counter() - started
        statuses = [r["status"] for r in results]
        assert statuses.count("ok") == len(items), {s: statuses.count(s) for s in set(statuses)}
        return seconds

    return asyncio.run(run())


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
    parser.add_argument("--tiers", nargs="+", default=["static+mpnet", "mpnet"],
                        help="SCRIBE_ROUTING_TIERS settings to run, each on a fresh service (first: the target)")
    parser.add_argument("--transports", nargs="+", choices=["request", "client"], default=["request", "client"],
                        help="request: the batch in one POST /score; client: as the TRL adapter sends it")
    parser.add_argument("--without-domain", action="store_true",
                        help="send the items without their domain: each item's scope is chosen from its steps")
    parser.add_argument("--json-out")
    args = parser.parse_args()
    from scribe_rm.settings import Settings

    rows = step_rows()
    pools = {d: [r["text"] for r in rows if r["domain"] == d] for d in ("math", "tool_use")}
    first, second = batch(pools, args.prompts, 0), batch(pools, args.prompts, 1)
    if args.without_domain:
        for item in first + second:
            del item["domain"]
    steps = sum(len(item["steps"]) for item in first)
    distinct = list(dict.fromkeys(s["text"] for item in first for s in item["steps"]))
    new_in_second = {s["text"] for item in second for s in item["steps"]} - set(distinct)

    floor = floor_seconds(distinct, Settings().route_text_chars)
    runs, client_runs = {}, {}
    with fake_judge() as judge_url:
        settings = {"SCRIBE_JUDGE_BACKEND": "openai", "SCRIBE_JUDGE_BASE_URLS": judge_url,
                    "SCRIBE_JUDGE_MAX_CONCURRENCY": "64"}
        for tiers in args.tiers:
            if "request" in args.transports:
                with service(**settings, SCRIBE_ROUTING_TIERS=tiers) as (url, _):
                    cold_s, cold_cache = score(url, first, args.timeout_s)
                    cold_embedded = transformer_texts(url)
                    repeat_s, repeat_cache = score(url, second, args.timeout_s)
                    repeat_embedded = transformer_texts(url) - cold_embedded
                runs[tiers] = {"cold_seconds": cold_s, "cold_cache": cold_cache, "repeat_seconds": repeat_s,
                               "repeat_cache": repeat_cache,
                               "transformer_texts": {"cold": cold_embedded, "repeat": repeat_embedded}}
            if "client" in args.transports:
                with service(**settings, SCRIBE_ROUTING_TIERS=tiers) as (url, _):
                    client_runs[tiers] = {"cold_seconds": score_as_trl_does(url, first, args.timeout_s),
                                          "repeat_seconds": score_as_trl_does(url, second, args.timeout_s)}
    table = [("items x steps per request", f"{len(first)} x {STEPS}", None), ("steps in the request", steps, None),
             ("distinct routing texts", len(distinct), None),
             ("floor: torch embedder on the distinct texts, s", round(floor, 2), None)]
    for tiers, run in runs.items():
        cold, repeat = run["cold_cache"], run["repeat_cache"]
        table += [
            (f"[{tiers}] service seconds, cold", round(run["cold_seconds"], 2), "<= 8" if tiers == args.tiers[0] else None),
            (f"[{tiers}] steps decided by the second tier, cold", f"{cold['route_second_tier']} "
             f"({cold['route_second_tier'] / steps:.1%})", None),
            (f"[{tiers}] routing: embedded / deduplicated / cache hits, cold",
             f"{cold['route_misses']} / {cold['route_deduplicated']} / {cold['route_hits']}", None),
            (f"[{tiers}] repeat request (half its rollouts seen), seconds", round(run["repeat_seconds"], 2),
             "<= 2" if tiers == args.tiers[0] else None),
            (f"[{tiers}] texts the transformer embedded, cold / repeat",
             f"{run['transformer_texts']['cold']:.0f} / {run['transformer_texts']['repeat']:.0f}", None),
            (f"[{tiers}] routing: embedded / deduplicated / cache hits, repeat",
             f"{repeat['route_misses']} / {repeat['route_deduplicated']} / {repeat['route_hits']}", None)]
    for tiers, run in client_runs.items():
        table += [(f"[{tiers}] as the TRL adapter sends it (chunks of 64 items), cold, s", round(run["cold_seconds"], 2),
                   "<= 8" if tiers == args.tiers[0] else None),
                  (f"[{tiers}] as the TRL adapter sends it, next step, s", round(run["repeat_seconds"], 2),
                   "<= 2" if tiers == args.tiers[0] else None)]
    if "mpnet" in runs:
        table.append(("floor / service (mpnet)", round(floor / runs["mpnet"]["cold_seconds"], 3), None))
    report(f"GRPO batch: {args.prompts} prompts x {ROLLOUTS} rollouts x {STEPS} steps ({' and '.join(args.transports)}), "
           "instantaneous judge", table,
           {"args": vars(args), "steps": steps, "distinct_texts": len(distinct), "floor_seconds": floor,
            "repeat_new_texts": len(new_in_second), "runs": runs, "client_runs": client_runs}, args.json_out)


if __name__ == "__main__":
    main()
