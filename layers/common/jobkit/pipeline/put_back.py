"""Settle: what this invocation had no time for goes back to the queue, visible at once.

As identical copies (same envelope, so counted once), not as batch item failures: a failure
waits out the queue's visibility timeout, and each return uses up a receive, so items that
only lacked our time would come closer to being dead-lettered, and one at maxReceiveCount
would be moved to the DLQ by the queue's redrive, without our reason or its count on the run.
A copy costs what a visibility change would (one request per ten); should this invocation die
after sending it, the original comes back too, and idempotency makes that a duplicate.
"""

from collections.abc import Callable
from typing import NamedTuple

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from jobkit.adapters.aws import SQSClient
from jobkit.adapters.queue import WorkQueue
from jobkit.domain.envelope import PageItem, RecordItem
from jobkit.observability import logger
from jobkit.pipeline.batch import AckDue, Unstarted

_PER_REQUEST = 10  # SQS batch requests take ten entries


class PutBack(NamedTuple):
    returned: frozenset[str]  # copies on the queue: the originals are done with
    unsettled: frozenset[str]  # the copy failed: the original is reported failed instead


def put_back(
    unstarted: list[Unstarted],
    unacknowledged: list[AckDue],
    queue: WorkQueue,
    sqs: Callable[[], SQSClient],
    queue_url: str,
) -> PutBack:
    entries: list[tuple[SQSRecord, PageItem | RecordItem]] = [
        (entry.message, entry.item) for entry in unstarted
    ]
    entries += [(entry.message, entry.item) for entry in unacknowledged]
    returned, failed = _send_copies(entries, queue, queue_url)
    if failed:
        _release(failed, sqs, queue_url)
    return PutBack(frozenset(returned), frozenset(m.message_id for m in failed))


def _send_copies(
    entries: list[tuple[SQSRecord, PageItem | RecordItem]], queue: WorkQueue, queue_url: str
) -> tuple[set[str], list[SQSRecord]]:
    """The messages whose copy is on their queue (the one they came from, so a backfill's
    stay in its lane), and those whose copy could not be sent."""
    returned: set[str] = set()
    failed: list[SQSRecord] = []
    for start in range(0, len(entries), _PER_REQUEST):
        chunk = entries[start : start + _PER_REQUEST]
        try:
            queue.send_bodies(
                [(item.message_group_id, message.body) for message, item in chunk], url=queue_url
            )
        except Exception:  # noqa: BLE001 - returned as failures instead, visible at once
            logger.exception("putting back items out of time failed")
            failed += [message for message, _ in chunk]
        else:
            returned.update(message.message_id for message, _ in chunk)
    return returned, failed


def _release(messages: list[SQSRecord], sqs: Callable[[], SQSClient], queue_url: str) -> None:
    """Failures made visible again at once rather than after the visibility timeout."""
    for start in range(0, len(messages), _PER_REQUEST):
        try:
            sqs().change_message_visibility_batch(
                QueueUrl=queue_url,
                Entries=[
                    {"Id": str(n), "ReceiptHandle": m.receipt_handle, "VisibilityTimeout": 0}
                    for n, m in enumerate(messages[start : start + _PER_REQUEST])
                ],
            )
        except Exception:  # noqa: BLE001 - the queue's own timeout applies then
            logger.exception("could not make items visible again")
