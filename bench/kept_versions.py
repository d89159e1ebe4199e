"""Issue 26: what keeping a replaced library version costs. A service (instant fake judge) scores N distinct
steps, so the version's routing and judgement caches fill; the library changes and is reloaded; the same
traffic runs on the new version. Resident memory (RSS) is read then, once with SCRIBE_LIBRARY_KEEP_VERSIONS=1
(the old version is dropped) and once with 2 (it is kept for pinned requests).
    python bench/kept_versions.py --steps 2000 --json-out bench/results/kept_versions.json"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import uuid
from pathlib import Path

import httpx
import psutil
import yaml

from common import fake_judge, report, service


def traffic(url: str, steps: int, tag: str) -> None:
    for start in range(0, steps, 200):
        items = [{"id": str(i), "question": "Q", "steps": [{"text": f"Divide both sides by {i} ({tag})."}]}
                 for i in range(start, min(steps, start + 200))]
        response = httpx.post(f"{url}/score", json={"items": items}, timeout=300)
        response.raise_for_status()


def rss_mb(process) -> float:
    return psutil.Process(process.pid).memory_info().rss / 2**20


def measure(keep: int, steps: int, judge_url: str, library: Path) -> dict:
    with service(SCRIBE_LIBRARY_DIR=str(library), SCRIBE_ADMIN_API_KEYS="adm", SCRIBE_JUDGE_BACKEND="openai",
                 SCRIBE_JUDGE_BASE_URLS=judge_url, SCRIBE_JUDGE_SCORE_TOKEN_IDS="32,33,34,35",
                 SCRIBE_LIBRARY_KEEP_VERSIONS=str(keep)) as (url, process):
        loaded = rss_mb(process)
        traffic(url, steps, "first version")
        before_reload = rss_mb(process)
        card = yaml.safe_load((library / "math" / "counting.yaml").read_text())
        card.update(id=f"math.bench_{uuid.uuid4().hex[:8]}", examples=[f"Count the {n} cases." for n in range(4)])
        (library / "math" / f"{card['id'].split('.')[1]}.yaml").write_text(yaml.safe_dump(card))
        httpx.post(f"{url}/admin/library/reload", headers={"Authorization": "Bearer adm"}, timeout=300).raise_for_status()
        traffic(url, steps, "second version")
        kept = len(httpx.get(f"{url}/library/versions", timeout=10).json()["kept"])
        return {"keep_versions": keep, "kept": kept, "rss_loaded_mb": round(loaded, 1),
                "rss_before_reload_mb": round(before_reload, 1), "rss_after_mb": round(rss_mb(process), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=2000, help="distinct steps scored per version")
    parser.add_argument("--json-out")
    args = parser.parse_args()
    from scribe_rm.settings import Settings

    runs = []
    with fake_judge() as judge_url, tempfile.TemporaryDirectory() as tmp:
        for keep in (1, 2):
            library = Path(tmp) / f"library-{keep}"
            shutil.copytree(Settings().library_dir, library)
            runs.append(measure(keep, args.steps, judge_url, library))
    one, two = runs
    rows = [(f"keep {r['keep_versions']}: RSS loaded / {args.steps} steps / after reload + {args.steps} more, MB",
             f"{r['rss_loaded_mb']} / {r['rss_before_reload_mb']} / {r['rss_after_mb']}", None) for r in runs]
    rows.append(("a kept version with its caches, MB", round(two["rss_after_mb"] - one["rss_after_mb"], 1), None))
    report(f"Memory of a kept library version ({args.steps} distinct steps scored per version)", rows,
           {"args": vars(args), "runs": runs}, args.json_out)


if __name__ == "__main__":
    main()
