"""API keys: shown once, stored as digests, scoped, expiring, revocable."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from jobkit.adapters.keys import KeyStore, Scope, parse_key


@pytest.fixture
def keys(aws: Any) -> KeyStore:
    return KeyStore(aws.tables["KeysTable"])


def test_a_created_key_authenticates_and_only_its_digest_is_stored(
    keys: KeyStore, aws: Any
) -> None:
    key, plaintext = keys.create("ops", {Scope.READ})
    assert keys.authenticate(plaintext) == key
    [stored] = aws.tables["KeysTable"].scan()["Items"]
    parsed = parse_key(plaintext)
    assert parsed is not None and parsed.secret not in str(stored)
    assert "secret=***" in repr(parsed)


@pytest.mark.parametrize(
    "presented", [None, "", "jk_short", "Bearer abc", "jk_0123456789abcdef_" + "x" * 43]
)
def test_malformed_or_unknown_keys_do_not_authenticate(
    keys: KeyStore, presented: str | None
) -> None:
    assert keys.authenticate(presented) is None


def test_a_forged_secret_for_a_real_id_does_not_authenticate(keys: KeyStore) -> None:
    key, _ = keys.create("ops", {Scope.ADMIN})
    assert keys.authenticate(f"jk_{key.key_id}_{'A' * 43}") is None


def test_expired_and_revoked_keys_do_not_authenticate(keys: KeyStore) -> None:
    _, expired = keys.create(
        "old", {Scope.READ}, expires_at=datetime.now(UTC) - timedelta(seconds=1)
    )
    revoked_key, revoked = keys.create("gone", {Scope.READ})
    assert keys.revoke(revoked_key.key_id)
    assert keys.authenticate(expired) is None
    assert keys.authenticate(revoked) is None
    assert not keys.revoke("0000000000000000")


@pytest.mark.parametrize(
    ("scopes", "jobs", "clients", "ask", "job", "asked_clients", "allowed"),
    [
        ({Scope.READ}, set(), set(), Scope.READ, "a", None, True),
        ({Scope.READ}, set(), set(), Scope.TRIGGER, "a", None, False),
        ({Scope.TRIGGER}, set(), set(), Scope.READ, "a", None, True),
        ({Scope.TRIGGER}, {"a"}, set(), Scope.TRIGGER, "b", None, False),
        ({Scope.TRIGGER}, {"a"}, set(), Scope.TRIGGER, "a", None, True),
        # a run of every client (no clients named) is beyond a client-limited key
        ({Scope.TRIGGER}, set(), {"acme"}, Scope.TRIGGER, "a", [], False),
        ({Scope.TRIGGER}, set(), {"acme"}, Scope.TRIGGER, "a", ["acme", "globex"], False),
        ({Scope.TRIGGER}, set(), {"acme"}, Scope.TRIGGER, "a", ["acme"], True),
        ({Scope.TRIGGER}, set(), set(), Scope.ADMIN, None, None, False),
        ({Scope.ADMIN}, set(), set(), Scope.TRIGGER, "any", ["whoever"], True),
        # the limits bind admin keys too
        ({Scope.ADMIN}, set(), {"acme"}, Scope.ADMIN, "a", ["globex"], False),
        ({Scope.ADMIN}, {"a"}, set(), Scope.READ, "b", None, False),
        ({Scope.ADMIN}, set(), {"acme"}, Scope.ADMIN, "a", ["acme"], True),
    ],
)
def test_scopes(
    keys: KeyStore,
    scopes: set[Scope],
    jobs: set[str],
    clients: set[str],
    ask: Scope,
    job: str | None,
    asked_clients: list[str] | None,
    allowed: bool,
) -> None:
    key, _ = keys.create("k", scopes, job_types=jobs, clients=clients)
    assert key.allows(ask, job, asked_clients) is allowed
