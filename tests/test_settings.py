"""Settings: the renamed environment variables still work, and each component's config carries its settings."""

from pathlib import Path

import pytest

from scribe_rm.blocks.resources import shipped_cards_dir
from scribe_rm.pipeline.judges import LocalJudgeConfig, OpenAIJudgeConfig
from scribe_rm.settings import Settings


def test_the_old_library_variable_names_still_work(monkeypatch, tmp_path):
    monkeypatch.setenv("SCRIBE_PROTOTYPES_DIR", str(tmp_path))
    monkeypatch.setenv("SCRIBE_FALLBACK_PROTOTYPE_ID", "general.other")
    settings = Settings()
    assert settings.library_dir == tmp_path and settings.fallback_card_id == "general.other"
    monkeypatch.setenv("SCRIBE_LIBRARY_DIR", str(tmp_path / "new"))
    assert Settings().library_dir in (tmp_path, tmp_path / "new")  # both set: one of them, never the default
    monkeypatch.delenv("SCRIBE_PROTOTYPES_DIR")
    assert Settings().library_dir == tmp_path / "new"


def test_the_default_library_is_the_shipped_one(monkeypatch):
    for name in ("SCRIBE_PROTOTYPES_DIR", "SCRIBE_LIBRARY_DIR"):
        monkeypatch.delenv(name, raising=False)
    assert Settings().library_dir == shipped_cards_dir() and (shipped_cards_dir() / "general").is_dir()


@pytest.mark.parametrize(("overrides", "routing_layers", "clusters_apart"), [
    ({}, 6, True),  # the bundled mpnet: routing runs its first 6 layers, induction clusters with all of them
    ({"embedder_layers": 0}, 0, False),  # one model serves both
    ({"embedder_layers": 9}, 9, True),
    ({"embedder_model_dir": Path("/opt/models/mpnet")}, 6, True),  # a copy of it (the Docker image's)
    ({"embedder_model": "all-MiniLM-L6-v2"}, 0, False),
])
def test_the_router_runs_its_layers_and_clustering_the_whole_model(overrides, routing_layers, clusters_apart):
    config = Settings(**overrides).pipeline_config()
    assert config.embedder.layers == routing_layers
    if clusters_apart:
        assert config.cluster_embedder.layers == 0 and config.cluster_embedder.model_dir == config.embedder.model_dir
    else:
        assert config.cluster_embedder is None


def test_component_configs_carry_their_settings():
    s = Settings(route_threshold=0.2, route_top_k=5, max_items=7, weight_outcome=0.5, judge_backend="openai",
                 judge_base_urls="http://a:1/,http://b:2", judge_retries=9, embed_batch_size=8, gap_sample_size=3,
                 library_dir=Path("/cards"), fallback_card_id="general.x")
    config = s.pipeline_config()
    assert (config.router.threshold, config.router.top_k, config.router.fallback_id) == (0.2, 5, "general.x")
    assert config.router.batch_size == 8 and config.embedder.batch_size == 8
    assert config.scorer.limits.max_items == 7 and config.scorer.weight_outcome == 0.5
    assert isinstance(config.judge, OpenAIJudgeConfig) and config.judge.base_urls == ("http://a:1", "http://b:2")
    assert config.judge.retries == 9 and config.gaps.size == 3
    assert config.library.directory == Path("/cards") and config.library.fallback_id == "general.x"
    assert isinstance(Settings(judge_backend="local").judge_config(), LocalJudgeConfig)
