"""`GET /_admin/rate`: how many external calls arrived, and the most within any window."""

import time

import httpx
import pytest

from external_system.state import MAX_ARRIVALS, State, _max_in_window
from tests.unit.external_system.conftest import seed


def rate(api: httpx.Client, window_ms: int | None = None) -> dict[str, int]:
    params = {} if window_ms is None else {"window_ms": window_ms}
    response = api.get("/_admin/rate", params=params)
    assert response.status_code == 200
    report: dict[str, int] = response.json()
    return report


def burst(api: httpx.Client, calls: int) -> None:
    for _ in range(calls):
        api.get("/v1/clients/acme/health")


def test_bursts_are_counted_per_window(empty_api: httpx.Client) -> None:
    # Given a burst of 4 calls and, 300 ms later, a burst of 6
    seed(empty_api, "acme")
    burst(empty_api, 4)
    time.sleep(0.3)
    burst(empty_api, 6)
    # When the rate is read with a 200 ms and the default 1 s window
    # Then the short window sees the larger burst alone and the long one sees both
    assert rate(empty_api, 200) == {"window_ms": 200, "requests": 10, "max_in_window": 6}
    assert rate(empty_api) == {"window_ms": 1000, "requests": 10, "max_in_window": 10}


def test_refused_and_unrouted_external_calls_count_but_admin_calls_do_not(
    empty_api: httpx.Client,
) -> None:
    empty_api.get("/v1/clients/ghost/records")
    empty_api.get("/v1/nowhere")
    empty_api.get("/health")
    empty_api.get("/_admin/stats")
    assert rate(empty_api)["requests"] == 2


def test_reset_clears_the_arrivals(empty_api: httpx.Client) -> None:
    empty_api.get("/v1/clients/ghost/records")
    empty_api.post("/_admin/reset").raise_for_status()
    assert rate(empty_api) == {"window_ms": 1000, "requests": 0, "max_in_window": 0}


@pytest.mark.parametrize("window_ms", ["9", "60001", "soon"])
def test_a_window_outside_10_ms_to_60_s_is_refused(empty_api: httpx.Client, window_ms: str) -> None:
    response = empty_api.get("/_admin/rate", params={"window_ms": window_ms})
    assert response.status_code == 400
    assert response.json()["error"].startswith("window_ms: ")


def test_the_window_is_half_open() -> None:
    # Arrivals exactly one window apart never share a window.
    assert _max_in_window([0.0, 1.0, 2.0], 1.0) == 1
    assert _max_in_window([0.0, 0.5, 0.99, 1.0, 1.2, 5.0], 1.0) == 4
    assert _max_in_window([], 1.0) == 0


def test_only_the_latest_arrivals_are_kept_but_all_are_counted() -> None:
    state = State()
    for _ in range(MAX_ARRIVALS + 5):
        state.record_arrival()
    report = state.rate(60_000)
    assert (report.requests, report.max_in_window) == (MAX_ARRIVALS + 5, MAX_ARRIVALS)
