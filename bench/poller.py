"""An SQS event source with AWS's batch size, for measuring what a record costs on AWS.

Lambda's SQS poller on AWS hands the processor up to its BatchSize (50) messages, gathered over
its 1 s batching window; MiniStack's hands at most 10 and has no window. Per-batch work (a
counter update and an outcome pack per client, an ack per client and its rate-limit token) is
then spread over five times fewer records locally than on AWS. For the requests-per-record
figures, `make bench` turns the processor's own mapping off and feeds it like AWS would:
receive up to 50 messages (within 1 s), invoke the processor with them, delete what it did
not report as failed. Written here because nothing else on this machine polls SQS for a
Lambda the way AWS does.
It reports what an event source would see (``PollerReport``): function errors and timeouts
above all, since a batch of 50 must return inside the processor's timeout.
"""

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from jobkit_cli.stack import Stack

BATCH_SIZE = 50  # template.yaml, the processor's Work event
BATCHING_WINDOW_SECONDS = 1.0
VISIBILITY_TIMEOUT = 360  # the work queue's (template.yaml)


def _lambda_record(message: dict[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """An SQS message as Lambda's event source presents it."""
    attributes = message.get("MessageAttributes", {})
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message.get("Attributes", {}),
        "messageAttributes": {
            name: {key[0].lower() + key[1:]: value for key, value in attribute.items()}
            for name, attribute in attributes.items()
        },
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


@dataclass
class PollerReport:
    """What the poller saw of the processor's invocations."""

    batches: int = 0
    messages: int = 0
    largest_batch: int = 0
    item_failures: int = 0  # messages the processor reported as batch item failures
    function_errors: list[str] = field(default_factory=list)  # each error's message
    longest_invocation_seconds: float = 0.0

    @property
    def timeouts(self) -> int:
        """Invocations the function's timeout ended (Lambda's "Task timed out after …")."""
        return sum(1 for error in self.function_errors if "timed out" in error)

    def as_dict(self) -> dict[str, Any]:
        return {
            "batches": self.batches,
            "messages": self.messages,
            "largest_batch": self.largest_batch,
            "item_failures": self.item_failures,
            "function_errors": len(self.function_errors),
            "timeouts": self.timeouts,
            "longest_invocation_seconds": round(self.longest_invocation_seconds, 1),
        }


class AwsSizedPoller:
    def __init__(self, stack: Stack) -> None:
        self.report = PollerReport()
        self._stack = stack
        self._sqs = stack.client("sqs")
        self._lambda = stack.client("lambda")
        self._function = stack.outputs["ProcessorFunctionName"]
        self._queue_url = stack.outputs["WorkQueueUrl"]
        self._queue_arn = self._sqs.get_queue_attributes(
            QueueUrl=self._queue_url, AttributeNames=["QueueArn"]
        )["Attributes"]["QueueArn"]

    @contextmanager
    def in_place_of_the_mapping(self) -> Iterator["AwsSizedPoller"]:
        with paused_event_sources(self._stack):
            yield self

    def run_until(self, done: Callable[[], bool]) -> int:
        """Feed the processor until ``done()``; returns how many batches it was given."""
        batches = 0
        while not done():
            messages = self._gather()
            if not messages:
                time.sleep(0.2)
                continue
            self._invoke(messages)
            batches += 1
        return batches

    def _gather(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        deadline = time.time() + BATCHING_WINDOW_SECONDS
        while len(messages) < BATCH_SIZE and time.time() < deadline:
            received = self._sqs.receive_message(
                QueueUrl=self._queue_url,
                MaxNumberOfMessages=min(10, BATCH_SIZE - len(messages)),
                VisibilityTimeout=VISIBILITY_TIMEOUT,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            messages += received
            if not received:
                time.sleep(0.05)
        return messages

    def _invoke(self, messages: list[dict[str, Any]]) -> None:
        event = {
            "Records": [_lambda_record(m, self._queue_arn, self._stack.region) for m in messages]
        }
        report = self.report
        report.batches += 1
        report.messages += len(messages)
        report.largest_batch = max(report.largest_batch, len(messages))
        started = time.monotonic()
        response = self._lambda.invoke(
            FunctionName=self._function, Payload=json.dumps(event).encode()
        )
        answer = json.loads(response["Payload"].read() or b"{}")
        took = time.monotonic() - started
        report.longest_invocation_seconds = max(report.longest_invocation_seconds, took)
        if response.get("FunctionError"):
            message = answer.get("errorMessage") if isinstance(answer, dict) else answer
            report.function_errors.append(str(message or response["FunctionError"]))
            return  # like the event source: nothing is deleted, every message comes back
        failed = {f["itemIdentifier"] for f in answer.get("batchItemFailures", [])}
        report.item_failures += len(failed)
        self._delete([m for m in messages if m["MessageId"] not in failed])

    def _delete(self, done: list[dict[str, Any]]) -> None:
        """What the processor did not report failed leaves the queue, as the event source
        deletes it."""
        for start in range(0, len(done), 10):
            self._sqs.delete_message_batch(
                QueueUrl=self._queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(done[start : start + 10])
                ],
            )


@contextmanager
def paused_event_sources(stack: Stack) -> Iterator[None]:
    """The processor's event source on the work queue disabled meanwhile, then enabled."""
    functions = stack.client("lambda")
    queue_arn = stack.client("sqs").get_queue_attributes(
        QueueUrl=stack.outputs["WorkQueueUrl"], AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]
    mappings = functions.list_event_source_mappings(
        FunctionName=stack.outputs["ProcessorFunctionName"], EventSourceArn=queue_arn
    )["EventSourceMappings"]
    for mapping in mappings:
        functions.update_event_source_mapping(UUID=mapping["UUID"], Enabled=False)
    try:
        yield
    finally:
        for mapping in mappings:
            functions.update_event_source_mapping(UUID=mapping["UUID"], Enabled=True)
