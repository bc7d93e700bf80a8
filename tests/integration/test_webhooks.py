"""Signed webhook delivery, end to end: transition -> event -> matcher -> worker -> receiver,
verified by the Standard Webhooks libraries receivers use (standardwebhooks, svix)."""

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from standardwebhooks import Webhook as StandardWebhook
from standardwebhooks import WebhookVerificationError
from svix.webhooks import Webhook as SvixWebhook
from svix.webhooks import WebhookVerificationError as SvixVerificationError

from jobkit.adapters.events import event_id
from jobkit.adapters.records import transition_id
from jobkit.runs.queries import RunQueries
from jobkit.webhooks.matcher import delivery_id
from jobkit.webhooks.signing import ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, new_secret
from jobkit.webhooks.subscriptions import DeliveryLog, SubscriptionStore
from jobkit_cli.stack import Stack
from tests.integration.conftest import fire, wait_for_run, wait_until
from tests.integration.receiver import Received, Receiver, running_receiver

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


def _verified(secret: str, request: Received) -> Any:
    """The payload, as both libraries verify it (each raises if the request does not)."""
    SvixWebhook(secret).verify(request.body, request.headers)  # raises if it does not verify
    return StandardWebhook(secret).verify(request.body, request.headers)


def _refused(secret: str, request: Received, body: bytes | None = None) -> bool:
    """Neither library accepts the request (or ``body`` in its place) with this secret."""
    for webhook, error in (
        (StandardWebhook(secret), WebhookVerificationError),
        (SvixWebhook(secret), SvixVerificationError),
    ):
        with pytest.raises(error):
            webhook.verify(body or request.body, request.headers)
    return True


