"""Where induction finds coverage gaps: a live service's gap sample clustered (what `GET /library/gaps`
answers), and a running service's gaps fetched as items to induce from (`library induce --from-gaps`)."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from functools import partial

import aiohttp
import numpy as np

from ..blocks.clustering import by_centrality, cluster_vectors
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
        found.update(zip(missing, await loop.run_in_executor(embedder.executor, embedder.encode_sync, missing)))
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


async def fetch_gap_items(base_url: str, gaps_domain: str, domain: str, api_key: str | None = None) -> list[ScoreItem]:
    """A running service's coverage gaps of `gaps_domain` (GET /library/gaps) as one-step items of `domain`,
    one per sampled text."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    params = {"domain": gaps_domain}
    async with aiohttp.ClientSession(headers=headers, timeout=aiohttp.ClientTimeout(total=300)) as http:
        async with http.get(f"{base_url.rstrip('/')}/library/gaps", params=params) as response:
            if response.status != 200:
                raise ValueError(f"{base_url}/library/gaps answered {response.status}: {(await response.text())[:300]}")
            report = await response.json()
    return [ScoreItem(id=f"gap-{k}-{i}", steps=[{"text": text}], domain=domain)
            for k, cluster in enumerate(report["clusters"]) for i, text in enumerate(cluster["texts"])]
