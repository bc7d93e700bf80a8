"""The seed's checklist against the real pipeline: MiniStack, its SQS event source, HTTP."""

import json
import time
from typing import Any

import httpx
import pytest

from jobkit.adapters.records import STATE, record_pk
from jobkit.domain.envelope import new_page_item, new_record_item
from jobkit.runs.models import RunStatus
from jobkit.runs.queries import RunQueries
from jobkit_cli.runs_view import peek_dead_letters
from jobkit_cli.stack import Stack
from tests.integration.conftest import (
    acks,
    fire,
    log_lines,
    unused_schedule_time,
    wait_for_run,
    wait_until,
)

pytestmark = pytest.mark.integration


def _schedule_time() -> str:
    return unused_schedule_time().isoformat()


def _history(stack: Stack, client_id: str, record_id: str) -> list[dict[str, Any]]:
    return list(
        stack.table("RecordsTableName").query(
            KeyConditionExpression="pk = :pk AND begins_with(sk, :h)",
            ExpressionAttributeValues={":pk": record_pk(client_id, record_id), ":h": "HIST#"},
        )["Items"]
    )


def test_scheduled_run_processes_transitions_and_acknowledges_every_record(
    stack: Stack,
    runs: RunQueries,
    external: httpx.Client,
    new_client: Any,
) -> None:
    # Given two clients with completed records in the external system
    first, second = (
        new_client("acme", records=30),
        new_client("globex", records=12, group_id="south"),
    )
    # When the schedule fires
    planned = fire(
        stack, trigger="schedule", scheduled_time=_schedule_time(), client_ids=[first, second]
    )
    view = wait_for_run(runs, planned["run_id"])
    # Then every record is processed once and acknowledged, and the run closes
    assert view.header.status is RunStatus.SUCCEEDED
    assert (view.header.received, view.header.processed, view.header.failed) == (42, 42, 0)
    assert (acks(external, first), acks(external, second)) == (30, 12)
    state = stack.table("RecordsTableName").get_item(
        Key={"pk": record_pk(first, f"{first}-r00007"), "sk": STATE}
    )["Item"]
    assert state["status"] == "COMPLETED" and "pending_items" not in state
    [history] = _history(stack, first, f"{first}-r00007")
    assert (history["from_status"], history["to_status"]) == ("IN_PROGRESS", "COMPLETED")
    assert history["triggers"] == ["COMPLETED"]
    # and the processor logged the completion line with the totals
    [completion] = _completion_lines(stack, planned["run_id"])
    assert (completion["received"], completion["processed"], completion["errors"]) == (42, 42, 0)


def test_schedule_fired_twice_for_the_same_time_opens_one_run(
    stack: Stack,
    runs: RunQueries,
    external: httpx.Client,
    new_client: Any,
) -> None:
    client = new_client("twice", records=5)
    when = _schedule_time()
    one = fire(stack, trigger="schedule", scheduled_time=when, client_ids=[client])
    two = fire(stack, trigger="schedule", scheduled_time=when, client_ids=[client])
    assert one["run_id"] == two["run_id"]
    view = wait_for_run(runs, one["run_id"])
    assert (view.header.received, view.header.processed) == (5, 5)
    assert acks(external, client) == 5


def test_missing_or_invalid_client_config_is_reported_and_the_run_carries_on(
    stack: Stack,
    runs: RunQueries,
    new_client: Any,
) -> None:
    good = new_client("good", records=4)
    stack.table("ConfigTableName").put_item(
        Item={
            "job_type": "sync-completed-records",
            "client_id": f"bad-{good}",
            "group_id": "north",
            "page_size": 9999,
        }
    )
    planned = fire(stack, trigger="cli", client_ids=[good, f"bad-{good}", "never-configured"])
    view = wait_for_run(runs, planned["run_id"])
    assert view.header.processed == 4
    assert (
        f"client bad-{good}: invalid configuration: page_size: Input should be less than "
        f"or equal to 500" in view.header.issues
    )
    assert (
        "client never-configured: not configured for sync-completed-records" in view.header.issues
    )


def test_empty_record_list_completes_the_run_with_its_completion_log(
    stack: Stack,
    runs: RunQueries,
    new_client: Any,
) -> None:
    client = new_client("empty", records=0)
    planned = fire(stack, trigger="cli", client_ids=[client])
    view = wait_for_run(runs, planned["run_id"])
    assert view.header.status is RunStatus.SUCCEEDED
    assert view.header.received == 0
    wait_until(
        lambda: bool(_completion_lines(stack, planned["run_id"])),
        timeout=30,
        what="the completion log line",
    )


