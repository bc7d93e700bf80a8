"""Webhook signatures, as the Standard Webhooks libraries verify them, the secrets' rotation,
and what each receiver answer means."""

import base64
import random
import time
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from standardwebhooks import Webhook, WebhookVerificationError

from jobkit.domain.backoff import backoff_seconds
from jobkit.webhooks.signing import (
    ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Verdict,
    classify,
    new_secret,
    signature_header,
)
from jobkit.webhooks.signing_keys import SigningKey, SigningKeys

SECRET, OTHER = new_secret(), new_secret()
T0 = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def _headers(
    secrets: list[str], body: bytes, msg_id: str = "d1", at: int | None = None
) -> dict[str, str]:
    timestamp = int(time.time()) if at is None else at
    return {
        ID_HEADER: msg_id,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: signature_header(secrets, msg_id, timestamp, body),
    }


def test_a_secret_is_whsec_and_32_random_bytes() -> None:
    assert SECRET.startswith("whsec_") and SECRET != OTHER
    assert len(base64.b64decode(SECRET.removeprefix("whsec_"))) == 32


def test_the_library_verifies_a_signed_body_and_refuses_a_tampered_one() -> None:
    body = b'{"type":"record.status_changed"}'
    assert Webhook(SECRET).verify(body, _headers([SECRET], body)) == {
        "type": "record.status_changed"
    }
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(b'{"type":"other"}', _headers([SECRET], body))
    with pytest.raises(WebhookVerificationError):
        Webhook(OTHER).verify(body, _headers([SECRET], body))


def test_the_id_is_signed_with_the_body() -> None:
    body = b"{}"
    headers = _headers([SECRET], body, msg_id="d1")
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(body, {**headers, ID_HEADER: "d2"})


def test_two_secrets_sign_one_header_and_either_verifies() -> None:
    body = b"{}"
    headers = _headers([SECRET, OTHER], body)
    assert len(headers[SIGNATURE_HEADER].split(" ")) == 2
    assert Webhook(SECRET).verify(body, headers) == {}
    assert Webhook(OTHER).verify(body, headers) == {}


def test_an_old_timestamp_is_refused() -> None:
    body = b"{}"
    with pytest.raises(WebhookVerificationError, match="too old"):
        Webhook(SECRET).verify(body, _headers([SECRET], body, at=int(time.time()) - 301))


@given(st.binary(max_size=200), st.text(max_size=80))
def test_a_garbage_signature_never_verifies(body: bytes, garbage: str) -> None:
    headers = {**_headers([SECRET], body), SIGNATURE_HEADER: garbage}
    with pytest.raises((WebhookVerificationError, ValueError)):
        Webhook(SECRET).verify(body, headers)


# Rotation


def test_a_rotated_secret_signs_beside_the_old_one_until_the_grace_ends() -> None:
    keys = SigningKeys.first()
    rotated = keys.rotated(timedelta(hours=24), now=T0)
    assert [k.version for k in rotated.signing(T0)] == [2, 1]
    assert [k.version for k in rotated.signing(T0 + timedelta(hours=23, minutes=59))] == [2, 1]
    assert [k.version for k in rotated.signing(T0 + timedelta(hours=24))] == [2]
    assert rotated.newest.secret != keys.newest.secret


def test_rotating_again_drops_what_retired_and_never_extends_a_grace() -> None:
    once = SigningKeys.first().rotated(timedelta(hours=1), now=T0)
    twice = once.rotated(timedelta(hours=24), now=T0 + timedelta(minutes=30))
    ends = {k.version: k.retires_at for k in twice.keys}
    assert ends == {3: None, 2: T0 + timedelta(hours=24, minutes=30), 1: T0 + timedelta(hours=1)}
    later = twice.rotated(timedelta(0), now=T0 + timedelta(hours=2))
    assert [k.version for k in later.keys] == [4, 3, 2]  # 1 had retired: dropped
    assert [k.version for k in later.signing(T0 + timedelta(hours=2))] == [4]


