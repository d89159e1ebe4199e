"""Library induction end to end on the shipped example set (examples/induce/): data-analysis notebooks, a
domain the library lacks, each step labelled with the skill it was written to exercise.

1. `induce` the trajectories (rule decomposition, silhouette k, merge threshold, the configured judge drafts);
   print purity and adjusted Rand index of the clusters against the labels.
2. Route the held-out phrasings (examples/induce/heldout.jsonl, never used for induction) with the library
   as it is: "before".
3. Accept every draft and patch into a copy of the library, route again: "after". A routed card counts as
   correct when it is the card proposed for the cluster whose majority label is the expected skill.

Run: .venv/bin/python bench/induction.py [--out runs/induce] [--json-out FILE]"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "service"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from scribe_rm.cli import _read_items  # noqa: E402
from scribe_rm.evaluation.routing import load_labelled  # noqa: E402
from scribe_rm.induction.induce import InduceOptions, induce  # noqa: E402
from scribe_rm.induction.report import summary, write_induction  # noqa: E402
from scribe_rm.induction.merge import read_patches  # noqa: E402
from scribe_rm.induction.review import accept  # noqa: E402
from scribe_rm.pipeline.router import Router  # noqa: E402
from scribe_rm.pipeline.engine import Engine  # noqa: E402
from scribe_rm.settings import Settings  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "induce"
RESULTS = Path(__file__).with_name("results") / "induction.json"


async def routing_accuracy(router: Router, rows: list[dict], label_of: dict[str, str]) -> dict:
    routes = await router.route([row["text"] for row in rows], [row.get("domain") for row in rows])
    correct = sum(label_of.get(route.card.id) == row["expected"] for route, row in zip(routes, rows))
    return {"n": len(rows), "accuracy": round(correct / len(rows), 4),
            "fallback_rate": round(sum(route.fallback for route in routes) / len(rows), 4)}


async def run(out: Path, library_dir: Path) -> dict:
    settings = Settings(library_dir=library_dir)
    engine = Engine.build(settings.pipeline_config())
    await engine.load(with_judge=True)
    if engine.load_error:
        raise SystemExit(engine.load_error)
    items = _read_items(EXAMPLES / "trajectories.jsonl")
    rows = load_labelled(EXAMPLES / "heldout.jsonl")
    started = time.monotonic()
    induction = await induce(engine, items, InduceOptions(source=str(EXAMPLES / "trajectories.jsonl"),
                                                          repetition_penalty=settings.distill_repetition_penalty))
    induce_s = time.monotonic() - started
    write_induction(induction, out)
    report = summary(induction)
    label_of = {p["card_id"]: p["majority_label"] for p in report["proposals"] if p["card_id"] and p["majority_label"]}
    before = await routing_accuracy(engine.router, rows, label_of)
    accepted = [p["card_id"] for p in report["proposals"] if p["action"] in ("card", "patch")]
    if accepted:
        accept(library_dir, accepted, out, read_patches(out / "patches.json"))
    new_settings = Settings(library_dir=library_dir)
    after_router = Router(new_settings.library_source().load(), engine.embedder, new_settings.router_config(),
                          static_embedder=engine.static_embedder)
    await asyncio.get_running_loop().run_in_executor(None, after_router.build_sync)
    after = await routing_accuracy(after_router, rows, label_of)
    await engine.aclose()
    return {"judge_model": engine.judge.model_name, "induce_s": round(induce_s, 1), "quality": report["quality"],
            "k": report["k"], "proposals": [{k: p[k] for k in ("action", "card_id", "size", "majority_label", "error")}
                                            for p in report["proposals"]],
            "heldout_before": before, "heldout_after": after}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/induce"))
    parser.add_argument("--json-out", type=Path, default=RESULTS)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        library_dir = Path(tmp) / "prototypes"
        shutil.copytree(Settings().library_dir, library_dir)
        result = asyncio.run(run(args.out, library_dir))
    q = result["quality"]
    print(f"clusters k={result['k']} against the skill labels: purity {q['purity']}, ARI {q['ari']}, "
          f"clustered {q['clustered_share']} ({result['induce_s']} s with {result['judge_model']})")
    for p in result["proposals"]:
        print(f"  {p['action']:8} {p['card_id'] or '-':50} size {p['size']:3}  label {p['majority_label']}"
              + (f"  ({p['error'][:80]})" if p["error"] else ""))
    b, a = result["heldout_before"], result["heldout_after"]
    print(f"held-out phrasings ({b['n']}): accuracy {b['accuracy']} -> {a['accuracy']}, "
          f"fallback {b['fallback_rate']} -> {a['fallback_rate']}")
    result["table"] = [{"measure": "cluster purity", "value": q["purity"]}, {"measure": "cluster ARI", "value": q["ari"]},
                       {"measure": "held-out accuracy before", "value": b["accuracy"]},
                       {"measure": "held-out accuracy after", "value": a["accuracy"]}]
    for row in result["table"]:
        print(f"{row['measure']}: {row['value']}")
    args.json_out.parent.mkdir(parents=True, exist_ok=True)
    args.json_out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
