"""Webhook signatures and what each receiver answer means."""

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jobkit.domain.backoff import backoff_seconds
from jobkit.webhooks.signing import Verdict, classify, sign, verify

SECRET = "whsec-test-only"


def test_a_signed_body_verifies() -> None:
    body = b'{"type":"record.status_changed"}'
    assert verify(SECRET, body, sign(SECRET, body))


def test_a_tampered_body_does_not_verify() -> None:
    header = sign(SECRET, b'{"to":"COMPLETED"}')
    assert not verify(SECRET, b'{"to":"CANCELLED"}', header)


def test_another_secret_does_not_verify() -> None:
    body = b"{}"
    assert not verify("another-secret", body, sign(SECRET, body))


def test_an_old_signature_is_refused_outside_the_tolerance() -> None:
    body = b"{}"
    header = sign(SECRET, body, timestamp=1_000_000)
    assert verify(SECRET, body, header, now=1_000_000 + 299)
    assert not verify(SECRET, body, header, now=1_000_000 + 301)


NOW = 1_700_000_000

# Garbage of every shape: any text, and well-formed headers (recent, so the HMAC is compared)
# whose signature is not the body's.
garbage_headers = st.text(max_size=80) | st.builds(
    "t={},v1={}".format,
    st.integers(NOW - 300, NOW + 300),
    st.text(alphabet="0123456789abcdef", max_size=64),
)


@given(st.binary(max_size=200), garbage_headers)
def test_a_garbage_header_never_verifies_and_the_bodys_own_signature_does(
    body: bytes, header: str
) -> None:
    assert not verify(SECRET, body, header, now=NOW)
    assert verify(SECRET, body, sign(SECRET, body, timestamp=NOW), now=NOW)


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