def test_a_bare_stored_secret_is_version_one_and_no_secret_shows_in_a_repr() -> None:
    keys = SigningKeys.parse(SECRET)
    assert keys.keys == (SigningKey(version=1, secret=SECRET),)
    assert SigningKeys.parse(keys.model_dump_json()) == keys
    assert SECRET not in repr(keys)


@pytest.mark.parametrize(
    ("status", "verdict"),
    [
        (200, Verdict.DELIVERED),
        (204, Verdict.DELIVERED),
        (410, Verdict.GONE),
        (400, Verdict.PERMANENT),
        (404, Verdict.PERMANENT),
        (408, Verdict.RETRY),
        (429, Verdict.RETRY),
        (500, Verdict.RETRY),
        (503, Verdict.RETRY),
        (None, Verdict.RETRY),
    ],
)
def test_answers_are_classified(status: int | None, verdict: Verdict) -> None:
    assert classify(status).verdict is verdict


def test_429_carries_its_retry_after() -> None:
    assert classify(429, "7").retry_after == 7.0
    assert classify(429, "soon").retry_after is None


def test_backoff_grows_exponentially_within_its_cap() -> None:
    rng = random.Random(1)
    ceilings = [min(300.0, 2.0 * 2 ** (attempt - 1)) for attempt in range(1, 9)]
    for attempt, ceiling in enumerate(ceilings, start=1):
        assert 0 <= backoff_seconds(attempt, 2.0, 300.0, rng=rng) <= ceiling
        # A floor keeps at least that share of the wait (client and item retries use half)
        assert ceiling / 2 <= backoff_seconds(attempt, 2.0, 300.0, floor=0.5, rng=rng) <= ceiling
    assert ceilings[-1] == 256.0


@pytest.mark.parametrize(
    ("url", "loopback_ok", "accepted"),
    [
        ("https://hooks.example.com/x", False, True),
        ("https://10.0.0.5/x", False, False),  # into a private network
        ("https://169.254.169.254/latest/meta-data", False, False),
        ("https://[fd00::1]/x", False, False),
        ("https://localhost/x", False, False),
        ("https://127.0.0.1/x", True, True),  # the local stack's receivers
        ("http://hooks.example.com/x", True, False),
        ("http://127.0.0.1:8080/x", True, True),
        ("http://localhost/x", True, True),
        ("http://127.0.0.1:8080/x", False, False),
        ("http://10.0.0.1/x", True, False),
        ("ftp://hooks.example.com/x", True, False),
        ("not a url", True, False),
    ],
)
def test_endpoint_rules(url: str, loopback_ok: bool, accepted: bool) -> None:
    from jobkit.webhooks.subscriptions import check_endpoint

    if accepted:
        assert check_endpoint(url, loopback_ok) == url
    else:
        with pytest.raises(ValueError, match="url:"):
            check_endpoint(url, loopback_ok)


@pytest.mark.parametrize(
    ("text", "seconds"), [("24h", 86400), ("90m", 5400), ("30s", 30), ("2d", 172800), ("0s", 0)]
)
def test_a_grace_is_a_number_and_a_unit(text: str, seconds: int) -> None:
    from jobkit_cli.webhooks_cli import parse_grace

    assert parse_grace(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["24", "h", "1.5h", "-1h", "1w", ""])
def test_another_grace_is_refused(text: str) -> None:
    import typer

    from jobkit_cli.webhooks_cli import parse_grace

    with pytest.raises(typer.BadParameter):
        parse_grace(text)


def test_a_secret_from_before_base64_still_signs_with_its_own_bytes() -> None:
    legacy = "whsec_" + "Ab-_" * 10 + "xyz"  # token_urlsafe's alphabet: not valid base64
    body = b"{}"
    headers = _headers([legacy], body)
    # The library takes the key's bytes as they are
    assert Webhook(legacy.removeprefix("whsec_").encode()).verify(body, headers) == {}
