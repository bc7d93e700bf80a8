"""The matcher takes the bus's events from its queue, a batch at a time."""

import json
from datetime import UTC, datetime
from typing import Any

import boto3

from jobkit.adapters.events import StatusChanged
from jobkit.adapters.queue import WorkQueue
from jobkit.webhooks.matcher import Matcher
from jobkit.webhooks.subscriptions import Subscription, SubscriptionStore
from tests.support import LambdaContext


class CountingStore(SubscriptionStore):
    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.lookups: list[str] = []

    def for_client(self, client_id: str) -> list[Subscription]:
        self.lookups.append(client_id)
        return super().for_client(client_id)


def _bus_message(n: int, client_id: str) -> dict[str, Any]:
    detail = StatusChanged(
        event_id=f"event-{client_id}-{n}",
        job_type="sync-completed-records",
        client_id=client_id,
        record_id=f"r{n}",
        from_status="OPEN",
        to_status="COMPLETED",
        transition_id=f"t{n}",
        run_id="run-1",
        occurred_at=datetime.now(UTC),
        correlation_id="corr-1",
    )
    body = {
        "source": "jobkit",
        "detail-type": detail.type,
        "detail": detail.model_dump(mode="json"),
    }
    return _message(f"m-{client_id}-{n}", json.dumps(body))


def _message(message_id: str, body: str) -> dict[str, Any]:
    return {
        "messageId": message_id,
        "receiptHandle": "h",
        "body": body,
        "attributes": {"ApproximateReceiveCount": "1"},
        "messageAttributes": {},
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:domain-events",
    }


def test_a_batch_reads_each_clients_subscriptions_once_and_refuses_only_the_bad_message(
    aws: Any,
) -> None:
    store = CountingStore(aws.tables["SubscriptionsTable"], boto3.client("secretsmanager"), "hooks")
    store.add(
        "acme", "http://127.0.0.1:9/hook", {"record.status_changed"}, allow_loopback_http=True
    )
    deliveries_url = aws.sqs.create_queue(QueueName="deliveries")["QueueUrl"]
    matcher = Matcher(store, WorkQueue(lambda: aws.sqs, deliveries_url))
    records = [
        *(_bus_message(n, "acme") for n in range(3)),
        _bus_message(0, "globex"),  # no subscription: nothing to deliver
        _message("m-bad", '{"source": "jobkit", "detail": {"event_id": 1}}'),
    ]

    response = matcher.handle({"Records": records}, LambdaContext())  # type: ignore[arg-type]

    assert response["batchItemFailures"] == [{"itemIdentifier": "m-bad"}]
    assert sorted(store.lookups) == ["acme", "globex"]
    sent = aws.sqs.receive_message(QueueUrl=deliveries_url, MaxNumberOfMessages=10)["Messages"]
    assert sorted(json.loads(m["Body"])["event_id"] for m in sent) == [
        "event-acme-0",
        "event-acme-1",
        "event-acme-2",
    ]
