"""Job health: the data (/health) and the page that shows it (/dashboard)."""

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from jobkit.adapters.keys import Scope
from jobkit.api.auth import caller
from jobkit.api.paging import Limit
from jobkit.api.responses import documented
from jobkit.api.services import services
from jobkit.ops.health_page import DEFAULT_CLIENTS, ClientsShown, HealthOut, build_health

router = APIGatewayRouter()  # type: ignore[no-untyped-call]

ClientPrefix = Annotated[
    str,
    Query(
        max_length=64,
        pattern=r"^[A-Za-z0-9_.\-]*$",
        description="Only clients whose id starts with this.",
    ),
]


@router.get("/health", responses=documented())
def job_health(limit: Limit = DEFAULT_CLIENTS, client: ClientPrefix = "") -> HealthOut:
    """Per job type the key may read: up to `limit` clients, those needing attention first."""
    key = caller(router.current_event)
    key.require(Scope.READ)
    api = services(router)
    # The work DLQ is shared by every tenant: its depth is not for a key limited to some.
    dlq_depth = api.dlq_depth() if key.sees_every_tenant else None
    shown = ClientsShown(prefix=client, only=key.clients or None)
    runs = key.runs_seen(api.runs)
    return build_health(
        key.readable(api.planners), api.configs, runs, dlq_depth, limit=limit, shown=shown
    )


@router.get("/dashboard", include_in_schema=False)
def dashboard() -> Response[str]:
    """The job-health page: a static shell that asks for a key and calls /health with it."""
    return Response(
        status_code=200,
        content_type="text/html; charset=utf-8",
        body=services(router).dashboard_html,
    )
