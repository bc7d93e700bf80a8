"""The httpx client to the external system: timeouts, retries with backoff honouring
Retry-After, and the provider's rate limit taken before every attempt.

Apart from ``jobkit.external`` so that importing the external system's interface does not
import httpx: ``Connections`` imports this module when it builds its client, on the first
external call of a container, and a cold start that makes none (the planner, a batch of
record items) does not pay for httpx, httpx-retries and the TLS context.
"""

import httpx
from httpx_retries import Retry, RetryTransport

from jobkit.external import RETRYABLE_STATUS
from jobkit.ratelimit import TokenBucket


class RateLimitedTransport(httpx.BaseTransport):
    """Takes a token before every request it sends, so retries are paced too."""

    def __init__(self, bucket: TokenBucket, transport: httpx.BaseTransport) -> None:
        self._bucket = bucket
        self._transport = transport

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self._bucket.acquire()
        return self._transport.handle_request(request)

    def close(self) -> None:
        self._transport.close()


def build_http_client(
    base_url: str,
    timeout_seconds: float,
    max_attempts: int,
    bucket: TokenBucket | None = None,
) -> httpx.Client:
    """An httpx client that retries transient answers, bounded so a Lambda never waits long,
    and takes a rate-limit token before every attempt."""
    retry = Retry(
        total=max_attempts - 1,
        allowed_methods=["GET", "POST"],  # our POSTs (acks) are idempotent on the other side
        status_forcelist=RETRYABLE_STATUS,
        backoff_factor=0.2,
        respect_retry_after_header=True,
        max_backoff_wait=5.0,
        total_timeout=timeout_seconds * max_attempts,
    )
    inner: httpx.BaseTransport = httpx.HTTPTransport()
    if bucket is not None:
        inner = RateLimitedTransport(bucket, inner)
    return httpx.Client(
        base_url=base_url,
        timeout=httpx.Timeout(timeout_seconds, connect=min(timeout_seconds, 2.0)),
        transport=RetryTransport(transport=inner, retry=retry),
        headers={"user-agent": "jobkit"},
    )