def test_poison_record_is_dead_lettered_with_envelope_and_reason_and_the_run_closes(
    stack: Stack,
    runs: RunQueries,
    external: httpx.Client,
    new_client: Any,
) -> None:
    client = new_client("poison", records=8)
    poison = f"{client}-r00003"
    external.post(
        "/_admin/clients",
        json={"client_id": client, "group_id": "north", "records": 8, "poison": [poison]},
    )
    planned = fire(stack, trigger="cli", client_ids=[client])
    view = wait_for_run(runs, planned["run_id"])
    assert view.header.status is RunStatus.COMPLETED_WITH_ERRORS
    assert (view.header.received, view.header.processed, view.header.failed) == (8, 7, 1)
    assert acks(external, client) == 7
    [letter] = [d for d in peek_dead_letters(stack) if d.body.get("record_id") == poison]
    assert letter.body["run_id"] == planned["run_id"] and letter.body["kind"] == "record"
    assert letter.attributes["error_type"] == "InvalidPayloadError"
    assert "version" in letter.attributes["reason"]


def test_transient_failures_and_throttling_are_retried_until_every_record_is_done(
    stack: Stack,
    runs: RunQueries,
    external: httpx.Client,
    new_client: Any,
) -> None:
    client = new_client("flaky", records=40, page_size=10)
    external.put(
        "/_admin/faults",
        json={
            "seed": 3,
            "error_rate": 0.3,
            "throttle_rate": 0.1,
            "retry_after_seconds": 1,
            "clients": [client],
        },
    )
    planned = fire(stack, trigger="cli", client_ids=[client])
    view = wait_for_run(runs, planned["run_id"])
    assert (view.header.received, view.header.processed, view.header.failed) == (40, 40, 0)
    assert acks(external, client) == 40
    injected = external.get("/_admin/stats").json()["injected"]
    assert injected["error"] > 0


def test_failing_ack_is_retried_without_reprocessing_the_record(
    stack: Stack,
    runs: RunQueries,
    external: httpx.Client,
    new_client: Any,
) -> None:
    client = new_client("ackfail", records=6)
    external.put("/_admin/faults", json={"ack_error_rate": 1.0, "clients": [client]})
    planned = fire(stack, trigger="cli", client_ids=[client])
    # The records are processed but their acks fail: the run waits for them
    wait_until(
        lambda: external.get("/_admin/stats").json()["injected"].get("ack_error", 0) > 0,
        what="a failed ack",
    )
    time.sleep(1)
    assert acks(external, client) == 0
    view = runs.view(planned["run_id"])
    assert view is not None and view.header.status is RunStatus.RUNNING
    external.put("/_admin/faults", json={}).raise_for_status()
    view = wait_for_run(runs, planned["run_id"])
    assert (view.header.status, view.header.processed) == (RunStatus.SUCCEEDED, 6)
    assert acks(external, client) == 6
    for n in range(1, 7):
        assert len(_history(stack, client, f"{client}-r{n:05d}")) == 1


def test_redelivered_and_duplicated_items_are_not_processed_twice(
    stack: Stack,
    runs: RunQueries,
    external: httpx.Client,
    new_client: Any,
) -> None:
    client = new_client("dupes", records=3)
    planned = fire(stack, trigger="cli", client_ids=[client])
    view = wait_for_run(runs, planned["run_id"])
    assert view.header.processed == 3
    # The same record item of the same run, sent twice more (as a redelivery would)
    page = new_page_item(
        job_type="sync-completed-records",
        run_id=planned["run_id"],
        client_id=client,
        group_id="north",
        correlation_id=planned["run_id"],
    )
    raw = {
        "id": f"{client}-r00002",
        "client_id": client,
        "group_id": "north",
        "version": 1,
        "status": "COMPLETED",
        "completed_at": "2026-11-20T10:00:00Z",
    }
    item = new_record_item(page, raw["id"], raw)
    sqs = stack.client("sqs")
    for _ in range(2):
        sqs.send_message(
            QueueUrl=stack.outputs["WorkQueueUrl"],
            MessageBody=item.model_dump_json(),
            MessageGroupId=item.message_group_id,
        )
    wait_until(lambda: _queue_empty(stack), what="the duplicates to be consumed")
    assert len(_history(stack, client, raw["id"])) == 1
    after = runs.view(planned["run_id"])
    assert after is not None and after.header.processed == 3


def _completion_lines(stack: Stack, run_id: str) -> list[dict[str, Any]]:
    """The processor's `run completed` log lines for one run."""
    lines = [
        json.loads(line[line.index("{") :])
        for line in log_lines(stack, "ProcessorFunctionName", '"run completed"')
    ]
    return [line for line in lines if line.get("run_id") == run_id]


def _queue_empty(stack: Stack) -> bool:
    attributes = stack.client("sqs").get_queue_attributes(
        QueueUrl=stack.outputs["WorkQueueUrl"],
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return all(int(v) == 0 for v in attributes.values())
