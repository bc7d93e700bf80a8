"""Domain events: every committed status transition, published to the platform's event bus.

The event id is derived from the transition id, so a publish retried after a crash (or a
redelivered item) yields the same event, and subscribers deduplicate on it.
"""

import hashlib
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from jobkit.observability import logger

SOURCE = "jobkit"


# The domain events a webhook can subscribe to.
EventType = Literal["record.status_changed"]


class StatusChanged(BaseModel):
    model_config = ConfigDict(frozen=True)

    event_id: str
    type: EventType = "record.status_changed"
    job_type: str
    client_id: str
    record_id: str
    from_status: str
    to_status: str
    # The workflow triggers the transition registered (on its history row): this event is
    # what fires them.
    triggers: tuple[str, ...] = ()
    transition_id: str
    run_id: str
    occurred_at: datetime
    correlation_id: str
    # Made by a backfill (``run_id`` is the backfill's run): a replayed transition.
    replay: bool = False


class BusEvent(BaseModel):
    """An event as the bus hands it to a target (here, the matcher's queue): ours is `detail`."""

    # Built on first use: only the webhook matcher reads it; the processor only publishes.
    model_config = ConfigDict(extra="ignore", defer_build=True)

    source: Literal["jobkit"]
    detail: StatusChanged


def event_id(transition_id: str) -> str:
    return hashlib.sha256(f"event#{transition_id}".encode()).hexdigest()[:32]


class EventPublisher:
    """PutEvents answers 200 even when entries fail: the failed entries are reported, by event
    id, to be published again."""

    MAX_ENTRIES = 10  # per PutEvents request

    def __init__(self, events: Callable[[], Any], bus_name: str) -> None:
        # A factory (the cached `jobkit.adapters.aws.events_client`): the client is made on the
        # first publish, so a cold start whose batch commits nothing does not make it.
        self._events = events
        self._bus = bus_name

    def publish_all(self, events: Sequence[StatusChanged]) -> set[str]:
        """Publish, ten per request; returns the ids of the events that did not go out."""
        failed: set[str] = set()
        for start in range(0, len(events), self.MAX_ENTRIES):
            chunk = events[start : start + self.MAX_ENTRIES]
            entries = [self._entry(event) for event in chunk]
            response = self._events().put_events(Entries=entries)
            if not response.get("FailedEntryCount"):
                continue
            answers = response.get("Entries", [])
            for event, answer in zip(chunk, answers, strict=False):
                if answer.get("ErrorCode"):
                    logger.warning(
                        "event not published",
                        extra={"event_id": event.event_id, "error": answer.get("ErrorCode")},
                    )
                    failed.add(event.event_id)
            if len(answers) < len(chunk):  # no per-entry answer: none of them is known sent
                failed |= {event.event_id for event in chunk}
        return failed

    def _entry(self, event: StatusChanged) -> dict[str, Any]:
        return {
            "EventBusName": self._bus,
            "Source": SOURCE,
            "DetailType": event.type,
            "Detail": event.model_dump_json(),
            "Time": event.occurred_at,
        }
