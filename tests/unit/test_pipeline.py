"""The seed's checklist, against the whole pipeline in-process (moto)."""

from typing import Any

from jobkit.pipeline.process import Processor
from jobkit.runs.models import ClientStatus, RunStatus
from tests.unit.pipeline import JOB, Pipeline


def test_a_run_processes_every_record_and_closes_with_matching_totals(pipeline: Pipeline) -> None:
    # Given two clients with 25 and 7 completed records
    pipeline.seed("acme", count=25)
    pipeline.seed("globex", group_id="south", count=7)
    # When the schedule fires and the queue drains
    run = pipeline.plan(trigger="schedule", scheduled_time="2026-11-23T06:00:00Z")
    pipeline.drain()
    # Then the run closed as SUCCEEDED with every record processed once
    view = pipeline.view(run.run_id)
    assert view.header.status is RunStatus.SUCCEEDED
    assert (view.header.received, view.header.processed, view.header.failed) == (32, 32, 0)
    assert {c.client_id: c.processed for c in view.clients} == {"acme": 25, "globex": 7}


def test_transition_writes_history_registers_trigger_and_clears_pending(pipeline: Pipeline) -> None:
    pipeline.seed("acme", count=1)
    pipeline.plan(trigger="cli")
    pipeline.drain()
    state = pipeline.state("acme", "acme-r00001")
    assert state["status"] == "COMPLETED"
    assert "pending_items" not in state
    [history] = pipeline.history("acme", "acme-r00001")
    assert (history["from_status"], history["to_status"]) == ("IN_PROGRESS", "COMPLETED")
    assert history["cleared_pending"] == ["acme-r00001-p1"]
    # The trigger is registered on the history row, in the transition's transaction, and
    # fired by the transition's domain event: no row of its own.
    assert history["triggers"] == ["COMPLETED"]
    rows = pipeline.aws.tables["RecordsTable"].query(
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": "acme#acme-r00001"},
    )["Items"]
    assert sorted(row["sk"] for row in rows) == ["HIST#0000000001", "STATE"]
    [event] = pipeline.events.published
    assert (event.to_status, event.triggers) == ("COMPLETED", ("COMPLETED",))
    assert event.transition_id == history["transition_id"]


def test_schedule_fired_twice_for_the_same_time_opens_one_run(pipeline: Pipeline) -> None:
    pipeline.seed("acme", count=3)
    first = pipeline.plan(trigger="schedule", scheduled_time="2026-11-23T06:00:00Z")
    second = pipeline.plan(trigger="schedule", scheduled_time="2026-11-23T06:00:00Z")
    assert first.run_id == second.run_id
    # one page item only: the second firing enqueued nothing
    assert len(pipeline.receive()) == 1


def test_empty_record_list_completes_the_run(pipeline: Pipeline, caplog: Any) -> None:
    pipeline.seed("acme", count=0)
    run = pipeline.plan(trigger="cli")
    pipeline.drain()
    view = pipeline.view(run.run_id)
    assert view.header.status is RunStatus.SUCCEEDED
    assert view.header.received == 0


def test_no_clients_configured_closes_the_run_with_an_issue(pipeline: Pipeline) -> None:
    run = pipeline.plan(trigger="cli")
    view = pipeline.view(run.run_id)
    assert view.header.status is RunStatus.SUCCEEDED
    assert view.header.issues == [f"no enabled clients configured for {JOB}"]


def test_invalid_client_config_is_reported_and_others_carry_on(pipeline: Pipeline) -> None:
    pipeline.seed("acme", count=4)
    pipeline.aws.tables["ConfigTable"].put_item(
        Item={"job_type": JOB, "client_id": "broken", "group_id": "north", "days": "often"}
    )
    run = pipeline.plan(trigger="cli")
    pipeline.drain()
    view = pipeline.view(run.run_id)
    assert view.header.status is RunStatus.COMPLETED_WITH_ERRORS
    assert view.header.processed == 4
    [issue] = view.header.issues
    assert issue.startswith("client broken: invalid configuration: days:")
    broken = next(c for c in view.clients if c.client_id == "broken")
    assert broken.status is ClientStatus.INVALID_CONFIG


