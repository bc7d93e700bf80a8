"""Which fault, if any, an external call suffers: seeded, so a run with one seed fails alike."""

import random
from dataclasses import dataclass
from enum import StrEnum

from external_system.models import FaultConfig


class Endpoint(StrEnum):
    RECORDS = "records"
    ACKS = "acks"
    HEALTH = "health"  # draws error, timeout and throttle exactly like RECORDS


class Fault(StrEnum):
    ERROR = "error"
    TIMEOUT = "timeout"
    THROTTLE = "throttle"
    ACK_ERROR = "ack_error"


@dataclass(frozen=True)
class Decision:
    """Everything the handler needs, copied so a concurrent reconfiguration cannot mix configs."""

    fault: Fault | None
    latency_seconds: float
    timeout_seconds: float
    retry_after_seconds: int


class FaultPlan:
    """One configuration and its random stream. Not thread-safe: the caller holds a lock."""

    def __init__(self, config: FaultConfig | None = None) -> None:
        self.config = config or FaultConfig()
        self._random = random.Random(self.config.seed)

    def decide(self, client_id: str, endpoint: Endpoint) -> Decision:
        config = self.config
        if config.clients is not None and client_id not in config.clients:
            return Decision(None, 0.0, config.timeout_seconds, config.retry_after_seconds)
        return Decision(
            fault=self._draw(endpoint),
            latency_seconds=config.latency_ms / 1000,
            timeout_seconds=config.timeout_seconds,
            retry_after_seconds=config.retry_after_seconds,
        )

    def _draw(self, endpoint: Endpoint) -> Fault | None:
        config = self.config
        candidates = [
            (Fault.ERROR, config.error_rate),
            (Fault.TIMEOUT, config.timeout_rate),
            (Fault.THROTTLE, config.throttle_rate),
        ]
        if endpoint is Endpoint.ACKS:
            candidates.append((Fault.ACK_ERROR, config.ack_error_rate))
        for fault, rate in candidates:
            # Zero rates consume no draw: a run's sequence depends only on the faults it enables.
            if rate > 0 and self._random.random() < rate:
                return fault
        return None
