"""What one invocation learned from its messages, before it settles them.

Routing (``jobkit.pipeline.route``) fills a ``Batch`` while the messages are handled; the
settle phases (``jobkit.pipeline.settle``) then read it and each returns what it decided.
Every entry carries the SQS message it came from, so a phase can name the messages it holds
back (reported to the event source as failures) or put back on the queue.
"""

from collections import defaultdict
from dataclasses import dataclass, field
from typing import NamedTuple

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from pydantic import BaseModel

from jobkit.adapters.events import StatusChanged
from jobkit.domain.envelope import PageItem, RecordItem
from jobkit.domain.job import AckRef
from jobkit.runs.models import ItemOutcome, Outcome


class PageResult(BaseModel):
    """What the idempotency record of a page keeps: enough to count it again."""

    run_id: str
    envelope_id: str
    records: int
    has_next: bool
    oversized: list[tuple[str, str, str]] = []  # (envelope_id, record_id, item_key)


class RecordResult(BaseModel):
    """What the idempotency record of a record keeps: small, and enough to count and
    acknowledge."""

    run_id: str
    envelope_id: str
    outcome: Outcome
    reason: str
    ack: AckRef | None = None
    # The domain event this item's commit owes, published with the batch's others.
    event: StatusChanged | None = None


class FetchedPage(NamedTuple):
    message: SQSRecord
    item: PageItem
    result: PageResult


class CountedItem(NamedTuple):
    """A record item's outcome, to count on its run."""

    message: SQSRecord
    item: RecordItem
    outcome: ItemOutcome


class AckDue(NamedTuple):
    """A record the external system is to be told of, once the batch settles."""

    message: SQSRecord
    item: RecordItem
    ref: AckRef


class EventDue(NamedTuple):
    message: SQSRecord
    event: StatusChanged


class Failure(NamedTuple):
    """An item to dead-letter (permanent, or its last attempt) or to retry with backoff."""

    message: SQSRecord
    reason: str
    error_type: str
    item: PageItem | RecordItem | None


class Unstarted(NamedTuple):
    """A message this invocation had no time for."""

    message: SQSRecord
    item: PageItem | RecordItem


@dataclass
class Batch:
    pages: list[FetchedPage] = field(default_factory=list)
    outcomes: list[CountedItem] = field(default_factory=list)
    acks: list[AckDue] = field(default_factory=list)
    events: list[EventDue] = field(default_factory=list)
    dead: list[Failure] = field(default_factory=list)
    retry: list[Failure] = field(default_factory=list)
    unstarted: list[Unstarted] = field(default_factory=list)
    item_ms: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    started: int = 0
    stopped_at_ms: int | None = None  # the time left when a message was first not started


def dead_lettered(message: SQSRecord, item: RecordItem, reason: str) -> CountedItem:
    """A record item given up on: counted failed, and dead-lettered with its reason."""
    outcome = ItemOutcome(
        item.envelope_id, Outcome.FAILED, item.record_id, item.item_key, reason, dead_lettered=True
    )
    return CountedItem(message, item, outcome)


def message_ids(entries: "list[FetchedPage] | list[CountedItem] | list[AckDue]") -> set[str]:
    return {entry.message.message_id for entry in entries}
