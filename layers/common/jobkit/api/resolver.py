"""The runs API as one Powertools resolver: its routers, its OpenAPI document, its errors."""

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.event_handler.openapi.models import APIKey, APIKeyIn

from jobkit.api.document import (
    check_request,
    method_not_allowed_or_not_found,
    unsupported_media_or_raise,
)
from jobkit.api.responses import install_error_handlers
from jobkit.api.routes import (
    backfills,
    clients,
    health,
    jobs,
    previews,
    records,
    runs,
    webhooks,
)
from jobkit.api.routes.clients import client_writes
from jobkit.api.services import Services

ROUTERS = (
    runs.router,
    backfills.router,
    previews.router,
    jobs.router,
    clients.router,
    records.router,
    webhooks.router,
    health.router,
)


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

    app.use([provide_services, check_request])
    job_fields = {job_type: services.config_fields(job_type) for job_type in services.planners}
    app.include_router(client_writes(job_fields))  # before the routers: see client_writes
    for router in ROUTERS:
        app.include_router(router)
    install_error_handlers(app)
    app.not_found(lambda _: method_not_allowed_or_not_found(app))
    app.exception_handler(ValueError)(lambda exc: unsupported_media_or_raise(app, exc))
    return app
