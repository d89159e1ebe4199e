"""deploy/k8s rendered with a real kustomize (kubectl from scripts/deploy_tools.sh) and validated against the
Kubernetes schemas (kubernetes-validate). CRDs (ServiceMonitor) are checked by hand."""

import subprocess

import kubernetes_validate
import pytest
import yaml

from conftest import REPO

KUBECTL = REPO / "var/tools/kubectl"
pytestmark = pytest.mark.skipif(not KUBECTL.exists(), reason="run scripts/deploy_tools.sh (scripts/test.sh does)")


def render(overlay: str) -> list[dict]:
    out = subprocess.run([str(KUBECTL), "kustomize", "--load-restrictor", "LoadRestrictionsNone",
                          str(REPO / "deploy/k8s/overlays" / overlay)], capture_output=True, text=True, check=True)
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def by_kind(docs: list[dict], kind: str, name: str) -> dict:
    """The document of that kind and name (or, for generated names with a hash suffix, name prefix)."""
    of_kind = [d for d in docs if d["kind"] == kind]
    exact = [d for d in of_kind if d["metadata"]["name"] == name]
    return (exact or [d for d in of_kind if d["metadata"]["name"].startswith(name)])[0]


def env_of(deployment: dict) -> dict:
    return {e["name"]: e["value"] for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}


@pytest.mark.parametrize("overlay", ["cpu", "gpu"])
def test_rendered_manifests_are_valid(overlay):
    docs = render(overlay)
    for doc in docs:
        if doc["apiVersion"].startswith("monitoring.coreos.com"):
            continue
        kubernetes_validate.validate(doc, "1.33", strict=True)
    service, deployment = by_kind(docs, "Service", "scribe-rm"), by_kind(docs, "Deployment", "scribe-rm")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["resources"]["requests"]["cpu"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    monitor = by_kind(docs, "ServiceMonitor", "scribe-rm")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"][0] == {"port": "http", "path": "/metrics", "interval": "15s"}
    hpa = by_kind(docs, "HorizontalPodAutoscaler", "scribe-rm")
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    configmap = by_kind(docs, "ConfigMap", "scribe-rm-prototypes")
    assert volumes["prototypes"]["configMap"]["name"] == configmap["metadata"]["name"]  # hashed name wired
    assert volumes["api-keys"]["secret"]["secretName"] == "scribe-rm-api-keys"


def test_gpu_overlay_runs_vllm_and_points_the_service_at_it():
    docs = render("gpu")
    env = env_of(by_kind(docs, "Deployment", "scribe-rm"))
    assert env["SCRIBE_JUDGE_BACKEND"] == "openai"
    headless = by_kind(docs, "Service", "vllm-headless")  # judge replicas discovered through its records
    assert headless["spec"]["clusterIP"] == "None" and env["SCRIBE_JUDGE_DISCOVERY"].startswith("dns://vllm-headless.")
    assert headless["spec"]["selector"] == by_kind(docs, "Service", "vllm")["spec"]["selector"]
    vllm = by_kind(docs, "Deployment", "vllm")["spec"]["template"]["spec"]["containers"][0]
    assert vllm["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert "--served-model-name" in vllm["args"] and "judge" in vllm["args"]
    assert by_kind(docs, "Service", "vllm")["spec"]["ports"][0]["port"] == 8011
    assert env_of(by_kind(render("cpu"), "Deployment", "scribe-rm"))["SCRIBE_JUDGE_BACKEND"] == "local"


def test_configmap_carries_exactly_the_library():
    cards = {p.name: p.read_text() for p in (REPO / "prototypes").rglob("*.yaml")}
    configmap = by_kind(render("cpu"), "ConfigMap", "scribe-rm-prototypes")
    assert configmap["data"] == cards  # a card added to prototypes/ must be listed in the base kustomization


@pytest.mark.parametrize("overlay", ["cpu", "gpu"])
def test_the_fleet_has_a_headless_service_and_each_pod_is_scraped_once(overlay):
    docs = render(overlay)
    headless = by_kind(docs, "Service", "scribe-rm-headless")
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["selector"] == by_kind(docs, "Service", "scribe-rm")["spec"]["selector"]
    services = [d for d in docs if d["kind"] == "Service"]
    for monitor in (d for d in docs if d["kind"] == "ServiceMonitor"):
        wanted = monitor["spec"]["selector"]["matchLabels"].items()
        assert len([s for s in services if wanted <= s["metadata"].get("labels", {}).items()]) == 1
