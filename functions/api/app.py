"""Runs API Lambda: the async job pattern over REST, behind the key authorizer.

POST /jobs/{type}/runs answers 202 with the run's URL in Location and the run; the planner is
invoked asynchronously on the run it opened. Scopes come from the authorizer's context.
"""

import base64
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.openapi.models import APIKey, APIKeyIn
from aws_lambda_powertools.event_handler.openapi.params import Body, Query
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from jobkit.adapters.aws import dynamodb_table, lambda_client, secrets_client, sqs_client
from jobkit.adapters.config import ClientConfig, ConfigStore
from jobkit.adapters.keys import Grant, Scope
from jobkit.adapters.records import WorkflowStore
from jobkit.api.models import (
    LIVE_CLIENT_ROWS,
    ClientConfigIn,
    ClientRunOut,
    DeliveryOut,
    ErrorOut,
    HistoryEntry,
    ItemOut,
    JobOut,
    NewSubscription,
    Page,
    RunOut,
    StartRun,
    SubscriptionOut,
    run_out,
)
from jobkit.api.urls import public_url
from jobkit.domain.envelope import Identifier, describe_validation_error
from jobkit.domain.errors import ConfigNotFoundError
from jobkit.observability import logger, metrics, tracer
from jobkit.ops.health_page import DEFAULT_CLIENTS, HealthOut, build_health, job_status_health
from jobkit.runs.ledger import open_ledger
from jobkit.runs.models import RunHeader, Trigger
from jobkit.settings import ApiSettings, load_settings
from jobkit.tooling.request_log import log_request_counts
from jobkit.webhooks.subscriptions import DeliveryLog, Subscription, SubscriptionStore

settings = load_settings(ApiSettings)
DASHBOARD = (Path(__file__).parent / "dashboard.html").read_text()
configs = ConfigStore(dynamodb_table(settings.config_table))
ledger = open_ledger(dynamodb_table(settings.runs_table))
runs, lifecycle = ledger.queries, ledger.lifecycle
workflow = WorkflowStore(dynamodb_table(settings.records_table))
subscriptions = SubscriptionStore(
    dynamodb_table(settings.subscriptions_table),
    secrets_client(),
    settings.webhook_secret_prefix,
)
delivery_log = DeliveryLog(dynamodb_table(settings.deliveries_table))

app = APIGatewayRestResolver(enable_validation=True)
app.enable_swagger(
    path="/swagger",
    title="jobkit runs API",
    version="1.0.0",
    description="Start, follow and cancel runs of integration jobs; see every item's outcome.",
    security_schemes={"apiKey": APIKey(name="x-api-key", in_=APIKeyIn.header)},
    security=[{"apiKey": []}],
)


_ERRORS = {
    400: "Bad request: the field and the rule it breaks",
    401: "Missing, unknown, expired or revoked key (answered by the authorizer)",
    403: "The key's scope does not allow this",
    404: "No such job type, run, client or subscription",
}


def documented(
    success: int = 200, description: str = "OK", body: bool = True
) -> dict[int, OpenAPIResponse]:
    """Every answer a route can give, so clients and fuzzers can rely on the document."""
    ok: OpenAPIResponse = {"description": description}
    if not body:
        ok["content"] = {}
    responses = {success: ok}
    for status, text in _ERRORS.items():
        responses[status] = {
            "description": text,
            "content": {"application/json": {"model": ErrorOut}},
        }
    return responses


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Caller(Grant):
    """The key behind this request, as the authorizer described it."""

    key_id: str

    def require(
        self, scope: Scope, job_type: str | None = None, client_ids: list[str] | None = None
    ) -> None:
        if not self.allows(scope, job_type, client_ids):
            raise ApiError(403, f"key {self.key_id} lacks {scope.value} scope for this request")


def caller() -> Caller:
    request_context = app.current_event.get("requestContext") or {}
    context = request_context.get("authorizer") or {}

    def split(name: str) -> frozenset[str]:
        return frozenset(filter(None, str(context.get(name, "")).split(",")))

    return Caller.model_validate(
        {
            "key_id": str(context.get("key_id", "")),
            "scopes": split("scopes"),
            "job_types": split("job_types"),
            "clients": split("clients"),
        }
    )


