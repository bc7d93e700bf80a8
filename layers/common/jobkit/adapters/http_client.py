"""The httpx client to the external system: timeouts, retries with backoff honouring
Retry-After, and the provider's rate limit taken before every attempt.

Apart from ``jobkit.adapters.external`` so that importing the external system's interface does not
import httpx: ``Connections`` imports this module when it builds its client, on the first
external call of a container, and a cold start that makes none (the planner, a batch of
record items) does not pay for httpx, httpx-retries and the TLS context.

Inside a caller's time budget (``jobkit.adapters.ratelimit.time_budget``, set by the processor) a
call ends in time: an attempt is sent only while a whole one (its timeout) still fits, the token
wait and the backoff are cut to leave it room, and no retry starts once it would not fit.
"""

from typing import Any

import httpx
from httpx_retries import Retry, RetryTransport

from jobkit.adapters.external import (
    MAX_BACKOFF_SECONDS,
    MAX_CONNECT_SECONDS,
    RETRYABLE_STATUS,
    longest_attempt_seconds,
)
from jobkit.adapters.ratelimit import OutOfTimeError, TokenBucket, seconds_left

_ATTEMPT = "jobkit.attempt"  # request extension: attempts of this call so far, retries included


class RetryOutOfTime(httpx.TransportError):  # noqa: N818 - named for the log line it makes
    """A retry would not fit the time left (its backoff or its rate-limit token): the call
    fails as its previous attempt did, the external system's failure, not the caller's lack
    of time (a retry follows only an answer that failed)."""


class RateLimitedTransport(httpx.BaseTransport):
    """Takes a token before every request it sends, so retries are paced too."""

    def __init__(
        self,
        bucket: TokenBucket | None,
        transport: httpx.BaseTransport,
        attempt_seconds: float = 0.0,
    ) -> None:
        self._bucket = bucket
        self._transport = transport
        self._attempt_seconds = attempt_seconds

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        attempt = int(request.extensions.get(_ATTEMPT, 0)) + 1
        request.extensions[_ATTEMPT] = attempt
        try:
            left = seconds_left()
            # Later attempts were let through by the retry policy, which keeps them room.
            if attempt == 1 and left is not None and left < self._attempt_seconds:
                raise OutOfTimeError(
                    f"{left:.1f} s left, an attempt may take {self._attempt_seconds:g} s"
                )
            if self._bucket is not None:
                self._bucket.acquire(keep_seconds=self._attempt_seconds)
        except OutOfTimeError as exc:
            if attempt == 1:
                raise  # nothing was sent: the caller's own lack of time
            raise RetryOutOfTime(str(exc), request=request) from exc
        return self._transport.handle_request(request)

    def close(self) -> None:
        self._transport.close()


class BudgetedRetry(Retry):
    """httpx-retries' policy, within the caller's time budget: a retry only if its backoff
    (a Retry-After honoured in full, never cut short) and a whole attempt still fit. Outside a
    budget, exactly httpx-retries' own."""

    attempt_seconds = 0.0  # the longest one attempt may take (its connect and its answer)

    def is_exhausted(self) -> bool:
        # Exhausted, the last answer stands: "HTTP 503 after retries", "timed out".
        left = seconds_left()
        return super().is_exhausted() or (left is not None and left < self.attempt_seconds)

    def _calculate_sleep(self, headers: Any) -> float:
        wait = super()._calculate_sleep(headers)
        left = seconds_left()
        if left is not None and left - wait < self.attempt_seconds:
            raise RetryOutOfTime(
                f"a retry after {wait:.1f} s would leave {left - wait:.1f} s, "
                f"an attempt may take {self.attempt_seconds:g} s"
            )
        return wait

    def copy_with(self, *args: Any, **kwargs: Any) -> Retry:
        # Every retry is a copy (``increment``): keep the attempt's length on it.
        copy = super().copy_with(*args, **kwargs)
        if isinstance(copy, BudgetedRetry):
            copy.attempt_seconds = self.attempt_seconds
        return copy


def build_http_client(
    base_url: str,
    timeout_seconds: float,
    max_attempts: int,
    bucket: TokenBucket | None = None,
    transport: httpx.BaseTransport | None = None,
) -> httpx.Client:
    """An httpx client that retries transient answers, bounded so a Lambda never waits long,
    and takes a rate-limit token before every attempt (``transport`` sends them: the
    network's by default)."""
    retry = BudgetedRetry(
        total=max_attempts - 1,
        allowed_methods=["GET", "POST"],  # our POSTs (acks) are idempotent on the other side
        status_forcelist=RETRYABLE_STATUS,
        backoff_factor=0.2,
        respect_retry_after_header=True,
        max_backoff_wait=MAX_BACKOFF_SECONDS,
        total_timeout=timeout_seconds * max_attempts,
    )
    retry.attempt_seconds = longest_attempt_seconds(timeout_seconds)
    inner: httpx.BaseTransport = RateLimitedTransport(
        bucket, transport or httpx.HTTPTransport(), attempt_seconds=retry.attempt_seconds
    )
    return httpx.Client(
        base_url=base_url,
        timeout=httpx.Timeout(timeout_seconds, connect=min(timeout_seconds, MAX_CONNECT_SECONDS)),
        transport=RetryTransport(transport=inner, retry=retry),
        headers={"user-agent": "jobkit"},
    )
