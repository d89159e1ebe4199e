"""The serving pipeline: segment -> embed -> route -> judge -> aggregate, assembled by engine.py.

One module per stage (segment, spans, embedder, router, gap_sample, prompt, judges/, aggregate, scorer), the
API's data model (schemas), request limits and the pipeline's own errors. No HTTP: the API maps errors to
status codes. Each component takes a small config of its own; settings.py builds them from the environment."""