def test_a_delivery_verifies_with_the_standard_libraries_and_a_tampered_one_does_not(
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
    assert request.headers[ID_HEADER] == delivery
    payload = _verified(secret, request)
    assert (payload["type"], payload["data"]["to_status"]) == ("record.status_changed", "COMPLETED")
    assert payload["timestamp"] == payload["data"]["occurred_at"]
    assert _refused(secret, request, request.body.replace(b"COMPLETED", b"CANCELLED"))
    assert _refused(new_secret(), request)  # another secret
    _until_status(stack, delivery, "delivered")


def test_receiver_failing_three_times_gets_the_event_once_after_four_attempts(
    stack: Stack,
    runs: RunQueries,
    new_client: Any,
    subscriptions: Any,
    receiver: Receiver,
) -> None:
    path, secret, _, delivery = _subscribed_run(
        stack, runs, new_client, subscriptions, receiver, "flaky3"
    )
    _until_status(stack, delivery, "delivered", timeout=120)
    attempts = receiver.for_path(path)
    assert [r.status for r in attempts] == [500, 500, 500, 200]
    assert int(_log(stack, delivery)["attempts"]) == 4
    # A retry is the same message (same id), newly timestamped and signed, and verifies
    assert {r.headers[ID_HEADER] for r in attempts} == {delivery}
    stamps = [int(r.headers[TIMESTAMP_HEADER]) for r in attempts]
    assert stamps == sorted(stamps) and stamps[0] < stamps[-1]
    assert len({r.headers[SIGNATURE_HEADER] for r in attempts}) == len(set(stamps))
    assert all(_verified(secret, r) == _verified(secret, attempts[0]) for r in attempts)


@pytest.mark.parametrize(("grace", "old_verifies"), [(3600, True), (0, False)])
def test_a_rotated_secret_signs_at_once_and_the_old_one_through_its_grace(
    stack: Stack,
    runs: RunQueries,
    new_client: Any,
    subscriptions: Any,
    receiver: Receiver,
    grace: int,
    old_verifies: bool,
) -> None:
    from datetime import timedelta

    client = new_client("hook-rotate", records=1)
    path = f"/ok/{client}"
    subscription, old = subscriptions.add(
        client, receiver.url + path, {"record.status_changed"}, allow_loopback_http=True
    )
    if grace:
        rotated = subscriptions.rotate_secret(
            client, subscription.subscription_id, timedelta(seconds=grace)
        )
        assert rotated is not None
        new = rotated[1].newest.secret
    else:  # through the CLI, whose last line is the new secret
        from typer.testing import CliRunner

        from jobkit_cli.main import app

        args = ["webhooks", "rotate-secret", client, subscription.subscription_id, "--grace", "0s"]
        shown = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
        # Booleans only: a failure's report must not print the secret the output holds.
        succeeded, names_it = shown.exit_code == 0, "version 2" in shown.output
        assert succeeded and names_it
        new = shown.output.strip().splitlines()[-1]
        is_secret = new.startswith("whsec_")
        assert is_secret
    wait_for_run(runs, fire(stack, trigger="cli", client_ids=[client])["run_id"])
    wait_until(lambda: bool(receiver.for_path(path)), what="the delivery")
    [request] = receiver.for_path(path)
    _verified(new, request)
    if old_verifies:  # during the grace period: both signatures
        assert len(request.headers[SIGNATURE_HEADER].split(" ")) == 2
        _verified(old, request)
    else:  # after it: only the new one
        assert len(request.headers[SIGNATURE_HEADER].split(" ")) == 1
        assert _refused(old, request)
    tid = transition_id(client, f"{client}-r00001", "v1", "COMPLETED")
    row = _until_status(
        stack, delivery_id(event_id(tid), subscription.subscription_id), "delivered"
    )
    assert [int(v) for v in row["signed_with"]] == ([2, 1] if old_verifies else [2])


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
    detail = json.loads(receiver.for_path(path)[0].body)["data"]
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
    for private in ("https://10.0.0.5/x", "https://169.254.169.254/latest", "https://100.64.0.1/"):
        refused = admin.post("/webhooks/subscriptions", json={**body, "url": private})
        assert refused.status_code == 422, refused.text
        assert refused.json()["detail"][0]["loc"] == ["body", "url"]
        assert "webhooks are not delivered into private networks" in refused.json()["error"]
    created = admin.post("/webhooks/subscriptions", json=body)
    assert created.status_code == 201 and created.json()["signing_secret"].startswith("whsec_")
    sid = created.json()["subscription_id"]
    rotate = f"/webhooks/subscriptions/{client}/{sid}/rotate-secret"
    assert reader.post(rotate, json={}).status_code == 403
    assert (
        admin.post(f"/webhooks/subscriptions/{client}/nope/rotate-secret", json={}).status_code
        == 404
    )
    rotated = admin.post(rotate, json={"graceSeconds": 60})
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["version"] == 2 and rotated.json()["signing_secret"].startswith("whsec_")
    assert [k["version"] for k in rotated.json()["signing"]] == [2, 1]
    listed = admin.get("/webhooks/subscriptions", params={"client_id": client}).json()
    assert [s["signing_secret"] for s in listed] == [None]
    wait_for_run(runs, fire(stack, trigger="cli", client_ids=[client])["run_id"])

    def delivered() -> bool:
        rows = reader.get("/webhooks/deliveries", params={"client_id": client}).json()
        return len(rows) == 2 and all(r["status"] == "delivered" for r in rows)

    wait_until(delivered, what="both deliveries in the log")
    [row, _] = reader.get("/webhooks/deliveries", params={"client_id": client}).json()
    assert row["attempts"] == 1 and row["last_http_status"] == 200
    assert row["signed_with"] == [2, 1]  # the rotation's grace: both secrets signed


def test_a_subscription_re_pointed_into_a_private_network_is_dead_lettered_not_delivered(
    stack: Stack,
    runs: RunQueries,
    new_client: Any,
    subscriptions: Any,
) -> None:
    # A row that points at the metadata address (written before the check, or by hand)
    client = new_client("hook-private", records=1)
    subscription, _ = subscriptions.add(
        client, "https://hooks.example.com/x", {"record.status_changed"}, allow_loopback_http=True
    )
    stack.table("SubscriptionsTableName").update_item(
        Key={"client_id": client, "subscription_id": subscription.subscription_id},
        UpdateExpression="SET #u = :u",
        ExpressionAttributeNames={"#u": "url"},
        ExpressionAttributeValues={":u": "https://169.254.169.254/latest/meta-data?x=secret"},
    )
    wait_for_run(runs, fire(stack, trigger="cli", client_ids=[client])["run_id"])
    tid = transition_id(client, f"{client}-r00001", "v1", "COMPLETED")
    delivery = delivery_id(event_id(tid), subscription.subscription_id)
    row = _until_status(stack, delivery, "dead_lettered")
    assert "169.254.169.254 is a cloud metadata address" in row["last_error"]
    assert "secret" not in row["last_error"]
    letters = (
        stack.client("sqs")
        .receive_message(
            QueueUrl=stack.outputs["WebhookDLQUrl"],
            MaxNumberOfMessages=10,
            VisibilityTimeout=0,
            MessageAttributeNames=["All"],
        )
        .get("Messages", [])
    )
    [letter] = [m for m in letters if delivery in m["Body"]]
    assert letter["MessageAttributes"]["error_type"]["StringValue"] == "ForbiddenDestination"
