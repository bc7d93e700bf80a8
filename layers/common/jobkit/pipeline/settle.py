"""Settling a batch, once every message was handled: the phases in the order a record meets
them, each given what the phases before it decided.

  publish      the domain events (an item whose event did not go out is held back)
  count pages  what each page received (or that it was given up on)
  acknowledge  per client, what committed (held-back items are not acknowledged)
  put back     what had no time, as copies visible at once
  count        the outcomes, once their acknowledgement settled (it takes what acknowledge
               decided, so it cannot run first)
  dead-letter  with reasons; then backoff for what is retried
  metrics      of what is now on the runs

What a phase holds back is reported to the event source as a failure and comes back.
"""

from collections.abc import Callable
from typing import NamedTuple

from jobkit.adapters.aws import SQSClient
from jobkit.adapters.events import EventPublisher
from jobkit.adapters.queue import DeadLetterQueue, WorkQueue
from jobkit.pipeline import metrics
from jobkit.pipeline.acknowledge import Acknowledger
from jobkit.pipeline.batch import Batch
from jobkit.pipeline.budget import Clock
from jobkit.pipeline.count import count_outcomes, count_pages
from jobkit.pipeline.dead_letter import back_off, dead_letter
from jobkit.pipeline.publish import publish
from jobkit.pipeline.put_back import put_back
from jobkit.runs.counting import OutcomeCounting


class Settled(NamedTuple):
    unsettled: frozenset[str]  # messages to report as failures: they come back
    unstarted: int
    unacknowledged: int


class Settler(NamedTuple):
    acknowledger: Acknowledger
    runs: OutcomeCounting
    queue: WorkQueue
    dead_letters: DeadLetterQueue
    sqs: Callable[[], SQSClient]  # a factory: most batches never need the client
    events: EventPublisher | None
    max_receive_count: int

    def settle(self, batch: Batch, clock: Clock, queue_url: str) -> Settled:
        """``queue_url``: the queue the batch came from (a lane's), where its messages'
        visibility is changed and its unstarted items go back."""
        published = publish(batch.events, batch.outcomes, self.events, self.max_receive_count)
        outcomes = published.outcomes(batch.outcomes)
        pages_unsettled = count_pages(batch.pages, batch.dead, self.runs)
        acknowledged = self.acknowledger.acknowledge(published.acks(batch.acks), clock)
        returned = put_back(
            batch.unstarted, acknowledged.unacknowledged, self.queue, self.sqs, queue_url
        )
        held = published.retried | pages_unsettled | returned.returned | returned.unsettled
        counted = count_outcomes(outcomes, acknowledged, held, self.runs)
        held = held | acknowledged.unsettled | counted.unsettled
        unsent = dead_letter([*batch.dead, *published.dead], held, self.dead_letters)
        back_off(batch.retry + acknowledged.retry, self.sqs, queue_url, self.runs)
        metrics.emit(
            batch.pages,
            [entry for entry in outcomes if entry.message.message_id in counted.counted],
            batch.unstarted,
            acknowledged.unacknowledged,
            batch.item_ms,
        )
        return Settled(
            unsettled=held - returned.returned | unsent,
            unstarted=len(batch.unstarted),
            unacknowledged=len(acknowledged.unacknowledged),
        )
