"""A job type's clients, managed with admin keys; a client's record history and deliveries
are read in ``records`` and ``webhooks``."""

from collections.abc import Mapping
from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Body
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from jobkit.adapters.config import ClientConfig
from jobkit.adapters.config_store import not_configured
from jobkit.adapters.keys import Scope
from jobkit.api.auth import Caller, caller
from jobkit.api.models import ClientConfigIn, client_body
from jobkit.api.responses import ApiError, documented, no_content
from jobkit.api.services import services
from jobkit.domain.envelope import Identifier

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


def client_writes(job_fields: Mapping[str, frozenset[str]]) -> APIGatewayRouter:
    """One PUT route per job type, its body the fields that job's clients have: the document
    states which query fields (script, days, year) each job takes, and any other is a 422.
    Included before ``router``, whose PUT answers for job types that do not exist."""
    writes = APIGatewayRouter()  # type: ignore[no-untyped-call]
    for job_type, uses in sorted(job_fields.items()):
        _add_put(writes, job_type, client_body(job_type, uses))
    return writes


def _add_put(writes: APIGatewayRouter, job_type: str, body_model: type[ClientConfigIn]) -> None:
    def put_client(client_id: Identifier, body: ClientConfigIn) -> ClientConfig:
        who = _admin(job_type, client_id)
        configs = services(router).configs
        configs.put(body.to_config(job_type, client_id, created_by=f"key:{who.key_id}"))
        return configs.get(job_type, client_id)  # with the platform's state, which the put kept

    # The body's model is the job's own: Powertools validates and documents what the
    # signature says, and a def cannot name a model made at run time.
    put_client.__annotations__["body"] = Annotated[body_model, Body()]
    writes.put(
        f"/jobs/{job_type}/clients/<client_id>",
        responses=documented(),
        summary=f"Add a {job_type} client, or replace its configuration",
        operation_id=f"put_{job_type.replace('-', '_')}_client",
    )(put_client)


# Not in the document: it would describe a PUT of every job type's clients with no body, where
# each job type that exists has its own route, with its own body.
@router.put("/jobs/<job_type>/clients/<client_id>", include_in_schema=False)
def put_client_of_unknown_job(job_type: str, client_id: Identifier) -> ClientConfig:
    services(router).planner(job_type)
    raise ApiError(404, f"unknown job type {job_type!r}")


@router.delete("/jobs/<job_type>/clients/<client_id>", responses=documented(204, "Deleted", False))
def delete_client(job_type: str, client_id: Identifier) -> Response[str]:
    _admin(job_type, client_id)
    services(router).configs.delete(job_type, client_id)
    return no_content()
