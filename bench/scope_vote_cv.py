"""Cross-validated routing of items sent without a domain (issue 24), on the cards' own example subgoals only:
each example is a one-step item routed as the router routes it (over every card, and where that reaches an agent
or tool-use card, decided again in the agent scope), with its card's domain given instead (the scope and the
domain's cards), over every card alone (as before), and in the scope its route over every card votes for (as
earlier still). Per card domain, for the transformer alone and for the default tiers at the configured
thresholds, floors and margin bounds (SCRIBE_* settings), so the ways can be compared where the held-out sets
cannot be read. Folds are dealt once over every card, so that an example is held out of every scope's fit alike.
Items of several steps (`--item-steps`), each made of one card domain's held-out examples, are routed with the
default tiers with their domain, and without it, their steps' votes over every card cast by both tiers or by the
static tier alone (as the router does); the script also prints how often the vote picked the domain's scope.
`--all-bounds` routes the one-step items without a domain at each of those margin bounds over every card too, and
picks the smallest at which each card domain's examples come within 0.01 (issue 24's tolerance) of their routing
with their domain: the service's route_static_all_margin.

    .venv/bin/python bench/scope_vote_cv.py --all-bounds 0.02 0.03 0.04 0.045 0.05 0.06 0.08 0.1 \
        --json-out bench/results/scope_vote_cv.json
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from dataclasses import replace

import numpy as np

from common import report
from routing_cv import Tuning, mean_by_key, similarities, static_space
from scribe_rm.library import EVERY_CARD, admits, domain_of_scope, home_scope, load_library, scope_of
from scribe_rm.pipeline.embedder import make_embedder
from scribe_rm.pipeline.router import DEFAULT_SETTING_SCOPES, RouterConfig, anchor_texts, family_domain, vote_scope
from scribe_rm.settings import Settings

SCOPES = {"default": None, "agent": "agent", "all": EVERY_CARD}  # the router's scopes, by the domain naming them
WITHIN = 0.01  # issue 24: items without a domain route within this of their routing with it
VOTES = {"with domain": None, "voted by both tiers": "static+mpnet", "voted by the static tier": "static"}


class FoldRouter:
    """One fold's similarities of its held-out examples in each space and scope, decided as Router does."""

    def __init__(self, config: RouterConfig, domains: list[str], members: dict[str, list[int]],
                 sims: dict[tuple[str, str], np.ndarray]):
        self.config, self.domains, self.members, self.sims = config, domains, members, sims

    def route(self, i: int, domain: str | None, tiers: str) -> int:
        """Example i's card index (-1: the fallback) in the scope of `domain`, among the cards it admits."""
        scope = scope_of(domain)
        default = scope in DEFAULT_SETTING_SCOPES
        allowed = np.array([admits(domain, self.domains[k]) for k in self.members[scope]])
        mpnet, static = (np.where(allowed, self.sims[(space, scope)][i], -np.inf) for space in ("mpnet", "static"))
        if tiers == "mpnet":
            return self._decide(mpnet, scope, self.config.threshold_of("mpnet", default))
        if tiers == "static":
            return self._decide(static, scope, self.config.threshold_of("static", default))
        floor, bound = self.config.static_gate(scope)
        ranked = np.sort(static)
        if ranked[-1] >= max(floor, self.config.threshold_of("static", default)) and ranked[-1] - ranked[-2] >= bound:
            return self.members[scope][int(static.argmax())]
        combined = (mpnet + self.config.static_weight * static) / (1 + self.config.static_weight)
        return self._decide(combined, scope, self.config.threshold_of("static+mpnet", default))

    def decide(self, i: int, domain: str | None, tiers: str) -> int:
        """route(), and over every card a route that reached an agent or tool-use card decided again in the agent
        scope, as Router decides every step but the scope vote's."""
        card = self.route(i, domain, tiers)
        family = family_domain(self.domains[card]) if domain == EVERY_CARD and card >= 0 else None
        return card if family is None else self.route(i, family, tiers)

    def _decide(self, row: np.ndarray, scope: str, threshold: float) -> int:
        best = int(row.argmax())
        return self.members[scope][best] if row[best] >= threshold else -1


