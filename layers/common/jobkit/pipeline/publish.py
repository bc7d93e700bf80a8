"""Settle, first: the batch's domain events, ten per PutEvents.

An item whose event did not go out is not acknowledged nor counted now: it is retried, and its
redelivery replays the event from its idempotency record. On its last attempt it is given up
on like any item that keeps failing: counted failed and dead-lettered (redriven, it replays
its event and is recounted as processed).
"""

from typing import NamedTuple

from jobkit.adapters.events import EventPublisher
from jobkit.adapters.queue import receive_count
from jobkit.observability import logger
from jobkit.pipeline.batch import AckDue, CountedItem, EventDue, Failure, dead_lettered


class Published(NamedTuple):
    held: frozenset[str] = frozenset()  # messages whose event did not go out
    retried: frozenset[str] = frozenset()  # of those, retried: reported failed
    given_up: tuple[CountedItem, ...] = ()  # last attempts: counted failed
    dead: tuple[Failure, ...] = ()  # and dead-lettered

    def acks(self, acks: list[AckDue]) -> list[AckDue]:
        """Only what fully succeeded is acknowledged."""
        return [ack for ack in acks if ack.message.message_id not in self.held]

    def outcomes(self, outcomes: list[CountedItem]) -> list[CountedItem]:
        """The outcomes to count: the given-up items' replaced by their failure."""
        given_up = {entry.message.message_id for entry in self.given_up}
        kept = [entry for entry in outcomes if entry.message.message_id not in given_up]
        return [*kept, *self.given_up]


def publish(
    events: list[EventDue],
    outcomes: list[CountedItem],
    publisher: EventPublisher | None,
    max_receive_count: int,
) -> Published:
    if publisher is None or not events:
        return Published()
    failed = _send(events, publisher)
    held = frozenset(due.message.message_id for due in events if due.event.event_id in failed)
    if not held:
        return Published()
    unpublished = [entry for entry in outcomes if entry.message.message_id in held]
    return _hold(held, unpublished, max_receive_count)


def _send(events: list[EventDue], publisher: EventPublisher) -> set[str]:
    """The ids of the events that did not go out."""
    # A message sent twice (one envelope, two messages) owes its event once.
    unique = list({due.event.event_id: due.event for due in events}.values())
    try:
        return set(publisher.publish_all(unique))
    except Exception:  # noqa: BLE001 - every item of the batch is retried
        logger.exception("publishing the batch's events failed")
        return {due.event.event_id for due in events}


def _hold(
    held: frozenset[str], unpublished: list[CountedItem], max_receive_count: int
) -> Published:
    retried: set[str] = set()
    given_up: list[CountedItem] = []
    dead: list[Failure] = []
    for entry in unpublished:
        attempts = receive_count(entry.message)
        if attempts < max_receive_count:
            logger.warning("item retried: its event was not published")
            retried.add(entry.message.message_id)
            continue
        reason = f"gave up after {attempts} attempts: its event was not published"
        logger.error(
            "item failed",
            extra={"reason": reason, "error_type": "EventNotPublished", "attempt": attempts},
        )
        given_up.append(dead_lettered(entry.message, entry.item, reason))
        dead.append(Failure(entry.message, reason, "EventNotPublished", entry.item))
    return Published(held, frozenset(retried), tuple(given_up), tuple(dead))
