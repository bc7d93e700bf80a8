"""Per-client bearer tokens: required once configured, rotated like cloud access keys."""

import hashlib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.unit.external_system.conftest import seed

OLD = "old-token-0123456789"
NEW = "new-token-0123456789"
NEWER = "newer-token-0123456789"
RECORDS = "/v1/clients/acme/records"
ACKS = "/v1/clients/acme/acks"
HEALTH = "/v1/clients/acme/health"
REGISTER = "/v1/clients/acme/credentials"
ADMIN = "/_admin/clients/acme/credentials"
REFUSED = {"error": "missing or invalid credentials"}
ONE_ACK = {"acks": [{"record_id": "acme-r00001", "version": 1}]}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def fingerprint(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:12]


@pytest.fixture
def api(empty_api: httpx.Client) -> httpx.Client:
    """Client acme (3 records) whose one active token is OLD; globex has no tokens."""
    seed(empty_api, "acme", "globex")
    empty_api.put(ADMIN, json={"tokens": [OLD]}).raise_for_status()
    return empty_api


def register(api: httpx.Client, token: str, auth: str = OLD) -> httpx.Response:
    return api.post(REGISTER, json={"token": token}, headers=bearer(auth))


def status(api: httpx.Client, token: str) -> int:
    return api.get(RECORDS, headers=bearer(token)).status_code


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [("GET", RECORDS, None), ("POST", ACKS, ONE_ACK), ("GET", HEALTH, None)],
    ids=["records", "acks", "health"],
)
@pytest.mark.parametrize(
    "headers",
    [
        {},
        bearer("wrong-token-0123456789"),
        {"Authorization": f"Basic {OLD}"},
        {"Authorization": ""},
    ],
    ids=["none", "wrong", "not-bearer", "empty"],
)
def test_a_missing_or_invalid_token_is_refused_with_the_same_words(
    api: httpx.Client, method: str, path: str, body: Any, headers: dict[str, str]
) -> None:
    response = api.request(method, path, json=body, headers=headers)
    assert (response.status_code, response.json()) == (401, REFUSED)
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_the_active_token_is_admitted_with_any_case_of_bearer(api: httpx.Client) -> None:
    assert status(api, OLD) == 200
    assert api.post(ACKS, json=ONE_ACK, headers=bearer(OLD)).status_code == 200
    assert api.get(RECORDS, headers={"Authorization": f"bearer {OLD}"}).status_code == 200


def test_contacts_need_the_token_too(api: httpx.Client) -> None:
    api.post("/_admin/clients/acme/contacts", json={"count": 2}).raise_for_status()
    assert api.get("/v1/clients/acme/contacts").status_code == 401
    assert api.get("/v1/clients/acme/contacts", headers=bearer(OLD)).status_code == 200


def test_a_client_without_tokens_needs_none(api: httpx.Client) -> None:
    # Given globex has no tokens and acme's are deleted / Then both answer without credentials
    assert api.get("/v1/clients/globex/records").status_code == 200
    deleted = api.delete(ADMIN)
    assert deleted.json() == {"client_id": "acme", "active": 0, "fingerprints": []}
    assert api.get(RECORDS).status_code == 200


def test_credentials_are_checked_before_validation_and_faults(api: httpx.Client) -> None:
    # Given every call fails
    api.put("/_admin/faults", json={"error_rate": 1.0}).raise_for_status()
    # When a bad limit is asked for without a token / Then the refusal is all the caller learns
    assert api.get(RECORDS, params={"limit": 0}).status_code == 401
    assert api.get("/_admin/stats").json()["requests"]["GET /v1/records"] == {"401": 1}
    assert api.get("/_admin/stats").json()["injected"]["error"] == 0


def test_admin_credentials_show_fingerprints_never_tokens(api: httpx.Client) -> None:
    expected = {
        "client_id": "acme",
        "active": 2,
        "fingerprints": [fingerprint(OLD), fingerprint(NEW)],
    }
    put = api.put(ADMIN, json={"tokens": [OLD, NEW]})
    assert (put.status_code, put.json()) == (200, expected)
    assert api.get(ADMIN).json() == expected
    assert api.get("/_admin/clients/nobody/credentials").json() == {
        "client_id": "nobody",
        "active": 0,
        "fingerprints": [],
    }


@pytest.mark.parametrize(
    "body",
    [
        {"tokens": []},
        {"tokens": [OLD, NEW, NEWER]},
        {"tokens": ["too-short"]},
        {"tokens": ["x" * 257]},
    ],
    ids=["none", "three", "short", "long"],
)
def test_admin_refuses_a_bad_token_list_and_keeps_the_old(api: httpx.Client, body: Any) -> None:
    response = api.put(ADMIN, json=body)
    assert response.status_code == 400
    assert response.json()["error"].startswith("tokens")
    assert api.get(ADMIN).json()["fingerprints"] == [fingerprint(OLD)]


def test_rotation_registers_a_second_token_and_both_work(api: httpx.Client) -> None:
    # When a new token is registered with the old one
    response = register(api, NEW)
    # Then it is created, listed after the old one, and both are admitted
    assert response.status_code == 201
    assert response.json() == {
        "client_id": "acme",
        "active": 2,
        "fingerprints": [fingerprint(OLD), fingerprint(NEW)],
    }
    assert (status(api, OLD), status(api, NEW)) == (200, 200)


