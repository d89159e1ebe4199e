"""Running as a fleet (issue 26): gap samples merged across replicas, a reload of every replica, and two real
service processes behind a real load balancer (Debian's haproxy) scoring pinned GRPO-shaped steps while the
library changes and the replicas reload at different moments."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import uuid
from collections import Counter

import httpx
import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from conftest import (ScriptedJudge, free_port, is_ready, running_service, serving_in_thread, start_fake_judge,
                      wait_for)
from scribe_rm.api.app import create_app
from scribe_rm.cli import app as cli
from scribe_rm.induction.gaps import fetch_gap_items, merge_samples
from scribe_rm.settings import Settings

ADMIN = {"Authorization": "Bearer adm"}
HAPROXY = shutil.which("haproxy") or (os.path.exists("/usr/sbin/haproxy") and "/usr/sbin/haproxy")


def test_merged_gap_samples_are_a_uniform_sample_of_every_replicas_gaps():
    """Replica a saw 900 gaps, b saw 100; each keeps a uniform reservoir of 100. The merge takes from a
    about 9 times as often as from b, and never more than a reservoir holds."""
    a = {"seen": {"none": 900}, "steps": [{"text": f"a{i}"} for i in range(100)]}
    b = {"seen": {"none": 100}, "steps": [{"text": f"b{i}"} for i in range(100)]}
    shares = []
    for seed in range(200):
        merged = merge_samples([a, b], "none", seed)
        assert len(merged) == 100 and len({m["text"] for m in merged}) == 100
        shares.append(sum(m["text"].startswith("a") for m in merged) / len(merged))
    assert abs(np.mean(shares) - 0.9) < 0.01
    small = {"seen": {"none": 3}, "steps": [{"text": f"c{i}"} for i in range(3)]}  # kept everything it saw
    assert sorted(m["text"] for m in merge_samples([small], "none")) == ["c0", "c1", "c2"]
    assert merge_samples([small], "math") == []


@pytest.mark.model
def test_the_fleet_reloads_every_replica_and_merges_the_gaps_both_saw(tmp_path, settings):
    library = tmp_path / "prototypes"
    shutil.copytree(settings.library_dir, library)
    common = dict(library_dir=library, admin_api_keys=["adm"], gap_margin=0.5)
    planted = {"a": [f"Water the {plant} seedlings with rain water collected last week." for plant in
                     ("tomato", "basil", "pepper", "lettuce")],
               "b": [f"Polish the {metal} statue in the courtyard with a soft cloth." for metal in
                     ("bronze", "copper", "brass", "silver")]}
    with serving_in_thread(create_app(Settings(**common), judge=ScriptedJudge())) as first, \
            serving_in_thread(create_app(Settings(**common), judge=ScriptedJudge())) as second:
        for url, texts in ((first, planted["a"]), (second, planted["b"])):
            body = {"items": [{"id": str(i), "steps": [{"text": text}]} for i, text in enumerate(texts)]}
            assert httpx.post(f"{url}/score", json=body, timeout=60).status_code == 200
        items = asyncio.run(fetch_gap_items([first, second], "none", "garden"))
        texts = {item.steps[0].text for item in items}
        assert set(planted["a"]) <= texts and set(planted["b"]) <= texts
        assert all(item.domain == "garden" for item in items)

        card = yaml.safe_load((library / "math" / "counting.yaml").read_text())
        card.update(id="math.fleet_card", examples=[f"Count the fleet's {n} replicas." for n in range(4)])
        (library / "math" / "fleet_card.yaml").write_text(yaml.safe_dump(card))
        result = CliRunner().invoke(cli, ["library", "reload", first, f"{second},{first}", "--admin-key", "adm"])
        assert result.exit_code == 0, result.output
        assert "2 of 2 replicas reloaded" in result.output  # the repeated replica is reloaded once
        versions = {httpx.get(f"{url}/library/versions", timeout=10).json()["current"] for url in (first, second)}
        assert len(versions) == 1
        refused = CliRunner().invoke(cli, ["library", "reload", first, "--admin-key", "wrong"])
        assert refused.exit_code == 1 and "401" in refused.output


HAPROXY_CONFIG = """global
    maxconn 256
defaults
    mode http
    timeout connect 5s
    timeout client 180s
    timeout server 180s
frontend scribe
    bind 127.0.0.1:{port}
    default_backend replicas
backend replicas
    balance roundrobin
    server a 127.0.0.1:{a}
    server b 127.0.0.1:{b}
