"""Pages of the API: a page token is DynamoDB's LastEvaluatedKey, base64 JSON."""

import base64
import json
from typing import Annotated, Any

from aws_lambda_powertools.event_handler.openapi.params import Query

from jobkit.api.responses import ApiError

Limit = Annotated[int, Query(ge=1, le=200)]
Next = Annotated[
    str | None,
    Query(
        max_length=2048,
        pattern=r"^[A-Za-z0-9_\-]*={0,2}$",
        description="The `next` of the page before (URL-safe base64).",
    ),
]


def encode(key: dict[str, Any] | None) -> str | None:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode() if key else None


def decode(token: str | None) -> dict[str, Any] | None:
    if not token:
        return None
    try:
        value = json.loads(base64.urlsafe_b64decode(token.encode()))
    except ValueError as exc:
        raise ApiError(400, "next: not a page token from this API") from exc
    if not isinstance(value, dict):
        raise ApiError(400, "next: not a page token from this API")
    return value


def run_page_start(run_id: str, token: str | None) -> dict[str, Any] | None:
    """A page token of this run's rows: one of another run would be a DynamoDB error."""
    start = decode(token)
    if start is not None and start.get("run_id") != run_id:
        raise ApiError(400, "next: not a page token of this run")
    return start
