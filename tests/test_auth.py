import pytest
from fastapi.testclient import TestClient

from conftest import ScriptedJudge
from scribe_rm.api.app import create_app
from scribe_rm.settings import Settings

KEY = "k-correct-horse"
ADMIN_KEY = "k-admin-battery-staple"


def all_routes(app):
    """(method, path) for every route in the OpenAPI schema, with a concrete path parameter."""
    schema = app.openapi()
    return [(method.upper(), path.replace("{prototype_id}", "math.counting"))
            for path, ops in schema["paths"].items() for method in ops] + [("GET", "/docs"), ("GET", "/openapi.json")]


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    key_file = tmp_path_factory.mktemp("secret") / "keys"
    key_file.write_text("# mounted secret\nk-from-file\n")
    return create_app(Settings(api_keys=[KEY], api_keys_file=key_file, metrics_public=False,
                               admin_api_keys=[ADMIN_KEY]), judge=ScriptedJudge())


def test_every_endpoint_but_the_probes_needs_a_key(app):
    with TestClient(app) as client:
        for method, path in all_routes(app):
            response = client.request(method, path, json={})
            if path in ("/healthz", "/readyz"):
                assert response.status_code != 401, path
            else:
                assert response.status_code == 401, (method, path)
                assert response.headers["www-authenticate"] == "Bearer"
                wrong = client.request(method, path, json={}, headers={"Authorization": "Bearer nope"})
                assert wrong.status_code == 401, (method, path)


@pytest.mark.parametrize("key", [KEY, "k-from-file"])
def test_valid_keys_from_setting_and_file_pass(app, key):
    with TestClient(app) as client:
        headers = {"Authorization": f"Bearer {key}"}
        for method, path in all_routes(app):
            expected_401 = path.startswith("/admin/")  # scoring keys do not open the admin endpoints
            answer = client.request(method, path, json={}, headers=headers).status_code
            assert (answer == 401) == expected_401, (method, path, answer)


def test_admin_endpoints_take_only_admin_keys_and_are_off_without_them(app):
    with TestClient(app) as client:
        admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
        assert client.post("/admin/library/reload", headers=admin).status_code not in (401, 403)  # 503 while loading
        assert client.get("/prototypes", headers=admin).status_code == 401  # and admin keys do not score
    with TestClient(create_app(Settings(), judge=ScriptedJudge())) as client:
        off = client.post("/admin/library/reload")
        assert off.status_code == 403 and "SCRIBE_ADMIN_API_KEYS" in off.json()["detail"]


def test_malformed_authorization_headers(app):
    with TestClient(app) as client:
        for value in (KEY, f"Basic {KEY}", "Bearer", f"Bearer {KEY}x", f"bearer  {KEY[:-1]}"):
            assert client.get("/prototypes", headers={"Authorization": value}).status_code == 401, value
        assert client.get("/prototypes", headers={"Authorization": f"bearer {KEY}"}).status_code == 200


def test_metrics_public_setting_and_no_keys_means_open():
    with TestClient(create_app(Settings(api_keys=[KEY]), judge=ScriptedJudge())) as client:
        assert client.get("/metrics").status_code == 200
        assert client.get("/prototypes").status_code == 401
    with TestClient(create_app(Settings(), judge=ScriptedJudge())) as client:
        assert client.get("/prototypes").status_code == 200


def test_keys_are_not_logged(app, caplog):
    with TestClient(app) as client:
        client.get("/prototypes", headers={"Authorization": f"Bearer {KEY}"})
        client.get("/prototypes", headers={"Authorization": "Bearer wrong-secret"})
    assert KEY not in caplog.text and "wrong-secret" not in caplog.text


def test_comma_separated_keys_from_environment(monkeypatch):
    monkeypatch.setenv("SCRIBE_API_KEYS", "a1, b2")
    assert [k.get_secret_value() for k in Settings().api_keys] == ["a1", "b2"]
