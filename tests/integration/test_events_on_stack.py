"""Domain events on the real bus: one per transition, read back through an EventBridge rule."""

import json
import time
import uuid
from typing import Any

import pytest

from jobkit.runs.queries import RunQueries
from jobkit_cli.stack import Stack
from tests.integration.conftest import fire, wait_for_run

pytestmark = pytest.mark.integration


def test_every_transition_is_published_to_the_bus(
    stack: Stack, runs: RunQueries, new_client: Any
) -> None:
    # Given a rule that copies this client's events into a queue we can read
    client = new_client("events", records=4)
    sqs, events = stack.client("sqs"), stack.client("events")
    queue_url = sqs.create_queue(QueueName=f"events-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    rule = f"copy-{client}"
    bus = stack.outputs["EventBusName"]
    events.put_rule(
        Name=rule,
        EventBusName=bus,
        EventPattern=json.dumps({"source": ["jobkit"], "detail": {"client_id": [client]}}),
    )
    events.put_targets(Rule=rule, EventBusName=bus, Targets=[{"Id": "q", "Arn": queue_arn}])
    # When the client's run processes its records
    wait_for_run(runs, fire(stack, trigger="cli", client_ids=[client])["run_id"])
    # Then one record.status_changed per record arrives, with its transition's event id
    received: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + 60
    while len(received) < 4 and time.monotonic() < deadline:
        for message in sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
        ).get("Messages", []):
            detail = json.loads(message["Body"])["detail"]
            received[detail["event_id"]] = detail
    assert sorted(d["record_id"] for d in received.values()) == [
        f"{client}-r{n:05d}" for n in range(1, 5)
    ]
    assert all(
        d["type"] == "record.status_changed" and d["to_status"] == "COMPLETED"
        for d in received.values()
    )
