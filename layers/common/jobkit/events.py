"""Domain events: every committed status transition, published to the platform's event bus.

The event id is derived from the transition id, so a publish retried after a crash (or a
redelivered item) yields the same event, and subscribers deduplicate on it.
"""

import hashlib
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from jobkit.errors import TransientError

SOURCE = "jobkit"


class StatusChanged(BaseModel):
    model_config = ConfigDict(frozen=True)

    event_id: str
    type: Literal["record.status_changed"] = "record.status_changed"
    job_type: str
    client_id: str
    record_id: str
    from_status: str
    to_status: str
    transition_id: str
    run_id: str
    occurred_at: datetime
    correlation_id: str


class BusEvent(BaseModel):
    """An event as the bus hands it to a target (here, the matcher's queue): ours is `detail`."""

    model_config = ConfigDict(extra="ignore")

    source: Literal["jobkit"]
    detail: StatusChanged


def event_id(transition_id: str) -> str:
    return hashlib.sha256(f"event#{transition_id}".encode()).hexdigest()[:32]


class EventPublisher:
    """PutEvents answers 200 even when entries fail: failed entries raise, to be retried."""

    def __init__(self, events: Any, bus_name: str) -> None:
        self._events = events
        self._bus = bus_name

    def publish(self, event: StatusChanged) -> None:
        response = self._events.put_events(
            Entries=[
                {
                    "EventBusName": self._bus,
                    "Source": SOURCE,
                    "DetailType": event.type,
                    "Detail": event.model_dump_json(),
                    "Time": event.occurred_at,
                }
            ]
        )
        if response.get("FailedEntryCount"):
            codes = sorted(
                {str(e.get("ErrorCode")) for e in response.get("Entries", []) if e.get("ErrorCode")}
            )
            raise TransientError(f"event {event.event_id} not published: {', '.join(codes)}")