def test_disabled_client_is_left_out(pipeline: Pipeline) -> None:
    pipeline.seed("acme", count=2)
    pipeline.seed("globex", count=2, enabled=False)
    run = pipeline.plan(trigger="cli")
    pipeline.drain()
    assert [c.client_id for c in pipeline.view(run.run_id).clients] == ["acme"]


def test_poison_record_is_dead_lettered_with_reason_and_the_run_still_closes(
    pipeline: Pipeline,
) -> None:
    pipeline.seed("acme", count=12, poison=("acme-r00004",))
    run = pipeline.plan(trigger="cli")
    pipeline.drain()
    view = pipeline.view(run.run_id)
    assert view.header.status is RunStatus.COMPLETED_WITH_ERRORS
    assert (view.header.received, view.header.processed, view.header.failed) == (12, 11, 1)
    [dead] = pipeline.dead_letters()
    assert dead["body"]["record_id"] == "acme-r00004"
    assert dead["body"]["run_id"] == run.run_id
    assert dead["error_type"] == "InvalidPayloadError"
    assert "version" in dead["reason"] and "completed_at" in dead["reason"]


def test_one_failing_record_does_not_abort_its_batch(pipeline: Pipeline) -> None:
    pipeline.seed("acme", count=3, poison=("acme-r00002",))
    pipeline.plan(trigger="cli")
    pipeline.invoke(pipeline.receive())  # the page item
    failed = pipeline.invoke(pipeline.receive())  # the three record items, one batch
    assert failed == []
    assert pipeline.state("acme", "acme-r00001")["status"] == "COMPLETED"
    assert pipeline.state("acme", "acme-r00003")["status"] == "COMPLETED"


def test_ack_fires_only_for_successfully_processed_records(pipeline: Pipeline) -> None:
    pipeline.seed("acme", count=6, poison=("acme-r00005",))
    pipeline.plan(trigger="cli")
    pipeline.drain()
    acked = sorted(rid for rid, _ in pipeline.external.acked["acme"])
    assert acked == ["acme-r00001", "acme-r00002", "acme-r00003", "acme-r00004", "acme-r00006"]


def test_failing_ack_is_retried_without_reprocessing_the_record(pipeline: Pipeline) -> None:
    pipeline.seed("acme", count=2)
    run = pipeline.plan(trigger="cli")
    pipeline.invoke(pipeline.receive())  # page
    pipeline.external.fail_acks = 1
    failed = pipeline.invoke(pipeline.receive())
    assert len(failed) == 2  # processed, but unacknowledged: kept for retry
    assert pipeline.view(run.run_id).header.status is RunStatus.RUNNING
    pipeline.drain()
    assert sorted(rid for rid, _ in pipeline.external.acked["acme"]) == [
        "acme-r00001",
        "acme-r00002",
    ]
    assert len(pipeline.history("acme", "acme-r00001")) == 1
    header = pipeline.view(run.run_id).header
    assert (header.status, header.processed) == (RunStatus.SUCCEEDED, 2)


def test_ack_failing_on_every_attempt_is_dead_lettered_and_the_run_closes(
    pipeline: Pipeline,
) -> None:
    pipeline.seed("acme", count=1)
    run = pipeline.plan(trigger="cli")
    pipeline.invoke(pipeline.receive())  # page
    pipeline.external.fail_acks = 5
    for _ in range(5):
        pipeline.invoke(pipeline.receive())
    view = pipeline.view(run.run_id)
    assert view.header.status is RunStatus.SUCCEEDED  # the record itself was processed
    assert (view.header.processed, view.clients[0].ack_failed) == (1, 1)
    [dead] = pipeline.dead_letters()
    assert dead["error_type"] == "AckFailed" and dead["body"]["record_id"] == "acme-r00001"
    assert len(pipeline.history("acme", "acme-r00001")) == 1


