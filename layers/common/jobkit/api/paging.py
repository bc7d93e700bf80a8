"""Pages of the API: a page token is DynamoDB's LastEvaluatedKey, base64 JSON.

A token that names no page of this resource (garbled, or of another run) is a 404, "no such
page": the document can state a token's alphabet, not that this API wrote it.
"""

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
        raise ApiError(404, "next: not a page token from this API") from exc
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ApiError(404, "next: not a page token from this API")
    return value


def holding(start: dict[str, Any] | None, *keys: str) -> dict[str, Any] | None:
    """A page token that holds exactly these keys (what the page it names starts from)."""
    if start is not None and set(start) != set(keys):
        raise ApiError(404, "next: not a page token of these pages")
    return start


def run_page_start(run_id: str, token: str | None) -> dict[str, Any] | None:
    """A page token of this run's rows: one of another run would be a DynamoDB error."""
    start = holding(decode(token), "run_id", "sk")
    if start is not None and start.get("run_id") != run_id:
        raise ApiError(404, "next: not a page token of this run")
    return start
