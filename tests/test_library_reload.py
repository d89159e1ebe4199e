"""A living library: hot reload under load, refusal of a broken library, no cache shared across versions,
directory watching, and coverage gaps sampled from live traffic and clustered. A real service (real
embedder, scripted judge) under a real uvicorn server."""

from __future__ import annotations

import asyncio
import json
import shutil
import uuid

import httpx
import numpy as np
import pytest
import yaml

from conftest import ScriptedJudge, serving_in_thread, wait_for
from scribe_rm.api.app import create_app
from scribe_rm.pipeline.gap_sample import GapSample, GapStep
from scribe_rm.settings import Settings

pytestmark = pytest.mark.model
ADMIN = {"Authorization": "Bearer admin-key"}


def new_card(directory, card_id="math.digit_sums", example="Add the digits of the number and reduce again"):
    source = yaml.safe_load((directory / "math" / "counting.yaml").read_text())
    source.update(id=card_id, name="Digit Sums", examples=[f"{example} ({k})." for k in range(5)])
    (directory / "math" / f"{card_id.split('.')[1]}.yaml").write_text(yaml.safe_dump(source))


@pytest.fixture
def library_dir(tmp_path, settings):
    directory = tmp_path / "prototypes"
    shutil.copytree(settings.library_dir, directory)
    return directory


def service(library_dir, **overrides):
    settings = Settings(library_dir=library_dir, admin_api_keys=["admin-key"], default_deadline_s=30, **overrides)
    return serving_in_thread(create_app(settings, judge=ScriptedJudge()))


def body(n: int) -> dict:
    return {"items": [{"id": f"i{n}", "question": "Count the paths.",
                       "steps": [{"text": f"GOOD step {n}: there are C(6,3) = 20 monotone lattice paths."}]}]}


def version(url: str) -> str:
    return httpx.get(f"{url}/prototypes", timeout=10).json()["library_version"]


def test_reload_under_load_loses_no_request_and_each_response_names_one_version(library_dir):
    from scribe_rm.pipeline import metrics

    # a library version no other service of this test process has published build info for
    new_card(library_dir, "math.own_version", f"Check the case numbered {uuid.uuid4().hex}")
    reloads = metrics.LIBRARY_RELOADS.labels("changed")
    with service(library_dir) as url:
        old, reloads_before = version(url), reloads._value.get()

        async def load_and_reload():
            async with httpx.AsyncClient(base_url=url, timeout=60) as client:
                stop, reloaded = asyncio.Event(), asyncio.Event()
                answers, sent_after_reload = [], []

                async def worker(w: int):
                    n = 0
                    while not stop.is_set():
                        after_reload = reloaded.is_set()
                        answers.append(await client.post("/score", json=body(w * 1000 + n)))
                        sent_after_reload.append(after_reload)
                        n += 1

                async def answered(count: int):  # paced by answers, not by the clock: CI machines vary
                    while len(answers) < count:
                        await asyncio.sleep(0.05)

                workers = [asyncio.create_task(worker(w)) for w in range(6)]
                await asyncio.wait_for(answered(12), 120)
                new_card(library_dir)
                reload = await client.post("/admin/library/reload", headers=ADMIN)
                reloaded.set()
                after = len(answers)
                await asyncio.wait_for(answered(after + 18), 120)
                stop.set()
                await asyncio.gather(*workers)
                return reload, answers, sent_after_reload

        reload, answers, sent_after_reload = asyncio.run(load_and_reload())
        assert reload.status_code == 200, reload.text
        new = reload.json()["library_version"]
        assert reload.json() == {"previous_version": old, "library_version": new, "cards": 42, "changed": True}
        assert all(a.status_code == 200 for a in answers) and len(answers) >= 30
        versions = [a.json()["library_version"] for a in answers]
        assert set(versions) <= {old, new}
        assert all(a.json()["results"][0]["status"] == "ok" for a in answers), [
            a.json()["results"][0] for a in answers if a.json()["results"][0]["status"] != "ok"][:2]
        # once the reload answered, every request sent names the new version (those in flight at the swap may
        # finish later, in any order: an old one waiting for the transformer tier can finish after new ones)
        later = [v for v, sent_after in zip(versions, sent_after_reload) if sent_after]
        assert len(later) >= 12 and set(later) == {new}
        assert version(url) == new
        exposed = httpx.get(f"{url}/metrics").text
        assert f'scribe_build_info{{backend="local",judge_model="scripted-judge",library_version="{new}"}} 1.0' in exposed
        assert f'library_version="{old}"' not in exposed
        assert reloads._value.get() - reloads_before == 1


