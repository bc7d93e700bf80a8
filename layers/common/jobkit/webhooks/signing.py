"""Signed webhooks, as the Standard Webhooks specification has them, and what each delivery
answer means.

Every delivery carries ``webhook-id`` (the delivery id, the same on every retry: the
receiver's idempotency key), ``webhook-timestamp`` (unix seconds of this attempt) and
``webhook-signature``: ``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">``, one per
signing secret, space-separated, so a secret rotates without downtime. A secret is
``whsec_<base64 of 32 random bytes>``; the HMAC key is those bytes. Receivers verify with the
specification's libraries (``standardwebhooks``, ``svix``), which also refuse timestamps
more than five minutes away.
"""

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
SECRET_PREFIX = "whsec_"
MAX_ATTEMPTS = 8


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def signing_key(secret: str) -> bytes:
    """The HMAC key: the secret's base64 bytes; for a secret made before secrets were base64
    (not valid base64), its own bytes, so its deliveries still go out signed until it is
    rotated (a receiver passes those bytes to the library)."""
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        return base64.b64decode(encoded, validate=True)
    except binascii.Error:
        return encoded.encode()


def signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """One ``v1,<base64>`` signature of this message with one secret."""
    key = signing_key(secret)
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def signature_header(
    signing_secrets: Sequence[str], message_id: str, timestamp: int, body: bytes
) -> str:
    """The ``webhook-signature`` value: one signature per secret, space-separated."""
    return " ".join(signature(s, message_id, timestamp, body) for s in signing_secrets)


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
