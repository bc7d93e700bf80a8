"""Signed webhook delivery, end to end: transition -> event -> matcher -> worker -> receiver."""

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from jobkit.adapters.events import event_id
from jobkit.adapters.records import transition_id
from jobkit.runs.queries import RunQueries
from jobkit.webhooks.matcher import delivery_id
from jobkit.webhooks.signing import DELIVERY_HEADER, SIGNATURE_HEADER, verify
from jobkit.webhooks.subscriptions import DeliveryLog, SubscriptionStore
from jobkit_cli.stack import Stack
from tests.integration.conftest import fire, wait_for_run, wait_until
from tests.integration.receiver import Receiver, running_receiver

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with running_receiver() as running:
        yield running


@pytest.fixture
def subscriptions(stack: Stack) -> SubscriptionStore:
    return SubscriptionStore(
        stack.table("SubscriptionsTableName"),
        stack.client("secretsmanager"),
        stack.outputs["WebhookSecretPrefix"],
    )


def _subscribed_run(
    stack: Stack,
    runs: RunQueries,
    new_client: Any,
    subscriptions: Any,
    receiver: Receiver,
    kind: str,
) -> tuple[str, str, Any, str]:
    """A client with one record, subscribed at /<kind>/<client>; its run has finished."""
    client = new_client(f"hook-{kind}", records=1)
    path = f"/{kind}/{client}"
    subscription, secret = subscriptions.add(
        client, receiver.url + path, {"record.status_changed"}, allow_loopback_http=True
    )
    wait_for_run(runs, fire(stack, trigger="cli", client_ids=[client])["run_id"])
    tid = transition_id(client, f"{client}-r00001", "v1", "COMPLETED")
    return path, secret, subscription, delivery_id(event_id(tid), subscription.subscription_id)


def _log(stack: Stack, delivery: str) -> dict[str, Any]:
    return DeliveryLog(stack.table("DeliveriesTableName")).get(delivery) or {}


def _until_status(stack: Stack, delivery: str, status: str, timeout: float = 120) -> dict[str, Any]:
    """Wait for the delivery log to reach a status; returns the log row."""
    wait_until(
        lambda: _log(stack, delivery).get("status") == status,
        timeout=timeout,
        what=f"delivery {status}",
    )
    return _log(stack, delivery)


def test_delivery_is_signed_and_a_tampered_body_does_not_verify(
    stack: Stack,
    runs: RunQueries,
    new_client: Any,
    subscriptions: Any,
    receiver: Receiver,
) -> None:
    path, secret, _, delivery = _subscribed_run(
        stack, runs, new_client, subscriptions, receiver, "ok"
    )
    wait_until(lambda: bool(receiver.for_path(path)), what="the delivery")
    [request] = receiver.for_path(path)
    signature = request.headers[SIGNATURE_HEADER]
    assert request.headers[DELIVERY_HEADER] == delivery
    assert verify(secret, request.body, signature)
    assert not verify(secret, request.body.replace(b"COMPLETED", b"CANCELLED"), signature)
    body = json.loads(request.body)
    assert (body["type"], body["to_status"]) == ("record.status_changed", "COMPLETED")
    _until_status(stack, delivery, "delivered")


def test_receiver_failing_three_times_gets_the_event_once_after_four_attempts(
    stack: Stack,
    runs: RunQueries,
    new_client: Any,
    subscriptions: Any,
    receiver: Receiver,
) -> None:
    path, _, _, delivery = _subscribed_run(
        stack, runs, new_client, subscriptions, receiver, "flaky3"
    )
    _until_status(stack, delivery, "delivered", timeout=120)
    assert [r.status for r in receiver.for_path(path)] == [500, 500, 500, 200]
    assert int(_log(stack, delivery)["attempts"]) == 4


def test_receiver_always_failing_gets_eight_attempts_then_dead_letter_and_record(
    stack: Stack,
    runs: RunQueries,
    new_client: Any,
    subscriptions: Any,
    receiver: Receiver,
) -> None:
    path, _, _, delivery = _subscribed_run(stack, runs, new_client, subscriptions, receiver, "down")
    _until_status(stack, delivery, "dead_lettered", timeout=180)
    assert len(receiver.for_path(path)) == 8
    record = _log(stack, delivery)
    assert int(record["attempts"]) == 8 and "gave up after 8 attempts" in record["last_error"]
    letters = (
        stack.client("sqs")
        .receive_message(
            QueueUrl=stack.outputs["WebhookDLQUrl"], MaxNumberOfMessages=10, VisibilityTimeout=0
        )
        .get("Messages", [])
    )
    assert any(delivery in m["Body"] for m in letters)


