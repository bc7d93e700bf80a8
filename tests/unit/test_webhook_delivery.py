"""The delivery worker in-process, on moto: Standard Webhooks headers and body that the
specification's libraries verify, both signatures during a rotation's grace, and no request
into a private network, whatever the endpoint's name resolves to when it is delivered to."""

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import httpx
import pytest
from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer
from standardwebhooks import Webhook as StandardWebhook
from svix.webhooks import Webhook as SvixWebhook

from jobkit.adapters.aws import dynamodb_client
from jobkit.adapters.events import StatusChanged
from jobkit.adapters.queue import DeadLetterQueue
from jobkit.webhooks.delivery import DeliveryWorker, EndpointPacer, WorkerDeps
from jobkit.webhooks.matcher import Delivery, delivery_id
from jobkit.webhooks.subscriptions import DeliveryLog, SubscriptionStore
from tests.support import LambdaContext

URL = "https://hooks.example.com/jobkit?token=t0p"
PUBLIC, PRIVATE = "93.184.216.34", "10.0.0.5"


@dataclass
class Endpoint:
    """The receiver, behind httpx's mock transport: every request it got."""

    requests: list[httpx.Request] = field(default_factory=list)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(200)


@dataclass
class Harness:
    worker: DeliveryWorker
    store: SubscriptionStore
    log: DeliveryLog
    endpoint: Endpoint
    resolved: dict[str, list[str]]
    sqs: Any
    dlq_url: str

    def deliver(self, client_id: str, subscription_id: str, event_id: str) -> Delivery:
        event = StatusChanged(
            event_id=event_id,
            job_type="sync-completed-records",
            client_id=client_id,
            record_id="r1",
            from_status="OPEN",
            to_status="COMPLETED",
            transition_id="t1",
            run_id="run-1",
            occurred_at=datetime(2026, 12, 2, 12, 0, tzinfo=UTC),
            correlation_id="c1",
        )
        delivery = Delivery(
            delivery_id=delivery_id(event_id, subscription_id),
            subscription_id=subscription_id,
            client_id=client_id,
            event_id=event_id,
            event_type=event.type,
            event=event.model_dump(mode="json"),
        )
        record = {
            "messageId": f"m-{event_id}",
            "receiptHandle": "h",
            "body": delivery.model_dump_json(),
            "attributes": {"ApproximateReceiveCount": "1"},
            "messageAttributes": {},
            "md5OfBody": "",
            "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:webhooks",
            "awsRegion": "us-east-1",
        }
        self.worker.handle({"Records": [record]}, LambdaContext())  # type: ignore[arg-type]
        return delivery

    def dead_letters(self) -> list[dict[str, Any]]:
        answer = self.sqs.receive_message(
            QueueUrl=self.dlq_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
        )
        return list(answer.get("Messages", []))


@pytest.fixture
def harness(aws: Any) -> Iterator[Harness]:
    secrets = boto3.client("secretsmanager")
    store = SubscriptionStore(aws.tables["SubscriptionsTable"], secrets, "jobkit-webhooks")
    log = DeliveryLog(aws.tables["DeliveriesTable"])
    endpoint = Endpoint()
    resolved: dict[str, list[str]] = {"hooks.example.com": [PUBLIC]}
    dlq_url = aws.sqs.create_queue(QueueName="webhook-dlq")["QueueUrl"]

    def resolve(host: str, port: int, allow_loopback: bool) -> list[str]:
        from jobkit.webhooks.destinations import resolve_checked

        return resolve_checked(host, port, allow_loopback, lambda h, p: resolved[h])

    worker = DeliveryWorker(
        WorkerDeps(
            subscriptions=store,
            log=log,
            secret=lambda name: secrets.get_secret_value(SecretId=name)["SecretString"],
            http=httpx.Client(transport=httpx.MockTransport(endpoint.handle)),
            sqs=aws.sqs,
            queue_url=aws.work_queue_url,
            dead_letters=DeadLetterQueue(lambda: aws.sqs, dlq_url),
            persistence=DynamoDBPersistenceLayer(
                table_name="IdempotencyTable", boto3_client=dynamodb_client()
            ),
            backoff_base=1.0,
            backoff_cap=4.0,
            pacer=EndpointPacer(aws.tables["ControlTable"]),
            post_timeout_seconds=2.0,
            resolve=resolve,
        )
    )
    yield Harness(worker, store, log, endpoint, resolved, aws.sqs, dlq_url)


