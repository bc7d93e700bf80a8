"""The pitfalls others hit (DESIGN.md), each pinned by a test."""

from typing import Any

import pytest

from jobkit.adapters.queue import WorkQueue
from jobkit.domain.envelope import PageItem, new_page_item
from jobkit.domain.errors import EnqueueError
from jobkit.runs.models import RunStatus
from tests.support import LambdaContext
from tests.unit.pipeline import Pipeline


class _Crash(BaseException):
    """Stands for the runtime killing the invocation: nothing after it runs."""


def _crash_during_transition(pipeline: Pipeline, remaining_ms: int) -> tuple[Any, dict[str, Any]]:
    pipeline.seed("acme", count=1)
    run = pipeline.plan(trigger="cli")
    pipeline.invoke(pipeline.receive())  # page
    [message] = pipeline.receive()

    def crash(*args: Any, **kwargs: Any) -> Any:
        raise _Crash()

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pipeline.workflow, "apply", crash)
        with pytest.raises(_Crash):
            pipeline.invoke([message], LambdaContext(remaining_ms=remaining_ms))
    pipeline.aws.sqs.change_message_visibility(
        QueueUrl=pipeline.aws.work_queue_url,
        ReceiptHandle=message["ReceiptHandle"],
        VisibilityTimeout=0,
    )
    return run, message


def test_item_left_in_progress_by_a_dead_invocation_is_retried_after_it_expires(
    pipeline: Pipeline,
) -> None:
    # Given an invocation that died mid-item with 1 ms left (its IN_PROGRESS record expired)
    run, _ = _crash_during_transition(pipeline, remaining_ms=1)
    # When the item is delivered again
    pipeline.drain()
    # Then it is processed, once
    assert pipeline.state("acme", "acme-r00001")["status"] == "COMPLETED"
    assert pipeline.view(run.run_id).header.status is RunStatus.SUCCEEDED


def test_item_in_progress_elsewhere_is_retried_not_processed_twice(pipeline: Pipeline) -> None:
    # Given an invocation still within its time holds the item IN_PROGRESS
    _, message = _crash_during_transition(pipeline, remaining_ms=60_000)
    # When a duplicate arrives meanwhile, it is reported as a failure for a later retry
    [again] = pipeline.receive()
    assert pipeline.invoke([again]) == [again["MessageId"]]
    assert pipeline.state("acme", "acme-r00001")["status"] == "IN_PROGRESS"


def test_idempotency_keys_carry_a_pinned_prefix_not_the_function_name(pipeline: Pipeline) -> None:
    pipeline.seed("acme", count=2)
    pipeline.plan(trigger="cli")
    pipeline.drain()
    ids = [item["id"] for item in pipeline.aws.tables["IdempotencyTable"].scan()["Items"]]
    assert len(ids) == 3  # one page, two records
    assert all(i.startswith(("jobkit.record#", "jobkit.page#")) for i in ids), ids


def test_idempotency_is_keyed_on_item_key_not_message_id(pipeline: Pipeline) -> None:
    pipeline.seed("acme", count=1)
    pipeline.plan(trigger="cli")
    pipeline.invoke(pipeline.receive())  # page
    [message] = pipeline.receive()
    # The same work sent again as a new message (new MessageId)
    pipeline.aws.sqs.send_message(QueueUrl=pipeline.aws.work_queue_url, MessageBody=message["Body"])
    pipeline.invoke([message])
    pipeline.drain()
    assert len(pipeline.history("acme", "acme-r00001")) == 1


class _FlakySqs:
    """Answers 200 to SendMessageBatch but fails some entries, as SQS does."""

    def __init__(self, real: Any, failures: int, sender_fault: bool = False) -> None:
        self.real, self.failures, self.sender_fault, self.calls = real, failures, sender_fault, 0

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> Any:  # noqa: N803
        self.calls += 1
        failed = Entries[: self.failures]
        self.failures = 0 if not self.sender_fault else self.failures
        sent = Entries[len(failed) :]
        if sent:
            self.real.send_message_batch(QueueUrl=QueueUrl, Entries=sent)
        return {
            "Successful": [{"Id": e["Id"]} for e in sent],
            "Failed": [
                {
                    "Id": e["Id"],
                    "Code": "InternalError",
                    "SenderFault": self.sender_fault,
                    "Message": "x",
                }
                for e in failed
            ],
        }


def _page_items(count: int) -> list[PageItem]:
    return [
        new_page_item(
            job_type="sync-completed-records",
            run_id="r1",
            client_id=f"c{i}",
            group_id="g",
            correlation_id="c",
        )
        for i in range(count)
    ]


def test_send_message_batch_partial_failure_resends_the_failed_entries(pipeline: Pipeline) -> None:
    flaky = _FlakySqs(pipeline.aws.sqs, failures=3)
    queue = WorkQueue(lambda: flaky, pipeline.aws.work_queue_url)  # type: ignore[arg-type,return-value]
    queue.send(_page_items(10))
    assert flaky.calls == 2
    received = pipeline.receive(10)
    assert len(received) == 10


def test_send_message_batch_entries_that_keep_failing_raise(pipeline: Pipeline) -> None:
    flaky = _FlakySqs(pipeline.aws.sqs, failures=2, sender_fault=True)
    queue = WorkQueue(lambda: flaky, pipeline.aws.work_queue_url)  # type: ignore[arg-type,return-value]
    with pytest.raises(EnqueueError, match="2 message"):
        queue.send(_page_items(3))


def test_a_batch_where_every_item_fails_is_reported_item_by_item(pipeline: Pipeline) -> None:
    pipeline.seed("acme", count=1)
    pipeline.seed("globex", count=1)
    pipeline.plan(trigger="cli")
    pipeline.invoke(pipeline.receive())  # the two pages
    pipeline.events.fail_next = 2  # both records' events fail to publish
    messages = pipeline.receive()
    assert len(messages) == 2
    # no BatchProcessingError: both are reported as item failures
    assert sorted(pipeline.invoke(messages)) == sorted(m["MessageId"] for m in messages)


def test_transient_failure_on_the_last_attempt_is_dead_lettered_and_counted(
    pipeline: Pipeline,
) -> None:
    pipeline.seed("acme", count=1)
    pipeline.seed("globex", count=2)
    run = pipeline.plan(trigger="cli")
    pipeline.invoke(pipeline.receive())  # the pages
    pipeline.events.fail_next = 5  # acme's record fails on every allowed attempt
    for _ in range(5):
        messages = pipeline.receive()
        pipeline.invoke([m for m in messages if '"acme"' in m["Body"]])
        pipeline.release([m for m in messages if '"acme"' not in m["Body"]])
    pipeline.drain()
    view = pipeline.view(run.run_id)
    assert view.header.status is RunStatus.COMPLETED_WITH_ERRORS
    assert (view.header.processed, view.header.failed, view.header.dead_lettered) == (2, 1, 1)
    [dead] = pipeline.dead_letters()
    assert dead["body"]["kind"] == "record" and dead["body"]["client_id"] == "acme"
    assert dead["reason"].startswith("gave up after 5 attempts")