def test_a_4xx_refusal_is_dead_lettered_at_once(
    stack: Stack,
    runs: RunQueries,
    new_client: Any,
    subscriptions: Any,
    receiver: Receiver,
) -> None:
    path, _, _, delivery = _subscribed_run(
        stack, runs, new_client, subscriptions, receiver, "refuse"
    )  # the receiver answers 404 here
    _until_status(stack, delivery, "dead_lettered")
    assert len(receiver.for_path(path)) == 1 and int(_log(stack, delivery)["attempts"]) == 1


def test_410_disables_the_subscription(
    stack: Stack,
    runs: RunQueries,
    new_client: Any,
    subscriptions: Any,
    receiver: Receiver,
) -> None:
    path, _, subscription, delivery = _subscribed_run(
        stack, runs, new_client, subscriptions, receiver, "gone"
    )
    _until_status(stack, delivery, "gone")
    current = subscriptions.get(subscription.client_id, subscription.subscription_id)
    assert current is not None and not current.enabled
    assert current.disabled_reason == "endpoint answered 410 Gone"
    assert len(receiver.for_path(path)) == 1


def test_a_timeout_counts_as_a_failed_attempt(
    stack: Stack,
    runs: RunQueries,
    new_client: Any,
    subscriptions: Any,
    receiver: Receiver,
) -> None:
    path, _, _, delivery = _subscribed_run(stack, runs, new_client, subscriptions, receiver, "slow")
    _until_status(stack, delivery, "delivered", timeout=120)
    assert int(_log(stack, delivery)["attempts"]) == 2


def test_duplicate_events_do_not_cause_duplicate_deliveries(
    stack: Stack,
    runs: RunQueries,
    new_client: Any,
    subscriptions: Any,
    receiver: Receiver,
) -> None:
    path, _, _, delivery = _subscribed_run(stack, runs, new_client, subscriptions, receiver, "ok")
    wait_until(lambda: bool(receiver.for_path(path)), what="the first delivery")
    detail = json.loads(receiver.for_path(path)[0].body)
    for _ in range(2):  # the same event published again (a retried publish)
        stack.client("events").put_events(
            Entries=[
                {
                    "EventBusName": stack.outputs["EventBusName"],
                    "Source": "jobkit",
                    "DetailType": detail["type"],
                    "Detail": json.dumps(detail),
                }
            ]
        )
    marker = f"/ok/{uuid.uuid4().hex}"  # wait until the worker has drained past them
    _until_status(stack, delivery, "delivered")
    import time

    time.sleep(8)
    assert len(receiver.for_path(path)) == 1, marker


def test_subscriptions_and_deliveries_through_the_api(
    stack: Stack,
    runs: RunQueries,
    new_client: Any,
    receiver: Receiver,
    api_base: str,
    make_key: Any,
) -> None:
    import httpx

    from jobkit.adapters.keys import Scope

    client = new_client("hook-api", records=2)
    admin = httpx.Client(
        base_url=api_base, headers={"x-api-key": make_key(Scope.ADMIN)}, timeout=30
    )
    reader = httpx.Client(
        base_url=api_base, headers={"x-api-key": make_key(Scope.READ)}, timeout=30
    )
    body = {"client_id": client, "url": f"{receiver.url}/ok/{client}"}
    assert reader.post("/webhooks/subscriptions", json=body).status_code == 403
    refused = admin.post("/webhooks/subscriptions", json={**body, "url": "http://10.1.2.3/x"})
    assert refused.status_code == 422 and "url" in refused.json()["error"]
    created = admin.post("/webhooks/subscriptions", json=body)
    assert created.status_code == 201 and created.json()["signing_secret"].startswith("whsec_")
    listed = admin.get("/webhooks/subscriptions", params={"client_id": client}).json()
    assert [s["signing_secret"] for s in listed] == [None]
    wait_for_run(runs, fire(stack, trigger="cli", client_ids=[client])["run_id"])

    def delivered() -> bool:
        rows = reader.get("/webhooks/deliveries", params={"client_id": client}).json()
        return len(rows) == 2 and all(r["status"] == "delivered" for r in rows)

    wait_until(delivered, what="both deliveries in the log")
    [row, _] = reader.get("/webhooks/deliveries", params={"client_id": client}).json()
    assert row["attempts"] == 1 and row["last_http_status"] == 200
