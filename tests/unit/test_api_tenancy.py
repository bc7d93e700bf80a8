"""Tenant isolation: a key limited to some clients reads those clients only, on every read
route of the published document, and reads in proportion to what it is shown."""

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobkit.adapters.aws import dynamodb_table_client
from jobkit.runs.models import ClientRun, RunHeader, Trigger
from jobkit.webhooks.subscriptions import DeliveryLog
from tests.unit.pipeline import JOB, Pipeline
from tests.unit.test_api_routes import ADMIN, OTHER_JOB, Api, finished_run, key
from tests.unit.test_api_routes import api as api  # the fixture

TENANTS = ("acme", "globex", "initech")


@dataclass(frozen=True)
class Seeded:
    """Data of several tenants: a run of all three, a run of globex alone, their records,
    subscriptions and deliveries."""

    shared_run: str
    globex_run: str
    records: dict[str, list[str]]  # client -> its record ids


@pytest.fixture
def seeded(api: Api, pipeline: Pipeline) -> Seeded:
    records = {client: [f"{client}-r0000{n}" for n in (1, 2)] for client in TENANTS}
    shared = finished_run(api, pipeline, {client: 2 for client in TENANTS})
    globex = finished_run(api, pipeline, {"globex": 1})
    log = DeliveryLog(pipeline.aws.tables["DeliveriesTable"])
    for client in TENANTS:
        body = {"client_id": client, "url": f"https://hooks.example.com/{client}"}
        assert api.call("POST", "/webhooks/subscriptions", ADMIN, body=body).status == 201
        log.attempt(
            f"delivery-{client}",
            client_id=client,
            subscription_id=f"sub-{client}",
            event_id=f"event-{client}",
            status="delivered",
            http_status=200,
            latency_ms=12.0,
        )
    return Seeded(shared, globex, records)


def read_routes(api: Api) -> list[str]:
    """Every GET path of the published OpenAPI document but the document's own."""
    schema = api.app.get_openapi_schema()
    paths = [path for path, item in (schema.paths or {}).items() if item.get and path]
    return [path for path in paths if not path.startswith("/swagger")]


def requests_for(path: str, seeded: Seeded) -> Iterator[tuple[str, dict[str, str]]]:
    """The path filled with every seeded value its parameters can take, and its query."""
    values = {
        "run_id": [seeded.shared_run, seeded.globex_run],
        "job_type": [JOB, OTHER_JOB],
        "client_id": list(TENANTS),
        "record_id": [rid for ids in seeded.records.values() for rid in ids],
    }
    names = re.findall(r"\{(\w+)\}", path)
    queries: list[dict[str, str]] = [{"limit": "1"}]
    if path in ("/records/{record_id}/history", "/webhooks/subscriptions", "/webhooks/deliveries"):
        queries = [{"client_id": client} for client in TENANTS]
    filled = [path]
    for name in names:
        filled = [f.replace(f"{{{name}}}", value) for f in filled for value in values[name]]
    for one in filled:
        for query in queries:
            yield one, query


def answers(api: Api, path: str, as_key: dict[str, str], query: dict[str, str]) -> list[str]:
    """Every answer body of the request, each page of a paged route followed."""
    bodies = []
    while True:
        answer = api.call("GET", path, as_key, query)
        bodies.append(answer.text)
        page = answer.json() if answer.status == 200 else None
        token = page.get("next") if isinstance(page, dict) else None
        if not isinstance(token, str):
            return bodies
        query = {**query, "next": token}


