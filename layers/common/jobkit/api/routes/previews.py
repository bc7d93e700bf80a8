"""A preview of a job's rules on one page of a client's records (200), writing nothing."""

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Body
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from jobkit.adapters.keys import Scope
from jobkit.api.auth import caller
from jobkit.api.models import ErrorOut, PreviewOut, PreviewRowOut, PreviewRules
from jobkit.api.responses import ApiError, documented
from jobkit.api.services import services
from jobkit.domain.errors import JobModuleError

router = APIGatewayRouter()  # type: ignore[no-untyped-call]


def _responses() -> dict[int, OpenAPIResponse]:
    responses = documented(
        200, "The rules' decision on each record", conflict="The client's row is invalid"
    )
    responses[500] = {
        "description": "The job's module failed to load (the error is named)",
        "content": {"application/json": {"model": ErrorOut}},
    }
    responses[502] = {
        "description": "The client's page could not be fetched (the external error is named)",
        "content": {"application/json": {"model": ErrorOut}},
    }
    return responses


@router.post(
    "/jobs/<job_type>/preview",
    responses=_responses(),
    description=(
        "Fetch one page of the client's records as a run would (its credentials, circuit and"
        " the provider's rate limit, from its cursor), validate each with the job's model,"
        " and show what the job's rules decide for it and whether a run would acknowledge"
        " it. Nothing is written or acknowledged; a disabled client can be previewed."
    ),
)
def preview_rules(job_type: str, body: Annotated[PreviewRules, Body()]) -> PreviewOut:
    # The preview's module loads here, not at each cold start: most requests preview nothing.
    from jobkit.pipeline.preview import FetchFailedError, InvalidClientError

    api = services(router)
    api.planner(job_type)
    caller(router.current_event).require(Scope.TRIGGER, job_type, [body.client_id])
    try:
        preview = api.rule_preview().preview(job_type, body.client_id, body.limit)
    except InvalidClientError as exc:
        raise ApiError(409, str(exc)) from exc
    except JobModuleError as exc:
        # Deployed with an error in it: the module's author needs the error, not a bare 500.
        raise ApiError(500, str(exc)) from exc
    except FetchFailedError as exc:
        raise ApiError(502, str(exc)) from exc
    return PreviewOut(
        job_type=job_type,
        client_id=preview.client_id,
        records=[PreviewRowOut.model_validate(row, from_attributes=True) for row in preview.rows],
        more=preview.more,
    )
