"""The runs API in-process, route by route: an API Gateway REST proxy event in, status and body
out, against moto tables, the real planner and processor, and a recording fake of the
planner's asynchronous invocation."""

import base64
import importlib
import json
import re
import sys
from dataclasses import dataclass, replace
from typing import Any

import pytest
from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from botocore.stub import Stubber

from jobkit.adapters.aws import invoke_async, lambda_client
from jobkit.api.resolver import build_app
from jobkit.pipeline.plan_request import PlanRequest, parse_plan_request
from jobkit.runs.models import Trigger
from jobkit.settings import ApiSettings
from jobkit.webhooks.subscriptions import DeliveryLog
from jobkit.wiring.api import build_services
from jobs import JOBS
from tests.support import ROOT, LambdaContext
from tests.unit.pipeline import JOB, Pipeline
from tests.unit.test_cold_start import _cold_start as cold_start

DOMAIN = "a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com"
OTHER_JOB = "sync-contacts"
PLANNERS = {
    JOB: {"function": "jobkit-planner-records", "schedule": "rate(30 minutes)"},
    OTHER_JOB: {"function": "jobkit-planner-contacts", "schedule": "rate(15 minutes)"},
}
DASHBOARD = "<!doctype html><title>jobkit · job health</title>"
KEY_ID = "0123456789abcdef"
UNAUTHENTICATED = ("/swagger", "/dashboard")  # their own resources, without the authorizer


def key(scopes: str, job_types: str = "", clients: str = "") -> dict[str, str]:
    """A key as the authorizer describes it in ``requestContext.authorizer``."""
    return {"key_id": KEY_ID, "scopes": scopes, "job_types": job_types, "clients": clients}


ADMIN, READ, TRIGGER = key("admin"), key("read"), key("trigger")


def rest_event(
    method: str,
    path: str,
    authorizer: dict[str, str] | None,
    query: dict[str, str] | None = None,
    body: Any = None,
    content_type: str = "application/json",
) -> dict[str, Any]:
    """What API Gateway hands the function (REST API, proxy integration, stage v1)."""
    resource = path if path in UNAUTHENTICATED else "/{proxy+}"
    headers = {"Host": DOMAIN, "Content-Type": content_type, "User-Agent": "pytest"}
    context: dict[str, Any] = {
        "resourcePath": resource,
        "httpMethod": method,
        "path": f"/v1{path}",
        "stage": "v1",
        "domainName": DOMAIN,
        "apiId": "a1b2c3d4e5",
        "requestId": "req-0001",
    }
    if authorizer is not None:
        context["authorizer"] = authorizer
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": {name: [value] for name, value in headers.items()},
        "queryStringParameters": query,
        "multiValueQueryStringParameters": {n: [v] for n, v in (query or {}).items()} or None,
        "pathParameters": None if path in UNAUTHENTICATED else {"proxy": path.lstrip("/")},
        "stageVariables": None,
        "requestContext": context,
        "body": None if body is None else json.dumps(body),
        "isBase64Encoded": False,
    }


@dataclass
class Answer:
    status: int
    headers: dict[str, list[str]]
    text: str

    def json(self) -> Any:
        return json.loads(self.text)


