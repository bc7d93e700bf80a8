"""What the published document says of a request, held to before any route runs.

Powertools validates the parameters and bodies a route declares. It ignores undeclared
query parameters, parses any body whatever its media type (a 500 for a malformed multipart
header), and answers a known path under an undeclared method with a 404. The document
lists a closed set of each, so they are refused here as it says: 422, 415 and 405.
"""

import re
from functools import cache
from typing import Any, NamedTuple

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware

from jobkit.api.responses import error, invalid


class Operation(NamedTuple):
    query: frozenset[str]
    takes_body: bool


class Paths(NamedTuple):
    # (method, route path as the routers write it) -> the document's operation
    operations: dict[tuple[str, str], Operation]
    # a path's pattern -> the methods the document lists for it
    methods: list[tuple[re.Pattern[str], frozenset[str]]]


def check_request(app: APIGatewayRestResolver, next_middleware: NextMiddleware) -> Response[str]:
    """422 for a query parameter the route does not declare (a misspelt ``limt=5`` is refused,
    not ignored); 415 for a body that is not JSON."""
    route = app.context.get("_route")
    operation = _paths(app).operations.get((route.method, route.path)) if route else None
    if operation is None:  # not a documented route: the document's own page, a 404
        return next_middleware(app)
    unknown = sorted(set(app.current_event.query_string_parameters or {}) - operation.query)
    if unknown:
        errors = [
            {"loc": ["query", name], "msg": "Unknown query parameter", "type": "extra_forbidden"}
            for name in unknown
        ]
        return invalid(f"query: unknown parameter(s) {', '.join(unknown[:3])}", errors)
    media_type = _media_type(app.current_event.headers)
    if operation.takes_body and media_type not in (None, "application/json"):
        return error(415, f"a body is application/json, not {media_type[:100]}")
    return next_middleware(app)


def unsupported_media_or_raise(app: APIGatewayRestResolver, exc: ValueError) -> Response[str]:
    """Powertools parses the body before any middleware of ours runs, and a body it cannot
    parse as its media type is a ValueError: a 415 when that type is not JSON. Any other
    ValueError is a bug, and raised as one."""
    media_type = _media_type(app.current_event.headers)
    if media_type in (None, "application/json"):
        raise exc
    return error(415, f"a body is application/json, not {media_type[:100]}")


def method_not_allowed_or_not_found(app: APIGatewayRestResolver) -> Response[str]:
    """No route answered: a path the document lists under other methods is a 405 naming
    them; anything else is a 404, with the error body of every other refusal."""
    event = app.current_event
    # Every documented path the request's matches: a job type's own client path and the one
    # of every job type both match /jobs/<job>/clients/<id>, each with its methods.
    allowed = frozenset[str]().union(
        *(methods for pattern, methods in _paths(app).methods if pattern.fullmatch(event.path))
    )
    if allowed and event.http_method.upper() not in allowed:
        answer = error(405, f"{event.http_method} is not allowed here")
        answer.headers["Allow"] = ", ".join(sorted(allowed))
        return answer
    return error(404, "no such resource")


def _media_type(headers: dict[str, Any] | None) -> str | None:
    for name, value in (headers or {}).items():
        if name.lower() == "content-type" and value:
            return str(value).split(";", 1)[0].strip().lower()
    return None


@cache
def _paths(app: APIGatewayRestResolver) -> Paths:
    document = app.get_openapi_schema().model_dump(mode="json", by_alias=True, exclude_none=True)
    operations = {}
    methods = []
    for path, item in document.get("paths", {}).items():
        route_path = re.sub(r"\{(\w+)\}", r"<\1>", path)
        for method, operation in item.items():
            parameters = operation.get("parameters", [])
            query = frozenset(p["name"] for p in parameters if p["in"] == "query")
            takes_body = "requestBody" in operation
            operations[(method.upper(), route_path)] = Operation(query, takes_body)
        pattern = re.compile(re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(path)))
        methods.append((pattern, frozenset(method.upper() for method in item)))
    return Paths(operations, methods)
