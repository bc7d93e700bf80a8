"""External calls within a time budget: token waits, retries and attempts end within it.

The external system here is slow on a fake clock, behind the real HTTP client: nothing sleeps.
"""

from types import SimpleNamespace
from typing import Any

import httpx
import httpx_retries.retry
import pytest

from jobkit.errors import ExternalUnavailableError
from jobkit.external import ExternalSystem
from jobkit.http_client import build_http_client
from jobkit.ratelimit import OutOfTimeError, TokenBucket, time_budget
from tests.unit.pipeline import FakeClock

TIMEOUT = 5.0  # the template's ExternalTimeoutSeconds on AWS
ATTEMPTS = 3


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    clock = FakeClock()
    # httpx-retries sleeps between attempts: on the fake clock too.
    monkeypatch.setattr(httpx_retries.retry, "time", SimpleNamespace(sleep=clock.sleep))
    return clock


def _bucket(aws: Any, clock: FakeClock, rate: float = 20, burst: int = 40) -> TokenBucket:
    return TokenBucket(
        aws.tables["ControlTable"],
        "external.test",
        rate=rate,
        burst=burst,
        clock=clock.time,
        sleep=clock.sleep,
    )


# -- one external call within its budget ------------------------------------------------------


def test_retries_stop_when_a_whole_attempt_no_longer_fits_the_budget(
    aws: Any, clock: FakeClock
) -> None:
    # Given an external system that takes 2 s to answer 503, every time
    sent: list[float] = []

    def unavailable(request: httpx.Request) -> httpx.Response:
        sent.append(clock.now)
        clock.sleep(2.0)
        return httpx.Response(503)

    external = _external(aws, clock, unavailable)
    # When a call is made within a 10 s budget (an attempt may take 2 + 5 s)
    start = clock.now
    with (
        time_budget(lambda: start + 10 - clock.now),
        pytest.raises(ExternalUnavailableError, match="HTTP 503 after retries"),
    ):
        external.get("/v1/clients/acme/records")
    # Then the third attempt is not started (after two answers, under 7 s are left): the call
    # fails with the external system's last answer, within its budget
    assert len(sent) == 2
    assert clock.now - start <= 10
    # and outside of a budget the same call makes its three attempts
    with pytest.raises(ExternalUnavailableError):
        external.get("/v1/clients/acme/records")
    assert len(sent) == 2 + 3


def test_a_retry_after_that_would_leave_no_room_for_the_attempt_ends_the_call(
    aws: Any, clock: FakeClock
) -> None:
    # Given an external system that answers at once with 429 and Retry-After: 5
    sent: list[float] = []

    def throttled(request: httpx.Request) -> httpx.Response:
        sent.append(clock.now)
        return httpx.Response(429, headers={"Retry-After": "5"})

    external = _external(aws, clock, throttled)
    # When a call is made with 13 s left
    start = clock.now
    with (
        time_budget(lambda: start + 13 - clock.now),
        pytest.raises(ExternalUnavailableError, match="RetryOutOfTime"),
    ):
        external.get("/v1/clients/acme/records")
    # Then the first retry waits the 5 s asked (8 s are left, an attempt may take 7), the
    # second would leave 3 s: the call ends there, in time, never retrying early
    assert [round(t - start, 3) for t in sent] == [0, 5]
    assert clock.now - start <= 13


def test_a_first_attempt_that_does_not_fit_is_not_sent_and_says_so(
    aws: Any, clock: FakeClock
) -> None:
    sent: list[float] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(clock.now)
        return httpx.Response(200, json={})

    external = _external(aws, clock, answer)
    with time_budget(lambda: 6.5), pytest.raises(OutOfTimeError, match="6.5 s left"):
        external.get("/v1/clients/acme/records")
    assert sent == []


def test_a_token_wait_is_cut_to_the_budget_and_a_retry_without_a_token_fails_as_the_call(
    aws: Any, clock: FakeClock
) -> None:
    # Given a provider limit of one request per 2 s, and an external system answering 503
    sent: list[float] = []

    def unavailable(request: httpx.Request) -> httpx.Response:
        sent.append(clock.now)
        return httpx.Response(503)

    external = _external(aws, clock, unavailable, bucket=_bucket(aws, clock, rate=0.5, burst=1))
    # When a call has 8 s: its retry would wait 2 s for a token, and only 1 s may be waited
    start = clock.now
    with time_budget(lambda: start + 8 - clock.now), pytest.raises(ExternalUnavailableError) as err:
        external.get("/v1/clients/acme/records")
    # Then the retry is not sent and the call fails as its first attempt did
    assert len(sent) == 1
    assert "RetryOutOfTime" in str(err.value)
    assert clock.now - start <= 8
    # And a first attempt that cannot get its token in time is the caller's lack of time
    with time_budget(lambda: 7.5), pytest.raises(OutOfTimeError, match="within the 0.5 s left"):
        external.get("/v1/clients/acme/records")
    assert len(sent) == 1


def test_a_token_wait_never_sleeps_past_its_patience(aws: Any, clock: FakeClock) -> None:
    # Given a limit of one request per second, its token just taken
    bucket = TokenBucket(
        aws.tables["ControlTable"],
        "external.test",
        rate=1,
        burst=1,
        max_wait_seconds=1.0,
        clock=clock.time,
        sleep=clock.sleep,
    )
    bucket.acquire()
    start = clock.now
    # When the next request waits for its token (the wait is jittered up to 1.5 x)
    bucket.acquire()
    # Then it slept no longer than its patience: what a budget's worst case counts on
    assert 0 < clock.now - start <= 1.0


# -- helpers ------------------------------------------------------------------------------


def _external(
    aws: Any,
    clock: FakeClock,
    answer: Any,
    bucket: TokenBucket | None = None,
) -> ExternalSystem:
    http = build_http_client(
        "http://external.test",
        TIMEOUT,
        ATTEMPTS,
        bucket or _bucket(aws, clock),
        transport=httpx.MockTransport(answer),
    )
    return ExternalSystem(http)
