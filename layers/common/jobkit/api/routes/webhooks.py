"""Webhook subscriptions (admin keys) and a client's deliveries."""

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body, Query
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from jobkit.adapters.keys import Scope
from jobkit.api.auth import caller
from jobkit.api.models import DeliveryOut, NewSubscription, SubscriptionOut
from jobkit.api.paging import Limit
from jobkit.api.responses import ApiError, documented, no_content
from jobkit.api.services import services
from jobkit.domain.envelope import Identifier

router = APIGatewayRouter()  # type: ignore[no-untyped-call]


@router.post("/webhooks/subscriptions", responses=documented(201, "Subscribed"))
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
    except ValueError as exc:
        raise ApiError(422, str(exc)) from exc
    return Response(
        status_code=201, content_type="application/json", body=SubscriptionOut.of(sub, secret)
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
