"""A job type's clients, managed with admin keys; a client's record history and deliveries
are read in ``records`` and ``webhooks``."""

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.params import Body
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from jobkit.adapters.config import ClientConfig, not_configured
from jobkit.adapters.keys import Scope
from jobkit.api.auth import Caller, caller
from jobkit.api.models import ClientConfigIn
from jobkit.api.responses import documented, no_content
from jobkit.api.services import services
from jobkit.domain.envelope import Identifier
from jobkit.domain.job import unused_fields

router = APIGatewayRouter()  # type: ignore[no-untyped-call]


def _admin(job_type: str, client_id: Identifier) -> Caller:
    """A known job type (404 otherwise), and an admin key for this client (403 otherwise)."""
    services(router).planner(job_type)
    who = caller(router.current_event)
    who.require(Scope.ADMIN, job_type, [client_id])
    return who


@router.get("/jobs/<job_type>/clients/<client_id>", responses=documented())
def get_client(job_type: str, client_id: Identifier) -> ClientConfig:
    services(router).planner(job_type)
    who = caller(router.current_event)
    who.require(Scope.ADMIN, job_type)
    who.require_client(client_id, not_configured(job_type, client_id))
    return services(router).configs.get(job_type, client_id)


@router.put("/jobs/<job_type>/clients/<client_id>", responses=documented())
def put_client(
    job_type: str,
    client_id: Identifier,
    body: Annotated[ClientConfigIn, Body()],
) -> ClientConfig:
    who = _admin(job_type, client_id)
    unused = unused_fields(job_type, services(router).config_fields(job_type), body)
    if unused:
        raise RequestValidationError(
            [
                {"loc": ("body", name), "msg": why, "type": "unused_field"}
                for name, why in unused.items()
            ]
        )
    configs = services(router).configs
    configs.put(body.to_config(job_type, client_id, created_by=f"key:{who.key_id}"))
    return configs.get(job_type, client_id)  # with the platform's state, which the put kept


@router.delete("/jobs/<job_type>/clients/<client_id>", responses=documented(204, "Deleted", False))
def delete_client(job_type: str, client_id: Identifier) -> Response[str]:
    _admin(job_type, client_id)
    services(router).configs.delete(job_type, client_id)
    return no_content()
