"""The Label Studio host and credential policy (backend/label_studio_host.py), alone and through the app."""
from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from backend.app import create_app
from backend.label_studio_host import ProjectHosts, normalise_host
from backend_fixtures import FakeLabelStudio, add_tiny_version, backend_settings, grey_image_bytes, ls_fixture

TOKEN = "ls-legacy-token-1"
OTHER_TOKEN = "someone-elses-token"


@pytest.fixture
def two_servers():
    """The real Label Studio and a host a caller would like the backend to talk to instead."""
    frame = {"frame.png": grey_image_bytes(90), "/api/projects/1": b"{}"}
    real, other = FakeLabelStudio(frame, TOKEN), FakeLabelStudio(frame, OTHER_TOKEN)
    yield real, other
    real.close()
    other.close()


def test_host_urls_are_normalised_or_refused():
    assert normalise_host("http://127.0.0.1:8080/") == "http://127.0.0.1:8080"
    assert normalise_host("https://ls.example/label-studio") == "https://ls.example/label-studio"
    for bad in ("ftp://x", "http://user:pw@host", "http://host/?next=evil", "//host", "", None, 42):
        assert normalise_host(bad) is None


def test_the_first_allowed_setup_pins_the_host_per_project_and_nothing_switches_it(tmp_path):
    hosts = ProjectHosts(backend_settings(tmp_path))
    assert hosts.setup("1.170", "http://localhost:8080", TOKEN) == "token kept"
    assert hosts.setup("1.170", "http://127.0.0.1:6666", OTHER_TOKEN).startswith("token ignored")
    assert hosts.setup("2.171", "http://evil.example:8080", OTHER_TOKEN).startswith("ignored: host")
    assert hosts.setup("3.172", "http://127.0.0.1:6666", None) == "kept host, no token"
    assert hosts.connection("1") == hosts.connection("1.999")
    assert (hosts.connection("1").url, hosts.connection("1").api_key) == ("http://localhost:8080", TOKEN)
    assert hosts.connection("2").url is None and hosts.connection("3").api_key is None
    assert TOKEN not in repr(hosts.connection("1"))
    restarted = ProjectHosts(backend_settings(tmp_path))  # another worker, or after a restart
    assert restarted.connection("1").url == "http://localhost:8080" and restarted.connection("1").api_key is None
    assert restarted.setup("1.170", "http://127.0.0.1:7777", None) == "kept host, no token"
    assert restarted.connection("1").url == "http://localhost:8080"


def test_the_operator_url_wins_and_its_key_goes_nowhere_else(tmp_path):
    hosts = ProjectHosts(backend_settings(tmp_path, label_studio_url="http://ls:8080", label_studio_api_key="op"))
    hosts.setup("1.1", "http://127.0.0.1:9999", OTHER_TOKEN)
    assert (hosts.connection("1").url, hosts.connection("1").api_key) == ("http://ls:8080", "op")
    keyless = ProjectHosts(backend_settings(tmp_path, label_studio_url="http://ls:8080"))
    assert keyless.setup("1.1", "http://127.0.0.1:9999", OTHER_TOKEN).startswith("token ignored")
    assert keyless.setup("2.1", "http://ls:8080/", TOKEN) == "token kept"  # the operator's host sent it
    assert keyless.connection("1").api_key is None and keyless.connection("2").api_key == TOKEN
    (tmp_path / "b").mkdir()
    no_url = ProjectHosts(backend_settings(tmp_path / "b", label_studio_api_key="op"))  # a key without a URL
    no_url.setup("1.1", "http://127.0.0.1:9999", None)
    assert no_url.connection("1").url == "http://127.0.0.1:9999" and no_url.connection("1").api_key is None


def test_setup_hosts_can_be_narrowed_or_switched_off(tmp_path):
    hosts = ProjectHosts(backend_settings(tmp_path, setup_hosts=()))
    assert hosts.setup("1.1", "http://localhost:8080", TOKEN).startswith("ignored: host")
    assert hosts.connection("1").url is None
    assert not (tmp_path / "models" / "active_learning" / "label_studio_hosts.json").exists()


def predict_relative_frame(client, project: str) -> dict:
    task = {"id": 1, "data": {"frames": ["/data/upload/frame.png"] * 4}}
    return client.post("/predict", json={"tasks": [task], "project": project}).json()["results"][0]


def test_an_unauthenticated_setup_pointing_elsewhere_gets_no_token(tmp_path, two_servers):
    """Regression: /setup with another hostname must not redirect the next relative frame (with the
    token) of the project, nor lend the project's token to a project set up from that host."""
    real, other = two_servers
    settings = backend_settings(tmp_path)
    add_tiny_version(settings.model_dir, tmp_path)
    client = TestClient(create_app(settings))
    setup = ls_fixture("setup_request.json")  # project "1.<ts>"
    client.post("/setup", json={**setup, "hostname": real.url, "access_token": TOKEN})
    client.post("/setup", json={**setup, "hostname": other.url, "access_token": OTHER_TOKEN})  # no basic auth set
    client.post("/setup", json={**setup, "project": "2.5", "hostname": other.url, "access_token": None})
    assert "result" in predict_relative_frame(client, setup["project"])
    assert real.seen == [("/data/upload/frame.png", f"Token {TOKEN}")] * 4
    assert other.seen == []
    predict_relative_frame(client, "2.5")  # project 2 talks to its own host, without project 1's token
    assert other.seen and all(auth is None for _, auth in other.seen)


def test_webhooks_for_unknown_projects_are_refused_without_a_trace(tmp_path, two_servers):
    real, _ = two_servers
    settings = backend_settings(tmp_path)
    client = TestClient(create_app(settings))
    state = settings.model_dir / "active_learning" / "projects"
    never_set_up = client.post("/webhook", json={"action": "START_TRAINING", "project": {"id": 7}})
    assert never_set_up.status_code == 400 and "project 7 was never set up" in never_set_up.json()["detail"]
    client.post("/setup", json={"project": "9.1", "hostname": real.url, "access_token": TOKEN})
    not_in_ls = client.post("/webhook", json={"action": "START_TRAINING", "project": {"id": 9}})
    assert not_in_ls.status_code == 400 and "does not exist in Label Studio" in not_in_ls.json()["detail"]
    assert not (state / "7").exists() and not (state / "9").exists()
    assert client.get("/health").json()["training"] == "idle"
