"""Webhook subscriptions per client, and the delivery log.

Subscriptions table: partition ``client_id``, sort ``subscription_id``. The signing secret
lives in Secrets Manager; the row keeps only its name. Deliveries table: one row per
delivery (event x subscription) with attempts, last status, latency and outcome.
"""

import ipaddress
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any, get_args
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from jobkit.adapters.events import EventType
from jobkit.domain.envelope import Identifier
from jobkit.webhooks.destinations import check_url_host
from jobkit.webhooks.signing_keys import SigningKeys

EVENT_TYPES = frozenset(get_args(EventType))
DELIVERY_RETENTION = timedelta(days=30)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_endpoint(url: str, allow_loopback_http: bool) -> str:
    """https anywhere but into a private network (``destinations``: checked again, after
    resolving, at each delivery); plain http only to loopback, and only where the stack
    allows it."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        check_url_host(url, allow_loopback_http)
        return url
    if parts.scheme == "http" and parts.hostname and _loopback(parts.hostname):
        if allow_loopback_http:
            return url
        raise ValueError("url: http is only accepted on loopback for the local stack")
    raise ValueError("url: must be https (or http on loopback for the local stack)")


class Subscription(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    client_id: Identifier
    subscription_id: str
    url: str = Field(max_length=2048)
    event_types: frozenset[str]
    secret_name: str
    enabled: bool = True
    rate_per_second: float = Field(5.0, gt=0, le=1000)
    created_at: datetime
    disabled_reason: str | None = None

    @field_validator("event_types")
    @classmethod
    def _known(cls, value: frozenset[str]) -> frozenset[str]:
        unknown = value - EVENT_TYPES
        if unknown or not value:
            raise ValueError(f"unknown event types {sorted(unknown)}; known: {sorted(EVENT_TYPES)}")
        return value

    def wants(self, event_type: str) -> bool:
        return self.enabled and event_type in self.event_types


class SubscriptionStore:
    def __init__(self, table: Any, secrets_client: Any, secret_prefix: str) -> None:
        self._table = table
        self._secrets = secrets_client
        self._prefix = secret_prefix

    def add(
        self,
        client_id: str,
        url: str,
        event_types: set[str],
        *,
        allow_loopback_http: bool,
        rate_per_second: float = 5.0,
    ) -> tuple[Subscription, str]:
        """A new subscription and its signing secret (returned once, kept in Secrets Manager)."""
        check_endpoint(url, allow_loopback_http)
        subscription_id = secrets.token_hex(8)
        keys = SigningKeys.first()
        name = f"{self._prefix}/{client_id}/{subscription_id}"
        subscription = Subscription(
            client_id=client_id,
            subscription_id=subscription_id,
            url=url,
            event_types=frozenset(event_types),
            secret_name=name,
            rate_per_second=rate_per_second,
            created_at=datetime.now(UTC),
        )
        self._secrets.create_secret(Name=name, SecretString=keys.model_dump_json())
        item = subscription.model_dump(mode="json", exclude_none=True)
        item["event_types"] = sorted(item["event_types"])
        item["rate_per_second"] = str(rate_per_second)
        self._table.put_item(Item=item)
        return subscription, keys.newest.secret

    def rotate_secret(
        self, client_id: str, subscription_id: str, grace: timedelta
    ) -> tuple[Subscription, SigningKeys] | None:
        """A new signing secret (the newest key, returned once); the ones signing now go on
        signing for ``grace``. None for an unknown subscription."""
        subscription = self.get(client_id, subscription_id)
        if subscription is None:
            return None
        stored = self._secrets.get_secret_value(SecretId=subscription.secret_name)
        keys = SigningKeys.parse(stored["SecretString"]).rotated(grace)
        self._secrets.put_secret_value(
            SecretId=subscription.secret_name, SecretString=keys.model_dump_json()
        )
        return subscription, keys

    def for_client(self, client_id: str) -> list[Subscription]:
        items = self._table.query(
            KeyConditionExpression="client_id = :c", ExpressionAttributeValues={":c": client_id}
        ).get("Items", [])
        return [Subscription.model_validate(item) for item in items]

    def get(self, client_id: str, subscription_id: str) -> Subscription | None:
        item = self._table.get_item(
            Key={"client_id": client_id, "subscription_id": subscription_id}
        ).get("Item")
        return Subscription.model_validate(item) if item else None

    def all(self) -> list[Subscription]:
        return [Subscription.model_validate(i) for i in self._table.scan().get("Items", [])]

    def disable(self, client_id: str, subscription_id: str, reason: str) -> None:
        self._table.update_item(
            Key={"client_id": client_id, "subscription_id": subscription_id},
            UpdateExpression="SET enabled = :false, disabled_reason = :reason",
            ExpressionAttributeValues={":false": False, ":reason": reason[:500]},
        )

    def remove(self, client_id: str, subscription_id: str) -> bool:
        subscription = self.get(client_id, subscription_id)
        if subscription is None:
            return False
        self._table.delete_item(Key={"client_id": client_id, "subscription_id": subscription_id})
        self._secrets.delete_secret(
            SecretId=subscription.secret_name, ForceDeleteWithoutRecovery=True
        )
        return True


class DeliveryLog:
    """One row per delivery: attempts, last status, latency, outcome."""

    def __init__(self, table: Any) -> None:
        self._table = table

    def attempt(
        self,
        delivery_id: str,
        *,
        client_id: str,
        subscription_id: str,
        event_id: str,
        status: str,
        http_status: int | None,
        latency_ms: float,
        error: str | None = None,
        signed_with: tuple[int, ...] = (),
    ) -> int:
        """Count an attempt; ``signed_with``: the versions of the secrets that signed it."""
        now = datetime.now(UTC)
        response = self._table.update_item(
            Key={"delivery_id": delivery_id},
            UpdateExpression=(
                "SET client_id = :client, subscription_id = :sub, event_id = :event, "
                "#status = :status, last_http_status = :http, latency_ms = :latency, "
                "last_error = :error, updated_at = :now, expires_at = :expires, "
                "signed_with = :signed ADD attempts :one"
            ),
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={
                ":client": client_id,
                ":sub": subscription_id,
                ":event": event_id,
                ":status": status,
                ":http": http_status if http_status is not None else -1,
                ":latency": str(round(latency_ms, 1)),
                ":error": (error or "")[:500],
                ":now": now.isoformat(),
                ":one": 1,
                ":expires": int((now + DELIVERY_RETENTION).timestamp()),
                ":signed": list(signed_with),
            },
            ReturnValues="UPDATED_NEW",
        )
        return int(response["Attributes"]["attempts"])

    def give_up(self, delivery_id: str, reason: str) -> None:
        """The failure record: no more attempts, and why (the attempts are already counted)."""
        self._table.update_item(
            Key={"delivery_id": delivery_id},
            UpdateExpression="SET #status = :status, last_error = :error, updated_at = :now",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={
                ":status": "dead_lettered",
                ":error": reason[:500],
                ":now": datetime.now(UTC).isoformat(),
            },
        )

    def get(self, delivery_id: str) -> dict[str, Any] | None:
        item = self._table.get_item(Key={"delivery_id": delivery_id}, ConsistentRead=True).get(
            "Item"
        )
        return dict(item) if item else None

    def for_client(self, client_id: str, limit: int = 50) -> list[dict[str, Any]]:
        response = self._table.query(
            IndexName="by-client",
            KeyConditionExpression="client_id = :c",
            ExpressionAttributeValues={":c": client_id},
            ScanIndexForward=False,
            Limit=limit,
        )
        return list(response.get("Items", []))