def _planner(job_type: str) -> dict[str, str]:
    planner = settings.planners.get(job_type)
    if planner is None:
        raise ApiError(404, f"unknown job type {job_type!r}")
    return planner


def _run(run_id: str, scope: Scope) -> RunHeader:
    header = runs.header(run_id)
    if header is None:
        raise ApiError(404, f"no run {run_id!r}")
    caller().require(scope, header.job_type)
    return header


def _encode(key: dict[str, Any] | None) -> str | None:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode() if key else None


def _decode(token: str | None) -> dict[str, Any] | None:
    if not token:
        return None
    try:
        value = json.loads(base64.urlsafe_b64decode(token.encode()))
    except ValueError as exc:
        raise ApiError(400, "next: not a page token from this API") from exc
    if not isinstance(value, dict):
        raise ApiError(400, "next: not a page token from this API")
    return value


def _run_page_start(run_id: str, token: str | None) -> dict[str, Any] | None:
    """A page token of this run's rows: one of another run would be a DynamoDB error."""
    start = _decode(token)
    if start is not None and start.get("run_id") != run_id:
        raise ApiError(400, "next: not a page token of this run")
    return start


Limit = Annotated[int, Query(ge=1, le=200)]


@app.post("/jobs/<job_type>/runs", responses=documented(202, "Run accepted"))
def start_run(job_type: str, body: Annotated[StartRun, Body()]) -> Response[RunOut]:
    planner = _planner(job_type)
    who = caller()
    who.require(Scope.TRIGGER, job_type, body.client_ids)
    now = datetime.now(UTC)
    run_id = f"{job_type}.{now:%Y%m%dT%H%M%SZ}.{uuid.uuid4().hex[:8]}"
    correlation_id = app.current_event.request_context.request_id or run_id
    header, _ = lifecycle.open_run(
        RunHeader(
            run_id=run_id,
            job_type=job_type,
            trigger=Trigger.API,
            requested_by=f"key:{who.key_id}",
            correlation_id=correlation_id,
            created_at=now,
        )
    )
    lambda_client().invoke(
        FunctionName=planner["function"],
        InvocationType="Event",
        Payload=json.dumps(
            {
                "trigger": "api",
                "run_id": run_id,
                "requested_by": f"key:{who.key_id}",
                "client_ids": body.client_ids,
                "dry_run": body.dry_run,
                "correlation_id": correlation_id,
            }
        ).encode(),
    )
    logger.info(
        "run requested",
        extra={
            "run_id": run_id,
            "job_type": job_type,
            "key_id": who.key_id,
            "dry_run": body.dry_run,
        },
    )
    return Response(
        status_code=202,
        content_type="application/json",
        body=RunOut.of_header(header),
        headers={"Location": public_url(app.current_event, f"/runs/{run_id}", settings.is_local)},
    )


@app.get("/runs/<run_id>", responses=documented())
def get_run(run_id: str) -> RunOut:
    return run_out(runs, _run(run_id, Scope.READ), client_rows=LIVE_CLIENT_ROWS)


@app.delete("/runs/<run_id>", responses=documented())
def cancel_run(run_id: str) -> RunOut:
    header = _run(run_id, Scope.TRIGGER)
    if not lifecycle.cancel(run_id):
        raise ApiError(409, f"run {run_id} is already {header.status.value}")
    cancelled = runs.header(run_id)
    assert cancelled is not None
    return run_out(runs, cancelled, client_rows=LIVE_CLIENT_ROWS)


@app.get("/runs/<run_id>/clients", responses=documented())
def run_clients(
    run_id: str,
    limit: Limit = 50,
    next: Annotated[str | None, Query(max_length=2048)] = None,  # noqa: A002
) -> Page[ClientRunOut]:
    _run(run_id, Scope.READ)
    rows, last = runs.clients_page(run_id, limit, _run_page_start(run_id, next))
    return Page[ClientRunOut](items=[ClientRunOut.of(row) for row in rows], next=_encode(last))


@app.get("/runs/<run_id>/items", responses=documented())
def run_items(
    run_id: str,
    status: Annotated[str | None, Query(pattern="^(processed|skipped|failed)$")] = None,
    limit: Limit = 50,
    next: Annotated[str | None, Query(max_length=2048)] = None,  # noqa: A002
) -> Page[ItemOut]:
    _run(run_id, Scope.READ)
    rows, last = runs.items_page(run_id, status, limit, _run_page_start(run_id, next))
    return Page[ItemOut](items=[ItemOut.of(row) for row in rows], next=_encode(last))


