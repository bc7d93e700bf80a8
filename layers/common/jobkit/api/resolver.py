"""The runs API as one Powertools resolver: its routers, its OpenAPI document, its errors."""

import re
from functools import cache

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.event_handler.openapi.models import APIKey, APIKeyIn

from jobkit.api.responses import install_error_handlers, invalid
from jobkit.api.routes import clients, health, jobs, records, runs, webhooks
from jobkit.api.services import Services

ROUTERS = (runs.router, jobs.router, clients.router, records.router, webhooks.router, health.router)


def build_app(services: Services) -> APIGatewayRestResolver:
    """The API over ``services``. The routers are modules' own: the app built last serves
    them (one app per process)."""
    app = APIGatewayRestResolver(enable_validation=True)
    app.enable_swagger(
        path="/swagger",
        title="jobkit runs API",
        version="1.0.0",
        description="Start, follow and cancel runs of integration jobs; see every item's outcome.",
        security_schemes={"apiKey": APIKey(name="x-api-key", in_=APIKeyIn.header)},
        security=[{"apiKey": []}],
    )

    def provide_services(
        resolver: APIGatewayRestResolver, next_middleware: NextMiddleware
    ) -> Response[str]:
        # The resolver clears its context after each request: set it on every one.
        resolver.append_context(services=services)  # type: ignore[no-untyped-call]
        return next_middleware(resolver)

    app.use([provide_services, refuse_unknown_query])
    for router in ROUTERS:
        app.include_router(router)
    install_error_handlers(app)
    return app


def refuse_unknown_query(
    app: APIGatewayRestResolver, next_middleware: NextMiddleware
) -> Response[str]:
    """A query parameter the route does not declare is a 422, as the document's closed set of
    parameters says: a misspelt ``limt=5`` is refused, not silently ignored. Powertools
    ignores them, and has no switch to refuse them."""
    route = app.context.get("_route")
    declared = _declared_query(app).get((route.method, route.path)) if route else None
    if declared is None:  # not a documented route: the document's own page, a 404
        return next_middleware(app)
    unknown = sorted(set(app.current_event.query_string_parameters or {}) - declared)
    if not unknown:
        return next_middleware(app)
    errors = [
        {"loc": ["query", name], "msg": "Unknown query parameter", "type": "extra_forbidden"}
        for name in unknown
    ]
    return invalid(f"query: unknown parameter(s) {', '.join(unknown[:3])}", errors)


@cache
def _declared_query(app: APIGatewayRestResolver) -> dict[tuple[str, str], frozenset[str]]:
    """(method, route path as the routers write it) -> its query parameters, from the
    document."""
    declared = {}
    document = app.get_openapi_schema().model_dump(mode="json", by_alias=True, exclude_none=True)
    for path, operations in document.get("paths", {}).items():
        route_path = re.sub(r"\{(\w+)\}", r"<\1>", path)
        for method, operation in operations.items():
            names = [p["name"] for p in operation.get("parameters", []) if p["in"] == "query"]
            declared[(method.upper(), route_path)] = frozenset(names)
    return declared
