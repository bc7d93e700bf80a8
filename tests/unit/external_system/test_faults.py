"""Injected faults: what the platform sees, and that a failed call never changes anything."""

import time
from typing import Any

import httpx
import pytest

from tests.unit.external_system.conftest import seed

RECORDS = "/v1/clients/acme/records"
ACKS = "/v1/clients/acme/acks"
ONE_ACK = {"acks": [{"record_id": "acme-r00001", "version": 1}]}


@pytest.fixture
def api(empty_api: httpx.Client) -> httpx.Client:
    """A running system with clients acme and globex (3 records each), no faults yet."""
    seed(empty_api, "acme", "globex")
    return empty_api


def set_faults(api: httpx.Client, **config: Any) -> None:
    api.put("/_admin/faults", json=config).raise_for_status()


def acked(api: httpx.Client, client_id: str = "acme") -> int:
    return int(api.get("/_admin/acks").json()["clients"][client_id]["acked"])


def injected(api: httpx.Client) -> dict[str, int]:
    counts: dict[str, int] = api.get("/_admin/stats").json()["injected"]
    return counts


def test_error_rate_one_fails_every_external_call_and_records_no_ack(api: httpx.Client) -> None:
    # Given every external call fails
    set_faults(api, error_rate=1.0)
    # When records are read and an ack is sent
    read, acking = api.get(RECORDS), api.post(ACKS, json=ONE_ACK)
    # Then both are 503 injected failures and the ack is not remembered
    assert (read.status_code, read.json()) == (503, {"error": "injected failure"})
    assert (acking.status_code, acking.json()) == (503, {"error": "injected failure"})
    assert acked(api) == 0
    assert injected(api)["error"] == 2


def test_throttle_rate_one_answers_429_with_retry_after(api: httpx.Client) -> None:
    # Given every external call is throttled, asking for a 3 s pause
    set_faults(api, throttle_rate=1.0, retry_after_seconds=3)
    # When an ack is sent
    response = api.post(ACKS, json=ONE_ACK)
    # Then it is refused with Retry-After and not remembered
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "3"
    assert acked(api) == 0
    assert injected(api)["throttle"] == 1


def test_injected_timeout_outlasts_the_client_and_changes_nothing(api: httpx.Client) -> None:
    # Given every external call stalls 0.3 s before answering
    set_faults(api, timeout_rate=1.0, timeout_seconds=0.3)
    # When an ack is sent by a client that waits only 0.05 s
    with pytest.raises(httpx.ReadTimeout):
        api.post(ACKS, json=ONE_ACK, timeout=0.05)
    # Then, once the stalled call has finished on the server, the ack was still not applied
    deadline = time.monotonic() + 2.0
    while "504" not in api.get("/_admin/stats").json()["requests"]["POST /v1/acks"]:
        assert time.monotonic() < deadline, "the stalled call never finished"
        time.sleep(0.02)
    assert acked(api) == 0
    assert injected(api)["timeout"] == 1


def test_ack_error_rate_fails_only_acks(api: httpx.Client) -> None:
    # Given acks always fail
    set_faults(api, ack_error_rate=1.0)
    # When records are read and an ack is sent
    read, acking = api.get(RECORDS), api.post(ACKS, json=ONE_ACK)
    # Then reading works, the ack is a 503 and is not remembered
    assert read.status_code == 200
    assert acking.status_code == 503
    assert acked(api) == 0
    assert injected(api)["ack_error"] == 1


def test_latency_delays_external_calls_but_not_admin_calls(api: httpx.Client) -> None:
    # Given 200 ms of added latency
    set_faults(api, latency_ms=200)
    # When an external and an admin call are timed
    started = time.monotonic()
    assert api.get(RECORDS).status_code == 200
    external_seconds = time.monotonic() - started
    started = time.monotonic()
    assert api.get("/health").status_code == 200
    admin_seconds = time.monotonic() - started
    # Then only the external call waited
    assert external_seconds >= 0.2
    assert admin_seconds < 0.2


def test_admin_calls_are_never_faulted(api: httpx.Client) -> None:
    # Given every call would fail or be throttled
    set_faults(api, error_rate=1.0, throttle_rate=1.0)
    # When admin endpoints are called / Then they answer normally
    for path in ("/health", "/_admin/acks", "/_admin/stats", "/_admin/faults"):
        assert api.get(path).status_code == 200


def test_faults_scoped_to_clients_spare_the_others(api: httpx.Client) -> None:
    # Given failures only for globex
    set_faults(api, error_rate=1.0, clients=["globex"])
    # When both clients are read
    # Then globex fails and acme does not
    assert api.get("/v1/clients/globex/records").status_code == 503
    assert api.get(RECORDS).status_code == 200


def test_the_same_seed_fails_the_same_calls(api: httpx.Client) -> None:
    # Given half the calls fail, seeded
    def statuses() -> list[int]:
        set_faults(api, seed=42, error_rate=0.5)
        return [api.get(RECORDS).status_code for _ in range(20)]

    # When the same configuration is applied twice and called 20 times each
    first, second = statuses(), statuses()
    # Then the same calls fail, and some do and some don't
    assert first == second
    assert set(first) == {200, 503}


def test_bad_input_is_answered_before_any_fault(api: httpx.Client) -> None:
    # Given every call fails
    set_faults(api, error_rate=1.0)
    # When an unknown client or a bad limit is asked for / Then the caller's mistake is reported
    assert api.get("/v1/clients/ghost/records").status_code == 404
    assert api.get(RECORDS, params={"limit": 0}).status_code == 400


def test_the_fault_configuration_reads_back_with_defaults(api: httpx.Client) -> None:
    # Given a partial configuration
    set_faults(api, seed=7, error_rate=0.05, clients=["acme"])
    # When it is read back / Then unspecified fields have their no-fault defaults
    assert api.get("/_admin/faults").json() == {
        "seed": 7,
        "latency_ms": 0,
        "error_rate": 0.05,
        "timeout_rate": 0.0,
        "timeout_seconds": 5.0,
        "throttle_rate": 0.0,
        "retry_after_seconds": 1,
        "ack_error_rate": 0.0,
        "clients": ["acme"],
    }


def test_an_empty_configuration_clears_faults(api: httpx.Client) -> None:
    # Given every call fails
    set_faults(api, error_rate=1.0)
    # When an empty configuration is put / Then calls succeed again
    set_faults(api)
    assert api.get(RECORDS).status_code == 200
