"""Route a subgoal to its skill card in one or two embedding spaces (spaces.py), each fitting one vector per
card per routing scope, with a lexical part.

Tiers (RouterConfig.tiers):
- "mpnet": the transformer embedder (all-mpnet-base-v2 by default, its first 6 layers: embedder.py) decides alone.
- "static": the static model distilled from it, with its token corrections fitted per scope (token_tuning.py),
  decides alone (~100x cheaper on a CPU; routes worse).
- "static+mpnet": every text is routed in the static space; where its best card leads the runner-up by less
  than the scope's margin bound, or its similarity is below the scope's static floor (the static model scores
  off-topic text higher than the transformer does), the transformer space is computed too and the two spaces'
  similarities, combined as (mpnet + w * static) / (1 + w), decide. The bounds, the floors, the weight and each
  deciding space's thresholds were chosen by cross-validation on the cards' examples (bench/routing_cv.py):
  there the cascade routes each domain's cards no worse than the transformer alone; the bound over every card is
  instead the smallest with which items without a domain route within 0.01 of their routing with it
  (bench/scope_vote_cv.py). The static tier decides about four fifths of the texts in the default scope, half in
  the agent scope and seven tenths over every card (before a route is decided again in the agent scope, below).
Below the deciding space's threshold the fallback card judges the step and the miss is flagged.

Scopes. An item that names a domain routes in that domain's scope. One that names none (auto) is first routed
over every card in the first tier alone (the static one by default: in cross-validation on the cards' examples,
items of 3 and 6 steps voted by static decisions route no worse than voted by both tiers, and the transformer
then embeds only what is unclear in the chosen scope); each of its steps votes for the home scope of the card
it reached (math: the default scope;
agent cards: the agent scope; a library's own domain: its scope; tool-use and general cards fit several and do
not vote). A clear majority (`scope_min_share` of the votes) picks the scope, no vote picks the default scope,
and anything else the broadest one, every card: a low-confidence item is never pushed into a wrong narrow
scope. The steps are then routed in the chosen scope. An item of one step does not vote: it is routed over every
card, where its vote would come from, since a narrower scope would only decide the same text again, and in
cross-validation on the cards' examples that second decision routed worse (bench/scope_vote_cv.py).

Over every card, a route that reaches an agent or a tool-use card is decided again in the agent scope, whose card
vectors were fitted against those cards alone (and the general one): over every card the math cards pull the
fit, and a near-tie between two dialogue cards there is often clear in the agent scope. The math and general
cards' routes stand (re-deciding those in the default scope routed worse in cross-validation). In
cross-validation on the cards' one-step examples this second decision brought each card domain's routing without
a domain within 0.01 of its routing with it at a lower bound over every card (0.03 against 0.06 before;
bench/scope_vote_cv.py). The scope vote takes the first decision as it is, and the item's scope is still reported
as every card ("all").
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from ..blocks.microbatch import ItemFailed
from ..library import (BUILTIN_DOMAINS, EVERY_CARD, Card, Domain, Library, admits, domain_of_scope, home_scope,
                       scope_of)
from . import metrics
from .embedder import Embedder
from .errors import UnknownCard
from .gap_sample import GapSample, GapStep
from .spaces import Lookup, Space, anchor_texts, fit_card_vectors, fit_index_vectors, joint_vectors

__all__ = ["DEFAULT_SETTING_SCOPES", "Candidate", "Route", "RoutedItem", "Router", "RouterConfig", "RoutingCounts",
           "RoutingItem", "Tiers", "anchor_texts", "family_domain", "fit_card_vectors", "fit_index_vectors",
           "joint_vectors", "vote_scope"]

Tiers = Literal["static+mpnet", "mpnet", "static"]
Decider = Literal["mpnet", "static", "static+mpnet"]
# the scopes that use the default thresholds and static floor; every other scope (the agent scope, a library's
# own domains) uses the "agent" ones. The static margin bound is the scope's own (RouterConfig.static_gate).
DEFAULT_SETTING_SCOPES = ("default", "all")


@dataclass(frozen=True)
class RouterConfig:
    tiers: Tiers = "mpnet"
    # similarity below which the fallback card judges the step, per deciding space; "agent" thresholds serve
    # the agent scope and a library's own domains, whose scopes rank fewer cards (similarities run lower)
    threshold: float = 0.107  # the transformer space
    agent_threshold: float = 0.088
    static_threshold: float = 0.098
    static_agent_threshold: float = 0.088
    combined_threshold: float = 0.107
    combined_agent_threshold: float = 0.088
    static_margin: float = 0.02  # static+mpnet: below this lead over the runner-up, the second tier decides ...
    static_agent_margin: float = 0.065  # ... (in the agent and own-domain scopes)
    static_all_margin: float = 0.03  # ... (over every card: items without a domain)
    static_floor: float = 0.128  # static+mpnet: below this static similarity too (default scope) ...
    static_agent_floor: float = 0.116  # ... and in the other scopes
    static_weight: float = 0.25  # static+mpnet: weight of the static similarities in the second tier
    static_tuning_steps: int = 200  # static tier: steps fitting its token corrections per scope (0: none)
    static_tuning_l2: float = 1e-4  # ... and their pull towards the distilled token vectors
    top_k: int = 3
    fallback_id: str = "general.step_validity"
    train_steps: int = 300  # 0: plain anchor centroids
    lexical_weight: float = 0.8  # weight of the TF-IDF part of the similarity (0: off)
    text_chars: int = 600  # long steps are cut to their beginning before routing
    batch_size: int = 32  # micro-batch across requests
    window_ms: float = 5.0
    anchor_cache_dir: Path | None = None
    cache_size: int = 100_000  # texts whose card similarities are kept, per space
    scope_min_share: float = 0.67  # auto scope: the votes a scope needs to be chosen (else every card)
    turn_split: bool = True  # a chat turn of text alone may be scored as two steps (turn_split.py)
    turn_split_margin: float = 0.0  # ... where both parts lead their runner-up card by this (first tier)
    turn_split_max_sentences: int = 6  # turns of more sentences are not tried (each cut routes two texts)

    def threshold_of(self, decider: Decider, default_scope: bool) -> float:
        pairs = {"mpnet": (self.threshold, self.agent_threshold),
                 "static": (self.static_threshold, self.static_agent_threshold),
                 "static+mpnet": (self.combined_threshold, self.combined_agent_threshold)}
        default, scoped = pairs[decider]
        return default if default_scope else scoped

    def static_gate(self, scope: str) -> tuple[float, float]:
        """The (floor, margin bound) a static decision in `scope` must reach to stand."""
        floor = self.static_floor if scope in DEFAULT_SETTING_SCOPES else self.static_agent_floor
        if scope == "default":
            return floor, self.static_margin
        return floor, self.static_all_margin if scope == "all" else self.static_agent_margin


def family_domain(card_domain: str) -> Domain | None:
    """The domain whose scope decides again a route over every card that reached a card of `card_domain`: the
    agent scope for agent and tool-use cards (see the module); None: the route over every card stands."""
    return "agent" if card_domain in ("agent", "tool_use") else None


def vote_scope(card_domains: list[str | None], min_share: float) -> Domain | None:
    """The domain of the scope the steps of an item of several steps point to (see the module), from the
    domain of the card each step reached over every card (None: it fell back or failed)."""
    votes = Counter(home_scope(domain) for domain in card_domains if domain is not None)
    votes.pop(None, None)
    if not votes:
        return None
    scope, count = votes.most_common(1)[0]
    return domain_of_scope(scope) if count / sum(votes.values()) >= min_share else EVERY_CARD


@dataclass(frozen=True)
class Candidate:
    card_id: str
    similarity: float


@dataclass(frozen=True)
class Route:
    card: Card
    similarity: float | None  # None when the caller named the card explicitly
    fallback: bool
    alternatives: tuple[Candidate, ...]  # top-k by similarity, best first
    decided_by: Decider | None = None  # the space(s) whose similarities decided; None: named explicitly

    @property
    def margin(self) -> float | None:
        ranked = self.alternatives
        return ranked[0].similarity - ranked[1].similarity if len(ranked) > 1 else None


@dataclass(frozen=True)
class RoutingItem:
    """The routing texts of one item's steps, and the domain it names (None: its scope is chosen from it)."""
    texts: list[str]
    domain: Domain | None = None


