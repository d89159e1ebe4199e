"""Deployment files, checked statically where nothing can run here (no Docker engine), and a real
Prometheus server (Debian's package, installed by scripts/test.sh) scraping a running service."""

import shutil
import subprocess
import tempfile
from pathlib import Path

import httpx
import pytest
import yaml

from conftest import REPO, free_port, running_service, wait_for

PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")
needs_prometheus = pytest.mark.skipif(not (PROMETHEUS and PROMTOOL),
                                      reason="needs prometheus and promtool (Debian package 'prometheus'; "
                                             "SCRIBE_TEST_INSTALL_SYSTEM=1 scripts/test.sh installs it)")


@needs_prometheus
def test_prometheus_config_passes_promtool():
    run = subprocess.run([PROMTOOL, "check", "config", str(REPO / "deploy/prometheus/prometheus.yml")],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


def test_dockerfile_bakes_models_and_runs_unprivileged():
    lines = [line.strip() for line in (REPO / "Dockerfile").read_text().splitlines()]
    instructions = [line.split()[0] for line in lines if line and not line.startswith("#") and line.split()[0].isupper()]
    assert instructions[0] == "FROM"
    user = [line for line in lines if line.startswith("USER ")]
    assert user and user[-1] not in ("USER root", "USER 0")
    assert any(line.startswith("HEALTHCHECK") for line in lines)
    text = "\n".join(lines)
    assert "scribe-rm models prepare" in text and "HF_HUB_OFFLINE=1" in text and "--no-deps" in text
    for copied in ("service", "prototypes", "pyproject.toml"):
        assert (REPO / copied).exists()


COMPOSE_SPEC = REPO / "var/tools/compose_spec.json"


@pytest.mark.skipif(not COMPOSE_SPEC.exists(), reason="run scripts/deploy_tools.sh (scripts/test.sh does)")
def test_compose_file_follows_the_compose_specification():
    import json

    import jsonschema

    schema = json.loads(COMPOSE_SPEC.read_text())
    compose = yaml.safe_load((REPO / "deploy/docker-compose.yml").read_text())
    errors = [f"{e.json_path}: {e.message}" for e in jsonschema.Draft7Validator(schema).iter_errors(compose)]
    assert errors == []
    broken = dict(compose, services={"x": {"image": 3, "ports": "8000"}})
    assert list(jsonschema.Draft7Validator(schema).iter_errors(broken))  # the check can fail


def test_compose_profiles_and_files():
    compose = yaml.safe_load((REPO / "deploy/docker-compose.yml").read_text())
    services = compose["services"]
    assert "cpu" in services["scribe-rm"]["profiles"] and "gpu" in services["scribe-rm-gpu"]["profiles"]
    assert services["scribe-rm-gpu"]["environment"]["SCRIBE_JUDGE_BACKEND"] == "openai"
    assert set(services["prometheus"]["profiles"]) == {"cpu", "gpu"}
    mounted = services["prometheus"]["volumes"][0].split(":")[0]
    assert (REPO / "deploy" / mounted).resolve().is_file()
    assert (REPO / "deploy" / services["scribe-rm"]["build"]["context"] / "Dockerfile").resolve().is_file()
    scrape_targets = yaml.safe_load((REPO / "deploy/prometheus/prometheus.yml").read_text())["scrape_configs"]
    assert {job["job_name"] for job in scrape_targets} == {"scribe-rm", "vllm"}
    # two replicas behind a load balancer in both profiles; Prometheus finds each replica by DNS
    assert "replicas" in services["scribe-rm"]["deploy"] and "8000:8000" in services["lb"]["ports"]
    assert "ports" not in services["scribe-rm"] and set(services["lb"]["profiles"]) == {"cpu", "gpu"}
    assert "scribe-rm" in services["scribe-rm-gpu"]["networks"]["default"]["aliases"]
    assert next(j for j in scrape_targets if j["job_name"] == "scribe-rm")["dns_sd_configs"][0]["names"] == ["scribe-rm"]


HAPROXY = shutil.which("haproxy") or (Path("/usr/sbin/haproxy").exists() and "/usr/sbin/haproxy")


@pytest.mark.skipif(not HAPROXY, reason="needs haproxy (Debian package 'haproxy'; scripts/test.sh installs it with "
                                        "SCRIBE_TEST_INSTALL_SYSTEM=1)")
def test_the_compose_load_balancer_config_passes_haproxys_check():
    run = subprocess.run([HAPROXY, "-c", "-f", str(REPO / "deploy/haproxy/haproxy.cfg")], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


@needs_prometheus
@pytest.mark.model
def test_real_prometheus_scrapes_the_service():
    with running_service() as url, tempfile.TemporaryDirectory() as tmp:
        httpx.post(f"{url}/route", json={"items": [{"text": "Check the answer by substitution."}]}, timeout=30)
        config = Path(tmp) / "prometheus.yml"
        target = url.removeprefix("http://")
        config.write_text(yaml.safe_dump({"global": {"scrape_interval": "1s"}, "scrape_configs": [
            {"job_name": "scribe-rm", "static_configs": [{"targets": [target]}]}]}))
        port = free_port()
        prometheus = subprocess.Popen([PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp}/data",
                                       f"--web.listen-address=127.0.0.1:{port}"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        api = f"http://127.0.0.1:{port}/api/v1/query"

        def query(expr: str) -> list:
            try:
                return httpx.get(api, params={"query": expr}, timeout=5).json()["data"]["result"]
            except (httpx.HTTPError, KeyError, ValueError):
                return []

        try:
            wait_for(lambda: query('scribe_build_info{backend="local"}'), 60, "Prometheus to scrape the service")
            assert query('up{job="scribe-rm"}')[0]["value"][1] == "1"
            requests = query('http_requests_total{handler="/route",status="200"}')
            assert requests and float(requests[0]["value"][1]) >= 1
            assert query("scribe_judge_inflight")
        finally:
            prometheus.terminate()
            prometheus.wait(20)