@app.get("/health", responses=documented())
def job_health(
    limit: Limit = DEFAULT_CLIENTS,
    client: Annotated[
        str,
        Query(
            max_length=64,
            pattern=r"^[A-Za-z0-9_.\-]*$",
            description="Only clients whose id starts with this.",
        ),
    ] = "",
) -> HealthOut:
    """Per job type the key may read: up to `limit` clients, those needing attention first."""
    key = caller()
    key.require(Scope.READ)
    schedules = {
        job: planner.get("schedule", "")
        for job, planner in settings.planners.items()
        if key.allows(Scope.READ, job)
    }
    # The work DLQ is shared by every job type: its depth is not for a key limited to some.
    every_job = Scope.ADMIN in key.scopes or not key.job_types
    dlq_depth = _dlq_depth() if every_job else None
    return build_health(schedules, configs, runs, dlq_depth, limit=limit, client_prefix=client)


def _dlq_depth() -> int:
    attributes = sqs_client().get_queue_attributes(
        QueueUrl=settings.work_dlq_url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    return int(attributes.get("ApproximateNumberOfMessages", 0))


@app.get("/dashboard", include_in_schema=False)
def dashboard() -> Response[str]:
    """The job-health page: a static shell that asks for a key and calls /health with it."""
    return Response(status_code=200, content_type="text/html; charset=utf-8", body=DASHBOARD)


@app.get("/jobs", responses=documented())
def list_jobs() -> list[JobOut]:
    """The job types the key may read."""
    key = caller()
    key.require(Scope.READ)
    jobs = []
    for job_type, planner in sorted(settings.planners.items()):
        if not key.allows(Scope.READ, job_type):
            continue
        last = runs.recent_runs(job_type, limit=1)
        health = job_status_health(last[0].status if last else None)
        jobs.append(
            JobOut(
                job_type=job_type,
                schedule=planner.get("schedule", ""),
                last_run=RunOut.of_header(last[0]) if last else None,
                health=health,
            )
        )
    return jobs


@app.get("/jobs/<job_type>/runs", responses=documented())
def list_runs(
    job_type: str,
    limit: Limit = 20,
    next: Annotated[str | None, Query(max_length=2048)] = None,  # noqa: A002
) -> Page[RunOut]:
    _planner(job_type)
    caller().require(Scope.READ, job_type)
    headers, last = runs.runs_page(job_type, limit, _decode(next))
    return Page[RunOut](items=[RunOut.of_header(h) for h in headers], next=_encode(last))


@app.get("/records/<record_id>/history", responses=documented())
def record_history(record_id: str, client_id: Annotated[Identifier, Query()]) -> list[HistoryEntry]:
    who = caller()
    who.require(Scope.READ)
    if who.clients and client_id not in who.clients and Scope.ADMIN not in who.scopes:
        raise ApiError(403, f"key {who.key_id} lacks read scope for client {client_id}")
    rows = workflow.history(client_id, record_id)
    if not rows:
        raise ApiError(404, f"no history for record {record_id!r} of client {client_id!r}")
    return [HistoryEntry.model_validate(row) for row in rows]


@app.get("/jobs/<job_type>/clients/<client_id>", responses=documented())
def get_client(job_type: str, client_id: str) -> ClientConfig:
    _planner(job_type)
    caller().require(Scope.ADMIN)
    return configs.get(job_type, client_id)


@app.put("/jobs/<job_type>/clients/<client_id>", responses=documented())
def put_client(
    job_type: str,
    client_id: str,
    body: Annotated[ClientConfigIn, Body()],
) -> ClientConfig:
    _planner(job_type)
    who = caller()
    who.require(Scope.ADMIN)
    configs.put(body.to_config(job_type, client_id, created_by=f"key:{who.key_id}"))
    return configs.get(job_type, client_id)  # with the platform's state, which the put kept


@app.delete("/jobs/<job_type>/clients/<client_id>", responses=documented(204, "Deleted", False))
def delete_client(job_type: str, client_id: str) -> Response[str]:
    _planner(job_type)
    caller().require(Scope.ADMIN)
    configs.delete(job_type, client_id)
    return Response(status_code=204, content_type="application/json", body="")


def _error(status: int, message: str) -> Response[str]:
    return Response(
        status_code=status,
        content_type="application/json",
        body=ErrorOut(error=message).model_dump_json(),
    )


# One place maps typed errors to status codes; anything else is a bug (500, logged).
def _subscription_out(sub: Subscription, secret: str | None = None) -> SubscriptionOut:
    return SubscriptionOut(
        client_id=sub.client_id,
        subscription_id=sub.subscription_id,
        url=sub.url,
        event_types=sorted(sub.event_types),
        enabled=sub.enabled,
        rate_per_second=sub.rate_per_second,
        disabled_reason=sub.disabled_reason,
        signing_secret=secret,
    )


@app.post("/webhooks/subscriptions", responses=documented(201, "Subscribed"))
def add_subscription(body: Annotated[NewSubscription, Body()]) -> Response[SubscriptionOut]:
    caller().require(Scope.ADMIN)
    try:
        sub, secret = subscriptions.add(
            body.client_id,
            body.url,
            set(body.event_types),
            allow_loopback_http=settings.allow_loopback_webhooks,
            rate_per_second=body.rate_per_second,
        )
    except ValueError as exc:
        raise ApiError(422, str(exc)) from exc
    return Response(
        status_code=201, content_type="application/json", body=_subscription_out(sub, secret)
    )


@app.get("/webhooks/subscriptions", responses=documented())
def list_subscriptions(client_id: Annotated[Identifier, Query()]) -> list[SubscriptionOut]:
    caller().require(Scope.ADMIN)
    return [_subscription_out(sub) for sub in subscriptions.for_client(client_id)]


@app.delete(
    "/webhooks/subscriptions/<client_id>/<subscription_id>",
    responses=documented(204, "Unsubscribed", False),
)
def remove_subscription(client_id: str, subscription_id: str) -> Response[str]:
    caller().require(Scope.ADMIN)
    if not subscriptions.remove(client_id, subscription_id):
        raise ApiError(404, f"no subscription {subscription_id!r} for client {client_id!r}")
    return Response(status_code=204, content_type="application/json", body="")


@app.get("/webhooks/deliveries", responses=documented())
def list_deliveries(
    client_id: Annotated[Identifier, Query()], limit: Limit = 50
) -> list[DeliveryOut]:
    who = caller()
    who.require(Scope.READ)
    if who.clients and client_id not in who.clients and Scope.ADMIN not in who.scopes:
        raise ApiError(403, f"key {who.key_id} lacks read scope for client {client_id}")
    return [
        DeliveryOut(
            delivery_id=row["delivery_id"],
            event_id=row.get("event_id", ""),
            subscription_id=row.get("subscription_id", ""),
            status=row.get("status", ""),
            attempts=int(row.get("attempts", 0)),
            last_http_status=None
            if int(row.get("last_http_status", -1)) < 0
            else int(row["last_http_status"]),
            latency_ms=float(row["latency_ms"]) if row.get("latency_ms") else None,
            last_error=row.get("last_error", ""),
            updated_at=row["updated_at"],
        )
        for row in delivery_log.for_client(client_id, limit)
    ]


@app.not_found
def no_route(exc: Exception) -> Response[str]:
    # The same error body as every other 404 (the router's own says {"message": …}).
    return _error(404, "no such resource")


@app.exception_handler(ApiError)  # type: ignore[untyped-decorator]
def api_error(exc: ApiError) -> Response[str]:
    return _error(exc.status, str(exc))


@app.exception_handler(ConfigNotFoundError)  # type: ignore[untyped-decorator]
def config_not_found(exc: ConfigNotFoundError) -> Response[str]:
    return _error(404, str(exc))


@app.exception_handler(ValidationError)  # type: ignore[untyped-decorator]
def invalid_value(exc: ValidationError) -> Response[str]:
    return _error(422, describe_validation_error(exc))


@logger.inject_lambda_context(
    correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True
)
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
@log_request_counts
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    metrics.add_metric(name="ApiRequests", unit="Count", value=1)
    return app.resolve(event, context)