def test_a_broken_card_is_refused_and_the_old_library_keeps_serving(library_dir):
    from scribe_rm.pipeline import metrics

    refusals = metrics.LIBRARY_RELOADS.labels("invalid")
    with service(library_dir) as url:
        old, refusals_before = version(url), refusals._value.get()
        bad = library_dir / "math" / "zz_broken.yaml"
        source = yaml.safe_load((library_dir / "math" / "counting.yaml").read_text())
        bad.write_text(yaml.safe_dump({**source, "id": "math.zz_broken", "rubric": {0: "a", 1: "b"}}))
        refused = httpx.post(f"{url}/admin/library/reload", headers=ADMIN, timeout=60)
        assert refused.status_code == 422
        assert "zz_broken.yaml" in refused.json()["detail"] and "field 'rubric'" in refused.json()["detail"]
        assert f"{old} keeps serving" in refused.json()["detail"]
        (library_dir / "math" / "zz_dup.yaml").write_text(yaml.safe_dump(source))  # duplicate id, rubric fixed below
        bad.unlink()
        refused = httpx.post(f"{url}/admin/library/reload", headers=ADMIN, timeout=60)
        assert refused.status_code == 422 and "'math.counting' is already defined" in refused.json()["detail"]
        scored = httpx.post(f"{url}/score", json=body(1), timeout=30).json()
        assert scored["library_version"] == old and scored["results"][0]["status"] == "ok"
        assert refusals._value.get() - refusals_before == 2  # counted in-process: earlier tests share the counter
        assert 'scribe_library_reloads_total{outcome="invalid"}' in httpx.get(f"{url}/metrics").text


def test_cached_results_are_not_served_across_versions(library_dir):
    with service(library_dir) as url:
        first = httpx.post(f"{url}/score", json=body(7), timeout=30).json()
        again = httpx.post(f"{url}/score", json=body(7), timeout=30).json()
        assert first["cache"]["misses"] == 1 and again["cache"]["hits"] == 1 and again["cache"]["route_hits"] == 1
        new_card(library_dir)
        assert httpx.post(f"{url}/admin/library/reload", headers=ADMIN, timeout=60).json()["changed"]
        after = httpx.post(f"{url}/score", json=body(7), timeout=30).json()
        assert after["library_version"] != first["library_version"]
        assert after["cache"]["hits"] == 0 and after["cache"]["misses"] == 1 and after["cache"]["route_misses"] == 1
        unchanged = httpx.post(f"{url}/admin/library/reload", headers=ADMIN, timeout=60).json()
        assert unchanged["changed"] is False and unchanged["library_version"] == after["library_version"]


def test_a_watched_directory_is_reloaded_when_its_files_change(library_dir):
    with service(library_dir, library_watch_s=0.3) as url:
        old = version(url)
        new_card(library_dir)
        wait_for(lambda: version(url) != old, 60, "the watched library to reload")
        assert "math.digit_sums" in {p["id"] for p in httpx.get(f"{url}/prototypes").json()["prototypes"]}


# ---------- coverage gaps ----------

def test_the_gap_sample_stays_within_its_bound_and_samples_uniformly():
    sample = GapSample(size=100, margin=0.02, seed=1)
    for n in range(10_000):
        sample.offer(GapStep(f"text {n}", "math" if n % 2 else None, "fallback", None, None, None))
    assert sample.seen() == {"math": 5000, "none": 5000}
    kept = sample.steps()
    assert len(kept) == 200 and len(sample.steps("math")) == 100
    mean_index = np.mean([int(step.text.split()[1]) for step in kept])
    assert 4000 < mean_index < 6000  # a reservoir keeps early and late texts alike
    off = GapSample(size=0, margin=0.02)
    off.offer(GapStep("x", None, "fallback", None, None, None))
    assert off.steps() == [] and off.seen() == {}


