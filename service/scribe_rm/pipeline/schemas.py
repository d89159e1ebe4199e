"""Every request and response body of the HTTP API, in one place: the pipeline's entry points take and return
these, so the API layer passes them through. (A card is a "prototype" in the API's field names and routes,
kept for compatibility.)"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..blocks.text_policy import clean_tree
from ..library import Card, Domain

Aggregation = Literal["mean", "min", "last", "first_error", "product"]
ItemStatus = Literal["ok", "judge_error", "timeout", "invalid"]
ScopeSource = Literal["given", "auto"]
SCOPE_DESCRIPTION = ("The routing scope: the item's domain when given, else the one chosen from its steps (auto): "
                     "'default' (math and tool-use cards), 'agent' (agent and tool-use cards), a library's own "
                     "domain, or 'all' (every card, when the steps point nowhere clearly).")
# "llm": the judge model cuts the response into verbatim spans with subgoals (JSON under a schema); a reply
# that is not verbatim, in order and complete falls back to "auto", and the item's split_note says why
SplitMode = Literal["auto", "blank_lines", "lines", "regex", "step_markers", "subgoal_tags", "llm"]


MAX_ABS_OUTCOME = 1e6  # with MAX_WEIGHT, a reward stays a finite float that JSON can carry
MAX_WEIGHT = 1e3


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class CleanInput(BaseModel):
    """A whole body a client sends (nested models are cleaned with it, once): its strings follow the text
    policy (blocks/text_policy.py) before validation."""

    @model_validator(mode="before")
    @classmethod
    def _clean_strings(cls, data: Any) -> Any:
        return clean_tree(data)


# ---------- prototypes and routing ----------

class PrototypeSummary(BaseModel):
    id: str
    name: str
    domain: Domain
    when_to_use: str


class PrototypeList(BaseModel):
    library_version: str
    prototypes: list[PrototypeSummary]


class PrototypeDetail(BaseModel):
    library_version: str
    prototype: Card


class RouteQuery(Strict):
    text: str = Field(min_length=1, description="A subgoal or step text.")
    domain: Domain | None = Field(None, description="Only consider cards of this domain (general always allowed; "
                                  "'agent' also allows tool_use). Default: chosen from the text (auto).")
    prototype_id: str | None = Field(None, description="Bypass routing and use this card.")


LIBRARY_VERSION_DESCRIPTION = (
    "Pin the library version (as in a response's library_version): the request is answered with that version or "
    "with 409 naming the versions this replica serves. Training clients pin one version per step, so a step "
    "never mixes versions while the fleet reloads. Default: the current version.")


class RouteRequest(Strict, CleanInput):
    items: list[RouteQuery] = Field(min_length=1)
    library_version: str | None = Field(None, max_length=64, description=LIBRARY_VERSION_DESCRIPTION)


class Alternative(BaseModel):
    prototype_id: str
    similarity: float


class RouteResult(BaseModel):
    prototype_id: str
    prototype_name: str
    domain: Domain
    similarity: float | None
    fallback: bool
    alternatives: list[Alternative]
    scope: str | None = Field(None, description=SCOPE_DESCRIPTION + " None when prototype_id was given.")
    scope_source: ScopeSource | None = None


class RouteResponse(BaseModel):
    library_version: str
    results: list[RouteResult]


# ---------- scoring ----------

class StepIn(Strict):
    text: str = Field(min_length=1)
    subgoal: str | None = Field(None, description="What the step is meant to achieve; routed on when given.")
    prototype_id: str | None = Field(None, description="Judge against this card instead of routing.")


class FunctionCall(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str
    arguments: str | dict[str, Any] | None = None


class ToolCall(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str | None = None
    type: str | None = "function"
    function: FunctionCall


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")  # OpenAI messages carry many optional fields
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    name: str | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part.get("text", "") for part in self.content if isinstance(part, dict))
        return self.content or ""


class FunctionSpec(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str = Field(min_length=1, max_length=256)
    description: str | None = None
    parameters: dict[str, Any] | None = None


class ToolSpec(BaseModel):
    """An OpenAI function tool, as in a chat completion request's `tools`."""
    model_config = ConfigDict(extra="allow")
    type: Literal["function"] = "function"
    function: FunctionSpec


