"""Where a caller reaches a path of this API: the `Location` of a run it started.

A bare `/runs/{id}` resolves against the API's URL (`https://…/v1/`) to a path outside the
stage, which API Gateway refuses. The URL is built from what the request says of its own
address instead, so it holds behind a custom domain's base path as well as under the stage.
"""

from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent


def public_url(event: APIGatewayProxyEvent, path: str, emulator: bool = False) -> str:
    """The absolute URL of ``path`` (``/runs/…``) on the API that received ``event``.

    ``emulator``: the local stack (MiniStack) serves a REST API under
    ``/restapis/{id}/{stage}/_user_request_`` of its own host, and names no domain.
    """
    context = event.request_context
    host = context.domain_name
    if emulator or not host:
        base = f"http://{event.headers.get('host') or event.headers.get('Host')}"
        return f"{base}/restapis/{context.api_id}/{context.stage}/_user_request_{path}"
    # requestContext.path is the path the caller used, the stage (default domain) or the
    # base path (custom domain) before the resource's own path, which is event.path.
    used, own = context.path or "", event.path or ""
    prefix = used[: len(used) - len(own)] if own and used.endswith(own) else f"/{context.stage}"
    return f"https://{host}{prefix}{path}"