PLANTED = {
    "baking": ["Cream the butter and sugar until pale before adding the eggs.",
               "Proof the dough in a warm place until it doubles in size.",
               "Fold the flour into the batter gently so it stays airy.",
               "Bake the loaf until the crust is golden and it sounds hollow.",
               "Let the sponge cool in its tin before turning it out.",
               "Knead the bread dough for ten minutes until it is elastic."],
    "sailing": ["Ease the mainsheet as the boat bears away from the wind.",
                "Tack through the wind and sheet in the new headsail.",
                "Reef the main before the squall reaches the boat.",
                "Trim the jib sail on the upwind leg until the boat sails faster.",
                "Drop the anchor upwind of the mooring and pay out chain.",
                "Hoist the spinnaker once the boat is on a broad reach."],
    "gardening": ["Prune the roses back to an outward-facing bud in late winter.",
                  "Water the tomato seedlings at the base in the morning.",
                  "Mulch the beds with compost to keep the soil moist.",
                  "Divide the overgrown perennials and replant the edges.",
                  "Sow the carrot seeds thinly in shallow drills.",
                  "Deadhead the spent flowers to keep the plants blooming."],
}


def test_gaps_cluster_planted_off_library_steps_into_their_groups(library_dir):
    from scribe_rm.pipeline import metrics

    counted = metrics.ROUTE_OUTCOMES.labels("other", "fallback")
    with service(library_dir) as url:
        before = counted._value.get()  # read in-process: an earlier test may point /metrics at multiprocess files
        texts = [(group, text) for group, items in PLANTED.items() for text in items]
        items = [{"text": text, "domain": "hobbies"} for _, text in texts]  # no card of this domain: all fall back
        assert httpx.post(f"{url}/route", json={"items": items}, timeout=60).status_code == 200
        gaps = httpx.get(f"{url}/library/gaps", params={"domain": "hobbies"}, timeout=60).json()
        assert gaps["seen"] == {"hobbies": 18} and gaps["sampled"] == 18
        group_of = {text: group for group, text in texts}
        clusters = [{group_of[t] for t in cluster["texts"]} for cluster in gaps["clusters"]]
        assert len(clusters) == 3 and all(len(groups) == 1 for groups in clusters)
        assert all(c["reasons"] == {"fallback": c["size"]} for c in gaps["clusters"])
        assert counted._value.get() - before == 18


async def test_the_gaps_embed_each_sampled_text_once_across_calls():
    """GET /library/gaps clusters with the whole model, whose vectors routing does not compute: the first call
    embeds the sample, later calls only texts sampled since."""
    from scribe_rm.induction.gaps import cluster_gaps

    sample = GapSample(size=50, margin=0.02)
    for text in PLANTED["baking"] + PLANTED["sailing"]:
        sample.offer(GapStep(text, "hobbies", "fallback", None, None, None))
    embedded = []

    class CountingEmbedder:
        executor = None

        def encode_sync(self, texts):
            embedded.append(list(texts))
            return np.random.default_rng(len(embedded)).normal(size=(len(texts), 8)).astype(np.float32)

    for _ in range(2):
        report = await cluster_gaps(sample, CountingEmbedder(), "hobbies", 3, 4, 500)
        assert report["sampled"] == 12
    sample.offer(GapStep(PLANTED["gardening"][0], "hobbies", "fallback", None, None, None))
    await cluster_gaps(sample, CountingEmbedder(), "hobbies", 3, 4, 500)
    assert [len(texts) for texts in embedded] == [12, 1], embedded


def test_gap_sampling_can_be_switched_off(library_dir):
    with service(library_dir, gap_sample_size=0) as url:
        httpx.post(f"{url}/route", json={"items": [{"text": "Proof the dough.", "domain": "hobbies"}]}, timeout=60)
        gaps = httpx.get(f"{url}/library/gaps", timeout=60).json()
        assert gaps["sampled"] == 0 and gaps["clusters"] == [] and gaps["sample_size"] == 0


