"""The health probe: status and latency per client endpoint, feeding its circuit."""

import time
from typing import Any

import httpx
import pytest
from aws_lambda_powertools.utilities.circuit_breaker.persistence import (
    CircuitBreakerDynamoDBPersistence,
)

from jobkit.adapters.circuits import Circuits
from jobkit.adapters.config import ClientConfig
from jobkit.adapters.config_store import ConfigStore
from jobkit.adapters.credentials import CredentialSource
from jobkit.adapters.external import Connections
from jobkit.adapters.http_client import build_http_client
from jobkit.ops.probe import HealthProbe


def _probe(aws: Any, provider: httpx.Client) -> HealthProbe:
    configs = ConfigStore(aws.tables["ConfigTable"])
    for client_id in ("acme", "globex"):
        provider.post(
            "/_admin/clients", json={"client_id": client_id, "group_id": "north", "records": 1}
        ).raise_for_status()
        configs.put(
            ClientConfig(job_type="sync-completed-records", client_id=client_id, group_id="north")
        )
    http = build_http_client(str(provider.base_url), timeout_seconds=1, max_attempts=1)
    circuits = Circuits(
        CircuitBreakerDynamoDBPersistence(table_name="ControlTable"),
        failure_threshold=2,
        cooldown_seconds=3,
        success_threshold=1,
    )
    return HealthProbe(
        configs,
        Connections(lambda: http, CredentialSource("unused")),
        circuits,
        aws.tables["ControlTable"],
    )


def test_probe_records_status_latency_and_drives_the_circuit(aws: Any, provider: Any) -> None:
    probe = _probe(aws, provider)
    first = {r.client_id: r for r in probe.probe_all()}
    assert first["acme"].status == "up" and first["acme"].latency_ms is not None
    stored = aws.tables["ControlTable"].get_item(Key={"id": "probe#acme"})["Item"]
    assert stored["status"] == "up" and float(stored["latency_ms"]) >= 0

    provider.put("/_admin/faults", json={"error_rate": 1.0, "clients": ["acme"]})
    statuses = [{r.client_id: r for r in probe.probe_all()} for _ in range(3)]
    assert [s["acme"].status for s in statuses] == ["down", "down", "circuit_open"]
    assert statuses[1]["acme"].circuit == "OPEN"
    assert all(s["globex"].status == "up" for s in statuses)  # one client's outage is its own

    provider.put("/_admin/faults", json={})
    time.sleep(3.1)  # the cool-down: the next probe is the half-open trial
    recovered = {r.client_id: r for r in probe.probe_all()}
    assert recovered["acme"].status == "up" and recovered["acme"].circuit == "CLOSED"


def test_the_functions_circuits_share_their_state_through_the_table(aws: Any) -> None:
    from jobkit.adapters import aws as aws_clients
    from jobkit.domain.errors import ExternalUnavailableError
    from jobkit.settings import CircuitSettings
    from jobkit.wiring.parts import build_circuits

    aws_clients.dynamodb_client.cache_clear()
    settings = CircuitSettings(control_table="ControlTable", circuit_failure_threshold=2)
    opener, other_function = build_circuits(settings), build_circuits(settings)

    def down() -> None:
        raise ExternalUnavailableError("GET /v1/clients/acme/health: HTTP 503 after retries")

    for _ in range(2):
        with pytest.raises(ExternalUnavailableError):
            opener.call("acme", down)
    assert other_function.state("acme").value == "OPEN"
    assert other_function.open_circuit("acme") is not None