class ScoreItem(Strict):
    id: str = Field(min_length=1, max_length=256)
    question: str = Field("", description="The task; taken from the first user message when messages are given.")
    steps: list[StepIn] | None = None
    response: str | None = None
    messages: list[Message] | None = None
    tools: list[ToolSpec] | None = Field(None, description="The agent's tools (OpenAI function-tool schemas); "
                                          "the judge sees the schema of each tool a step calls.")
    policy: str | None = Field(None, description="Rules the agent must follow (its system prompt); the judge sees an "
                               "excerpt. Default: the system and developer messages of `messages`.")
    domain: Domain | None = Field(None, description="Route among this domain's cards (and the general ones); "
                                  "'agent' (policy-bound dialogues) adds the agent cards to the tool-use ones. "
                                  "Default (auto): the scope is chosen from the item's steps (see scope).")
    outcome: float | None = Field(None, ge=-MAX_ABS_OUTCOME, le=MAX_ABS_OUTCOME,
                                  description="Outcome reward, e.g. 1.0 correct and 0.0 wrong.")
    reference: str | None = Field(None, description="Kept for the caller; the judge never sees it.")
    metadata: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _exactly_one_trajectory(self) -> "ScoreItem":
        given = [name for name in ("steps", "response", "messages") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of steps, response or messages (got {given or 'none'})")
        return self


class SplitOptions(Strict):
    mode: SplitMode = "auto"
    pattern: str | None = Field(None, description="Separator regex for mode=regex.")

    @model_validator(mode="after")
    def _pattern_for_regex(self) -> "SplitOptions":
        if (self.mode == "regex") != (self.pattern is not None):
            raise ValueError("pattern is required with mode=regex and only allowed with it")
        return self


class Weights(Strict):
    outcome: float = Field(ge=0, le=MAX_WEIGHT)
    process: float = Field(ge=0, le=MAX_WEIGHT)


class ScoreRequest(Strict, CleanInput):
    items: list[ScoreItem] = Field(min_length=1)
    split: SplitOptions = Field(default_factory=SplitOptions)
    aggregation: Aggregation | None = None
    weights: Weights | None = None
    deadline_s: float | None = Field(None, gt=0, description="Answer within this many seconds.")
    request_id: str | None = Field(None, max_length=128)
    explain: bool = Field(False, description="Return each step's judge prompt (judge_messages): the exact messages "
                          "the judge saw. Off by default: the prompts repeat the card and context per step.")
    library_version: str | None = Field(None, max_length=64, description=LIBRARY_VERSION_DESCRIPTION)


class StepScore(BaseModel):
    index: int
    start: int | None = Field(description="Character span in the response; for a chat turn scored as two steps "
                              "(a result, then a goodbye), in the text of its one message (message_indices); None "
                              "for given steps and whole messages.")
    end: int | None
    message_indices: list[int] | None = Field(None, description="The chat messages this step is made of.")
    subgoal: str | None = Field(None, description="The step's subgoal (given, from subgoal tags, or by split mode llm).")
    prototype_id: str
    prototype_name: str
    similarity: float | None
    fallback: bool
    alternatives: list[Alternative] = Field(default_factory=list, description="Top cards by similarity, best first.")
    score: float | None = Field(description="Expected score on 0-3 from the label probabilities.")
    score_normalized: float | None = Field(description="score / 3.")
    label: int | None = Field(description="Most probable label 0-3.")
    probabilities: list[float] | None = Field(description="P(0), P(1), P(2), P(3); they sum to 1.")
    confidence: float | None = Field(description="Probability of the most probable label.")
    label_mass: float | None = Field(description="Probability mass the judge put on 0-3 before renormalizing.")
    cache_hit: bool = False
    error: str | None = None
    judge_messages: list[dict[str, str]] | None = Field(None, description="With explain=true: the judge prompt.")


class ItemResult(BaseModel):
    id: str
    status: ItemStatus
    error: str | None = None
    split_note: str | None = Field(None, description="Why split mode llm fell back to the rule-based split.")
    reward: float | None = None
    process_reward: float | None = None
    outcome: float | None = None
    n_steps: int = 0
    scope: str | None = Field(None, description=SCOPE_DESCRIPTION + " None when no step was routed.")
    scope_source: ScopeSource | None = None
    steps: list[StepScore] = Field(default_factory=list)


class CacheStats(BaseModel):
    hits: int = Field(description="Judgements served from the result cache.")
    misses: int = Field(description="Distinct judgements sent to the judge.")
    deduplicated: int = Field(description="Steps sharing another step's judgement in this request.")
    route_hits: int = Field(0, description="Distinct routing texts served from the routing cache.")
    route_misses: int = Field(0, description="Distinct routing texts embedded.")
    route_deduplicated: int = Field(0, description="Routing texts repeating another one of this request.")
    route_second_tier: int = Field(0, description="Routed texts the second routing tier decided (static+mpnet: "
                                   "the static tier was unclear): steps, and the parts of a chat turn tried as two "
                                   "steps; the rest the first tier decided alone.")


class ScoreResponse(BaseModel):
    request_id: str
    library_version: str
    judge_model: str
    aggregation: Aggregation
    weights: Weights
    results: list[ItemResult]
    cache: CacheStats
    latency_ms: float


class ErrorBody(BaseModel):
    detail: Any


class VersionConflict(BaseModel):
    """409: the pinned library version is not served by this replica."""
    detail: str
    library_version: str = Field(description="The version the request pinned.")
    available: list[str] = Field(description="The versions this replica serves, the current one first.")


# ---------- library life cycle ----------

class ReloadResponse(BaseModel):
    previous_version: str
    library_version: str
    cards: int
    changed: bool = Field(description="False when the directory's cards are the ones already serving.")


class KeptVersion(BaseModel):
    version: str
    replaced_s_ago: float
    expires_in_s: float


class LibraryVersions(BaseModel):
    current: str
    kept: list[KeptVersion] = Field(description="Replaced versions still served to pinned requests, newest first.")
    keep_versions: int
    grace_s: float


class NearestCount(BaseModel):
    card_id: str | None
    count: int


class GapCluster(BaseModel):
    size: int
    domains: dict[str, int]
    reasons: dict[str, int] = Field(description="fallback / low_margin counts.")
    nearest_cards: list[NearestCount] = Field(description="The best-ranked cards of its texts, most common first.")
    examples: list[str] = Field(description="The most central texts.")
    texts: list[str]


class GapSampleStep(BaseModel):
    text: str
    domain: str | None
    reason: Literal["low_margin", "fallback"]
    nearest: str | None
    similarity: float | None
    margin: float | None


class GapSampleResponse(BaseModel):
    library_version: str
    seen: dict[str, int] = Field(description="Gap texts seen per domain since start-up (each domain's reservoir "
                                 "is a uniform sample of them).")
    steps: list[GapSampleStep]


class GapsResponse(BaseModel):
    library_version: str
    sample_size: int = Field(description="Texts kept per domain (SCRIBE_GAP_SAMPLE_SIZE; 0: sampling off).")
    margin: float
    seen: dict[str, int] = Field(description="Gap texts seen per domain since start-up.")
    sampled: int
    clusters: list[GapCluster]
    unclustered: int


# ---------- trainer compatibility ----------

class OpenRLHFRequest(CleanInput):
    """OpenRLHF's remote reward request: `query` is prompt + response (with special tokens). `prompts` and
    `labels` are empty or as long as `query`; all three empty is the request OpenRLHF sends to every URL but
    the first of a list, answered with empty lists."""
    model_config = ConfigDict(extra="allow")
    query: list[str] = Field(default_factory=list)
    prompts: list[str] = Field(default_factory=list)
    labels: list[Any] = Field(default_factory=list)

    @model_validator(mode="after")
    def _parallel_lists(self) -> "OpenRLHFRequest":
        for name in ("prompts", "labels"):
            given = len(getattr(self, name))
            if given and given != len(self.query):
                raise ValueError(f"{name} has {given} entries but query has {len(self.query)}: "
                                 f"they must be parallel lists (or {name} empty)")
        return self


class OpenRLHFResponse(BaseModel):
    rewards: list[float]
    scores: list[float] = Field(description="The rewards clipped to [0, 1] (OpenRLHF's dynamic filter range).")
    extra_logs: dict[str, list[float]]
