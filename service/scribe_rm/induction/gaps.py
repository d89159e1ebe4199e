"""Where induction finds coverage gaps: a live service's gap sample clustered (what `GET /library/gaps`
answers), and the gap samples of every replica of a running fleet fetched, merged uniformly, as items to
induce from (`library induce --from-gaps URL... | dns://HOST:PORT`)."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from functools import partial

import aiohttp
import numpy as np

from ..blocks.clustering import by_centrality, cluster_vectors
from ..blocks.discovery import resolve_all
from ..pipeline.embedder import Embedder
from ..pipeline.gap_sample import GapSample
from ..pipeline.schemas import ScoreItem

GAP_SEARCH_POINTS = 400  # texts on which GET /library/gaps chooses k (~2 s for 20 candidates on 2 cores)


async def cluster_gaps(sample: GapSample, embedder: Embedder, domain: str | None, min_size: int, max_k: int,
                       max_texts: int, examples: int = 3) -> dict:
    """The sampled gaps clustered as induction clusters steps (same embedder, same k-means and k choice),
    at most `max_texts` of them (a seeded random subset), embedded once and clustered in worker threads."""
    entries = sample.entries(domain)
    report: dict = {"seen": sample.seen(), "sampled": len(entries), "clusters": [], "unclustered": len(entries)}
    if len(entries) > max_texts:
        entries = random.Random(0).sample(entries, max_texts)
    if len(entries) < min_size:
        return report
    loop = asyncio.get_running_loop()
    steps = [step for step, _ in entries]
    found = {step.text: vector for step, vector in entries if vector is not None}  # embedded when routed, mostly
    missing = list(dict.fromkeys(step.text for step in steps if step.text not in found))
    if missing:
        embedded = dict(zip(missing, await loop.run_in_executor(embedder.executor, embedder.encode_sync, missing)))
        sample.remember(embedded)
        found.update(embedded)
    vectors = np.stack([found[step.text] for step in steps])
    # bounded for an HTTP answer: k chosen on a subsample, 3 restarts instead of induction's 10
    clustering = await loop.run_in_executor(None, partial(cluster_vectors, vectors, min_size, max_k, restarts=3,
                                                          search_points=GAP_SEARCH_POINTS))
    for cluster in clustering.clusters:
        members = [steps[i] for i in by_centrality(vectors, clustering.members(cluster))]
        report["clusters"].append({
            "size": len(members),
            "domains": dict(Counter(m.domain or "none" for m in members)),
            "reasons": dict(Counter(m.reason for m in members)),
            "nearest_cards": [{"card_id": c, "count": n} for c, n in Counter(m.nearest for m in members).most_common(3)],
            "examples": [m.text for m in members[:examples]],
            "texts": [m.text for m in members],
        })
    report["clusters"].sort(key=lambda c: -c["size"])
    report["unclustered"] = int((clustering.labels < 0).sum())
    return report


async def fetch_gap_items(specs: list[str], gaps_domain: str, domain: str, api_key: str | None = None,
                          nameservers: tuple[str, ...] = (), seed: int = 0) -> list[ScoreItem]:
    """The coverage gaps of `gaps_domain` in every replica `specs` name (base URLs, or dns://HOST:PORT for all
    of a headless Service's pods), merged into one uniform sample, as one-step items of `domain`."""
    urls = await resolve_all(specs, nameservers)
    if not urls:
        raise ValueError(f"{', '.join(specs)}: no replica found")
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    async with aiohttp.ClientSession(headers=headers, timeout=aiohttp.ClientTimeout(total=300)) as http:
        samples = await asyncio.gather(*(_sample_of(http, url, gaps_domain) for url in urls))
    merged = merge_samples(samples, gaps_domain, seed)
    return [ScoreItem(id=f"gap-{i}", steps=[{"text": step["text"]}], domain=domain) for i, step in enumerate(merged)]


async def _sample_of(http: aiohttp.ClientSession, url: str, gaps_domain: str) -> dict:
    async with http.get(f"{url}/library/gaps/sample", params={"domain": gaps_domain}) as response:
        if response.status != 200:
            raise ValueError(f"{url}/library/gaps/sample answered {response.status}: {(await response.text())[:300]}")
        return await response.json()


def merge_samples(samples: list[dict], domain: str, seed: int = 0) -> list[dict]:
    """One uniform sample of every replica's gaps of `domain` from each replica's reservoir (a uniform sample of
    the gaps it saw): how many to take from each is drawn from the multivariate hypergeometric distribution
    over the gaps each saw, then that many are taken at random from its reservoir. The merged sample is as
    large as the smallest full reservoir allows (each replica can give at most its reservoir's size)."""
    rng = np.random.default_rng(seed)
    seen = np.array([int(sample["seen"].get(domain, 0)) for sample in samples])
    kept = [sample["steps"] for sample in samples]
    if seen.sum() == 0:
        return []
    # a replica whose reservoir holds fewer than it saw can give at most its reservoir; size the draw so that
    # no replica is asked for more than it holds, whatever the hypergeometric draw
    size = min([len(k) for k, n in zip(kept, seen) if len(k) < n] or [int(seen.sum())])
    counts = rng.multivariate_hypergeometric(seen, min(size, int(seen.sum())))
    merged = []
    for steps, count in zip(kept, counts):
        merged += [steps[i] for i in rng.choice(len(steps), size=int(count), replace=False)]
    return merged
