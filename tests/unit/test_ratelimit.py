"""The token buckets (GCRA in DynamoDB) of the provider and of webhook endpoints, on moto, with
a clock the test drives."""

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from jobkit.adapters.http_client import RateLimitedTransport
from jobkit.adapters.ratelimit import RateLimitedError, TokenBucket
from jobkit.webhooks.delivery import EndpointPacer
from jobkit.webhooks.subscriptions import Subscription


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0
        self.slept: list[float] = []

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def _bucket(aws: Any, clock: FakeClock, rate: float = 10, burst: int = 5, **kw: Any) -> TokenBucket:
    return TokenBucket(
        aws.tables["ControlTable"],
        "external.example.com",
        rate=rate,
        burst=burst,
        clock=clock.time,
        sleep=clock.sleep,
        **kw,
    )


def _max_in_window(times: list[float], window: float) -> int:
    return max(sum(1 for t in times if start <= t < start + window) for start in times)


def test_a_burst_passes_at_once_then_requests_are_paced_at_the_rate(aws: Any) -> None:
    clock = FakeClock()
    bucket = _bucket(aws, clock)
    granted = []
    for _ in range(25):
        bucket.acquire()
        granted.append(clock.now)
    start = granted[0]
    assert granted[:5] == [start] * 5  # the burst: no waiting
    assert clock.slept and granted[-1] - start >= (25 - 5) / 10  # the rest: 10 per second
    assert _max_in_window(granted, 1.0) <= 5 + 10


def test_two_containers_share_one_bucket(aws: Any) -> None:
    clock = FakeClock()
    first, second = _bucket(aws, clock), _bucket(aws, clock)
    granted = []
    for _ in range(20):
        for bucket in (first, second):
            bucket.acquire()
            granted.append(clock.now)
    assert _max_in_window(granted, 1.0) <= 5 + 10
    assert granted[-1] - granted[0] >= (40 - 5) / 10


def test_no_slot_within_the_callers_patience_is_a_clear_error(aws: Any) -> None:
    clock = FakeClock()
    bucket = _bucket(aws, clock, rate=1, burst=1, max_wait_seconds=0.5)
    bucket.acquire()
    with pytest.raises(RateLimitedError, match="no request slot free within 0.5 s"):
        bucket.acquire()


def test_every_http_attempt_takes_a_token(aws: Any) -> None:
    clock = FakeClock()
    bucket = _bucket(aws, clock, rate=10, burst=2)
    sent = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(clock.now)
        return httpx.Response(200, json={})

    transport = RateLimitedTransport(bucket, httpx.MockTransport(answer))
    with httpx.Client(transport=transport, base_url="http://external.example.com") as http:
        for _ in range(6):
            http.get("/v1/clients/acme/health")
    assert len(sent) == 6 and sent[-1] - sent[0] >= (6 - 2) / 10


def _subscription(subscription_id: str, rate: float) -> Subscription:
    return Subscription(
        client_id="acme",
        subscription_id=subscription_id,
        url="https://hooks.example.com/in",
        event_types=frozenset({"record.status_changed"}),
        secret_name="s",
        rate_per_second=rate,
        created_at=datetime.now(UTC),
    )


def test_an_endpoint_is_paced_at_its_rate_across_delivery_containers(aws: Any) -> None:
    clock = FakeClock()
    containers = [
        EndpointPacer(aws.tables["ControlTable"], clock=clock.time, sleep=clock.sleep)
        for _ in range(2)
    ]
    slow, other = _subscription("slow", rate=2), _subscription("other", rate=2)
    sent = []
    for _ in range(6):
        for pacer in containers:
            pacer.wait(slow)
            sent.append(clock.now)
    # Twelve requests from two containers, spaced as one endpoint at 2 per second allows.
    assert all(b - a >= 0.5 for a, b in zip(sent, sent[1:], strict=False))
    before = clock.now
    containers[0].wait(other)  # another endpoint has its own pace: no wait
    assert clock.now == before


def test_an_endpoint_busy_past_the_patience_is_a_clear_error(aws: Any) -> None:
    clock = FakeClock()
    pacer = EndpointPacer(
        aws.tables["ControlTable"], max_wait_seconds=0.5, clock=clock.time, sleep=clock.sleep
    )
    pacer.wait(_subscription("slow", rate=1))
    with pytest.raises(RateLimitedError, match="no request slot free within 0.5 s"):
        pacer.wait(_subscription("slow", rate=1))


def test_waiting_for_an_endpoint_stops_at_the_time_the_invocation_has_left(aws: Any) -> None:
    clock = FakeClock()
    pacer = EndpointPacer(aws.tables["ControlTable"], clock=clock.time, sleep=clock.sleep)
    slow = _subscription("slow", rate=0.2)  # one request every 5 s
    pacer.wait(slow, max_wait_seconds=2.0)  # a free slot: no wait at all
    with pytest.raises(RateLimitedError, match="within 2 s"):
        pacer.wait(slow, max_wait_seconds=2.0)  # the next slot is 5 s away
    assert clock.slept == []
    pacer.wait(slow)  # the pacer's own patience (10 s) covers it
    assert 5.0 <= clock.now - 1_800_000_000.0 <= 7.5