grants = st.fixed_dictionaries(
    {
        "scopes": st.sets(st.sampled_from(["read", "trigger", "admin"]), min_size=1),
        "job_types": st.sets(st.sampled_from([JOB, OTHER_JOB])),
        "clients": st.sets(st.sampled_from(TENANTS)),
    }
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(grant=grants)
def test_no_read_route_shows_a_client_or_record_outside_the_keys_grant(
    api: Api, seeded: Seeded, grant: dict[str, set[str]]
) -> None:
    # Given a key of generated scopes, job limits and client limits
    as_key = key(*(",".join(sorted(grant[name])) for name in ("scopes", "job_types", "clients")))
    outside = set(TENANTS) - grant["clients"] if grant["clients"] else set()
    hidden = outside | {rid for client in outside for rid in seeded.records[client]}
    routes = read_routes(api)
    assert len(routes) >= 9  # the runs, jobs, health, records, clients and webhooks reads
    # When it asks every read route of the document for every seeded value
    for route in routes:
        for path, query in requests_for(route, seeded):
            asked = path + repr(query)
            for body in answers(api, path, as_key, query):
                # Then no answer names another tenant's client or record, but what it was asked
                leaked = {value for value in hidden if value in body and value not in asked}
                assert not leaked, f"GET {path} {query} showed {leaked}: {body[:300]}"
    # And it sees its own clients' rows of the run they share with the others
    answer = api.call("GET", f"/runs/{seeded.shared_run}", as_key)
    if grant["job_types"] and JOB not in grant["job_types"]:
        assert answer.status == 404
    else:
        shown = [row["client_id"] for row in answer.json()["clients"]]
        assert shown == sorted(grant["clients"] or TENANTS)


def test_a_client_limited_key_sees_its_share_of_a_run_and_not_the_others(
    api: Api, seeded: Seeded
) -> None:
    # Given a read key limited to acme
    acme = key("read", clients="acme")
    # When it reads the run acme shares with globex and initech
    run = api.call("GET", f"/runs/{seeded.shared_run}", acme).json()
    # Then it sees acme's row, and totals and client counts over acme alone
    assert [row["client_id"] for row in run["clients"]] == ["acme"]
    assert (run["counts"]["clients"], run["counts"]["received"], run["issues"]) == (1, 2, [])
    # And the run globex ran alone is not there for it, as a run that does not exist
    alone = api.call("GET", f"/runs/{seeded.globex_run}", acme)
    assert (alone.status, alone.json()) == (404, {"error": f"no run {seeded.globex_run!r}"})
    # And its listing of the job's runs holds only the run acme is in
    runs = api.call("GET", f"/jobs/{JOB}/runs", acme).json()["items"]
    assert [(r["run_id"], r["counts"]["received"]) for r in runs] == [(seeded.shared_run, 2)]
    # And its items and client pages hold acme's only
    items = api.call("GET", f"/runs/{seeded.shared_run}/items", acme).json()["items"]
    assert sorted(item["record_id"] for item in items) == ["acme-r00001", "acme-r00002"]


def test_the_health_page_of_a_client_limited_key_counts_its_clients_only(
    api: Api, seeded: Seeded
) -> None:
    # Given a read key limited to acme and initech
    two = key("read", clients="acme,initech")
    # When it reads the job-health data
    health = api.call("GET", "/health", two).json()
    # Then the DLQ's depth, summed over every tenant, is not its to see
    assert health["dlq_depth"] is None
    # And the job lists its two clients, counts two, and its recent runs are theirs
    [job] = [j for j in health["jobs"] if j["job_type"] == JOB]
    assert [c["client_id"] for c in job["clients"]] == ["acme", "initech"]
    assert (job["clients_total"], job["last_run_id"]) == (2, seeded.shared_run)
    assert job["recent_runs"] == ["SUCCEEDED"]


def test_another_tenants_record_config_and_deliveries_are_not_there(
    api: Api, seeded: Seeded
) -> None:
    # Given keys limited to acme: one to read, one to administer
    reader, admin = key("read", clients="acme"), key("admin", clients="acme")
    globex = {"client_id": "globex"}
    # When they ask for globex's record, configuration, subscriptions and deliveries
    history = api.call("GET", f"/records/{seeded.records['globex'][0]}/history", reader, globex)
    config = api.call("GET", f"/jobs/{JOB}/clients/globex", admin)
    subscriptions = api.call("GET", "/webhooks/subscriptions", admin, globex)
    deliveries = api.call("GET", "/webhooks/deliveries", reader, globex)
    # Then each answers as for a client with nothing there
    assert (history.status, config.status) == (404, 404)
    assert (subscriptions.json(), deliveries.json()) == ([], [])
    # And writing globex's configuration is refused
    put = api.call("PUT", f"/jobs/{JOB}/clients/globex", admin, body={"group_id": "g"})
    assert put.status == 403
    # While acme's own are there
    assert api.call("GET", f"/jobs/{JOB}/clients/acme", admin).status == 200
    assert len(api.call("GET", "/webhooks/deliveries", reader, {"client_id": "acme"}).json()) == 1


def test_a_client_limited_trigger_key_cancels_only_runs_of_its_own_clients(
    api: Api, pipeline: Pipeline
) -> None:
    # Given an open run of every client, and one that names acme alone
    every = api.call("POST", f"/jobs/{JOB}/runs", ADMIN, body={}).json()["run_id"]
    own = api.call("POST", f"/jobs/{JOB}/runs", ADMIN, body={"clientIds": ["acme"]})
    acme = key("trigger", clients="acme")
    # When a trigger key limited to acme cancels each
    refused = api.call("DELETE", f"/runs/{every}", acme)
    cancelled = api.call("DELETE", f"/runs/{own.json()['run_id']}", acme)
    # Then the run of every client is not its to see, and acme's own is cancelled
    assert refused.status == 404
    assert (cancelled.status, cancelled.json()["status"]) == (200, "CANCELLED")


class ReadCounter:
    """Items DynamoDB returned to the API (Query, GetItem, BatchGetItem), as read units
    follow them."""

    def __init__(self) -> None:
        self.items = 0

    def __call__(self, parsed: dict[str, Any], **_: Any) -> None:
        self.items += len(parsed.get("Items", [])) + (1 if "Item" in parsed else 0)
        self.items += sum(len(rows) for rows in parsed.get("Responses", {}).values())


def test_a_one_client_key_reads_its_row_of_a_big_run_not_every_row(
    api: Api, pipeline: Pipeline
) -> None:
    # Given a run of 500 clients
    ledger = pipeline.ledger
    header = RunHeader(
        run_id="big-run",
        job_type=JOB,
        trigger=Trigger.SCHEDULE,
        requested_by="schedule",
        correlation_id="c",
        created_at=datetime.now(UTC),
    )
    ledger.lifecycle.open_run(header)
    rows = [ClientRun(client_id=f"client-{n:03d}", received=n) for n in range(500)]
    ledger.lifecycle.add_clients(header, rows, resume=False)
    ledger.lifecycle.mark_running("big-run", clients=500, invalid=0, issues=[])
    counter = ReadCounter()
    client = dynamodb_table_client()
    client.meta.events.register("after-call.dynamodb", lambda **kw: counter(kw["parsed"]))
    one = key("read", clients="client-042")
    # When a key of one of them reads the run, its clients, its items, the job's runs
    for path in ("/runs/big-run", "/runs/big-run/clients", "/runs/big-run/items"):
        assert api.call("GET", path, one).status == 200
    listed = api.call("GET", f"/jobs/{JOB}/runs", one).json()["items"]
    # Then it is shown its row only, having read a handful of items, not 500
    assert [r["counts"]["received"] for r in listed] == [42]
    assert counter.items <= 12, counter.items