def test_redelivered_item_is_not_processed_twice(pipeline: Pipeline) -> None:
    pipeline.seed("acme", count=1)
    run = pipeline.plan(trigger="cli")
    pipeline.invoke(pipeline.receive())  # page
    [message] = pipeline.receive()
    pipeline.invoke([message])
    pipeline.invoke([message])  # the same message, delivered again
    assert len(pipeline.history("acme", "acme-r00001")) == 1
    view = pipeline.view(run.run_id)
    assert (view.header.received, view.header.processed, view.header.skipped) == (1, 1, 0)


def test_same_work_sent_twice_is_done_once_and_counted_as_skipped(pipeline: Pipeline) -> None:
    pipeline.seed("acme", count=1)
    first = pipeline.plan(trigger="cli")
    pipeline.invoke(pipeline.receive())  # page
    [message] = pipeline.receive()
    pipeline.invoke([message])
    # A second run receives the same record (same item_key, another envelope)
    pipeline.external.acked.clear()
    second = pipeline.plan(trigger="cli")
    pipeline.drain()
    assert len(pipeline.history("acme", "acme-r00001")) == 1
    assert pipeline.view(first.run_id).header.processed == 1
    later = pipeline.view(second.run_id).header
    assert (later.received, later.processed, later.skipped) == (1, 0, 1)
    assert pipeline.external.acked["acme"] == [("acme-r00001", 1)]  # acknowledged again


def test_cancelled_run_skips_its_queued_items_and_counts_them(pipeline: Pipeline) -> None:
    pipeline.seed("acme", count=15)  # two pages of 10 and 5
    run = pipeline.plan(trigger="cli")
    pipeline.invoke(pipeline.receive(1))  # first page: 10 record items and the next page
    assert pipeline.ledger.lifecycle.cancel(run.run_id)
    pipeline.drain()
    view = pipeline.view(run.run_id)
    assert view.header.status is RunStatus.CANCELLED
    [acme] = view.clients
    assert (acme.received, acme.processed, acme.skipped) == (10, 0, 10)
    assert pipeline.state("acme", "acme-r00001")["status"] == "IN_PROGRESS"
    assert "acme" not in pipeline.external.acked


def test_dry_run_reports_the_clients_and_enqueues_nothing(pipeline: Pipeline) -> None:
    pipeline.seed("acme", count=3)
    run = pipeline.plan(trigger="api", dry_run=True)
    assert run.status is RunStatus.SUCCEEDED
    assert run.issues == ["dry run: 1 client(s) would run: acme"]
    assert pipeline.receive() == []


def test_redriven_item_that_now_succeeds_moves_from_failed_to_processed(pipeline: Pipeline) -> None:
    # Given a record the platform does not know yet: dead-lettered at once
    pipeline.seed("acme", count=2)
    records = pipeline.aws.tables["RecordsTable"]
    records.delete_item(Key={"pk": "acme#acme-r00002", "sk": "STATE"})
    run = pipeline.plan(trigger="cli")
    pipeline.drain()
    assert pipeline.view(run.run_id).header.failed == 1
    [dead] = pipeline.aws.sqs.receive_message(QueueUrl=pipeline.aws.dlq_url)["Messages"]
    # When the cause is fixed and the dead letter is redriven (twice, as a retry might)
    records.put_item(
        Item={"pk": "acme#acme-r00002", "sk": "STATE", "status": "IN_PROGRESS", "version": 0}
    )
    for _ in range(2):
        pipeline.aws.sqs.send_message(
            QueueUrl=pipeline.aws.work_queue_url, MessageBody=dead["Body"]
        )
    pipeline.drain()
    # Then it is processed once and the run's counts say so
    header = pipeline.view(run.run_id).header
    assert (header.processed, header.failed, header.received) == (2, 0, 2)
    assert len(pipeline.history("acme", "acme-r00002")) == 1


class _CrashAfterFirstSend:
    """A queue whose first send goes through, then the processor dies (before the page's
    idempotency record is saved)."""

    def __init__(self, queue: Any) -> None:
        self._queue = queue
        self.crashed = False

    def source_url(self, queue_arn: str | None) -> str:
        return str(self._queue.source_url(queue_arn))

    def send(self, items: Any, delay_seconds: int = 0) -> None:
        self._queue.send(items, delay_seconds)
        if not self.crashed:
            self.crashed = True
            raise RuntimeError("processor died after enqueueing the page's records")


