"""`GET /v1/clients/{id}/health`: ok for a known client, faulted like reading records."""

import httpx
import pytest

from tests.unit.external_system.conftest import seed

HEALTH = "/v1/clients/acme/health"


@pytest.fixture
def api(empty_api: httpx.Client) -> httpx.Client:
    seed(empty_api, "acme")
    return empty_api


def test_a_client_with_records_is_healthy(api: httpx.Client) -> None:
    response = api.get(HEALTH)
    assert (response.status_code, response.json()) == (200, {"status": "ok", "client_id": "acme"})


def test_a_client_with_only_contacts_is_healthy(api: httpx.Client) -> None:
    api.post("/_admin/clients/initech/contacts", json={"count": 0}).raise_for_status()
    assert api.get("/v1/clients/initech/health").json() == {"status": "ok", "client_id": "initech"}


def test_an_unknown_client_is_not_found_even_under_faults(api: httpx.Client) -> None:
    api.put("/_admin/faults", json={"error_rate": 1.0}).raise_for_status()
    response = api.get("/v1/clients/ghost/health")
    assert (response.status_code, response.json()) == (404, {"error": "unknown client ghost"})


def test_health_suffers_injected_faults_like_records(api: httpx.Client) -> None:
    api.put("/_admin/faults", json={"error_rate": 1.0, "clients": ["acme"]}).raise_for_status()
    assert api.get(HEALTH).json() == {"error": "injected failure"}
    api.put("/_admin/faults", json={"throttle_rate": 1.0, "retry_after_seconds": 2})
    throttled = api.get(HEALTH)
    assert (throttled.status_code, throttled.headers["Retry-After"]) == (429, "2")
    stats = api.get("/_admin/stats").json()
    assert stats["requests"]["GET /v1/health"] == {"503": 1, "429": 1}
    assert (stats["injected"]["error"], stats["injected"]["throttle"]) == (1, 1)


def test_health_needs_the_client_credentials(api: httpx.Client) -> None:
    token = "health-token-0123456789"
    api.put("/_admin/clients/acme/credentials", json={"tokens": [token]}).raise_for_status()
    assert api.get(HEALTH).status_code == 401
    assert api.get(HEALTH, headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert api.get("/_admin/stats").json()["requests"]["GET /v1/health"] == {"401": 1, "200": 1}
