"""One circuit breaker per client endpoint of the external system: Powertools' Circuit Breaker,
its state in DynamoDB, fed by the health probe and by every fetch and acknowledgement.

Only unavailability counts as a failure (timeouts, 5xx, throttling after our retries): a
refused credential or a malformed answer says nothing about the endpoint's health. Powertools
counts consecutive failures per container and shares the state (closed, open, half-open)
through the table, so every container and every function sees a circuit open at once.
"""

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.circuit_breaker import (
    CircuitBreakerConfig,
    CircuitState,
    CircuitTransition,
    circuit_breaker,
)
from aws_lambda_powertools.utilities.circuit_breaker.persistence import (
    CircuitBreakerDynamoDBPersistence,
)
from aws_lambda_powertools.utilities.circuit_breaker.persistence.base import (
    CircuitBreakerPersistenceLayer,
)

from jobkit.adapters.aws import batch_get
from jobkit.domain.errors import ExternalUnavailableError
from jobkit.observability import logger


def circuit_name(client_id: str) -> str:
    return f"external#{client_id}"


@dataclass(frozen=True)
class OpenCircuit:
    """A circuit that refuses calls now, and when it lets a trial call through."""

    client_id: str
    opened_at: int
    retry_in_seconds: int


class Circuits:
    def __init__(
        self,
        persistence: CircuitBreakerPersistenceLayer,
        failure_threshold: int = 5,
        cooldown_seconds: int = 60,
        success_threshold: int = 2,
    ) -> None:
        self._persistence = persistence
        self.cooldown_seconds = cooldown_seconds
        self._config = CircuitBreakerConfig(
            failure_threshold=failure_threshold,
            recovery_timeout=cooldown_seconds,
            success_threshold=success_threshold,
            handled_exceptions=ExternalUnavailableError,
            local_cache_max_age=2,
        )

    def call[T](self, client_id: str, call: Callable[[], T]) -> T:
        """Run ``call`` through the client's circuit; raises CircuitBreakerOpenError if open."""
        guarded = circuit_breaker(
            name=circuit_name(client_id),
            persistence_store=self._persistence,
            config=self._config,
            on_transition=_record_transition,
        )(call)
        return guarded()  # type: ignore[no-any-return]

    def open_circuit(self, client_id: str) -> OpenCircuit | None:
        """The client's circuit if it refuses calls now (open, cool-down not yet over)."""
        record = self._persistence.get_state(circuit_name(client_id))
        return self._refusing(client_id, record.state.value, record.opened_at, int(time.time()))

    def _refusing(
        self, client_id: str, state: str, opened_at: int | None, now: int
    ) -> OpenCircuit | None:
        if state != CircuitState.OPEN.value or opened_at is None:
            return None
        left = opened_at + self.cooldown_seconds - now
        if left <= 0:
            return None  # the next call is the half-open trial
        return OpenCircuit(client_id, opened_at, left)

    def open_circuits(self, client_ids: Sequence[str]) -> dict[str, OpenCircuit]:
        """The clients whose circuits refuse calls now, among many: read 100 at a time.

        Planning 10,000 clients must not cost 10,000 reads. Powertools reads one circuit at a
        time, so this reads the same rows (by the layer's public key and attribute names)
        with BatchGetItem. Like Powertools, it fails open: a store it cannot read is a
        closed circuit.
        """
        store = self._persistence
        if not isinstance(store, CircuitBreakerDynamoDBPersistence):
            found = {client_id: self.open_circuit(client_id) for client_id in client_ids}
            return {client_id: c for client_id, c in found.items() if c is not None}
        names = {circuit_name(client_id): client_id for client_id in client_ids}
        opened: dict[str, OpenCircuit] = {}
        now = int(time.time())
        try:
            for item in batch_get(
                store.client, store.table_name, [_circuit_key(store, n) for n in names]
            ):
                if circuit := self._refusing_item(store, names, item, now):
                    opened[circuit.client_id] = circuit
        except Exception:  # noqa: BLE001 - a circuit breaker must not become the outage
            # The circuits read before the failure still count; the unread ones are closed.
            logger.warning("circuit states unreadable; treating them as closed", exc_info=True)
        return opened

    def _refusing_item(
        self,
        store: CircuitBreakerDynamoDBPersistence,
        names: dict[str, str],
        item: dict[str, Any],
        now: int,
    ) -> OpenCircuit | None:
        """One row of Powertools' table (by its public key and attribute names), if its
        circuit refuses calls now."""
        client_id = names.get(item[store.sort_key_attr or store.key_attr]["S"])
        if client_id is None:
            return None
        opened_at = item.get(store.opened_at_attr, {}).get("N")
        state = item.get(store.state_attr, {}).get("S", "")
        at = None if opened_at is None else int(opened_at)
        return self._refusing(client_id, state, at, now)

    def seconds_until_trial(self, client_id: str) -> int:
        """How long work refused by the client's circuit should wait: what is left of its
        cool-down, or a whole cool-down when another caller already holds the trial."""
        circuit = self.open_circuit(client_id)
        return circuit.retry_in_seconds if circuit else self.cooldown_seconds

    def state(self, client_id: str) -> CircuitState:
        return self._persistence.get_state(circuit_name(client_id)).state


def _circuit_key(store: CircuitBreakerDynamoDBPersistence, name: str) -> dict[str, Any]:
    if store.sort_key_attr:
        return {store.key_attr: {"S": store.static_pk_value}, store.sort_key_attr: {"S": name}}
    return {store.key_attr: {"S": name}}


def _record_transition(transition: CircuitTransition) -> None:
    logger.warning(
        "circuit changed state",
        extra={
            "circuit": transition.circuit_name,
            "from_state": transition.from_state.value,
            "to_state": transition.to_state.value,
        },
    )
    if transition.to_state is CircuitState.OPEN:
        with single_metric(name="CircuitOpened", unit=MetricUnit.Count, value=1) as metric:
            metric.add_metadata("circuit", transition.circuit_name)
