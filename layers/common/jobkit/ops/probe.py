"""The health probe: on a schedule, one call per client endpoint, through its circuit.

Each probe records the endpoint's status and latency (a row in the control table, a metric)
and feeds the circuit like any real call does: failures count towards opening it, and once
its cool-down is over the probe is the half-open trial that closes it again.
"""

import functools
import time
from datetime import UTC, datetime
from typing import Any, Literal

from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.circuit_breaker import CircuitBreakerOpenError
from pydantic import BaseModel, ConfigDict

from jobkit.adapters.circuits import Circuits
from jobkit.adapters.config import ClientConfig
from jobkit.adapters.config_store import ConfigStore
from jobkit.adapters.external import Connections
from jobkit.domain.envelope import Identifier
from jobkit.domain.errors import JobkitError
from jobkit.observability import logger

ProbeStatus = Literal["up", "down", "circuit_open"]


class ProbeRequest(BaseModel):
    """From the schedule (every enabled client) or an operator (the clients named)."""

    model_config = ConfigDict(extra="ignore")  # the schedule's own fields are ignored

    client_ids: list[Identifier] | None = None


class ProbeResult(BaseModel):
    client_id: str
    status: ProbeStatus
    latency_ms: float | None = None
    circuit: str
    error: str | None = None
    at: datetime


class HealthProbe:
    def __init__(
        self, configs: ConfigStore, connections: Connections, circuits: Circuits, table: Any
    ) -> None:
        self._configs = configs
        self._connections = connections
        self._circuits = circuits
        self._table = table

    def probe_all(self, request: ProbeRequest | None = None) -> list[ProbeResult]:
        wanted = set(request.client_ids) if request and request.client_ids is not None else None
        endpoints: dict[str, ClientConfig] = {}
        for config in self._configs.every_client():
            if not isinstance(config, ClientConfig) or not config.enabled:
                continue
            if wanted is None or config.client_id in wanted:
                endpoints.setdefault(config.client_id, config)  # one circuit per client id
        return [self.probe(client) for _, client in sorted(endpoints.items())]

    def probe(self, client: ClientConfig) -> ProbeResult:
        external = self._connections.for_client(client)
        call = functools.partial(external.get, f"{client.route}/clients/{client.client_id}/health")
        started = time.perf_counter()
        status: ProbeStatus = "up"
        error = None
        try:
            self._circuits.call(client.client_id, call)
        except CircuitBreakerOpenError:
            status, error = "circuit_open", "circuit open: not called"
        except JobkitError as exc:
            status, error = "down", f"{type(exc).__name__}: {exc}"
        latency = None if status == "circuit_open" else 1000 * (time.perf_counter() - started)
        result = ProbeResult(
            client_id=client.client_id,
            status=status,
            latency_ms=round(latency, 1) if latency is not None else None,
            circuit=self._circuits.state(client.client_id).value,
            error=error,
            at=datetime.now(UTC),
        )
        self._record(result)
        return result

    def _record(self, result: ProbeResult) -> None:
        item = result.model_dump(mode="json", exclude_none=True)
        if "latency_ms" in item:
            item["latency_ms"] = str(item["latency_ms"])  # DynamoDB takes no floats
        self._table.put_item(Item={"id": f"probe#{result.client_id}", **item})
        if result.latency_ms is not None:
            with single_metric(
                name="ProbeLatency", unit=MetricUnit.Milliseconds, value=result.latency_ms
            ) as metric:
                metric.add_metadata("client_id", result.client_id)
        with single_metric(
            name="ProbeFailures", unit=MetricUnit.Count, value=int(result.status != "up")
        ) as metric:
            metric.add_metadata("client_id", result.client_id)
        log = logger.info if result.status == "up" else logger.warning
        log("probe", extra=result.model_dump(mode="json"))
