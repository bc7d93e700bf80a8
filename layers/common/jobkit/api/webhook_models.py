"""Bodies of the webhook routes: subscriptions, their secrets' rotation, the delivery log."""

import os
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, get_args

from pydantic import BaseModel, ConfigDict, Field

from jobkit.adapters.events import EventType
from jobkit.api.models import StrictBody
from jobkit.domain.envelope import Identifier

if TYPE_CHECKING:
    from jobkit.webhooks.subscriptions import Subscription


# https anywhere; plain http to loopback only where the stack allows it (the local stack, whose
# API function's environment says so): the document states the rule its stack applies.
# A URL is ASCII (RFC 3986: anything else is percent-encoded), which every regex engine agrees on.
_HTTPS = r"https://[A-Za-z0-9](?:[A-Za-z0-9.\-]*[A-Za-z0-9])?(?::\d{1,5})?(?:/[!-~]*)?"
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_LOOPBACK = rf"http://(?:localhost|127(?:\.{_OCTET}){{3}}|\[::1\])(?::\d{{1,5}})?(?:/[!-~]*)?"
_LOCAL = os.environ.get("ALLOW_LOOPBACK_WEBHOOKS", "").lower() == "true"
WEBHOOK_URL = f"^(?:{_HTTPS}|{_LOOPBACK})$" if _LOCAL else f"^{_HTTPS}$"


def _every_event_type() -> list[EventType]:
    return list(get_args(EventType))


class NewSubscription(StrictBody):
    client_id: Identifier
    url: str = Field(
        max_length=2048,
        pattern=WEBHOOK_URL,
        description="https (plain http to loopback only on the local stack).",
    )
    event_types: list[EventType] = Field(default_factory=_every_event_type, min_length=1)
    rate_per_second: float = Field(5.0, gt=0, le=1000)


class RotateSecret(StrictBody):
    grace_seconds: int = Field(
        86400,
        alias="graceSeconds",
        ge=0,
        le=7 * 86400,
        description="How long the secrets signing now go on signing beside the new one.",
    )

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class RotatedSecretOut(BaseModel):
    client_id: str
    subscription_id: str
    signing_secret: str = Field(description="The new secret, shown once.")
    version: int
    # Every key that signs deliveries now, and until when (none: no end).
    signing: list["SigningKeyOut"]


class SigningKeyOut(BaseModel):
    version: int
    retires_at: datetime | None


class SubscriptionOut(BaseModel):
    client_id: str
    subscription_id: str
    url: str
    event_types: list[str]
    enabled: bool
    rate_per_second: float
    disabled_reason: str | None = None
    signing_secret: str | None = Field(None, description="Only in the creation answer.")

    @classmethod
    def of(cls, sub: "Subscription", secret: str | None = None) -> "SubscriptionOut":
        """A subscription as the API shows it; its signing secret only when just created."""
        return cls(
            client_id=sub.client_id,
            subscription_id=sub.subscription_id,
            url=sub.url,
            event_types=sorted(sub.event_types),
            enabled=sub.enabled,
            rate_per_second=sub.rate_per_second,
            disabled_reason=sub.disabled_reason,
            signing_secret=secret,
        )


class DeliveryOut(BaseModel):
    delivery_id: str
    event_id: str
    subscription_id: str
    status: str
    attempts: int
    signed_with: list[int] = Field(
        [], description="The versions of the secrets that signed the last attempt."
    )
    last_http_status: int | None
    latency_ms: float | None
    last_error: str
    updated_at: datetime

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> "DeliveryOut":
        """A row of the delivery log (``jobkit.webhooks.subscriptions.DeliveryLog``), where
        -1 stands for no HTTP status yet."""
        http_status = int(row.get("last_http_status", -1))
        latency = row.get("latency_ms")
        return cls(
            delivery_id=row["delivery_id"],
            event_id=row.get("event_id", ""),
            subscription_id=row.get("subscription_id", ""),
            status=row.get("status", ""),
            attempts=int(row.get("attempts", 0)),
            signed_with=[int(version) for version in row.get("signed_with", [])],
            last_http_status=http_status if http_status >= 0 else None,
            latency_ms=float(latency) if latency else None,
            last_error=row.get("last_error", ""),
            updated_at=row["updated_at"],
        )