def test_refresh_cycle_from_gaps_to_drafts_to_a_reloaded_library(library_dir, tmp_path):
    """The refresh loop's three commands against a live service: induce --from-gaps (the embedded judge
    drafts), accept, reload; afterwards the planted texts route to the new cards instead of the fallback."""
    import subprocess
    import sys

    from conftest import REPO

    with service(library_dir) as url:
        items = [{"text": text, "domain": "hobbies"} for texts in PLANTED.values() for text in texts]
        before = httpx.post(f"{url}/route", json={"items": items}, timeout=60).json()["results"]
        assert all(r["fallback"] for r in before)
        out = tmp_path / "refresh"
        env = {**__import__("os").environ, "HF_HUB_OFFLINE": "1", "SCRIBE_PROTOTYPES_DIR": str(library_dir)}
        cli = [sys.executable, "-m", "scribe_rm.cli", "library"]
        induced = subprocess.run(cli + ["induce", "--from-gaps", url, "--domain", "hobbies", "--out", str(out)],
                                 cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
        assert induced.returncode == 0, induced.stderr[-2000:]
        report = json.loads((out / "induction.json").read_text())
        assert report["k"] == 3 and report["quality"] is None and report["domain"] == "hobbies"
        ids = [p["card_id"] for p in report["proposals"] if p["action"] == "card"]
        assert ids and all(i.startswith("hobbies.") for i in ids)
        accepted = subprocess.run(cli + ["accept", *ids, "--drafts", str(out), "--library", str(library_dir)],
                                  cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
        assert accepted.returncode == 0, accepted.stdout + accepted.stderr
        reload = httpx.post(f"{url}/admin/library/reload", headers=ADMIN, timeout=120).json()
        assert reload["changed"] and reload["cards"] == 40 + len(ids)
        after = httpx.post(f"{url}/route", json={"items": items}, timeout=60).json()
        assert after["library_version"] == reload["library_version"]
        routed = [r["prototype_id"] for r in after["results"]]
        assert sum(card in ids for card in routed) >= 0.8 * len(items)


# ---------- issue 26: pinned versions ----------

def test_a_pinned_request_is_answered_with_its_version_after_a_reload_or_gets_409(library_dir):
    with service(library_dir, library_keep_grace_s=3) as url:
        old = version(url)
        pinned = {**body(1), "library_version": old}
        assert httpx.post(f"{url}/score", json=pinned, timeout=60).json()["library_version"] == old
        new_card(library_dir)
        new = httpx.post(f"{url}/admin/library/reload", headers=ADMIN, timeout=120).json()["library_version"]
        assert new != old
        # the replaced version still answers requests pinned to it; unpinned ones get the new one
        assert httpx.post(f"{url}/score", json=pinned, timeout=60).json()["library_version"] == old
        assert httpx.post(f"{url}/score", json=body(2), timeout=60).json()["library_version"] == new
        route = httpx.post(f"{url}/route", json={"items": [{"text": "Add the digits."}], "library_version": old},
                           timeout=60)
        assert route.json()["library_version"] == old
        versions = httpx.get(f"{url}/library/versions", timeout=10).json()
        assert versions["current"] == new and [k["version"] for k in versions["kept"]] == [old]
        unknown = httpx.post(f"{url}/score", json={**body(3), "library_version": "feedbeef0000"}, timeout=60)
        assert unknown.status_code == 409
        assert unknown.json()["library_version"] == "feedbeef0000" and unknown.json()["available"] == [new, old]
        wait_for(lambda: httpx.post(f"{url}/score", json=pinned, timeout=60).status_code == 409, 30,
                 "the replaced version to be dropped after its grace time")
        gone = httpx.post(f"{url}/score", json=pinned, timeout=60).json()
        assert gone["available"] == [new] and httpx.get(f"{url}/library/versions", timeout=10).json()["kept"] == []


def test_keep_versions_bounds_what_is_kept_and_a_revert_reuses_the_kept_snapshot(library_dir):
    with service(library_dir, library_keep_versions=2) as url:
        first = version(url)
        card = library_dir / "math" / "digit_sums.yaml"
        new_card(library_dir)
        second = httpx.post(f"{url}/admin/library/reload", headers=ADMIN, timeout=120).json()["library_version"]
        card.unlink()
        back = httpx.post(f"{url}/admin/library/reload", headers=ADMIN, timeout=120).json()
        assert back["library_version"] == first and back["changed"]  # the kept snapshot comes back as current
        kept = [k["version"] for k in httpx.get(f"{url}/library/versions", timeout=10).json()["kept"]]
        assert kept == [second]  # keep_versions=2: the current one and one replaced
