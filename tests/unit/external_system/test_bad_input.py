"""Bad requests get a precise 4xx naming what is wrong, never a 500, and change nothing."""

import httpx
import pytest

from tests.unit.external_system.conftest import seed

RECORDS = "/v1/clients/acme/records"
ACKS = "/v1/clients/acme/acks"


@pytest.fixture
def api(empty_api: httpx.Client) -> httpx.Client:
    """A running system with client acme (3 records)."""
    seed(empty_api, "acme")
    return empty_api


def test_a_rate_above_one_is_refused_naming_the_field(api: httpx.Client) -> None:
    # When a fault rate of 1.5 is put
    response = api.put("/_admin/faults", json={"error_rate": 1.5})
    # Then it is refused naming error_rate, and no fault is configured
    assert response.status_code == 400
    assert response.json()["error"].startswith("error_rate: ")
    assert api.get("/_admin/faults").json()["error_rate"] == 0


def test_an_unknown_fault_field_is_refused_naming_it(api: httpx.Client) -> None:
    response = api.put("/_admin/faults", json={"eror_rate": 1.0})
    assert response.status_code == 400
    assert response.json() == {"error": "eror_rate: Extra inputs are not permitted"}


@pytest.mark.parametrize("limit", ["0", "501", "ten"])
def test_a_limit_outside_1_to_500_is_refused_naming_limit(api: httpx.Client, limit: str) -> None:
    response = api.get(RECORDS, params={"limit": limit})
    assert response.status_code == 400
    assert response.json()["error"].startswith("limit: ")


def test_a_status_other_than_completed_is_refused(api: httpx.Client) -> None:
    response = api.get(RECORDS, params={"status": "open"})
    assert response.status_code == 400
    assert response.json()["error"].startswith("status: ")


def test_an_unknown_script_is_refused_naming_script_and_the_value(api: httpx.Client) -> None:
    response = api.get(RECORDS, params={"script": "GET_EVERYTHING"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error.startswith("script: ")
    assert "'GET_EVERYTHING'" in error
    assert "GET_COMPLETED_PENDING" in error  # and what would have been accepted


@pytest.mark.parametrize(
    "completed_after", ["2026-11-20T10:00:00", "yesterday", "2026-13-01T00:00:00Z"]
)
def test_completed_after_without_a_timezone_or_not_a_time_is_refused(
    api: httpx.Client, completed_after: str
) -> None:
    response = api.get(RECORDS, params={"completed_after": completed_after})
    assert response.status_code == 400
    assert response.json()["error"].startswith("completed_after: ")
    assert repr(completed_after) in response.json()["error"]


@pytest.mark.parametrize(
    "completed_to", ["2026-11-20T10:00:00Z", "2026-11-20T09:59:59Z", "2026-11-20T12:00:00+02:00"]
)
def test_a_window_that_does_not_start_before_it_ends_is_refused_naming_both(
    api: httpx.Client, completed_to: str
) -> None:
    # When a window ends at or before its start (the last the same instant in another offset)
    params = {"completed_from": "2026-11-20T10:00:00Z", "completed_to": completed_to}
    response = api.get(RECORDS, params=params)
    # Then it is refused naming both bounds
    assert response.status_code == 400
    assert response.json()["error"].startswith(
        "completed_to: Value error, completed_from must be before completed_to"
    )


@pytest.mark.parametrize("bound", ["completed_from", "completed_to"])
def test_a_window_bound_without_a_timezone_is_refused_naming_it(
    api: httpx.Client, bound: str
) -> None:
    response = api.get(RECORDS, params={bound: "2026-11-20T10:00:00"})
    assert response.status_code == 400
    assert response.json()["error"].startswith(f"{bound}: ")
    assert "'2026-11-20T10:00:00'" in response.json()["error"]


@pytest.mark.parametrize("year", ["1999", "2101", "last"])
def test_a_year_outside_2000_to_2100_is_refused_naming_year(api: httpx.Client, year: str) -> None:
    response = api.get(RECORDS, params={"year": year})
    assert response.status_code == 400
    assert response.json()["error"].startswith("year: ")


@pytest.mark.parametrize("days", [-1, 3651])
def test_completed_days_ago_outside_0_to_3650_is_refused(api: httpx.Client, days: int) -> None:
    body = {"client_id": "acme", "group_id": "g1", "records": 1, "completed_days_ago": days}
    response = api.post("/_admin/clients", json=body)
    assert response.status_code == 400
    assert response.json()["error"].startswith("completed_days_ago: ")


def test_malformed_json_is_refused_and_nothing_is_acked(api: httpx.Client) -> None:
    # When an ack body is not JSON
    response = api.post(ACKS, content=b'{"acks": [', headers={"Content-Type": "application/json"})
    # Then it is refused as invalid JSON and nothing is acked
    assert response.status_code == 400
    assert response.json()["error"].startswith("body: Invalid JSON")
    assert api.get("/_admin/acks").json()["clients"]["acme"]["acked"] == 0


def test_an_empty_ack_list_is_refused(api: httpx.Client) -> None:
    response = api.post(ACKS, json={"acks": []})
    assert response.status_code == 400
    assert response.json()["error"].startswith("acks: ")


def test_an_ack_without_version_is_refused_naming_the_entry(api: httpx.Client) -> None:
    response = api.post(ACKS, json={"acks": [{"record_id": "acme-r00001"}]})
    assert response.status_code == 400
    assert response.json() == {"error": "acks.0.version: Field required"}


def test_more_than_500_acks_are_refused(api: httpx.Client) -> None:
    acks = [{"record_id": "acme-r00001", "version": 1}] * 501
    response = api.post(ACKS, json={"acks": acks})
    assert response.status_code == 400
    assert response.json()["error"].startswith("acks: ")


def test_poison_naming_a_record_that_is_not_seeded_is_refused(api: httpx.Client) -> None:
    body = {"client_id": "acme", "group_id": "g1", "records": 2, "poison": ["acme-r00003"]}
    response = api.post("/_admin/clients", json=body)
    assert response.status_code == 400
    assert response.json()["error"].startswith("poison: ")
    assert "acme-r00003" in response.json()["error"]


def test_an_unknown_route_is_not_found(api: httpx.Client) -> None:
    response = api.get("/v2/clients/acme/records")
    assert response.status_code == 404
    assert response.json() == {"error": "no route GET /v2/clients/acme/records"}


def test_a_wrong_method_is_refused_with_the_allowed_ones(api: httpx.Client) -> None:
    response = api.delete(RECORDS)
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET"
    assert response.json()["error"].startswith("method DELETE not allowed")


def test_bumping_an_unknown_record_is_not_found(api: httpx.Client) -> None:
    response = api.post("/_admin/clients/acme/records/acme-r00009/bump")
    assert response.status_code == 404
    assert response.json() == {"error": "unknown record acme-r00009"}


def test_the_connection_stays_usable_after_a_refused_request(api: httpx.Client) -> None:
    # Given a keep-alive connection that just sent a refused body
    api.post("/v1/clients/ghost/acks", json={"acks": [{"record_id": "x", "version": 1}]})
    # When the next request goes down the same connection / Then it is understood
    assert api.get("/health").json() == {"status": "ok"}
