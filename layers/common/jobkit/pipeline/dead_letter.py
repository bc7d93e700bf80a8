"""Settle, last: dead letters with their reason, and backoff before the retried items' next
attempt.

Every dead letter carries its envelope (the original body) and, as attributes, its reason,
error type, attempts, run and client. A retried item waits an exponential backoff with jitter
before it is received again, through its message's visibility.
"""

from collections import defaultdict
from collections.abc import Callable
from typing import Any

from jobkit.adapters.aws import SQSClient
from jobkit.adapters.queue import DeadLetterQueue, receive_count
from jobkit.domain.backoff import backoff_seconds
from jobkit.observability import logger
from jobkit.pipeline.batch import Failure
from jobkit.runs.counting import OutcomeCounting

_BACKOFF_BASE_SECONDS = 2
_BACKOFF_MAX_SECONDS = 300


def dead_letter(
    failures: list[Failure], held: frozenset[str], dead_letters: DeadLetterQueue
) -> frozenset[str]:
    """Send each failure not held back (retried instead) to the DLQ; returns the messages
    that could not be sent, which are retried rather than lost."""
    unsent: set[str] = set()
    for failure in failures:
        message_id = failure.message.message_id
        if message_id in held:
            continue
        item = failure.item
        try:
            dead_letters.send(
                failure.message.body,
                reason=failure.reason,
                error_type=failure.error_type,
                source_message_id=message_id,
                attempts=receive_count(failure.message),
                run_id=item.run_id if item else "",
                client_id=item.client_id if item else "",
            )
        except Exception:  # noqa: BLE001 - keep the message: it is retried, not lost
            logger.exception("dead-lettering failed", extra={"message_id": message_id})
            unsent.add(message_id)
    return frozenset(unsent)


def back_off(
    retry: list[Failure], sqs: Callable[[], SQSClient], queue_url: str, runs: OutcomeCounting
) -> None:
    """Exponential backoff with jitter between attempts, through message visibility; each
    client's retries counted on its run (informational)."""
    entries: list[dict[str, Any]] = []
    for failure in retry:
        attempts = receive_count(failure.message)
        delay = backoff_seconds(attempts, _BACKOFF_BASE_SECONDS, _BACKOFF_MAX_SECONDS, floor=0.5)
        entries.append(
            {
                "Id": str(len(entries)),
                "ReceiptHandle": failure.message.receipt_handle,
                "VisibilityTimeout": int(delay) + 1,
            }
        )
    for start in range(0, len(entries), 10):
        try:
            sqs().change_message_visibility_batch(
                QueueUrl=queue_url,
                Entries=entries[start : start + 10],  # type: ignore[arg-type]
            )
        except Exception:  # noqa: BLE001 - without it the queue's own timeout applies
            logger.exception("could not set retry backoff")
    retried: dict[tuple[str, str], int] = defaultdict(int)
    for failure in retry:
        if failure.item is not None:
            retried[(failure.item.run_id, failure.item.client_id)] += 1
    for (run_id, client_id), count in retried.items():
        try:
            runs.add_to_client(run_id, client_id, retries=count)
        except Exception:  # noqa: BLE001 - informational counter only
            logger.exception("could not count retries")
