"""Webhook subscriptions (admin keys) and a client's deliveries."""

from datetime import timedelta
from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Query
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from jobkit.adapters.keys import Scope
from jobkit.api.auth import caller
from jobkit.api.paging import Limit
from jobkit.api.responses import ApiError, FieldRefused, documented, no_content
from jobkit.api.services import services
from jobkit.api.webhook_models import (
    DeliveryOut,
    NewSubscription,
    RotatedSecretOut,
    RotateSecret,
    SigningKeyOut,
    SubscriptionOut,
)
from jobkit.domain.envelope import Identifier
from jobkit.webhooks.payload import inline_schema

router = APIGatewayRouter()  # type: ignore[no-untyped-call]


_DELIVERY = (
    "Subscribe an endpoint. Each delivery is a POST with the Standard Webhooks headers:"
    " webhook-id (the delivery id, the same on every retry: deduplicate on it),"
    " webhook-timestamp (unix seconds of the attempt) and webhook-signature"
    " ('v1,<base64 HMAC-SHA256 of id.timestamp.body>', one per signing secret,"
    " space-separated). Verify with a Standard Webhooks library and the signing secret"
    " (whsec_..., shown once). The body is x-webhook-payload below. The URL must be https,"
    " outside private networks (loopback, private, link-local, unique-local and metadata"
    " addresses are refused here, and again after resolving the host at each delivery)."
)


@router.post(
    "/webhooks/subscriptions",
    responses=documented(201, "Subscribed"),
    description=_DELIVERY,
    openapi_extensions={"x-webhook-payload": inline_schema()},
)
def add_subscription(body: Annotated[NewSubscription, Body()]) -> Response[SubscriptionOut]:
    caller(router.current_event).require(Scope.ADMIN, client_ids=[body.client_id])
    api = services(router)
    try:
        sub, secret = api.subscriptions.add(
            body.client_id,
            body.url,
            set(body.event_types),
            allow_loopback_http=api.allow_loopback_webhooks,
            rate_per_second=body.rate_per_second,
        )
    except ValueError as exc:  # the URL's: not https, or into a private network
        raise FieldRefused("url", str(exc)) from exc
    return Response(
        status_code=201, content_type="application/json", body=SubscriptionOut.of(sub, secret)
    )


@router.post(
    "/webhooks/subscriptions/<client_id>/<subscription_id>/rotate-secret",
    responses=documented(200, "A new signing secret, shown once"),
    description=(
        "Issue a new signing secret. Deliveries carry a signature by it at once (within a"
        " minute), and by the secrets signing now for graceSeconds more (a day by default):"
        " receivers switch whenever they like."
    ),
)
def rotate_secret(
    client_id: Identifier, subscription_id: str, body: Annotated[RotateSecret, Body()]
) -> RotatedSecretOut:
    caller(router.current_event).require(Scope.ADMIN, client_ids=[client_id])
    grace = timedelta(seconds=body.grace_seconds)
    rotated = services(router).subscriptions.rotate_secret(client_id, subscription_id, grace)
    if rotated is None:
        raise ApiError(404, f"no subscription {subscription_id!r} for client {client_id!r}")
    _, keys = rotated
    return RotatedSecretOut(
        client_id=client_id,
        subscription_id=subscription_id,
        signing_secret=keys.newest.secret,
        version=keys.newest.version,
        signing=[SigningKeyOut(version=k.version, retires_at=k.retires_at) for k in keys.keys],
    )


@router.get("/webhooks/subscriptions", responses=documented())
def list_subscriptions(client_id: Annotated[Identifier, Query()]) -> list[SubscriptionOut]:
    who = caller(router.current_event)
    who.require(Scope.ADMIN)
    if not who.reads_client(client_id):
        return []  # as for a client without subscriptions
    return [SubscriptionOut.of(sub) for sub in services(router).subscriptions.for_client(client_id)]


@router.delete(
    "/webhooks/subscriptions/<client_id>/<subscription_id>",
    responses=documented(204, "Unsubscribed", False),
)
def remove_subscription(client_id: Identifier, subscription_id: str) -> Response[str]:
    caller(router.current_event).require(Scope.ADMIN, client_ids=[client_id])
    if not services(router).subscriptions.remove(client_id, subscription_id):
        raise ApiError(404, f"no subscription {subscription_id!r} for client {client_id!r}")
    return no_content()


@router.get("/webhooks/deliveries", responses=documented())
def list_deliveries(
    client_id: Annotated[Identifier, Query()], limit: Limit = 50
) -> list[DeliveryOut]:
    who = caller(router.current_event)
    who.require(Scope.READ)
    if not who.reads_client(client_id):
        return []  # as for a client without deliveries
    return [DeliveryOut.of(row) for row in services(router).deliveries.for_client(client_id, limit)]
