"""Domain events: one per committed transition, same id however often it is published."""

import json
from typing import Any

from jobkit.adapters.events import EventPublisher, StatusChanged, event_id
from jobkit.adapters.records import transition_id
from tests.unit.pipeline import Pipeline


def test_each_committed_transition_publishes_one_event(pipeline: Pipeline) -> None:
    pipeline.seed("acme", count=3)
    run = pipeline.plan(trigger="cli")
    pipeline.drain()
    events = pipeline.events.published
    assert sorted(e.record_id for e in events) == ["acme-r00001", "acme-r00002", "acme-r00003"]
    first = next(e for e in events if e.record_id == "acme-r00001")
    tid = transition_id("acme", "acme-r00001", "v1", "COMPLETED")
    assert (first.transition_id, first.event_id) == (tid, event_id(tid))
    assert (first.from_status, first.to_status, first.run_id) == (
        "IN_PROGRESS",
        "COMPLETED",
        run.run_id,
    )


def test_a_failed_publish_is_retried_and_the_transition_is_not_repeated(pipeline: Pipeline) -> None:
    pipeline.seed("acme", count=1)
    pipeline.plan(trigger="cli")
    pipeline.invoke(pipeline.receive())  # page
    pipeline.events.fail_next = 1
    [message] = pipeline.receive()
    assert pipeline.invoke([message]) == [message["MessageId"]]
    pipeline.drain()
    assert [e.record_id for e in pipeline.events.published] == ["acme-r00001"]
    assert len(pipeline.history("acme", "acme-r00001")) == 1


def test_a_redelivered_item_publishes_nothing_more(pipeline: Pipeline) -> None:
    pipeline.seed("acme", count=1)
    pipeline.plan(trigger="cli")
    pipeline.invoke(pipeline.receive())
    [message] = pipeline.receive()
    pipeline.invoke([message])
    pipeline.invoke([message])
    assert len(pipeline.events.published) == 1


class _FakeEvents:
    def __init__(self, fail: bool) -> None:
        self.fail, self.calls = fail, []  # type: ignore[var-annotated]

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803
        self.calls.append(Entries)
        if self.fail:
            return {"FailedEntryCount": 1, "Entries": [{"ErrorCode": "InternalFailure"}]}
        return {"FailedEntryCount": 0, "Entries": [{"EventId": "1"}]}


def _event() -> StatusChanged:
    return StatusChanged(
        event_id="e1",
        job_type="j",
        client_id="c",
        record_id="r",
        from_status="A",
        to_status="B",
        transition_id="t",
        run_id="run",
        occurred_at="2026-11-23T06:00:00Z",
        correlation_id="x",
    )


def test_publisher_reports_the_entries_eventbridge_failed() -> None:
    assert EventPublisher(lambda: _FakeEvents(fail=True), "bus").publish_all([_event()]) == {"e1"}


def test_publisher_sends_ten_events_per_request_to_its_bus() -> None:
    events = _FakeEvents(fail=False)
    published = [_event().model_copy(update={"event_id": f"e{n}"}) for n in range(23)]
    assert EventPublisher(lambda: events, "bus").publish_all(published) == set()
    assert [len(call) for call in events.calls] == [10, 10, 3]
    entry = events.calls[0][0]
    assert (entry["EventBusName"], entry["Source"], entry["DetailType"]) == (
        "bus",
        "jobkit",
        "record.status_changed",
    )


def test_a_batch_publishes_its_events_in_one_request(pipeline: Pipeline) -> None:
    pipeline.seed("acme", count=10)
    pipeline.plan(trigger="cli")
    pipeline.invoke(pipeline.receive())  # the page: 10 record items on the queue
    records = [m for m in pipeline.receive() if json.loads(m["Body"])["kind"] == "record"]
    assert len(records) == 10
    pipeline.invoke(records)
    assert len(pipeline.events.published) == 10
    assert pipeline.events.requests == 1
