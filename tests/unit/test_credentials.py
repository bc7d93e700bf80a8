"""Per-client credentials and their rotation: moto's Secrets Manager, the real fake external
system on loopback (it requires and rotates bearer tokens)."""

import hashlib
import json
from typing import Any

import boto3
import httpx
import pytest
from aws_lambda_powertools.utilities import parameters

from jobkit.adapters.config import ClientConfig
from jobkit.adapters.credentials import CredentialSource, ExternalCredential
from jobkit.adapters.external import Connections
from jobkit.adapters.http_client import build_http_client
from jobkit.domain.errors import ExternalAuthError
from jobkit.ops.rotation import CredentialRotator, RotateRequest

PREFIX = "jobkit-test/external"
FIRST = "first-token-0123456789abcdef"


@pytest.fixture
def secrets(aws: Any) -> Any:
    parameters.clear_caches()  # type: ignore[no-untyped-call]
    return boto3.client("secretsmanager")


def _enrol(provider: httpx.Client, secrets: Any, client_id: str, token: str = FIRST) -> None:
    provider.post(
        "/_admin/clients",
        json={"client_id": client_id, "group_id": "north", "records": 2, "credential": token},
    ).raise_for_status()
    secrets.create_secret(
        Name=f"{PREFIX}/{client_id}",
        SecretString=ExternalCredential(client_id=client_id, token=token).model_dump_json(),
    )


def _connections(provider: httpx.Client) -> Connections:
    http = build_http_client(str(provider.base_url), timeout_seconds=2, max_attempts=1)
    return Connections(lambda: http, CredentialSource(PREFIX))


def _current_token(secrets: Any, client_id: str) -> str:
    raw = secrets.get_secret_value(SecretId=f"{PREFIX}/{client_id}", VersionStage="AWSCURRENT")[
        "SecretString"
    ]
    return str(json.loads(raw)["token"])


def _fingerprint(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:12]


def _config(client_id: str) -> ClientConfig:
    return ClientConfig(
        job_type="sync-completed-records", client_id=client_id, group_id="north", credentials=True
    )


def test_a_client_with_credentials_calls_with_its_token(provider: Any, secrets: Any) -> None:
    _enrol(provider, secrets, "acme")
    connections = _connections(provider)
    assert connections.for_client(_config("acme")).get("/v1/clients/acme/health")["status"] == "ok"
    without = _config("acme").model_copy(update={"credentials": False})
    with pytest.raises(ExternalAuthError, match="HTTP 401: credentials refused"):
        connections.for_client(without).get("/v1/clients/acme/health")


def test_rotation_registers_tests_then_promotes_the_new_token(provider: Any, secrets: Any) -> None:
    _enrol(provider, secrets, "acme")
    connections = _connections(provider)
    external = connections.for_client(_config("acme"))
    external.get("/v1/clients/acme/health")  # caches the first token

    rotator = CredentialRotator(secrets, connections.with_credential, PREFIX)
    assert rotator.rotate_all(RotateRequest()) == {"rotated": ["acme"], "failed": {}}

    new = _current_token(secrets, "acme")
    assert new != FIRST
    active = provider.get("/_admin/clients/acme/credentials").json()["fingerprints"]
    assert active == [_fingerprint(FIRST), _fingerprint(new)]
    # The provider drops the old token later (next rotation): a cached old token is then
    # refused once, read again from Secrets Manager, and the call goes through.
    provider.put("/_admin/clients/acme/credentials", json={"tokens": [new]}).raise_for_status()
    assert external.get("/v1/clients/acme/health")["status"] == "ok"


def test_a_failing_test_step_leaves_the_old_credential_current(
    provider: Any, secrets: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    _enrol(provider, secrets, "acme")
    _enrol(provider, secrets, "globex", "globex-token-0123456789abcdef")
    provider.put("/_admin/clients/acme/credential-faults", json={"refuse_new": True})
    connections = _connections(provider)
    rotator = CredentialRotator(secrets, connections.with_credential, PREFIX)

    result = rotator.rotate_all(RotateRequest())

    assert result["rotated"] == ["globex"]
    assert "HTTP 401" in result["failed"]["acme"]
    assert _current_token(secrets, "acme") == FIRST  # still current, and still working
    assert connections.for_client(_config("acme")).get("/v1/clients/acme/health")["status"] == "ok"
    versions = secrets.describe_secret(SecretId=f"{PREFIX}/acme")["VersionIdsToStages"]
    assert sorted(stage for stages in versions.values() for stage in stages) == [
        "AWSCURRENT",
        "AWSPENDING",
    ]
    out = capsys.readouterr().out
    assert "CredentialRotationFailed" in out
    assert FIRST not in out and _current_token(secrets, "globex") not in out