def swept_way(bound: float) -> str:
    """How the sweep names the cascade's routing of one-step items without a domain at `bound` over every card."""
    return f"without domain, bound {bound} over every card"


def smallest_bound_within(top1: dict[str, dict[str, float]], bounds: list[float]) -> float | None:
    """The smallest margin bound over every card at which each card domain's examples, routed without a domain,
    come within WITHIN of their routing with it (None: no bound tried does)."""
    with_domain = top1["static+mpnet, with domain"]
    for bound in sorted(bounds):
        without = top1[f"static+mpnet, {swept_way(bound)}"]
        if all(without[d] >= with_domain[d] - WITHIN for d in with_domain if d != "every domain"):
            return bound
    return None


def items_of(test: list[tuple[int, str]], domains: list[str], size: int, rng: np.random.Generator
             ) -> list[tuple[str, list[int]]]:
    """The held-out examples (indices into `test`) dealt into items of `size` steps, each of one card domain's
    examples; a domain's remainder of at least two steps is an item too."""
    items = []
    for domain in sorted({domains[k] for k, _ in test}):
        own = [i for i, (k, _) in enumerate(test) if domains[k] == domain]
        rng.shuffle(own)
        items += [(domain, own[at:at + size]) for at in range(0, len(own), size) if len(own[at:at + size]) >= 2]
    return items


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(10)))
    parser.add_argument("--item-steps", type=int, nargs="+", default=[3, 6],
                        help="sizes of the several-step items, each made of one domain's held-out examples")
    parser.add_argument("--all-bounds", type=float, nargs="*", default=[],
                        help="also route the one-step items without a domain at each of these margin bounds over "
                             "every card (route_static_all_margin)")
    parser.add_argument("--json-out")
    args = parser.parse_args()

    settings = Settings()
    config = settings.model_copy(update={"routing_tiers": "static+mpnet"}).router_config()
    library = load_library(settings.library_dir, settings.fallback_card_id)
    cards = [card for card in library.cards.values() if card.id != settings.fallback_card_id]
    domains = [card.domain for card in cards]
    members = {scope: [k for k, card in enumerate(cards) if admits(domain, card.domain)]
               for scope, domain in SCOPES.items()}
    texts = [text for card in cards for text in anchor_texts(card)]  # the router's order: shares its cache
    embedder = make_embedder(settings.embedder_config())
    embedder.load()
    static_vectors, static_tuning = static_space(settings, texts)
    embedded = {"mpnet": dict(zip(texts, embedder.encode_cached_sync(texts, settings.anchor_cache_dir))),
                "static": static_vectors}
    tunings: dict[str, Tuning | None] = {"mpnet": None, "static": static_tuning}

    ways = [(tiers, way) for tiers in ("mpnet", "static+mpnet")
            for way in ("without domain", "with domain", "over every card alone", "in the voted scope")]
    right: dict[tuple[str, str], list[dict[str, float]]] = defaultdict(list)
    scope_right: dict[tuple[int, str, str], list[bool]] = defaultdict(list)  # pooled over the seeds
    for seed in args.seeds:
        rng = np.random.default_rng(seed)
        examples = [(k, text, rng.integers(args.folds)) for k, card in enumerate(cards) for text in card.examples]
        hits: dict[tuple[str, str, str], list[bool]] = defaultdict(list)
        for fold in range(args.folds):
            test = [(k, t) for k, t, f in examples if f == fold]
            sims = {}
            for scope, scope_cards in members.items():
                index = {k: j for j, k in enumerate(scope_cards)}
                train = [(index[k], t) for k, t, f in examples if f != fold and k in index] + \
                        [(index[k], t) for k in scope_cards for t in (cards[k].name, cards[k].when_to_use)]
                for space in ("mpnet", "static"):
                    sims[(space, scope)] = similarities(embedded[space], len(scope_cards), train, [t for _, t in test],
                                                        settings.route_train_steps, settings.route_lexical_weight,
                                                        tunings[space])
            router = FoldRouter(config, domains, members, sims)
            for bound in args.all_bounds:
                swept = FoldRouter(replace(config, static_all_margin=bound), domains, members, sims)
                for i, (k, _) in enumerate(test):
                    for key in (domains[k], "every domain"):
                        hits[("static+mpnet", swept_way(bound), key)].append(
                            swept.decide(i, EVERY_CARD, "static+mpnet") == k)
            for i, (k, _) in enumerate(test):
                for tiers, way in ways:
                    if way == "with domain":
                        card = router.route(i, domains[k], tiers)
                    elif way == "without domain":
                        card = router.decide(i, EVERY_CARD, tiers)
                    elif way == "over every card alone":  # before: no second decision in the agent scope
                        card = router.route(i, EVERY_CARD, tiers)
                    else:  # its one step's vote picks the scope (tool-use and general cards do not vote)
                        voted = router.route(i, EVERY_CARD, tiers)
                        scope = home_scope(domains[voted]) if voted >= 0 else None
                        card = router.route(i, domain_of_scope(scope) if scope else None, tiers)
                    hits[(tiers, way, domains[k])].append(card == k)
                    hits[(tiers, way, "every domain")].append(card == k)
            for size in args.item_steps:
                for domain, group in items_of(test, domains, size, rng):
                    for way, vote_tiers in VOTES.items():
                        chosen = domain if vote_tiers is None else vote_scope(
                            [domains[c] if c >= 0 else None for c in (router.route(i, EVERY_CARD, vote_tiers)
                                                                       for i in group)], config.scope_min_share)
                        for key in ((size, way, domain), (size, way, "every domain")):
                            scope_right[key].append(scope_of(chosen) == scope_of(domain))
                            hits[("static+mpnet", f"{size} steps, {way}", key[2])].extend(
                                router.decide(i, chosen, "static+mpnet") == test[i][0] for i in group)
        swept_ways = [("static+mpnet", swept_way(bound)) for bound in args.all_bounds]
        for tiers, way in ways + swept_ways + [("static+mpnet", f"{size} steps, {way}") for size in args.item_steps
                                               for way in VOTES]:
            right[(tiers, way)].append({domain: float(np.mean(hits[(tiers, way, domain)]))
                                        for domain in sorted(set(domains)) + ["every domain"]})
    top1 = {f"{tiers}, {way}": mean_by_key(runs) for (tiers, way), runs in right.items()}
    scopes = {f"{size} steps, {way}": {domain: float(np.mean(scope_right[(size, way, domain)]))
                                       for domain in sorted(set(domains)) + ["every domain"]
                                       if scope_right[(size, way, domain)]}
              for size in args.item_steps for way in VOTES}
    rows = [(f"top-1 {key}", ", ".join(f"{d} {a:.4f}" for d, a in by_domain.items()), None)
            for key, by_domain in top1.items()]
    rows += [(f"scope right, {key}", ", ".join(f"{d} {a:.4f}" for d, a in by_domain.items()), None)
             for key, by_domain in scopes.items()]
    chosen_bound = smallest_bound_within(top1, args.all_bounds)
    if args.all_bounds:
        rows.append((f"margin bound over every card: smallest tried where each card domain's top-1 without a domain "
                     f"is within {WITHIN} of its top-1 with it", chosen_bound,
                     f"setting: {config.static_all_margin}"))
    report(f"One-step items with and without a domain, {args.folds}-fold CV x seeds {args.seeds} on "
           f"{len(examples)} card examples (margin bounds default / agent / every card: {config.static_margin} / "
           f"{config.static_agent_margin} / {config.static_all_margin})", rows,
           {"folds": args.folds, "seeds": args.seeds, "item_steps": args.item_steps, "top1": top1,
            "scope_right": scopes, "all_bound_chosen": chosen_bound,
            "bounds": {"default": config.static_margin, "agent": config.static_agent_margin,
                       "all": config.static_all_margin}}, args.json_out)


if __name__ == "__main__":
    main()
