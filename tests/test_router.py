import pytest

from scribe_rm.evaluation.routing import DEFAULT_SET, evaluate_routing, load_labelled
from scribe_rm.router import Router, UnknownPrototypeError


async def test_routes_clear_cases_to_their_cards(router):
    routes = await router.route([
        "Substitute the solution back into the original equations to make sure it works.",
        "Use the weather function for London, Paris and Rome at the same time.",
        "Ask the user which account the money should come from.",
    ])
    assert [r.card.id for r in routes] == ["math.substitution_check", "tool.parallel_calls", "tool.clarification"]
    for r in routes:
        assert not r.fallback
        assert r.similarity == r.alternatives[0].similarity
        sims = [c.similarity for c in r.alternatives]
        assert sims == sorted(sims, reverse=True) and len(sims) == router.top_k


async def test_below_threshold_uses_fallback_and_flags_it(library, embedder, settings):
    strict = Router(library, embedder, threshold=0.99, top_k=3, fallback_id=settings.fallback_prototype_id,
                    lexical_weight=settings.route_lexical_weight, anchor_cache_dir=settings.anchor_cache_dir)
    strict.build_sync()
    (route,) = await strict.route(["Substitute the solution back into the original equation."])
    assert route.fallback and route.card.id == settings.fallback_prototype_id
    assert route.alternatives[0].card_id == "math.substitution_check"  # the near miss is still reported
    assert route.similarity == route.alternatives[0].similarity < 0.99
    assert route.alternatives[0].card_id != settings.fallback_prototype_id


async def test_off_topic_text_falls_back_at_default_threshold(router, settings):
    (route,) = await router.route(["I like turtles and sunny afternoons."])
    assert route.fallback and route.card.id == settings.fallback_prototype_id


async def test_domain_filter_restricts_candidates(router, library):
    text = "Check the result by plugging it back in."
    (unfiltered,) = await router.route([text])
    (filtered,) = await router.route([text], ["tool_use"])
    assert unfiltered.card.domain == "math"
    assert filtered.card.domain in ("tool_use", "general")
    assert all(library.cards[c.card_id].domain == "tool_use" for c in filtered.alternatives)


def test_explicit_prototype_bypasses_routing(router):
    route = router.explicit("tool.abstain")
    assert route.card.id == "tool.abstain" and route.similarity is None and not route.fallback
    with pytest.raises(UnknownPrototypeError):
        router.explicit("tool.no_such_card")


async def test_heldout_routing_accuracy_meets_target(router):
    rows = load_labelled(DEFAULT_SET)
    assert len(rows) >= 120
    assert {r["domain"] for r in rows} >= {"math", "tool_use"}
    report = await evaluate_routing(router, rows)
    # issue 2's targets; the default embedder (all-mpnet-base-v2) reached 0.868 / 0.958 on 2026-11-22
    assert report.top1 >= 0.85, report.as_dict()
    assert report.top3 >= 0.95, report.as_dict()
