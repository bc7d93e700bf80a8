"""Sending work and dead letters to SQS.

``SendMessageBatch`` answers 200 even when some entries fail: the failed ones are resent, and
whatever SQS still refuses raises ``EnqueueError`` so the caller retries instead of losing it.
"""

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from jobkit.adapters.aws import SQSClient, in_parallel
from jobkit.domain.backoff import backoff_seconds
from jobkit.domain.envelope import PageItem, RecordItem
from jobkit.domain.errors import EnqueueError
from jobkit.tooling.chaos import NO_CHAOS, Chaos

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

MAX_BATCH_ENTRIES = 10
# SQS caps a batch at 1 MiB in all; keep well under so one large record cannot break a batch.
MAX_BATCH_BYTES = 900 * 1024
MAX_MESSAGE_BYTES = 1024 * 1024
MAX_DELAY_SECONDS = 900  # SQS's longest per-message delay
_SEND_ATTEMPTS = 3


def receive_count(message: "SQSRecord") -> int:
    """How many times SQS has handed out this message, this time included."""
    return int(message.attributes.approximate_receive_count or 1)


def _batches(bodies: Sequence[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    batches: list[list[tuple[str, str]]] = []
    current: list[tuple[str, str]] = []
    size = 0
    for group, body in bodies:
        length = len(body.encode())
        if current and (len(current) == MAX_BATCH_ENTRIES or size + length > MAX_BATCH_BYTES):
            batches.append(current)
            current, size = [], 0
        current.append((group, body))
        size += length
    if current:
        batches.append(current)
    return batches


def _queue_name(url_or_arn: str) -> str:
    return url_or_arn.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1]


class WorkQueue:
    """The work queue, in two lanes: live runs' items, and backfills' (``item.replay``), whose
    queue has an event source of its own with a lower concurrency cap."""

    def __init__(
        self,
        sqs: Callable[[], SQSClient],
        queue_url: str,
        chaos: Chaos = NO_CHAOS,
        backfill_url: str | None = None,
    ) -> None:
        # A factory (the cached `jobkit.adapters.aws.sqs_client`): the client is made on the first
        # send, so a cold start whose batch only processes records does not make it (~30 ms).
        self._sqs = sqs
        self._url = queue_url
        self._backfill_url = backfill_url
        self._chaos = chaos

    def lane_url(self, item: PageItem | RecordItem) -> str:
        """The queue an item travels on."""
        if item.replay is None:
            return self._url
        if self._backfill_url is None:
            raise EnqueueError("no backfill queue is configured (BACKFILL_QUEUE_URL)")
        return self._backfill_url

    def source_url(self, queue_arn: str | None) -> str:
        """The URL of the queue a batch was received from (each SQS event source invokes with
        one queue's messages), named by its ARN; the live lane's when it is not known."""
        if queue_arn and self._backfill_url:
            if _queue_name(queue_arn) == _queue_name(self._backfill_url):
                return self._backfill_url
        return self._url

    def send(self, items: Sequence[PageItem | RecordItem], delay_seconds: int = 0) -> None:
        """Enqueue every work item on its lane, ten per request, resending entries SQS failed."""
        lanes: dict[str, list[tuple[str, str]]] = {}
        for item in items:
            body = (item.message_group_id, item.model_dump_json())
            lanes.setdefault(self.lane_url(item), []).append(body)
        for url, bodies in lanes.items():
            self.send_bodies(bodies, delay_seconds, url=url)

    def send_bodies(
        self, bodies: Sequence[tuple[str, str]], delay_seconds: int = 0, *, url: str | None = None
    ) -> None:
        """Enqueue (message group, body) pairs, ten per request, resending failed entries, on
        ``url`` (by default the live lane)."""
        bodies = [*bodies, *(body for body in bodies if self._chaos.duplicate())]
        delay = min(MAX_DELAY_SECONDS, max(0, delay_seconds))
        in_parallel(
            lambda batch: self._send_batch(batch, delay, url or self._url), _batches(bodies)
        )

    def _send_batch(self, batch: list[tuple[str, str]], delay_seconds: int, url: str) -> None:
        entries: dict[str, dict[str, Any]] = {
            str(index): {"Id": str(index), "MessageBody": body, "MessageGroupId": group}
            for index, (group, body) in enumerate(batch)
        }
        if delay_seconds:
            for entry in entries.values():
                entry["DelaySeconds"] = delay_seconds
        failures: list[Any] = []
        for attempt in range(_SEND_ATTEMPTS):
            response = self._sqs().send_message_batch(
                QueueUrl=url,
                Entries=list(entries.values()),  # type: ignore[arg-type]
            )
            failures = list(response.get("Failed", []))
            if not failures:
                return
            entries = {f["Id"]: entries[f["Id"]] for f in failures}
            if all(f.get("SenderFault") for f in failures):
                break  # our request is wrong: resending the same entries cannot help
            time.sleep(backoff_seconds(attempt + 1, 0.1, 1.0, floor=0.5))
        codes = sorted({str(f.get("Code")) for f in failures})
        raise EnqueueError(f"{len(failures)} message(s) not enqueued: {', '.join(codes)}")


class DeadLetterQueue:
    """Our own dead-lettering: the full envelope as body, the reason as attributes."""

    def __init__(self, sqs: Callable[[], SQSClient], queue_url: str) -> None:
        self._sqs = sqs  # a factory, as for WorkQueue
        self._url = queue_url

    def send(
        self,
        body: str,
        *,
        reason: str,
        error_type: str,
        source_message_id: str,
        attempts: int,
        run_id: str = "",
        client_id: str = "",
    ) -> None:
        attributes = {
            "reason": reason[:1000] or "unknown",
            "error_type": error_type,
            "source_message_id": source_message_id,
            "attempts": str(attempts),
            "failed_at": datetime.now(UTC).isoformat(),
            "run_id": run_id or "-",
            "client_id": client_id or "-",
        }
        self._sqs().send_message(
            QueueUrl=self._url,
            MessageBody=body,
            MessageAttributes={
                name: {"DataType": "String", "StringValue": value}
                for name, value in attributes.items()
            },
        )
