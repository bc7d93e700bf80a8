"""Signed webhooks: the signature scheme and what each delivery answer means.

Signature header: ``X-Jobkit-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">``.
A receiver recomputes the HMAC with its secret over the timestamp, a dot and the raw body,
compares in constant time, and refuses timestamps outside its tolerance (default 5 minutes)
so a captured request cannot be replayed later.
"""

import hashlib
import hmac
import time
from dataclasses import dataclass
from enum import StrEnum

SIGNATURE_HEADER = "X-Jobkit-Signature"
DELIVERY_HEADER = "X-Jobkit-Delivery"
TOLERANCE_SECONDS = 300
MAX_ATTEMPTS = 8


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The signature header's value for this body, now (or at ``timestamp``)."""
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def verify(
    secret: str,
    body: bytes,
    header: str,
    *,
    now: int | None = None,
    tolerance: int = TOLERANCE_SECONDS,
) -> bool:
    """What a receiver runs: the header is well formed, recent, and matches the body."""
    try:
        fields = dict(part.split("=", 1) for part in header.split(","))
        timestamp = int(fields["t"])
        received = fields["v1"]
    except (KeyError, ValueError):
        return False
    current = int(time.time()) if now is None else now
    if abs(current - timestamp) > tolerance:
        return False
    expected = sign(secret, body, timestamp).split("v1=", 1)[1]
    return hmac.compare_digest(expected, received)


class Verdict(StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"  # transient: try again after a backoff
    PERMANENT = "permanent"  # the receiver refuses this delivery: dead-letter it now
    GONE = "gone"  # 410: the endpoint is gone, disable the subscription


@dataclass(frozen=True)
class Answer:
    verdict: Verdict
    retry_after: float | None = None


def classify(status: int | None, retry_after: str | None = None) -> Answer:
    """What an HTTP answer means for a delivery; None is a timeout or connection failure."""
    if status is None:
        return Answer(Verdict.RETRY)
    if 200 <= status < 300:
        return Answer(Verdict.DELIVERED)
    if status == 410:
        return Answer(Verdict.GONE)
    if status == 429:
        return Answer(Verdict.RETRY, _seconds(retry_after))
    if status == 408 or status >= 500:
        return Answer(Verdict.RETRY)
    return Answer(Verdict.PERMANENT)


def _seconds(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None