@dataclass
class Api:
    app: APIGatewayRestResolver
    invoked: list[tuple[str, dict[str, Any]]]  # (function, payload) of each async invocation

    def call(
        self,
        method: str,
        path: str,
        as_key: dict[str, str] | None = ADMIN,
        query: dict[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
    ) -> Answer:
        event = rest_event(method, path, as_key, query, body, content_type)
        response = self.app.resolve(event, LambdaContext())  # type: ignore[arg-type]
        return Answer(response["statusCode"], response["multiValueHeaders"], response["body"])

    def pages(self, path: str, as_key: dict[str, str], **query: str) -> list[list[Any]]:
        """Every page of a paged route, following ``next``."""
        pages = []
        while True:
            answer = self.call("GET", path, as_key, query)
            assert answer.status == 200, answer.text
            pages.append(answer.json()["items"])
            if not answer.json()["next"]:
                return pages
            query = {**query, "next": answer.json()["next"]}


def function_environment(dlq_url: str) -> dict[str, str]:
    """The API function's environment, as the template sets it, on the moto tables."""
    return {
        "CONFIG_TABLE": "ConfigTable",
        "RUNS_TABLE": "RunsTable",
        "RECORDS_TABLE": "RecordsTable",
        "SUBSCRIPTIONS_TABLE": "SubscriptionsTable",
        "DELIVERIES_TABLE": "DeliveriesTable",
        "WEBHOOK_SECRET_PREFIX": "jobkit-webhooks",
        "WORK_DLQ_URL": dlq_url,
        "PLANNERS": json.dumps(PLANNERS),
        "IDEMPOTENCY_TABLE": "IdempotencyTable",
        "CONTROL_TABLE": "ControlTable",
        "EXTERNAL_BASE_URL": "https://external.example.com",
        "CREDENTIALS_SECRET_PREFIX": "jobkit/external",
    }


@pytest.fixture
def api(aws: Any) -> Api:
    """The API as its function wires it, on moto; the planner's invocation recorded."""
    settings = ApiSettings.model_validate(function_environment(aws.dlq_url))
    invoked: list[tuple[str, dict[str, Any]]] = []
    services = replace(
        build_services(settings, DASHBOARD, JOBS),
        invoke_async=lambda function, payload: invoked.append((function, payload)),
    )
    return Api(build_app(services), invoked)


def finished_run(api: Api, pipeline: Pipeline, clients: dict[str, int]) -> str:
    """A run started through the API, for clients with so many records each, that the
    planner was invoked for with the API's payload and the processor then finished."""
    for client_id, records in clients.items():
        pipeline.seed(client_id, count=records)
    accepted = api.call("POST", f"/jobs/{JOB}/runs", TRIGGER, body={"clientIds": [*clients]})
    assert accepted.status == 202, accepted.text
    _, payload = api.invoked[-1]
    request = parse_plan_request(payload)
    assert isinstance(request, PlanRequest)
    pipeline.plan_request(request)
    pipeline.drain()
    run_id: str = accepted.json()["run_id"]
    return run_id


# Runs


def test_a_started_run_answers_202_with_its_url_and_its_planner_is_invoked_with_it(
    api: Api,
) -> None:
    # Given a key that may trigger runs of the job type
    # When it asks for a dry run of one client
    body = {"clientIds": ["acme"], "dryRun": True}
    accepted = api.call("POST", f"/jobs/{JOB}/runs", TRIGGER, body=body)
    # Then the run is open, its Location is its absolute URL under the stage
    assert accepted.status == 202
    run = accepted.json()
    assert re.fullmatch(rf"{JOB}\.\d{{8}}T\d{{6}}Z\.[0-9a-f]{{8}}", run["run_id"])
    assert (run["status"], run["trigger"], run["requested_by"]) == (
        "PLANNING",
        "api",
        f"key:{KEY_ID}",
    )
    assert accepted.headers["Location"] == [f"https://{DOMAIN}/v1/runs/{run['run_id']}"]
    # And the job type's planner is invoked once, with the planner's own request for this run
    [(function, payload)] = api.invoked
    assert function == PLANNERS[JOB]["function"]
    assert parse_plan_request(payload) == PlanRequest(
        trigger=Trigger.API,
        run_id=run["run_id"],
        requested_by=f"key:{KEY_ID}",
        client_ids=["acme"],
        dry_run=True,
        correlation_id="req-0001",
    )


def test_the_planner_runs_the_run_the_api_opened_and_the_api_follows_it(
    api: Api, pipeline: Pipeline
) -> None:
    # Given a run started through the API, planned from the payload its planner got, processed
    run_id = finished_run(api, pipeline, {"acme": 3})
    # When the run is read
    answer = api.call("GET", f"/runs/{run_id}", READ)
    # Then it is the same run, finished, with its counts and its client
    assert answer.status == 200
    run = answer.json()
    assert (run["run_id"], run["status"], run["trigger"]) == (run_id, "SUCCEEDED", "api")
    assert (run["counts"]["received"], run["counts"]["processed"]) == (3, 3)
    assert [c["client_id"] for c in run["clients"]] == ["acme"]


def test_a_job_types_runs_are_listed_a_page_at_a_time(api: Api, pipeline: Pipeline) -> None:
    # Given two finished runs of the job type
    first = finished_run(api, pipeline, {"acme": 1})
    second = finished_run(api, pipeline, {"globex": 1})
    # When they are listed one per page
    pages = api.pages(f"/jobs/{JOB}/runs", READ, limit="1")
    # Then each page holds one, and the pages hold both
    listed = [run["run_id"] for page in pages for run in page]
    assert [len(page) for page in pages[:2]] == [1, 1]
    assert sorted(listed) == sorted([first, second])


def test_cancelling_an_open_run_answers_it_cancelled_and_once_only(api: Api) -> None:
    # Given a run started, its planner not yet done
    run_id = api.call("POST", f"/jobs/{JOB}/runs", TRIGGER, body={}).json()["run_id"]
    # When it is cancelled
    cancelled = api.call("DELETE", f"/runs/{run_id}", TRIGGER)
    # Then it is answered CANCELLED, and a second cancel is a conflict
    assert (cancelled.status, cancelled.json()["status"]) == (200, "CANCELLED")
    again = api.call("DELETE", f"/runs/{run_id}", TRIGGER)
    assert (again.status, again.json()) == (409, {"error": f"run {run_id} is already CANCELLED"})


def test_a_runs_client_rows_are_paged_by_client_id(api: Api, pipeline: Pipeline) -> None:
    # Given a finished run of two clients
    run_id = finished_run(api, pipeline, {"globex": 2, "acme": 1})
    # When its client rows are read one per page
    pages = api.pages(f"/runs/{run_id}/clients", READ, limit="1")
    # Then they come by client id, with their counts
    rows = [(row["client_id"], row["processed"], row["result"]) for page in pages for row in page]
    assert rows == [("acme", 1, "SUCCEEDED"), ("globex", 2, "SUCCEEDED")]


def test_a_runs_item_outcomes_are_filtered_and_paged(api: Api, pipeline: Pipeline) -> None:
    # Given a finished run that processed three records
    run_id = finished_run(api, pipeline, {"acme": 3})
    # When its processed items are read two per page
    pages = api.pages(f"/runs/{run_id}/items", READ, status="processed", limit="2")
    # Then the pages hold the three, each with its record and outcome
    items = sorted((item["record_id"], item["outcome"]) for page in pages for item in page)
    assert items == [(f"acme-r0000{n}", "processed") for n in (1, 2, 3)]
    assert len(pages[0]) == 2


def test_a_page_token_of_another_job_types_runs_is_no_page_of_these(
    api: Api, pipeline: Pipeline
) -> None:
    # Given a page token of one job type's runs
    finished_run(api, pipeline, {"acme": 1})
    finished_run(api, pipeline, {"globex": 1})
    token = api.call("GET", f"/jobs/{JOB}/runs", READ, {"limit": "1"}).json()["next"]
    # When the other job type's runs are asked for from it
    answer = api.call("GET", f"/jobs/{OTHER_JOB}/runs", READ, {"next": token})
    # Then it names no page of them, before DynamoDB is asked
    assert (answer.status, answer.json()) == (
        404,
        {"error": "next: not a page token of this job type's runs"},
    )


def test_a_page_token_of_another_run_is_refused(api: Api, pipeline: Pipeline) -> None:
    # Given a finished run, and a page token naming another run
    run_id = finished_run(api, pipeline, {"acme": 1})
    token = base64.urlsafe_b64encode(b'{"run_id": "another-run", "sk": "CLIENT#x"}').decode()
    # When a page of the run's clients is asked for from that token
    answer = api.call("GET", f"/runs/{run_id}/clients", READ, {"next": token})
    # Then it is refused before it reaches DynamoDB
    assert (answer.status, answer.json()) == (404, {"error": "next: not a page token of this run"})


# Jobs


def test_jobs_lists_the_job_types_a_key_may_read_with_their_last_run(
    api: Api, pipeline: Pipeline
) -> None:
    # Given a finished run of one job type, none of the other
    run_id = finished_run(api, pipeline, {"acme": 1})
    # When a key limited to that job type, and one for every job type, list the jobs
    limited = api.call("GET", "/jobs", key("read", job_types=JOB)).json()
    every = api.call("GET", "/jobs", READ).json()
    # Then the limited key sees its job type only; each job with its schedule and health
    assert [(job["job_type"], job["last_run"]["run_id"], job["health"]) for job in limited] == [
        (JOB, run_id, "healthy")
    ]
    assert [(job["job_type"], job["schedule"], job["health"]) for job in every] == [
        (JOB, "rate(30 minutes)", "healthy"),
        (OTHER_JOB, "rate(15 minutes)", "unknown"),
    ]
    assert every[1]["last_run"] is None


# Clients


def test_an_admin_key_puts_reads_and_deletes_a_client(api: Api) -> None:
    # Given an admin key and a new client's configuration
    path = f"/jobs/{JOB}/clients/initech"
    # When it is put
    put = api.call("PUT", path, body={"group_id": "north", "page_size": 20})
    # Then it is answered as stored, by whom, and read back the same
    assert put.status == 200
    assert (put.json()["page_size"], put.json()["created_by"]) == (20, f"key:{KEY_ID}")
    assert api.call("GET", path).json() == put.json()
    # And once deleted, it is gone
    deleted = api.call("DELETE", path)
    assert (deleted.status, deleted.text) == (204, "")
    assert api.call("GET", path).status == 404


def test_a_client_setting_a_field_its_job_does_not_use_is_refused(api: Api) -> None:
    # sync-contacts is a change feed: it uses no look-back, year or query script
    refused = api.call(
        "PUT", f"/jobs/{OTHER_JOB}/clients/initech", body={"group_id": "n", "days": 3}
    )
    assert refused.status == 422, refused.text
    assert refused.json()["detail"][0]["loc"] == ["body", "days"]
    assert api.call("GET", f"/jobs/{OTHER_JOB}/clients/initech").status == 404
    # The same fields are a sync-completed-records client's query
    body = {
        "group_id": "n",
        "days": 3,
        "year": 2026,
        "script": "GET_COMPLETED",
        "frequency_minutes": 1440,
    }
    accepted = api.call("PUT", f"/jobs/{JOB}/clients/initech", body=body)
    assert accepted.status == 200, accepted.text
    assert {k: accepted.json()[k] for k in body} == body
    # And the document says so: each job type's client body has the fields its job uses
    schemas = api.call("GET", "/swagger", query={"format": "json"}).json()["components"]["schemas"]
    query_fields = {"script", "days", "year"}
    assert query_fields <= set(schemas["SyncCompletedRecordsClientIn"]["properties"])
    assert not query_fields & set(schemas["SyncContactsClientIn"]["properties"])
    # And a job type that does not exist is still a 404
    unknown = api.call("PUT", "/jobs/no-such-job/clients/initech", body={"group_id": "n"})
    assert (unknown.status, unknown.json()["error"]) == (404, "unknown job type 'no-such-job'")


def test_health_entries_carry_each_clients_last_success_and_staleness(
    api: Api, pipeline: Pipeline
) -> None:
    finished_run(api, pipeline, {"acme": 2})
    [job] = [j for j in api.call("GET", "/health").json()["jobs"] if j["job_type"] == JOB]
    [acme] = job["clients"]
    assert acme["last_success_at"] is not None
    assert (acme["stale"], acme["age_minutes"], acme["stale_after_minutes"]) == (False, 0, 90)
    assert job["clients_stale"] == 0


# Records


def test_a_records_history_is_read_by_a_key_of_its_client(api: Api, pipeline: Pipeline) -> None:
    # Given a finished run that completed acme's record
    run_id = finished_run(api, pipeline, {"acme": 1})
    # When a key limited to acme reads the record's history
    query = {"client_id": "acme"}
    answer = api.call("GET", "/records/acme-r00001/history", key("read", clients="acme"), query)
    # Then it holds the transition that run made
    assert answer.status == 200
    assert [(h["to_status"], h["run_id"]) for h in answer.json()] == [("COMPLETED", run_id)]


# Webhooks


def test_a_subscription_shows_its_secret_once_and_is_removed_once(api: Api) -> None:
    # Given an admin key
    # When it subscribes acme's endpoint
    body = {"client_id": "acme", "url": "https://hooks.example.com/jobkit"}
    created = api.call("POST", "/webhooks/subscriptions", body=body)
    # Then the answer is the subscription with its signing secret, shown this once
    assert created.status == 201
    subscription = created.json()
    assert subscription["signing_secret"].startswith("whsec_")
    listed = api.call("GET", "/webhooks/subscriptions", query={"client_id": "acme"}).json()
    assert listed == [{**subscription, "signing_secret": None}]
    # And it is removed once; a second removal finds none
    path = f"/webhooks/subscriptions/acme/{subscription['subscription_id']}"
    assert (api.call("DELETE", path).status, api.call("DELETE", path).status) == (204, 404)


def test_a_clients_deliveries_show_their_last_attempt(api: Api, pipeline: Pipeline) -> None:
    # Given a delivery to acme that failed without an answer, then got a 503
    log = DeliveryLog(pipeline.aws.tables["DeliveriesTable"])
    attempt: dict[str, Any] = dict(client_id="acme", subscription_id="s1", event_id="e1")
    log.attempt("d1", **attempt, status="retrying", http_status=None, latency_ms=5000.0)
    log.attempt("d1", **attempt, status="retrying", http_status=503, latency_ms=12.34)
    # When a key of acme lists acme's deliveries
    query = {"client_id": "acme"}
    answer = api.call("GET", "/webhooks/deliveries", key("read", clients="acme"), query)
    # Then the delivery shows both attempts and the last one's status and latency
    assert answer.status == 200
    [delivery] = answer.json()
    assert {k: delivery[k] for k in ("attempts", "last_http_status", "latency_ms")} == {
        "attempts": 2,
        "last_http_status": 503,
        "latency_ms": 12.3,
    }


# Health


def test_health_shows_the_dlq_depth_only_to_keys_that_read_every_job_type(api: Api) -> None:
    # Given a key limited to one job type, and one reading them all
    limited = api.call("GET", "/health", key("read", job_types=JOB))
    every = api.call("GET", "/health", READ)
    # Then each sees its job types; the shared DLQ's depth only the second
    assert [job["job_type"] for job in limited.json()["jobs"]] == [JOB]
    assert limited.json()["dlq_depth"] is None
    assert [job["job_type"] for job in every.json()["jobs"]] == [JOB, OTHER_JOB]
    assert every.json()["dlq_depth"] == 0  # the work DLQ's depth, as SQS says it


def test_the_dashboard_is_the_static_page_served_without_a_key(api: Api) -> None:
    answer = api.call("GET", "/dashboard", as_key=None)
    assert (answer.status, answer.text) == (200, DASHBOARD)
    assert answer.headers["Content-Type"] == ["text/html; charset=utf-8"]


def test_the_openapi_document_names_every_route_and_the_key_header(api: Api) -> None:
    # When the document is asked for, without a key
    answer = api.call("GET", "/swagger", as_key=None, query={"format": "json"})
    # Then it lists every route but the dashboard, each with its error answers
    document = answer.json()
    operations = {
        f"{method.upper()} {path}": operation
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
    }
    # (18 routes, and a client PUT of each of the two job types, with its own body)
    assert len(operations) == 18 + len(PLANNERS) and "GET /dashboard" not in operations
    assert {f"PUT /jobs/{job}/clients/{{client_id}}" for job in PLANNERS} <= set(operations)
    assert "PUT /jobs/{job_type}/clients/{client_id}" not in operations
    assert all({"403", "404"} <= set(op["responses"]) for op in operations.values())
    assert operations["POST /jobs/{job_type}/runs"]["responses"]["202"]["description"] == (
        "Run accepted"
    )
    assert document["components"]["securitySchemes"]["apiKey"] == {
        "type": "apiKey",
        "name": "x-api-key",
        "in": "header",
    }
    assert document["info"]["title"] == "jobkit runs API"


# The function itself


def test_the_function_serves_its_dashboard_file_through_its_handler(
    aws: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the function's environment, as the template sets it
    for name, value in function_environment(aws.dlq_url).items():
        monkeypatch.setenv(name, value)
    # When it starts cold and is asked for the dashboard and for the job types
    monkeypatch.delitem(sys.modules, "api.app", raising=False)
    function = importlib.import_module("api.app")
    page = function.handler(rest_event("GET", "/dashboard", None), LambdaContext())
    jobs = function.handler(rest_event("GET", "/jobs", READ), LambdaContext())
    # Then the page is the file beside it, and the job types those its environment names
    assert page["statusCode"] == 200
    assert page["body"] == (ROOT / "functions/api/dashboard.html").read_text()
    assert [job["job_type"] for job in json.loads(jobs["body"])] == [JOB, OTHER_JOB]


def test_a_cold_start_loads_the_routes_but_not_the_planner(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given the function's environment
    for name, value in function_environment("https://sqs.us-east-1.amazonaws.com/1/dlq").items():
        monkeypatch.setenv(name, value)
    # When it starts cold, in a fresh interpreter as Lambda starts one
    loaded = set(cold_start("api.app")["modules"])
    # Then every router is loaded; the planner's module, for starting runs only, is not yet
    assert {f"jobkit.api.routes.{name}" for name in ("runs", "jobs", "health")} <= loaded
    assert "jobkit.pipeline.plan" not in loaded


def test_a_planner_is_invoked_asynchronously_with_the_json_payload(aws: Any) -> None:
    # Given the Lambda service, expecting one asynchronous invocation of the planner
    expected = {
        "FunctionName": "jobkit-planner-records",
        "InvocationType": "Event",
        "Payload": b'{"trigger": "api", "run_id": "r1", "client_ids": null}',
    }
    with Stubber(lambda_client()) as service:
        service.add_response("invoke", {"StatusCode": 202}, expected)
        # When the API invokes the planner with its request
        invoke_async(
            "jobkit-planner-records", {"trigger": "api", "run_id": "r1", "client_ids": None}
        )
        # Then that is the call made, the request as JSON, not waited for
        service.assert_no_pending_responses()


# Refusals: each a status and a message that says what was wrong

AcmeOnly = key("read", clients="acme")
BAD_TOKEN = base64.urlsafe_b64encode(b"[1]").decode()


@pytest.mark.parametrize(
    ("method", "path", "as_key", "query", "body", "status", "says"),
    [
        # scopes: 403
        ("POST", f"/jobs/{JOB}/runs", READ, None, {}, 403, "lacks trigger scope"),
        ("POST", f"/jobs/{JOB}/runs", key("trigger", clients="acme"), None, {}, 403, "trigger"),
        ("GET", f"/jobs/{JOB}/runs", key("read", job_types=OTHER_JOB), None, None, 403, "read"),
        ("GET", f"/jobs/{JOB}/clients/acme", TRIGGER, None, None, 403, "lacks admin scope"),
        ("GET", "/webhooks/subscriptions", READ, {"client_id": "acme"}, None, 403, "admin"),
        ("GET", "/health", key(""), None, None, 403, "lacks read scope"),
        # nothing there: 404
        ("POST", "/jobs/no-such-job/runs", ADMIN, None, {}, 404, "unknown job type"),
        ("GET", "/jobs/no-such-job/runs", ADMIN, None, None, 404, "unknown job type"),
        ("GET", "/runs/no-such-run", ADMIN, None, None, 404, "no run 'no-such-run'"),
        ("DELETE", "/runs/no-such-run", ADMIN, None, None, 404, "no run"),
        ("GET", "/runs/no-such-run/items", ADMIN, None, None, 404, "no run"),
        ("GET", f"/jobs/{JOB}/clients/never-there", ADMIN, None, None, 404, "no configuration"),
        ("GET", "/records/r1/history", ADMIN, {"client_id": "acme"}, None, 404, "no history"),
        ("GET", "/records/r1/history", AcmeOnly, {"client_id": "globex"}, None, 404, "no history"),
        ("DELETE", "/webhooks/subscriptions/acme/nope", ADMIN, None, None, 404, "'nope'"),
        ("GET", "/nowhere", ADMIN, None, None, 404, "no such resource"),
        # a documented path under a method it does not list: 405
        ("PUT", "/health", ADMIN, None, None, 405, "PUT is not allowed here"),
        # bad page tokens: 404, no such page
        ("GET", f"/jobs/{JOB}/runs", ADMIN, {"next": BAD_TOKEN}, None, 404, "not a page token"),
        ("GET", "/health", ADMIN, {"limt": "5"}, None, 422, "unknown parameter(s) limt"),
        # invalid values: 422
        ("POST", f"/jobs/{JOB}/runs", ADMIN, None, {"surprise": 1}, 422, "surprise"),
        ("POST", f"/jobs/{JOB}/runs", ADMIN, None, {"clientIds": "acme"}, 422, "clientIds"),
        ("POST", f"/jobs/{JOB}/runs", ADMIN, None, {"dryRun": 0}, 422, "dryRun"),
        ("GET", f"/jobs/{JOB}/runs", ADMIN, {"limit": "0"}, None, 422, "limit"),
        ("GET", "/runs/r1/items", ADMIN, {"status": "lost"}, None, 422, "status"),
        ("PUT", f"/jobs/{JOB}/clients/x", ADMIN, None, {"group_id": "g", "page_size": 0}, 422, ""),
        ("GET", "/records/r1/history", ADMIN, None, None, 422, "client_id"),
        ("GET", "/health", ADMIN, {"limit": "201"}, None, 422, "limit"),
        ("GET", f"/jobs/{JOB}/runs", ADMIN, {"next": "%%"}, None, 422, "next"),
        ("GET", "/health", ADMIN, {"client": "no spaces"}, None, 422, "client"),
        (
            "POST",
            "/webhooks/subscriptions",
            ADMIN,
            None,
            {"client_id": "acme", "url": "http://x.io"},
            422,
            "https",
        ),
    ],
)
def test_a_refused_request_gets_a_precise_4xx(
    api: Api,
    method: str,
    path: str,
    as_key: dict[str, str],
    query: dict[str, str] | None,
    body: Any,
    status: int,
    says: str,
) -> None:
    # When the API is asked something it must refuse
    answer = api.call(method, path, as_key, query, body)
    # Then it answers the status, with an error that says why, and starts nothing
    assert answer.status == status, answer.text
    assert says in answer.text
    assert api.invoked == []


# The document and the answers agree


def test_a_422_carries_each_invalid_field_with_loc_msg_and_type(api: Api) -> None:
    # When a query breaks its documented bound
    answer = api.call("GET", f"/jobs/{JOB}/runs", READ, {"limit": "0"})
    # Then the answer is the document's validation error: loc, msg and type per field
    assert answer.status == 422
    [detail] = answer.json()["detail"]
    assert (detail["loc"], detail["type"]) == (["query", "limit"], "greater_than_equal")
    assert detail["msg"] and "limit" in answer.json()["error"]


def test_the_document_states_the_constraints_the_api_applies(api: Api) -> None:
    # Given the published OpenAPI document
    document = api.app.get_openapi_schema().model_dump(by_alias=True, exclude_none=True)
    schemas, paths = document["components"]["schemas"], document["paths"]

    def parameter(path: str, method: str, name: str) -> dict[str, Any]:
        found = next(p for p in paths[path][method]["parameters"] if p["name"] == name)
        schema: dict[str, Any] = found["schema"]
        return schema

    # Then webhook URLs are https, client bodies' numbers have their bounds, page tokens
    # their alphabet, path client ids their pattern, and a cancel's 409 is listed
    assert schemas["NewSubscription"]["properties"]["url"]["pattern"].startswith("^https://")
    assert schemas["SyncCompletedRecordsClientIn"]["properties"]["page_size"]["minimum"] == 1
    assert "pattern" in parameter("/jobs/{job_type}/runs", "get", "next")["anyOf"][0]
    assert "pattern" in parameter(f"/jobs/{JOB}/clients/{{client_id}}", "put", "client_id")
    assert 409 in paths["/runs/{run_id}"]["delete"]["responses"]


def test_a_path_under_a_method_it_does_not_list_names_the_methods_it_does(api: Api) -> None:
    # When a documented path is asked with a method the document does not list for it
    answer = api.call("PATCH", "/runs/r1", ADMIN)
    # Then it is a 405 that names the methods it has
    assert (answer.status, answer.headers["Allow"]) == (405, ["DELETE, GET"])


def test_a_body_that_is_not_json_is_refused_before_it_is_parsed(api: Api) -> None:
    # When a run is asked for with a multipart body that has no boundary
    answer = api.call(
        "POST", f"/jobs/{JOB}/runs", TRIGGER, body={}, content_type="multipart/form-data"
    )
    # Then it is a 415 naming the media type, and no run starts
    assert (answer.status, answer.json()) == (
        415,
        {"error": "a body is application/json, not multipart/form-data"},
    )
    assert api.invoked == []
