"""API keys: random, shown once, stored only as hashes, with scopes, expiry and revocation.

A key reads ``jk_<key id>_<secret>``. The id locates the stored row; the secret (256 bits)
is only ever compared through its SHA-256 digest, in constant time. Nothing here logs or
returns a secret except ``KeyStore.create``, which returns it once.
"""

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field

from jobkit.adapters.aws import condition_failed, pages

_KEY = re.compile(r"^jk_(?P<key_id>[0-9a-f]{16})_(?P<secret>[A-Za-z0-9_\-]{43})$")


class Scope(StrEnum):
    READ = "read"
    TRIGGER = "trigger"
    ADMIN = "admin"


class Grant(BaseModel):
    """What a key may do: scopes, and the job types and clients it is limited to."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    scopes: frozenset[Scope]
    job_types: frozenset[str] = frozenset()  # empty: every job type
    clients: frozenset[str] = frozenset()  # empty: every client

    def allows(
        self, scope: Scope, job_type: str | None = None, client_ids: list[str] | None = None
    ) -> bool:
        """Admin implies trigger, trigger implies read. The job and client limits apply to
        every scope: ``client_ids`` are the clients an action touches (None: it names none)."""
        return self._has(scope) and self._covers_job(job_type) and self._covers_clients(client_ids)

    def _has(self, scope: Scope) -> bool:
        if Scope.ADMIN in self.scopes:
            return True
        if scope is Scope.READ:
            return bool(self.scopes & {Scope.READ, Scope.TRIGGER})
        return scope in self.scopes

    def _covers_job(self, job_type: str | None) -> bool:
        return job_type is None or not self.job_types or job_type in self.job_types

    def _covers_clients(self, client_ids: list[str] | None) -> bool:
        # A client-limited key acting on clients must name them, and only its own: an empty
        # list (a run of every client) is not within the limit.
        if client_ids is None or not self.clients:
            return True
        return bool(client_ids) and set(client_ids) <= self.clients


class ApiKey(Grant):
    """A stored key: never its secret, only the secret's digest."""

    key_id: str
    name: str = Field(max_length=128)
    digest: str
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None

    def is_usable(self, now: datetime) -> bool:
        if self.revoked_at is not None:
            return False
        return self.expires_at is None or now < self.expires_at


@dataclass(frozen=True)
class ParsedKey:
    key_id: str
    secret: str

    def __repr__(self) -> str:  # never print the secret, even by accident
        return f"ParsedKey(key_id={self.key_id!r}, secret=***)"


def parse_key(presented: str | None) -> ParsedKey | None:
    """None for anything that is not shaped like one of our keys."""
    if not presented:
        return None
    match = _KEY.match(presented.strip())
    return ParsedKey(match["key_id"], match["secret"]) if match else None


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def matches(key: ApiKey, presented: ParsedKey) -> bool:
    return hmac.compare_digest(key.digest, digest(presented.secret))


class KeyStore:
    """The Keys table, partition key ``key_id``."""

    def __init__(self, table: Any) -> None:
        self._table = table

    def create(
        self,
        name: str,
        scopes: set[Scope],
        *,
        job_types: set[str] | None = None,
        clients: set[str] | None = None,
        expires_at: datetime | None = None,
    ) -> tuple[ApiKey, str]:
        """A new key; the returned plaintext is the only time it exists outside its owner."""
        key_id = secrets.token_hex(8)
        secret = secrets.token_urlsafe(32)
        key = ApiKey(
            key_id=key_id,
            name=name,
            digest=digest(secret),
            scopes=frozenset(scopes),
            job_types=frozenset(job_types or ()),
            clients=frozenset(clients or ()),
            created_at=datetime.now(UTC),
            expires_at=expires_at,
        )
        item = key.model_dump(mode="json", exclude_none=True)
        for name_ in ("scopes", "job_types", "clients"):
            item[name_] = sorted(item[name_])
        self._table.put_item(Item=item, ConditionExpression="attribute_not_exists(key_id)")
        return key, f"jk_{key_id}_{secret}"

    def get(self, key_id: str) -> ApiKey | None:
        item = self._table.get_item(Key={"key_id": key_id}).get("Item")
        return ApiKey.model_validate(item) if item else None

    def authenticate(self, presented: str | None, now: datetime | None = None) -> ApiKey | None:
        """The key's record when the presented key is valid, usable and matches; else None."""
        parsed = parse_key(presented)
        if parsed is None:
            return None
        key = self.get(parsed.key_id)
        if key is None or not matches(key, parsed):
            return None
        return key if key.is_usable(now or datetime.now(UTC)) else None

    def list(self) -> list[ApiKey]:
        items = [item for page in pages(self._table.scan) for item in page.get("Items", [])]
        return sorted((ApiKey.model_validate(i) for i in items), key=lambda k: k.created_at)

    def revoke(self, key_id: str) -> bool:
        try:
            self._table.update_item(
                Key={"key_id": key_id},
                UpdateExpression="SET revoked_at = :now",
                ConditionExpression="attribute_exists(key_id)",
                ExpressionAttributeValues={":now": datetime.now(UTC).isoformat()},
            )
        except ClientError as exc:
            if not condition_failed(exc):
                raise
            return False
        return True
