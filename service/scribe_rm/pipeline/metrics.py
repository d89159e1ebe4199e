"""Prometheus metrics of the scoring pipeline. HTTP request counts and latency by route and status come
from prometheus-fastapi-instrumentator (api/app.py). With PROMETHEUS_MULTIPROC_DIR set, prometheus-client
aggregates across worker processes (gauges sum over live workers)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

SCORE_BUCKETS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.25, 2.5, 2.75, 3.0)
UNIT_BUCKETS = (0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)

ITEMS = Counter("scribe_items_total", "Items scored, by final status.", ["status"])
STEPS = Counter("scribe_steps_total", "Steps routed for judging.")
JUDGE_LATENCY = Histogram("scribe_judge_latency_seconds", "One judge call, by backend.", ["backend"],
                          buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60))
JUDGE_ERRORS = Counter("scribe_judge_errors_total", "Judge calls that failed, by backend.", ["backend"])
JUDGE_INFLIGHT = Gauge("scribe_judge_inflight", "Judge calls running or queued.", multiprocess_mode="livesum")
JUDGE_REPLICA_INFLIGHT = Gauge("scribe_judge_replica_inflight", "Judge calls in flight per replica.", ["replica"],
                               multiprocess_mode="livesum")
JUDGE_REPLICA_FIRST_ATTEMPTS = Counter("scribe_judge_replica_first_attempts_total", "First attempts of judge calls "
                                       "sent to each replica (retries go elsewhere).", ["replica"])
JUDGE_REPLICA_ERRORS = Counter("scribe_judge_replica_errors_total", "Failed judge calls per replica and kind "
                               "(connection, timeout, 5xx).", ["replica", "kind"])
JUDGE_REPLICA_EJECTIONS = Counter("scribe_judge_replica_ejections_total", "Times a replica was ejected (after "
                                  "failed calls or a failed health check).", ["replica"])
JUDGE_REPLICA_UP = Gauge("scribe_judge_replica_up", "1 while a judge replica takes calls, 0 while ejected or gone.",
                         ["replica"], multiprocess_mode="livemax")
CACHE = Counter("scribe_cache_lookups_total", "Judgement cache look-ups, by result.", ["result"])
DEDUPLICATED = Counter("scribe_deduplicated_steps_total", "Steps sharing another step's judgement in a request.")
ROUTE_SIMILARITY = Histogram("scribe_route_similarity", "Routing similarity of the chosen card.",
                             buckets=UNIT_BUCKETS)
ROUTE_LOOKUPS = Counter("scribe_route_lookups_total", "Routing texts by how they were answered: hit (routing "
                        "cache), miss (embedded), deduplicated (a repeat within one call).", ["result"])
ROUTE_EMBEDDED = Counter("scribe_route_embedded_total", "Routing texts embedded (cache misses), by space: static "
                         "(the first tier) or mpnet (the transformer; with the default tiers, only texts the static "
                         "tier left unclear).", ["space"])
ROUTE_DECIDED_BY = Counter("scribe_route_decided_total", "Routed texts (steps, and parts of chat turns tried as two "
                           "steps) by the space(s) that decided: static (first tier), static+mpnet (the second "
                           "tier), or mpnet alone.", ["space"])
ROUTE_SCOPES = Counter("scribe_route_scopes_total", "Routed items by scope (default, agent, a library domain, all; "
                       "'other': not a library domain) and how it was set: given (the item's domain) or auto.",
                       ["scope", "source"])
ROUTE_FALLBACK = Counter("scribe_route_fallback_total", "Steps below the threshold, judged by the fallback card.")
STEP_SCORE = Histogram("scribe_step_score", "Expected 0-3 step score, by prototype.", ["prototype"],
                       buckets=SCORE_BUCKETS)
LABEL_MASS = Histogram("scribe_label_mass", "Probability the judge put on the labels 0-3.", buckets=UNIT_BUCKETS)
BUILD = Gauge("scribe_build_info", "Library version and judge model (value 1).",
              ["library_version", "judge_model", "backend"], multiprocess_mode="liveall")
ROUTE_OUTCOMES = Counter("scribe_route_outcomes_total", "Routed texts by domain ('other': not a library domain) "
                         "and outcome: confident, low_margin (best card within gap_margin of the runner-up), "
                         "fallback.", ["domain", "outcome"])
LIBRARY_VERSIONS_KEPT = Gauge("scribe_library_versions_kept", "Library versions this replica serves: the current "
                              "one and those kept for pinned requests.", multiprocess_mode="livemax")
LIBRARY_RELOADS = Counter("scribe_library_reloads_total", "Library reloads by outcome: changed, unchanged, "
                          "invalid (the old library kept serving).", ["outcome"])