"""


def five_hundreds(url: str) -> float:
    """5xx answers on every route but the readiness probe (whose 503 while loading is its job)."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("http_requests_total{") and 'status="5' in line and 'handler="/readyz"' not in line)


@pytest.mark.model
@pytest.mark.skipif(not HAPROXY, reason="needs haproxy (Debian package 'haproxy'; scripts/test.sh installs it with "
                                        "SCRIBE_TEST_INSTALL_SYSTEM=1)")
def test_pinned_steps_never_mix_versions_while_the_replicas_reload_at_different_moments(tmp_path, settings):
    from scribe_client import AsyncScribeClient, RetryPolicy

    library = tmp_path / "prototypes"
    shutil.copytree(settings.library_dir, library)
    judge_port = free_port()
    judge = start_fake_judge(judge_port)
    env = {"SCRIBE_LIBRARY_DIR": str(library), "SCRIBE_ADMIN_API_KEYS": "adm", "SCRIBE_JUDGE_BACKEND": "openai",
           "SCRIBE_JUDGE_BASE_URLS": f"http://127.0.0.1:{judge_port}", "SCRIBE_JUDGE_SCORE_TOKEN_IDS": "32,33,34,35",
           "SCRIBE_LIBRARY_KEEP_GRACE_S": "20", "SCRIBE_LOG_LEVEL": "WARNING"}
    lb_port = free_port()
    try:
        with running_service(**env) as a, running_service(**env) as b:
            config = tmp_path / "haproxy.cfg"
            config.write_text(HAPROXY_CONFIG.format(port=lb_port, a=a.rsplit(":", 1)[1], b=b.rsplit(":", 1)[1]))
            haproxy = subprocess.Popen([HAPROXY, "-f", str(config), "-db"], stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)
            lb = f"http://127.0.0.1:{lb_port}"
            try:
                wait_for(lambda: is_ready(lb), 30, "haproxy in front of the replicas")
                steps, repins = asyncio.run(grpo_steps(lb, a, b, library, AsyncScribeClient, RetryPolicy))
            finally:
                haproxy.send_signal(signal.SIGTERM)
                haproxy.wait(10)
            assert five_hundreds(a) == 0 and five_hundreds(b) == 0
    finally:
        judge.kill()
        judge.wait(10)
    old, new = steps[0]["pin"], steps[-1]["pin"]
    assert old != new
    for step in steps:
        assert step["statuses"] == {"ok": 32}, step  # 0 items lost, every item scored
        assert step["versions"] == {step["pin"]}, step  # every response of a step carries its pin
    assert [s["pin"] for s in steps[:2]] == [old, old] and steps[3]["pin"] == new  # moved at a step boundary
    assert repins == 1  # the dropped version: 409 from both replicas, then the client moved and recovered


async def grpo_steps(lb, a, b, library, client_class, retry_class):
    """Six training steps of 8 prompts x 4 rollouts, sent as 8 concurrent group requests through the load
    balancer; the library changes during step 1 and replica a reloads then, b during step 2."""
    client = client_class(lb, timeout_s=120, retry=retry_class(attempts=8, base_delay_s=0.05, max_delay_s=0.5))
    card = yaml.safe_load((library / "math" / "counting.yaml").read_text())
    card.update(id="math.fleet_card", examples=[f"Count the {n} replicas of the fleet." for n in range(4)])
    steps = []

    async def reload(url: str) -> None:
        async with httpx.AsyncClient(timeout=120) as http:
            assert (await http.post(f"{url}/admin/library/reload", headers=ADMIN)).json()["changed"]

    for step in range(6):
        pin = await client.begin_step()
        groups = [[{"id": f"s{step}-g{g}-r{r}", "question": f"Prompt {g}",
                    "steps": [{"text": f"Step {step}.{g}.{r}: divide both sides by {g + 2}."}]} for r in range(4)]
                  for g in range(8)]
        tasks = [asyncio.create_task(client.score(group)) for group in groups]
        if step in (1, 2):  # a replica reloads while the step's requests are in flight
            if step == 1:
                (library / "math" / "fleet_card.yaml").write_text(yaml.safe_dump(card))
            await asyncio.sleep(0.05)
            await reload(a if step == 1 else b)
        responses = await asyncio.gather(*tasks)
        steps.append({"pin": pin, "versions": {r["library_version"] for r in responses},
                      "statuses": dict(Counter(x["status"] for r in responses for x in r["results"]))})
    old = steps[0]["pin"]
    async with httpx.AsyncClient(timeout=30) as http:
        async def dropped() -> bool:
            kept = [(await http.get(f"{url}/library/versions")).json()["kept"] for url in (a, b)]
            return all(old not in [k["version"] for k in replica] for replica in kept)

        for _ in range(120):  # the grace time (20 s) passes: no replica serves the old version any more
            if await dropped():
                break
            await asyncio.sleep(0.5)
        unknown = await http.post(f"{a}/score", json={"items": groups[0], "library_version": old})
        assert unknown.status_code == 409 and old not in unknown.json()["available"]
    client.pin.version = old  # a client still pinned to the dropped version
    response = await client.score(groups[0])
    assert response["library_version"] == client.library_version != old
    await client.aclose()
    return steps, client.pin.repins
