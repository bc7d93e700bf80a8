"""A per-provider token bucket shared by every Lambda container, kept in DynamoDB.

Fetch, ack and probe calls all take a token before each HTTP attempt (retries included), so a
large run backs off instead of overwhelming the external system, however many processor
containers run at once.

Written by hand: Powertools has no rate limiter, and the maintained Python limiters
(pyrate-limiter, limits) keep their buckets in process memory or Redis, not DynamoDB. The
bucket is GCRA, the token bucket expressed as one number, the "theoretical arrival time"
(TAT): a request at ``now`` is allowed when ``max(TAT, now) + interval - now <= burst *
interval``, and moves TAT on by one interval. Each attempt is a single conditional UpdateItem.

The httpx transport that takes a token per attempt is ``jobkit.adapters.http_client``'s, so that the
bucket (and ``RateLimitedError``, which the processor handles) come without httpx.

The caller's time budget lives here too (``time_budget``): the processor must finish its batch
inside the Lambda timeout, and both the bucket's waits and the HTTP retries have to stop in
time. A context variable carries it to them through the job's rules, which call the external
system without knowing about invocations (and this module is the one both already import).
"""

import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from botocore.exceptions import ClientError

from jobkit.adapters.aws import condition_failed
from jobkit.domain.errors import TransientError

_MS = 1000
# How long a request waits for a token by default (every function's bucket is built with it).
# The processor's worst case of an external call counts it once per attempt.
DEFAULT_PATIENCE_SECONDS = 10.0


class RateLimitedError(TransientError):
    """No token became free within the caller's patience."""


class OutOfTimeError(TransientError):
    """The caller's time budget ended before an external call could be tried: nothing was sent,
    so it says nothing about the external system (no circuit failure, no retry used up)."""


_TIME_LEFT: ContextVar[Callable[[], float] | None] = ContextVar("jobkit_time_left", default=None)


@contextmanager
def time_budget(seconds_left: Callable[[], float]) -> Iterator[None]:
    """External calls made inside wait, retry and start attempts only within
    ``seconds_left()``, read each time from the caller's clock (the Lambda context's)."""
    token = _TIME_LEFT.set(seconds_left)
    try:
        yield
    finally:
        _TIME_LEFT.reset(token)


def seconds_left() -> float | None:
    """What is left of the current time budget; None outside of one."""
    left = _TIME_LEFT.get()
    return None if left is None else left()


class TokenBucket:
    """``rate`` requests per second on average, up to ``burst`` at once, for one provider."""

    def __init__(
        self,
        table: Any,
        provider: str,
        rate: float,
        burst: int,
        max_wait_seconds: float = DEFAULT_PATIENCE_SECONDS,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self._table = table
        self._key = {"id": f"ratelimit#{provider}"}
        self._interval_ms = max(1, int(_MS / rate))
        self._burst = burst
        self._max_wait = max_wait_seconds
        self._clock = clock
        self._sleep = sleep
        self._known_tat = 0  # last TAT seen here: picks which conditional write to try first

    def acquire(self, max_wait_seconds: float | None = None, keep_seconds: float = 0.0) -> None:
        """Take one token, waiting for it; raises RateLimitedError past ``max_wait_seconds``
        (the bucket's own when not given). Inside a time budget, waits only as long as leaves
        ``keep_seconds`` (the request the token is for) and raises OutOfTimeError past that."""
        patience = self._max_wait if max_wait_seconds is None else max(0.0, max_wait_seconds)
        budget = seconds_left()
        out_of_time = budget is not None and budget - keep_seconds < patience
        if budget is not None and out_of_time:
            patience = max(0.0, budget - keep_seconds)
        deadline = self._clock() + patience
        while True:
            now = int(self._clock() * _MS)
            wait_ms = self._try_take(now)
            if wait_ms == 0:
                return
            if self._clock() + wait_ms / _MS > deadline:
                if out_of_time:
                    raise OutOfTimeError(
                        f"rate limit: no request slot free within the {patience:.1f} s left"
                    )
                raise RateLimitedError(f"rate limit: no request slot free within {patience:g} s")
            # Jitter spreads the containers that were refused together; never past the
            # patience, so that it bounds the wait (a budget's worst case counts on it).
            jittered = wait_ms / _MS * random.uniform(1.0, 1.5)  # noqa: S311
            self._sleep(max(0.0, min(jittered, deadline - self._clock())))

    def _try_take(self, now: int) -> int:
        """0 if a token was taken, else how long (ms) until one may be free."""
        attempts = (self._take_busy, self._take_idle)
        if self._known_tat <= now:
            attempts = (self._take_idle, self._take_busy)
        for attempt in attempts:
            if attempt(now):
                return 0
        return max(1, self._known_tat - now - (self._burst - 1) * self._interval_ms)

    def _take_idle(self, now: int) -> bool:
        """The bucket is full (TAT in the past): TAT becomes now + one interval."""
        return self._update(
            "SET tat = :next, expiration = :expires",
            "attribute_not_exists(tat) OR tat <= :now",
            {":next": now + self._interval_ms, ":now": now},
        )

    def _take_busy(self, now: int) -> bool:
        """Tokens are being used: TAT moves on one interval if the burst allows it."""
        return self._update(
            "SET tat = tat + :interval, expiration = :expires",
            "tat > :now AND tat <= :limit",
            {
                ":interval": self._interval_ms,
                ":now": now,
                ":limit": now + (self._burst - 1) * self._interval_ms,
            },
        )

    def _update(self, expression: str, condition: str, values: dict[str, int]) -> bool:
        values = {**values, ":expires": int(self._clock()) + 3600}
        try:
            response = self._table.update_item(
                Key=self._key,
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeValues=values,
                ReturnValues="UPDATED_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if not condition_failed(exc):
                raise
            old: dict[str, Any] = dict(exc.response.get("Item") or {})  # type: ignore[call-overload]
            if "tat" in old:
                self._known_tat = int(old["tat"]["N"])
            else:  # a store that does not return the item: assume the bucket is empty
                self._known_tat = values[":now"] + self._burst * self._interval_ms
            return False
        self._known_tat = int(response["Attributes"]["tat"])
        return True
