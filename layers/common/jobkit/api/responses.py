"""What the API answers besides a route's own body: the documented responses of every route,
the error body, and the one place that maps typed errors to status codes."""

import json
from collections.abc import Sequence
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from pydantic import ValidationError

from jobkit.api.models import ErrorOut
from jobkit.domain.envelope import describe_validation_error
from jobkit.domain.errors import ConfigNotFoundError

_ERRORS = {
    401: "Missing, unknown, expired or revoked key (answered by the authorizer)",
    403: "The key's scope does not allow this",
    404: "No such job type, run, client, subscription or page, or none the key may read",
    415: "A body that is not application/json",
    429: "Too many requests: the stage's throttling (answered by API Gateway)",
}


class ApiError(Exception):
    """A request the API refuses, with the status and the message the caller gets."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class FieldRefused(Exception):  # noqa: N818 - a refusal, answered as a 422
    """A body field a route refuses by a rule the document cannot state: a 422 naming it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def documented(
    success: int = 200, description: str = "OK", body: bool = True, conflict: str | None = None
) -> dict[int, OpenAPIResponse]:
    """Every answer a route can give, so clients and fuzzers can rely on the document;
    ``conflict``: when the route answers 409."""
    ok: OpenAPIResponse = {"description": description}
    if not body:
        ok["content"] = {}
    responses = {success: ok}
    errors = {**_ERRORS, **({409: conflict} if conflict else {})}
    for status, text in sorted(errors.items()):
        responses[status] = {
            "description": text,
            "content": {"application/json": {"model": ErrorOut}},
        }
    return responses


def error(status: int, message: str) -> Response[str]:
    return Response(
        status_code=status,
        content_type="application/json",
        body=ErrorOut(error=message).model_dump_json(),
    )


def no_content() -> Response[str]:
    return Response(status_code=204, content_type="application/json", body="")


def _api_error(exc: ApiError) -> Response[str]:
    return error(exc.status, str(exc))


def _field_refused(exc: FieldRefused) -> Response[str]:
    loc = ["body", exc.field]
    return invalid(str(exc), [{"loc": loc, "msg": str(exc), "type": "value_error"}])


def _config_not_found(exc: ConfigNotFoundError) -> Response[str]:
    return error(404, str(exc))


def _invalid_value(exc: ValidationError) -> Response[str]:
    return invalid(describe_validation_error(exc), exc.errors(include_input=False))


def _invalid_request(exc: RequestValidationError) -> Response[str]:
    errors = list(exc.errors())
    summary = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors[:3])
    return invalid(summary, errors)


def invalid(summary: str, errors: Sequence[Any]) -> Response[str]:
    """A 422 as the document describes it (Powertools' ``HTTPValidationError``: each error's
    ``loc``, ``msg`` and ``type``, never the input) with the one-line ``error`` every other
    refusal carries. Powertools' own 422 leaves out the ``msg`` its document requires."""
    detail = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in errors]
    body = {"error": summary, "detail": detail}
    return Response(status_code=422, content_type="application/json", body=json.dumps(body))


def install_error_handlers(app: APIGatewayRestResolver) -> None:
    """Typed errors to status codes; anything else is a bug (500, logged)."""
    app.exception_handler(ApiError)(_api_error)
    app.exception_handler(FieldRefused)(_field_refused)
    app.exception_handler(ConfigNotFoundError)(_config_not_found)
    app.exception_handler(ValidationError)(_invalid_value)
    app.exception_handler(RequestValidationError)(_invalid_request)