def test_a_third_token_drops_the_oldest(api: httpx.Client) -> None:
    # Given OLD and NEW are active
    assert register(api, NEW).status_code == 201
    # When NEWER is registered, authenticated with NEW
    response = register(api, NEWER, auth=NEW)
    # Then OLD is retired and the two newest are admitted
    assert response.json()["fingerprints"] == [fingerprint(NEW), fingerprint(NEWER)]
    assert [status(api, token) for token in (OLD, NEW, NEWER)] == [401, 200, 200]


def test_re_registering_an_active_token_is_a_no_op(api: httpx.Client) -> None:
    # Given a rotation step that succeeded / When it is retried
    first, retried = register(api, NEW), register(api, NEW)
    # Then the retry is a 200 that changes nothing, and OLD is still active
    assert (first.status_code, retried.status_code) == (201, 200)
    assert retried.json() == first.json()
    assert status(api, OLD) == 200


def test_registering_needs_an_active_token(api: httpx.Client) -> None:
    response = register(api, NEW, auth="wrong-token-0123456789")
    assert (response.status_code, response.json()) == (401, REFUSED)
    assert api.get(ADMIN).json()["active"] == 1


def test_registering_validates_the_token_and_the_client(api: httpx.Client) -> None:
    assert register(api, "too-short").status_code == 400
    unknown = api.post("/v1/clients/ghost/credentials", json={"token": NEW})
    assert unknown.status_code == 404


def test_registering_is_never_faulted(api: httpx.Client) -> None:
    api.put("/_admin/faults", json={"error_rate": 1.0, "throttle_rate": 1.0}).raise_for_status()
    assert register(api, NEW).status_code == 201


def test_refuse_new_accepts_a_token_that_never_works(api: httpx.Client) -> None:
    # Given the provider does not propagate new keys
    faults = api.put("/_admin/clients/acme/credential-faults", json={"refuse_new": True})
    assert faults.json() == {"client_id": "acme", "refuse_new": True}
    # When a new token is registered
    response = register(api, NEW)
    # Then the answer looks like success, but only the old token is admitted
    assert response.status_code == 201
    assert response.json()["fingerprints"] == [fingerprint(OLD), fingerprint(NEW)]
    assert (status(api, OLD), status(api, NEW)) == (200, 401)
    assert api.get(ADMIN).json()["fingerprints"] == [fingerprint(OLD)]
    # And once the fault is lifted, registering it again works
    api.put("/_admin/clients/acme/credential-faults", json={"refuse_new": False})
    assert register(api, NEW).status_code == 201
    assert status(api, NEW) == 200


def test_reset_clears_credentials_and_credential_faults(api: httpx.Client) -> None:
    api.put("/_admin/clients/acme/credential-faults", json={"refuse_new": True})
    api.post("/_admin/reset").raise_for_status()
    seed(api, "acme")
    assert api.get(RECORDS).status_code == 200
    assert api.post(REGISTER, json={"token": NEW}).status_code == 201
    assert status(api, NEW) == 200


def test_seeding_can_set_a_credential(empty_api: httpx.Client) -> None:
    body = {"client_id": "acme", "group_id": "g1", "records": 1, "credential": OLD}
    seeded = empty_api.post("/_admin/clients", json=body)
    assert seeded.json() == {"client_id": "acme", "records": 1}
    contacts = empty_api.post(
        "/_admin/clients/initech/contacts", json={"count": 1, "credential": NEW}
    )
    assert contacts.json() == {"count": 1}
    assert (status(empty_api, OLD), empty_api.get(RECORDS).status_code) == (200, 401)
    assert empty_api.get("/v1/clients/initech/contacts", headers=bearer(NEW)).status_code == 200
    assert empty_api.get("/v1/clients/initech/contacts").status_code == 401


@pytest.fixture
def recorded(empty_api: httpx.Client) -> Iterator[list[httpx.Response]]:
    """Every response the client gets, body read, for checking what the server gives away."""
    responses: list[httpx.Response] = []

    def keep(response: httpx.Response) -> None:
        response.read()
        responses.append(response)

    empty_api.event_hooks["response"].append(keep)
    yield responses


def test_no_response_ever_carries_a_token(
    empty_api: httpx.Client, recorded: list[httpx.Response]
) -> None:
    # Given every credential route is exercised, including refusals of bad tokens
    api, short = empty_api, "short-secret"
    seed_body = {"client_id": "acme", "group_id": "g1", "records": 1, "credential": OLD}
    api.post("/_admin/clients", json=seed_body)
    api.post("/_admin/clients/acme/contacts", json={"count": 1, "credential": OLD})
    api.put(ADMIN, json={"tokens": [OLD, short]})
    api.put(ADMIN, json={"tokens": [OLD, "bad token with spaces"]})
    api.get(ADMIN)
    register(api, NEW)
    register(api, NEW)
    register(api, short)
    register(api, NEWER, auth="not-active-0123456789")
    api.put("/_admin/clients/acme/credential-faults", json={"refuse_new": True})
    register(api, NEWER, auth=NEW)
    api.get(RECORDS, headers=bearer(NEWER))
    api.get(HEALTH, headers=bearer(NEW))
    api.get("/_admin/stats")
    api.delete(ADMIN)
    # Then no body or header shows any token, only fingerprints
    assert len(recorded) == 15
    secrets = (OLD, NEW, NEWER, short, "bad token", "not-active")
    for response in recorded:
        shown = response.text + str(response.headers)
        assert not [secret for secret in secrets if secret in shown], response.request.url
