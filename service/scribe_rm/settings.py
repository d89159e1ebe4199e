"""The one settings object, at the edge: every knob is an environment variable `SCRIBE_<FIELD>`, and this is the
one place where each component's config is built from them (`pipeline_config` and the methods it calls). Only
the API and the CLI read settings; components below take their own small config.

Defaults suit the embedded CPU set-up (all-mpnet-base-v2 embedder and SmolLM2-135M judge in-process, both
from PyPI packages); a production deployment points the same fields at a vLLM server and a bigger judge.
"""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from typing_extensions import Annotated

from .blocks.resources import examples_dir, shipped_cards_dir
from .blocks.weights import CACHE_ROOT, MPNET_DIR, minilm_dir, static_dir_for
from .library import LibrarySource
from .pipeline.embedder import EmbedderConfig, Precision
from .pipeline.engine import GapConfig, PipelineConfig
from .pipeline.judges import JudgeConfig, LocalJudgeConfig, OpenAIJudgeConfig
from .pipeline.judges.replicas import PoolConfig
from .pipeline.limits import RequestLimits
from .pipeline.prompt import PromptLimits
from .pipeline.router import RouterConfig, Tiers
from .pipeline.schemas import Aggregation
from .pipeline.scorer import ScorerConfig

# Bundled embedders. mpnet routes better (issue 2: top-1 0.868 against 0.826 on the held-out set, and
# 0.795 against 0.761 in cross-validation on the cards' examples); MiniLM embeds ~6x faster on a CPU.
EmbedderName = Literal["all-mpnet-base-v2", "all-MiniLM-L6-v2"]
# the transformer layers a bundled embedder runs (its first ones; 0: all), chosen by bench/routing_cv.py
BUNDLED_EMBEDDER_LAYERS: dict[str, int] = {"all-mpnet-base-v2": 6, "all-MiniLM-L6-v2": 0}


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def _empty_is_none(value: object) -> object:
    return None if isinstance(value, str) and not value.strip() else value  # not Path("") == the working dir