def test_page_fetched_again_after_a_crash_counts_and_pages_from_the_first_fetch(
    pipeline: Pipeline,
) -> None:
    ids = pipeline.seed("acme", count=15)  # two pages of 10 in the fake
    run = pipeline.plan(trigger="cli")
    crashing = _CrashAfterFirstSend(pipeline.queue)
    pipeline.processor = Processor(pipeline.dependencies(queue=crashing))
    [page] = pipeline.receive()
    pipeline.invoke([page])  # enqueues 10 records and the next page, then "crashes"
    assert crashing.crashed
    # The records are processed and acknowledged before the page comes back; fetched again,
    # the page no longer holds them (the external system drops acknowledged records).
    for _ in range(3):
        messages = pipeline.receive()
        records = [m for m in messages if '"kind":"record"' in m["Body"]]
        pipeline.invoke(records)
        pipeline.release([m for m in messages if m not in records])
    pipeline.drain()

    view = pipeline.view(run.run_id)
    assert view.header.status is RunStatus.SUCCEEDED
    assert (view.header.received, view.header.processed) == (15, 15)
    assert all(len(pipeline.history("acme", rid)) == 1 for rid in ids)


def test_a_next_page_counted_before_its_previous_page_does_not_close_the_client_early(
    pipeline: Pipeline,
) -> None:
    ids = pipeline.seed("acme", count=15)  # two pages of 10 in the fake
    run = pipeline.plan(trigger="cli")
    original = pipeline.ledger.counting.count_page
    calls = {"n": 0}

    def first_count_fails(*args: Any, **kwargs: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("counting page 1 failed: it is retried later")
        original(*args, **kwargs)

    pipeline.ledger.counting.count_page = first_count_fails  # type: ignore[method-assign]
    [page] = pipeline.receive()
    pipeline.invoke([page])  # page 1 fetched, its records and page 2 enqueued; not counted
    # Page 2 and its records are done before page 1 is counted or its records processed.
    second_ids = {f'"record_id":"{rid}"' for rid in ids[10:]}
    held: list[dict[str, Any]] = []
    for _ in range(20):
        messages = pipeline.receive()
        second = [
            m
            for m in messages
            if '"page_number":2' in m["Body"] or any(i in m["Body"] for i in second_ids)
        ]
        pipeline.invoke(second)
        held += [m for m in messages if m not in second]  # hidden until released below
    pipeline.release(held)
    assert sum(len(pipeline.history("acme", rid)) for rid in ids[10:]) == 5
    assert pipeline.view(run.run_id).header.status is RunStatus.RUNNING
    pipeline.drain()

    view = pipeline.view(run.run_id)
    assert view.header.status is RunStatus.SUCCEEDED
    assert (view.header.received, view.header.processed) == (15, 15)
    assert all(len(pipeline.history("acme", rid)) == 1 for rid in ids)


def test_a_batch_reads_its_records_states_in_one_request(pipeline: Pipeline) -> None:
    # Given a page's ten record items on the queue
    pipeline.seed("acme", count=10)
    pipeline.plan(trigger="cli")
    pipeline.invoke(pipeline.receive())
    records = pipeline.receive()
    assert len(records) == 10
    table = pipeline.aws.tables["RecordsTable"]
    reads: list[str] = []

    def count(params: dict[str, Any], model: Any, **_: Any) -> None:
        if table.name in (params.get("TableName"), *params.get("RequestItems", {})):
            reads.append(model.name)

    events = table.meta.client.meta.events
    events.register("before-parameter-build.dynamodb", count)
    # When one invocation processes them
    failed = pipeline.invoke(records)
    events.unregister("before-parameter-build.dynamodb", count)
    # Then every record moved, and their states were read by one request, not one each
    assert failed == []
    assert [pipeline.state("acme", f"acme-r{n:05d}")["status"] for n in range(1, 11)] == [
        "COMPLETED"
    ] * 10
    assert reads.count("BatchGetItem") == 1
    assert "GetItem" not in reads
