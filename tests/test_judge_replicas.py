"""Judge replicas come and go (issue 26): two real judge processes (bench/fake_judge.py, an instant
OpenAI-compatible judge) behind one service; one is stopped by PID mid-run and started again; and a DNS name
served by a real DNS server (Debian's dnsmasq) whose records change."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import threading
import uuid
from contextlib import contextmanager

import httpx
import pytest

from conftest import free_port, serving_in_thread, start_fake_judge, wait_for
from scribe_rm.api.app import create_app
from scribe_rm.settings import Settings

pytestmark = pytest.mark.model
DNSMASQ = shutil.which("dnsmasq") or (os.path.exists("/usr/sbin/dnsmasq") and "/usr/sbin/dnsmasq")


@contextmanager
def fake_judge(host: str = "127.0.0.1", port: int | None = None, delay_s: float = 0.0):
    """A fake judge process answering each call after `delay_s`; yields (url, process)."""
    port = port or free_port()
    process = start_fake_judge(port, host, delay_s)
    try:
        yield f"http://{host}:{port}", process
    finally:
        process.kill()
        process.wait(10)


def score(url: str, n: int) -> list[str]:
    body = {"items": [{"id": str(i), "question": "Q", "steps": [{"text": f"Compute the total {uuid.uuid4().hex}."}]}
                      for i in range(n)], "deadline_s": 60}
    response = httpx.post(f"{url}/score", json=body, timeout=120)
    assert response.status_code == 200, response.text
    return [r["status"] for r in response.json()["results"]]


def counter(url: str, name: str, replica: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    found = re.findall(rf'^{name}{{replica="{re.escape(replica)}"}} (\S+)$', text, re.M)
    return float(found[0]) if found else 0.0


def service(**settings):
    base = dict(judge_backend="openai", judge_score_token_ids=[32, 33, 34, 35], judge_retries=3,
                judge_eject_base_s=0.3, judge_eject_max_s=1.0, judge_timeout_s=5, judge_max_concurrency=32)
    return serving_in_thread(create_app(Settings(**{**base, **settings})))


def test_a_dead_replica_is_ejected_and_readmitted_and_every_item_comes_back_ok():
    # calls of 50 ms, 32 at a time: the 200-item run's judging lasts a few rounds, so a replica stopped once it
    # has taken its first calls leaves calls to fail over, however fast the host routes
    with fake_judge(delay_s=0.05) as (first, _), fake_judge(delay_s=0.05) as (second, second_process):
        port = second.rsplit(":", 1)[1]
        with service(judge_base_urls=[first, second]) as url:
            assert score(url, 60) == ["ok"] * 60
            assert counter(url, "scribe_judge_replica_first_attempts_total", second) > 0  # both take calls

            statuses: list[str] = []
            running = threading.Thread(target=lambda: statuses.extend(score(url, 200)))
            started = counter(url, "scribe_judge_replica_first_attempts_total", second)
            running.start()
            # mid-run by the run's progress, not the clock: once the second replica has taken its first 10 calls
            wait_for(lambda: counter(url, "scribe_judge_replica_first_attempts_total", second) >= started + 10, 60,
                     "the second replica's share of the run to begin", interval_s=0.005)
            second_process.send_signal(signal.SIGKILL)
            running.join(120)
            assert statuses == ["ok"] * 200  # the retries went to the healthy replica
            assert counter(url, "scribe_judge_replica_ejections_total", second) >= 1
            before = counter(url, "scribe_judge_replica_first_attempts_total", second)
            assert score(url, 100) == ["ok"] * 100
            assert counter(url, "scribe_judge_replica_first_attempts_total", second) == before  # its share: 0

            with fake_judge(port=int(port)) as (again, _):
                assert again == second
                wait_for(lambda: counter(url, "scribe_judge_replica_up", second) == 1, 30,
                         "the restarted replica to pass its health check")
                assert score(url, 60) == ["ok"] * 60
                assert counter(url, "scribe_judge_replica_first_attempts_total", second) > before  # back in turn


@pytest.mark.skipif(not DNSMASQ, reason="needs dnsmasq (Debian package 'dnsmasq'; scripts/test.sh installs it "
                                        "with SCRIBE_TEST_INSTALL_SYSTEM=1)")
def test_a_discovery_name_whose_records_change_is_followed(tmp_path):
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 judges.test\n")
    dns_port = free_port()
    dnsmasq = subprocess.Popen([DNSMASQ, "--keep-in-foreground", "--no-resolv", "--no-hosts", f"--port={dns_port}",
                                "--listen-address=127.0.0.1", "--bind-interfaces", f"--addn-hosts={hosts}",
                                "--user=root", "--pid-file=", "--log-facility=-"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    judge_port = free_port()
    try:
        with fake_judge("127.0.0.1", judge_port) as (one, _), fake_judge("127.0.0.2", judge_port) as (two, _):
            with service(judge_discovery=f"dns://judges.test:{judge_port}", judge_discovery_interval_s=0.3,
                         judge_discovery_nameservers=[f"127.0.0.1:{dns_port}"]) as url:
                assert score(url, 20) == ["ok"] * 20
                assert counter(url, "scribe_judge_replica_first_attempts_total", one) > 0
                assert counter(url, "scribe_judge_replica_first_attempts_total", two) == 0  # not in the records

                hosts.write_text("127.0.0.1 judges.test\n127.0.0.2 judges.test\n")
                dnsmasq.send_signal(signal.SIGHUP)  # dnsmasq reads its hosts files again
                wait_for(lambda: counter(url, "scribe_judge_replica_up", two) == 1, 30, "the added record")
                assert score(url, 40) == ["ok"] * 40
                assert counter(url, "scribe_judge_replica_first_attempts_total", two) > 0

                hosts.write_text("127.0.0.2 judges.test\n")
                dnsmasq.send_signal(signal.SIGHUP)
                wait_for(lambda: counter(url, "scribe_judge_replica_up", one) == 0, 30, "the removed record")
                before = counter(url, "scribe_judge_replica_first_attempts_total", one)
                assert score(url, 20) == ["ok"] * 20
                assert counter(url, "scribe_judge_replica_first_attempts_total", one) == before
    finally:
        dnsmasq.terminate()
        dnsmasq.wait(10)