@dataclass(frozen=True)
class RoutedItem:
    routes: list[Route | ItemFailed]
    scope: str  # the domain given, or the scope chosen: "default", "agent", a library's own domain, "all"
    scope_source: Literal["given", "auto"]


@dataclass
class RoutingCounts:
    """How one call's texts were answered."""
    hits: int = 0  # distinct texts from the routing cache (first tier)
    misses: int = 0  # distinct texts embedded (first tier)
    deduplicated: int = 0  # repeats of another text of the same call
    second_tier: int = 0  # texts (with their repeats) that the second tier decided

    def add(self, other: "RoutingCounts") -> None:
        self.hits += other.hits
        self.misses += other.misses
        self.deduplicated += other.deduplicated
        self.second_tier += other.second_tier


class Router:
    def __init__(self, library: Library, embedder: Embedder, config: RouterConfig, gaps: GapSample | None = None,
                 static_embedder: Embedder | None = None, gap_vectors: bool = True):
        """`gap_vectors`: keep the transformer vectors of texts offered to the gap sample, for clustering them
        (only where the gaps are clustered in this embedder's space)."""
        self.library = library
        self.config = config
        self.gaps = gaps  # where texts no card fits well are sampled (shared across library versions)
        self._known_domains = set(library.domains) | set(BUILTIN_DOMAINS)
        self.fallback = library.cards[config.fallback_id]
        self._layout: dict[str, tuple[int, list[str]]] = {}  # scope -> (start in a row, its card ids)
        window_s = config.window_ms / 1000.0
        self.spaces: dict[str, Space] = {}
        if config.tiers != "static":  # the gap sample keeps transformer vectors: GET /library/gaps clusters those
            self.spaces["mpnet"] = Space("mpnet", embedder, config.train_steps, config.lexical_weight,
                                         config.batch_size, window_s, config.cache_size,
                                         keep_vectors=gap_vectors and gaps is not None and gaps.size > 0)
        if config.tiers != "mpnet":
            if static_embedder is None:
                raise ValueError(f"routing tiers {config.tiers!r} need the static embedder")
            self.spaces["static"] = Space("static", static_embedder, config.train_steps, config.lexical_weight,
                                          config.batch_size, window_s, config.cache_size,
                                          token_tuning=(config.static_tuning_steps, config.static_tuning_l2))

    @property
    def text_chars(self) -> int:
        return self.config.text_chars

    @property
    def ready(self) -> bool:
        return bool(self._layout) and all(space.ready for space in self.spaces.values())

    def build_sync(self) -> None:
        """Embed every anchor in each space and fit each scope's card vectors. Blocking; call it from a worker
        thread. Scopes: the default one (every card but the agent and own-domain ones) and one per other domain."""
        cards = [card for card in self.library.cards.values() if card.id != self.fallback.id]  # chosen by threshold
        own_domains = sorted({scope_of(card.domain) for card in cards} - {"default"})
        scopes = {}
        for name, domain in [("default", None)] + [(d, d) for d in own_domains] + [("all", EVERY_CARD)]:
            members = [card for card in cards if admits(domain, card.domain)]
            if members:
                scopes[name] = members
        for space in self.spaces.values():
            space.build_sync(scopes, self.config.anchor_cache_dir)
        layout, start = {}, 0
        for name, members in scopes.items():
            layout[name] = (start, [card.id for card in members])
            start += len(members)
        self._layout = layout

    def explicit(self, card_id: str) -> Route:
        card = self.library.get(card_id)
        if card is None:
            raise UnknownCard(card_id)
        return Route(card=card, similarity=None, fallback=False, alternatives=())

    async def route(self, texts: list[str], domains: list[Domain | None] | None = None,
                    counts: RoutingCounts | None = None) -> list[Route | ItemFailed]:
        """One route per text, each text an item of its own (a text without a domain gets its scope chosen
        from it), or the ItemFailed of a text an embedder could not take (its own failure only)."""
        domains = domains or [None] * len(texts)
        routed = await self.route_items([RoutingItem([t], d) for t, d in zip(texts, domains)], counts)
        return [item.routes[0] for item in routed]

    async def route_items(self, items: list[RoutingItem], counts: RoutingCounts | None = None) -> list[RoutedItem]:
        """Each item's routes, in its given scope or the one chosen from its steps. Each distinct text is
        looked up once per space: in the cache, else embedded; `counts` tallies which."""
        cut = [[text[: self.text_chars] for text in item.texts] for item in items]
        flat = [text for texts in cut for text in texts]
        lookup, call = await self._first_rows(flat)
        # an item without a domain: one step is routed over every card, several vote for their scope
        chosen = [EVERY_CARD if item.domain is None and len(texts) == 1 else item.domain
                  for item, texts in zip(items, cut)]
        auto = [i for i, item in enumerate(items) if item.domain is None and len(cut[i]) > 1]
        if auto:  # the vote over every card, in the first tier alone; the final routing reuses its rows
            auto_texts = [text for i in auto for text in cut[i]]
            over_all = await self._decide_all(auto_texts, [EVERY_CARD] * len(auto_texts), lookup.rows,
                                              RoutingCounts(), self._first_tier, within_family=False)
            start = 0
            for i in auto:
                chosen[i] = self._vote(over_all[start:start + len(cut[i])])
                start += len(cut[i])
        domains = [chosen[i] for i, texts in enumerate(cut) for _ in texts]
        decided = await self._decide_all(flat, domains, lookup.rows, call)
        self._count(call, decided, items, chosen)
        if counts is not None:
            counts.add(call)
        self._observe(flat, [item.domain for item, texts in zip(items, cut) for _ in texts], decided)
        routed, start = [], 0
        for item, texts, domain in zip(items, cut, chosen):
            scope = item.domain if item.domain is not None else scope_of(domain)
            routed.append(RoutedItem(decided[start:start + len(texts)], scope,
                                     "given" if item.domain is not None else "auto"))
            start += len(texts)
        return routed

    async def route_in(self, texts: list[str], domains: list[Domain | None], counts: RoutingCounts | None = None,
                       first_tier_only: bool = False) -> list[Route | ItemFailed]:
        """Each text routed in the scope of its domain as given (None: the default scope), with no vote and
        without offering it to the gap sample: for texts that are parts of a step (turn_split.py).
        `first_tier_only`: decided in the first tier's space alone (static, unless the tiers are mpnet)."""
        cut = [text[: self.text_chars] for text in texts]
        lookup, call = await self._first_rows(cut)
        tiers: Tiers = self._first_tier if first_tier_only else self.config.tiers
        decided = await self._decide_all(cut, list(domains), lookup.rows, call, tiers)
        self._count(call, decided, [], [])
        if counts is not None:
            counts.add(call)
        return decided

    @property
    def _first_tier(self) -> Tiers:
        """The space every text is routed in first: the static one, unless the tiers are mpnet alone."""
        return "mpnet" if self.config.tiers == "mpnet" else "static"

    async def _first_rows(self, cut: list[str]) -> tuple[Lookup, RoutingCounts]:
        """The first tier's row of each distinct text, and how they were found."""
        distinct = list(dict.fromkeys(cut))
        lookup = await self.spaces[self._first_tier].rows(distinct, self.library.version)
        return lookup, RoutingCounts(hits=lookup.hits, misses=lookup.misses, deduplicated=len(cut) - len(distinct))

    async def _decide_all(self, cut: list[str], domains: list[Domain | None],
                          first_rows: dict[str, np.ndarray | ItemFailed], call: RoutingCounts,
                          tiers: Tiers | None = None, within_family: bool = True) -> list[Route | ItemFailed]:
        """Each text's route in its domain's scope. Over every card, a route that reached an agent or tool-use
        card is decided again in the agent scope (`within_family`; see the module), except for the scope vote,
        which takes the first decision as it is."""
        tiers = tiers or self.config.tiers
        mpnet_rows: dict[str, np.ndarray | ItemFailed] = {}  # static+mpnet: shared by both decisions
        decided = await self._decide_tiers(cut, domains, first_rows, tiers, mpnet_rows)
        families = [self._family(route, domain) if within_family else None for route, domain in zip(decided, domains)]
        again = [i for i, family in enumerate(families) if family is not None]
        if again:
            redone = await self._decide_tiers([cut[i] for i in again], [families[i] for i in again], first_rows, tiers,
                                              mpnet_rows)
            for i, route in zip(again, redone):
                decided[i] = route
        call.second_tier += sum(isinstance(route, Route) and route.decided_by == "static+mpnet" for route in decided)
        return decided

    def _family(self, route: Route | ItemFailed, domain: Domain | None) -> Domain | None:
        """The domain whose scope decides again this route over every card (None: it stands)."""
        if domain != EVERY_CARD or not isinstance(route, Route) or route.fallback:
            return None
        family = family_domain(route.card.domain)
        return family if family is not None and scope_of(family) in self._layout else None

    async def _decide_tiers(self, cut: list[str], domains: list[Domain | None],
                            first_rows: dict[str, np.ndarray | ItemFailed], tiers: Tiers,
                            mpnet_rows: dict[str, np.ndarray | ItemFailed]) -> list[Route | ItemFailed]:
        if tiers == "static+mpnet":
            return await self._second_tier(cut, domains, first_rows, mpnet_rows)
        decider: Decider = "static" if tiers == "static" else "mpnet"
        return [row if isinstance(row, ItemFailed) else self._decide(row, domain, decider)
                for row, domain in zip((first_rows[text] for text in cut), domains)]

    def _vote(self, routes: list[Route | ItemFailed]) -> Domain | None:
        return vote_scope([route.card.domain if isinstance(route, Route) and not route.fallback else None
                           for route in routes], self.config.scope_min_share)

    async def _second_tier(self, cut: list[str], domains: list[Domain | None],
                           static_rows: dict[str, np.ndarray | ItemFailed],
                           mpnet_rows: dict[str, np.ndarray | ItemFailed]) -> list[Route | ItemFailed]:
        """static+mpnet: the static decision where it is clear, else both spaces combined. The transformer rows
        are looked up once per text into `mpnet_rows`, which a later decision of the same texts reuses."""
        first: list[Route | ItemFailed] = []
        for text, domain in zip(cut, domains):
            row = static_rows[text]
            first.append(row if isinstance(row, ItemFailed) else self._decide(row, domain, "static"))
        unclear = [i for i, (route, domain) in enumerate(zip(first, domains))
                   if isinstance(route, Route) and not self._clear(route, domain)]
        if not unclear:
            return first
        missing = list(dict.fromkeys(cut[i] for i in unclear if cut[i] not in mpnet_rows))
        if missing:
            mpnet_rows.update((await self.spaces["mpnet"].rows(missing, self.library.version)).rows)
        w = self.config.static_weight
        for i in unclear:
            mpnet_row = mpnet_rows[cut[i]]
            if isinstance(mpnet_row, ItemFailed):
                first[i] = mpnet_row
                continue
            combined = (mpnet_row + w * static_rows[cut[i]]) / (1 + w)  # type: ignore[operator]
            first[i] = self._decide(combined, domains[i], "static+mpnet")
        return first

    def _clear(self, route: Route, domain: Domain | None) -> bool:
        """Whether a static decision stands: its similarity at the floor and its lead over the runner-up at the
        bound (a static fallback never stands: the second tier decides whether the text falls back)."""
        floor, bound = self.config.static_gate(scope_of(domain))
        margin = route.margin
        return (not route.fallback and route.similarity is not None and route.similarity >= floor
                and (margin is None or margin >= bound))

    def _count(self, call: RoutingCounts, decided: list[Route | ItemFailed], items: list[RoutingItem],
               chosen: list[Domain | None]) -> None:
        for result, n in (("hit", call.hits), ("miss", call.misses), ("deduplicated", call.deduplicated)):
            metrics.ROUTE_LOOKUPS.labels(result).inc(n)
        for route in decided:
            if isinstance(route, Route):
                metrics.ROUTE_DECIDED_BY.labels(route.decided_by).inc()
        for item, domain in zip(items, chosen):
            if item.domain is None:
                metrics.ROUTE_SCOPES.labels(self._label(scope_of(domain)), "auto").inc()
            else:
                metrics.ROUTE_SCOPES.labels(self._label(item.domain), "given").inc()

    def _label(self, name: str) -> str:
        """A bounded metric label: the library's domains and scopes, else "other"."""
        return name if name in self._known_domains or name in DEFAULT_SETTING_SCOPES else "other"

    def _observe(self, cut: list[str], domains: list[Domain | None], decided: list[Route | ItemFailed]) -> None:
        """Count routing outcomes per domain and offer each distinct text no card fits well to the gap sample."""
        offered = set()
        vectors = self.spaces["mpnet"].recent_vectors if "mpnet" in self.spaces else None
        for text, domain, route in zip(cut, domains, decided):
            if isinstance(route, ItemFailed) or self.gaps is None:
                continue
            margin = route.margin
            outcome = self.gaps.outcome(route.fallback, margin)
            metrics.ROUTE_OUTCOMES.labels(self._label(domain) if domain else "none", outcome).inc()
            if outcome != "confident" and (text, domain) not in offered:
                offered.add((text, domain))
                ranked = route.alternatives
                self.gaps.offer(GapStep(text, domain, outcome, ranked[0].card_id if ranked else None,
                                        route.similarity, None if margin is None else round(margin, 6)),
                                vectors.get(text) if vectors is not None else None)

    def _decide(self, row: np.ndarray, domain: Domain | None, decider: Decider) -> Route:
        name = scope_of(domain)
        ranked: list[Candidate] = []  # top-k by similarity (best first), among the cards the domain admits
        if name in self._layout:
            start, card_ids = self._layout[name]
            similarities = row[start: start + len(card_ids)]
            for idx in np.argsort(-similarities, kind="stable").tolist():
                card_id = card_ids[idx]
                if admits(domain, self.library.cards[card_id].domain):
                    ranked.append(Candidate(card_id, round(float(similarities[idx]), 6)))
                    if len(ranked) == self.config.top_k:
                        break
        alternatives = tuple(ranked)
        threshold = self.config.threshold_of(decider, default_scope=name in DEFAULT_SETTING_SCOPES)
        if not ranked or ranked[0].similarity < threshold:
            top = ranked[0].similarity if ranked else None
            return Route(card=self.fallback, similarity=top, fallback=True, alternatives=alternatives,
                         decided_by=decider)
        return Route(card=self.library.cards[ranked[0].card_id], similarity=ranked[0].similarity,
                     fallback=False, alternatives=alternatives, decided_by=decider)