def _renamed(name: str, old: str) -> AliasChoices:
    """A field whose environment variable was renamed: the new name, or the old one still."""
    return AliasChoices(name, f"SCRIBE_{name.upper()}", old, f"SCRIBE_{old.upper()}")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SCRIBE_", env_file=".env", extra="ignore", populate_by_name=True)

    # --- skill library (the cards; SCRIBE_PROTOTYPES_DIR and SCRIBE_FALLBACK_PROTOTYPE_ID are the old names) ---
    library_dir: Path = Field(default_factory=shipped_cards_dir, validation_alias=_renamed("library_dir", "prototypes_dir"))
    fallback_card_id: str = Field("general.step_validity",
                                  validation_alias=_renamed("fallback_card_id", "fallback_prototype_id"))
    on_invalid_card: Literal["fail", "skip"] = "fail"
    load_draft_cards: bool = False  # also serve cards with status "draft" (induced, not yet accepted)
    library_watch_s: float = Field(0.0, ge=0)  # poll the library directory and reload on change; 0: off
    # versions served to requests that pin one (library_version): the current and the last replaced, each
    # for a grace time after it was replaced, so replicas reloading at different moments answer a pinned step
    library_keep_versions: int = Field(2, ge=1)
    library_keep_grace_s: float = Field(600.0, ge=0)

    # --- coverage gaps (texts no card fits well, sampled from live traffic) ---
    gap_sample_size: int = Field(1000, ge=0)  # texts kept per domain (reservoir); 0: keep nothing
    gap_margin: float = Field(0.02, ge=0)  # best card within this similarity of the runner-up: a gap
    gap_seed: int = 0

    # --- embedder + router ---
    embedder_model: EmbedderName = "all-mpnet-base-v2"  # a bundled embedder ...
    embedder_model_dir: Path | None = None  # ... or any sentence-transformers directory instead
    anchor_cache_dir: Path | None = CACHE_ROOT / "anchor-embeddings"  # reused across restarts; empty: off
    embedder_device: str = "cpu"
    embedder_threads: int = Field(0, ge=0)  # CPU threads; 0: the CPUs the process may use (affinity, cgroup limit)
    # the transformer's matmuls; auto: bfloat16 where the device computes it natively (CPUs with AVX512-BF16 or
    # AMX, CUDA 8+: x2.1 texts/s on this 2-core box, cosine to float32 >= 0.9999), float32 elsewhere
    embedder_precision: Precision = "auto"
    # CPU: free memory the process keeps for the embedder's next batch instead of returning it to the OS and
    # faulting it in again (glibc, blocks/allocator.py); 0: allocator untouched
    embedder_keep_freed_mb: int = Field(256, ge=0)
    # run only the embedder's first N transformer layers and pool their output (0: all of them); unset: the
    # cross-validated choice for embedder_model (also when embedder_model_dir holds a copy of it, as in the
    # Docker image; another model there needs its own count, and thresholds, from bench/routing_cv.py)
    embedder_layers: int | None = Field(None, ge=0)
    # texts per transformer forward pass: on the 2-core test host (32 MB L3) 64 took 10-20% longer a text
    # than 32 (bench/results/embed_batch_size_avx2.log; 128 longer still); on a GPU raise it
    embed_batch_size: int = Field(32, ge=1)
    embed_window_ms: float = Field(5.0, ge=0)  # micro-batch collection window across requests
    # static+mpnet: a static model distilled from the embedder routes every text; the embedder joins where
    # that is unclear. mpnet: the embedder alone. static: the static model alone (fastest, routes worse).
    routing_tiers: Tiers = "static+mpnet"
    static_model_dir: Path | None = None  # default: distilled from the embedder by `scribe-rm models prepare`
    route_threshold: float = Field(0.107, ge=-1, le=1)  # joint similarity to the card vector (see router.py)
    # for texts of domain "agent" and of a library's own domains (induced cards); it leaves the same share
    # (1.4%) of the agent cards' examples below it in CV as route_threshold does in the default scope
    # (bench/routing_cv.py prints both, and calibrates the static and combined spaces' thresholds alike)
    route_agent_threshold: float = Field(0.088, ge=-1, le=1)
    route_static_threshold: float = Field(0.098, ge=-1, le=1)
    route_static_agent_threshold: float = Field(0.088, ge=-1, le=1)
    route_combined_threshold: float = Field(0.107, ge=-1, le=1)
    route_combined_agent_threshold: float = Field(0.088, ge=-1, le=1)
    # below this lead of the best card, the second tier decides (default scope; agent and own-domain scopes;
    # every card, where items without a domain are routed first): each the smallest bound with which the
    # cascade keeps the transformer's CV accuracy on each domain's cards in that scope (bench/routing_cv.py);
    # over every card instead the smallest with which each domain's one-step examples sent without a domain
    # route within 0.01 of their routing with it (bench/scope_vote_cv.py --all-bounds)
    route_static_margin: float = Field(0.02, ge=0)
    route_static_agent_margin: float = Field(0.065, ge=0)
    route_static_all_margin: float = Field(0.03, ge=0)
    route_static_floor: float = Field(0.128, ge=-1, le=1)  # ... and below this static similarity (default scope)
    route_static_agent_floor: float = Field(0.116, ge=-1, le=1)  # ... (agent and own-domain scopes)
    route_static_weight: float = Field(0.25, ge=0)  # weight of the static similarities in the second tier
    # the static tier fits, per scope, corrections to the vectors of the tokens the cards' anchors use
    # (pipeline/token_tuning.py; chosen by cross-validation, bench/routing_cv.py); 0 steps: the distilled vectors
    route_static_tuning_steps: int = Field(200, ge=0, le=5000)
    route_static_tuning_l2: float = Field(1e-4, ge=0)
    # an item without a domain: the share of its steps' votes a scope needs to be chosen (else every card)
    route_scope_min_share: float = Field(0.67, gt=0.5, le=1)
    # a chat turn of text alone is scored as two steps where its sentences split into two clearly different
    # subgoals (a result, then a goodbye): each part must lead its runner-up card by this much (first tier)
    route_turn_split: bool = True
    route_turn_split_margin: float = Field(0.0, ge=0)
    route_turn_split_max_sentences: int = Field(6, ge=2, le=20)
    route_top_k: int = Field(3, ge=1, le=20)
    route_text_chars: int = Field(600, ge=32)  # long steps are cut before embedding
    route_train_steps: int = Field(300, ge=0)  # 0: plain anchor centroids
    route_lexical_weight: float = Field(0.8, ge=0)  # weight of the TF-IDF part of the similarity (0: off)
    route_cache_size: int = Field(100_000, ge=0)  # texts whose card similarities are kept (~0.5 KB each; 0: off)

    # --- judge ---
    judge_backend: Literal["local", "openai"] = "local"
    judge_model_dir: Path = CACHE_ROOT / "models" / "smollm2-135m-instruct"  # local backend
    judge_device: str = "cpu"
    judge_model: str = "judge"  # the served model name for the openai backend
    judge_base_urls: Annotated[list[str], NoDecode] = ["http://127.0.0.1:8011"]
    # instead of the list: dns://HOST:PORT, a name whose address records are the judge replicas (a headless
    # Service), resolved again every judge_discovery_interval_s
    judge_discovery: str | None = Field(None, pattern=r"^dns://[^/:]+:\d+$")
    judge_discovery_interval_s: float = Field(10.0, gt=0)
    judge_discovery_nameservers: Annotated[list[str], NoDecode] = []  # 'IP[:PORT]'; empty: the system resolver
    judge_eject_after: int = Field(1, ge=1)  # failed calls in a row (connection, 5xx, timeout) that eject a replica
    judge_eject_base_s: float = Field(2.0, gt=0)  # its first back-off, doubled per ejection; back after a health check
    judge_eject_max_s: float = Field(60.0, gt=0)
    judge_api_key: SecretStr | None = None
    judge_score_mode: Literal["token_ids", "top_logprobs"] = "token_ids"
    judge_score_token_ids: Annotated[list[int], NoDecode] = []  # empty: ask the server's /tokenize
    judge_constrained: bool = False  # add structured_outputs choice 0-3 (grammar; slower on CPU)
    judge_max_concurrency: int = Field(16, ge=1)
    judge_timeout_s: float = Field(30.0, gt=0)
    judge_retries: int = Field(3, ge=0)
    judge_seed: int = 0
    split_llm_max_tokens: int = Field(1024, ge=64)  # budget of one split-mode-llm decomposition
    # for the cards the judge model drafts in library induction. SmolLM2-135M loops ("1.1.1...") until
    # max_tokens without it (4 of 6 drafts on examples/induce); a strong judge wants 1.0-1.1. Never used
    # for decompositions: both backends penalize prompt tokens too, and those must be copied verbatim.
    distill_repetition_penalty: float = Field(1.3, ge=1.0, le=2.0)
    judge_max_pending: int = Field(4096, ge=1)  # bound on queued judge calls (backpressure)

    # --- prompt ---
    prompt_question_chars: int = Field(2000, ge=100)
    prompt_step_chars: int = Field(2000, ge=100)
    prompt_context_steps: int = Field(3, ge=0)
    prompt_context_step_chars: int = Field(400, ge=50)
    prompt_policy_chars: int = Field(1500, ge=0)  # the agent's policy (system prompt) excerpt; 0: not shown
    prompt_tool_chars: int = Field(1500, ge=0)  # schemas of the tools a step calls; 0: not shown

    # --- reward ---
    aggregation: Aggregation = "mean"
    weight_outcome: float = Field(0.7, ge=0)
    weight_process: float = Field(0.3, ge=0)
    compat_failure_reward: float = 0.0  # reward for a failed item on trainer routes that cannot take None
    first_error_threshold: float = Field(0.5, ge=0, le=1)  # normalized step score below this is an error

    # --- cache ---
    cache_size: int = Field(100_000, ge=0)

    # --- request limits ---
    default_deadline_s: float = Field(120.0, gt=0)
    max_deadline_s: float = Field(900.0, gt=0)
    max_items: int = Field(512, ge=1)
    max_steps_per_item: int = Field(64, ge=1)
    max_step_chars: int = Field(20_000, ge=1)
    max_route_texts: int = Field(1024, ge=1)
    max_body_bytes: int = Field(8_000_000, ge=1024)

    # --- access ---
    api_keys: Annotated[list[SecretStr], NoDecode] = []  # comma-separated; empty: no auth
    api_keys_file: Path | None = None  # a mounted secret, one key per line
    metrics_public: bool = True  # /metrics without a key (Prometheus scraping)
    admin_api_keys: Annotated[list[SecretStr], NoDecode] = []  # for /admin/*; none set: /admin/* answers 403
    admin_api_keys_file: Path | None = None

    # --- inspector page (/ui) ---
    examples_dir: Path = Field(default_factory=examples_dir)  # the example requests the page offers (missing: none)

    # --- server ---
    host: str = "127.0.0.1"
    port: int = 8000
    log_json: bool = False
    log_level: str = "INFO"

    _split_lists = field_validator("judge_base_urls", "judge_discovery_nameservers", "judge_score_token_ids",
                                   "api_keys", "admin_api_keys", mode="before")(_split_csv)
    _optional_paths = field_validator("embedder_model_dir", "static_model_dir", "anchor_cache_dir", "api_keys_file",
                                      "admin_api_keys_file", mode="before")(_empty_is_none)

    @field_validator("judge_base_urls")
    @classmethod
    def _strip_slash(cls, urls: list[str]) -> list[str]:
        return [u.rstrip("/") for u in urls]

    def resolved_embedder_dir(self) -> Path:
        if self.embedder_model_dir is not None:
            return self.embedder_model_dir
        return minilm_dir() if self.embedder_model == "all-MiniLM-L6-v2" else MPNET_DIR

    def resolved_static_dir(self) -> Path:
        return self.static_model_dir or static_dir_for(self.resolved_embedder_dir())

    # ---------- each component's config, built here and nowhere else ----------

    def library_source(self, include_drafts: bool | None = None) -> LibrarySource:
        drafts = self.load_draft_cards if include_drafts is None else include_drafts
        return LibrarySource(self.library_dir, self.fallback_card_id, self.on_invalid_card, drafts)

    def embedder_config(self) -> EmbedderConfig:
        return EmbedderConfig(self.resolved_embedder_dir(), self.embedder_device, self.embed_batch_size,
                              self.embedder_threads, precision=self.embedder_precision,
                              keep_freed_mb=self.embedder_keep_freed_mb, layers=self.resolved_embedder_layers())

    def clustering_embedder_config(self) -> EmbedderConfig:
        """Induction and the coverage gaps cluster in the whole model's space (the router may run fewer layers:
        theirs route better, but the whole model's cosines separate skills better unsupervised)."""
        return replace(self.embedder_config(), layers=0)

    def resolved_embedder_layers(self) -> int:
        if self.embedder_layers is not None:
            return self.embedder_layers
        return BUNDLED_EMBEDDER_LAYERS[self.embedder_model]

    def static_embedder_config(self) -> EmbedderConfig | None:
        if self.routing_tiers == "mpnet":
            return None
        return EmbedderConfig(self.resolved_static_dir(), batch_size=self.embed_batch_size, kind="static")

    def router_config(self) -> RouterConfig:
        return RouterConfig(
            tiers=self.routing_tiers, threshold=self.route_threshold, agent_threshold=self.route_agent_threshold,
            static_threshold=self.route_static_threshold, static_agent_threshold=self.route_static_agent_threshold,
            combined_threshold=self.route_combined_threshold,
            combined_agent_threshold=self.route_combined_agent_threshold, static_margin=self.route_static_margin,
            static_agent_margin=self.route_static_agent_margin,
            static_all_margin=self.route_static_all_margin, static_floor=self.route_static_floor,
            static_agent_floor=self.route_static_agent_floor,
            static_weight=self.route_static_weight, static_tuning_steps=self.route_static_tuning_steps,
            static_tuning_l2=self.route_static_tuning_l2, scope_min_share=self.route_scope_min_share,
            turn_split=self.route_turn_split, turn_split_margin=self.route_turn_split_margin,
            turn_split_max_sentences=self.route_turn_split_max_sentences, top_k=self.route_top_k,
            fallback_id=self.fallback_card_id, train_steps=self.route_train_steps,
            lexical_weight=self.route_lexical_weight, text_chars=self.route_text_chars,
            batch_size=self.embed_batch_size, window_ms=self.embed_window_ms, anchor_cache_dir=self.anchor_cache_dir,
            cache_size=self.route_cache_size)

    def judge_config(self) -> JudgeConfig:
        if self.judge_backend == "local":
            return LocalJudgeConfig(self.judge_model_dir, self.judge_device)
        return self.openai_judge_config()

    def openai_judge_config(self) -> OpenAIJudgeConfig:
        return OpenAIJudgeConfig(
            model=self.judge_model,
            base_urls=(self.judge_discovery,) if self.judge_discovery else tuple(self.judge_base_urls),
            api_key=self.judge_api_key.get_secret_value() if self.judge_api_key else None,
            score_mode=self.judge_score_mode, score_token_ids=tuple(self.judge_score_token_ids),
            constrained=self.judge_constrained, max_concurrency=self.judge_max_concurrency,
            timeout_s=self.judge_timeout_s, retries=self.judge_retries, seed=self.judge_seed,
            replicas=PoolConfig(self.judge_eject_after, self.judge_eject_base_s, self.judge_eject_max_s,
                                self.judge_discovery_interval_s, tuple(self.judge_discovery_nameservers)))

    def scorer_config(self) -> ScorerConfig:
        return ScorerConfig(
            limits=RequestLimits(self.max_items, self.max_steps_per_item, self.max_step_chars, self.max_route_texts),
            prompt=PromptLimits(self.prompt_question_chars, self.prompt_step_chars, self.prompt_context_steps,
                                self.prompt_context_step_chars, self.prompt_policy_chars, self.prompt_tool_chars),
            aggregation=self.aggregation, weight_outcome=self.weight_outcome, weight_process=self.weight_process,
            first_error_threshold=self.first_error_threshold, default_deadline_s=self.default_deadline_s,
            max_deadline_s=self.max_deadline_s, cache_size=self.cache_size, judge_max_pending=self.judge_max_pending,
            split_llm_max_tokens=self.split_llm_max_tokens)

    def pipeline_config(self) -> PipelineConfig:
        routing, clustering = self.embedder_config(), self.clustering_embedder_config()
        return PipelineConfig(library=self.library_source(), embedder=routing,
                              cluster_embedder=None if clustering == routing else clustering,
                              static_embedder=self.static_embedder_config(), router=self.router_config(),
                              keep_versions=self.library_keep_versions, keep_grace_s=self.library_keep_grace_s, judge=self.judge_config(), scorer=self.scorer_config(),
                              gaps=GapConfig(self.gap_sample_size, self.gap_margin, self.gap_seed))


@lru_cache
def get_settings() -> Settings:
    return Settings()