def _verify(secret: str, request: httpx.Request) -> Any:
    """Both libraries' verdicts on one received request (they raise if it does not verify)."""
    headers = dict(request.headers)
    SvixWebhook(secret).verify(request.content, headers)  # raises if it does not verify
    return StandardWebhook(secret).verify(request.content, headers)


def test_a_delivery_is_standard_webhooks_signed_and_shaped(harness: Harness) -> None:
    subscription, secret = harness.store.add(
        "acme", URL, {"record.status_changed"}, allow_loopback_http=False
    )
    delivery = harness.deliver("acme", subscription.subscription_id, "e1")
    [request] = harness.endpoint.requests
    # Sent to the address checked, under the endpoint's own name
    assert request.url.host == PUBLIC and request.url.path == "/jobkit"
    assert request.headers["host"] == "hooks.example.com"
    assert request.extensions["sni_hostname"] == "hooks.example.com"
    assert request.headers["webhook-id"] == delivery.delivery_id
    payload = _verify(secret, request)
    assert payload["type"] == "record.status_changed"
    assert payload["timestamp"] == "2026-12-02T12:00:00Z"
    assert payload["data"]["record_id"] == "r1" and payload["data"]["replay"] is False
    row = harness.log.get(delivery.delivery_id)
    assert row is not None and (row["status"], row["signed_with"]) == ("delivered", [1])


def test_during_a_rotations_grace_both_secrets_verify_and_after_it_only_the_new(
    harness: Harness,
) -> None:
    subscription, old = harness.store.add(
        "acme", URL, {"record.status_changed"}, allow_loopback_http=False
    )
    sid = subscription.subscription_id
    rotated = harness.store.rotate_secret("acme", sid, timedelta(hours=24))
    assert rotated is not None
    new = rotated[1].newest.secret
    harness.deliver("acme", sid, "e-grace")
    during = harness.endpoint.requests[-1]
    assert len(during.headers["webhook-signature"].split(" ")) == 2
    assert _verify(old, during) == _verify(new, during)
    # A grace that has ended: only the new secret signs
    ended = harness.store.rotate_secret("acme", sid, timedelta(0))
    assert ended is not None
    newest = ended[1].newest.secret
    delivery = harness.deliver("acme", sid, "e-after")
    after = harness.endpoint.requests[-1]
    assert len(after.headers["webhook-signature"].split(" ")) == 1
    _verify(newest, after)
    with pytest.raises(Exception, match="signature"):
        StandardWebhook(new).verify(after.content, dict(after.headers))
    row = harness.log.get(delivery.delivery_id)
    assert row is not None and row["signed_with"] == [3]


@pytest.mark.parametrize("address", [PRIVATE, "169.254.169.254", "127.0.0.1", "fd00::1"])
def test_a_name_resolving_into_a_private_network_is_never_delivered_to(
    harness: Harness, address: str
) -> None:
    subscription, _ = harness.store.add(
        "acme", URL, {"record.status_changed"}, allow_loopback_http=False
    )
    # Accepted while it pointed outside; re-pointed since (DNS rebinding)
    harness.resolved["hooks.example.com"] = [PUBLIC, address]
    delivery = harness.deliver("acme", subscription.subscription_id, f"e-{address}")
    assert harness.endpoint.requests == []
    [letter] = harness.dead_letters()
    reason = letter["MessageAttributes"]["reason"]["StringValue"]
    assert "hooks.example.com" in reason and address in reason
    assert "token" not in reason and "t0p" not in reason
    row = harness.log.get(delivery.delivery_id)
    assert row is not None and row["status"] == "dead_lettered"
    assert json.loads(letter["Body"])["delivery_id"] == delivery.delivery_id


def test_a_private_address_is_refused_when_subscribing(harness: Harness) -> None:
    for url in ("https://10.0.0.5/x", "https://[::ffff:169.254.169.254]/x", "https://0x7f.1/x"):
        with pytest.raises(ValueError, match="url:"):
            harness.store.add("acme", url, {"record.status_changed"}, allow_loopback_http=False)
    assert harness.store.for_client("acme") == []
