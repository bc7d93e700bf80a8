"""The runs API through the real API Gateway and key authorizer on MiniStack."""

import base64
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urljoin

import httpx
import pytest

from jobkit.adapters.config_store import ConfigStore
from jobkit.adapters.keys import KeyStore, Scope, parse_key
from jobkit_cli.stack import Stack
from tests.integration.conftest import JOB, wait_until

pytestmark = pytest.mark.integration


def _api(api_base: str, key: str | None = None) -> httpx.Client:
    headers = {"x-api-key": key} if key is not None else {}
    return httpx.Client(base_url=api_base, headers=headers, timeout=30.0)


def test_missing_key_is_401(api_base: str) -> None:
    assert _api(api_base).get("/jobs").status_code == 401


@pytest.mark.parametrize("bad", ["nonsense", "jk_0123456789abcdef_" + "A" * 43, ""])
def test_malformed_or_unknown_key_is_401(api_base: str, bad: str) -> None:
    assert _api(api_base, bad).get("/jobs").status_code == 401


def test_wrong_secret_for_a_real_key_id_is_401(api_base: str, make_key: Any) -> None:
    parsed = parse_key(make_key(Scope.READ))
    assert parsed is not None
    forged = f"jk_{parsed.key_id}_{'B' * 43}"
    assert _api(api_base, forged).get("/jobs").status_code == 401


def test_expired_key_is_401(api_base: str, make_key: Any) -> None:
    key = make_key(Scope.ADMIN, expires_at=datetime.now(UTC) - timedelta(minutes=1))
    assert _api(api_base, key).get("/jobs").status_code == 401


def test_revoked_key_is_401(api_base: str, make_key: Any, stack: Stack) -> None:
    key = make_key(Scope.ADMIN)
    parsed = parse_key(key)
    assert parsed is not None
    KeyStore(stack.table("KeysTableName")).revoke(parsed.key_id)
    assert _api(api_base, key).get("/jobs").status_code == 401


def test_read_key_cannot_trigger(api_base: str, make_key: Any) -> None:
    response = _api(api_base, make_key(Scope.READ)).post(f"/jobs/{JOB}/runs", json={})
    assert response.status_code == 403
    assert "lacks trigger scope" in response.json()["error"]


def test_trigger_key_for_another_job_is_403(api_base: str, make_key: Any) -> None:
    key = make_key(Scope.TRIGGER, jobs={"another-job"})
    assert _api(api_base, key).post(f"/jobs/{JOB}/runs", json={"dryRun": True}).status_code == 403


def test_client_limited_trigger_key_must_name_its_clients(api_base: str, make_key: Any) -> None:
    api = _api(api_base, make_key(Scope.TRIGGER, clients={"acme"}))
    assert api.post(f"/jobs/{JOB}/runs", json={"dryRun": True}).status_code == 403
    assert api.post(f"/jobs/{JOB}/runs", json={"clientIds": ["globex"]}).status_code == 403
    ok = api.post(f"/jobs/{JOB}/runs", json={"clientIds": ["acme"], "dryRun": True})
    assert ok.status_code == 202


def test_read_key_may_read_and_admin_may_do_everything(api_base: str, make_key: Any) -> None:
    assert _api(api_base, make_key(Scope.READ)).get("/jobs").status_code == 200
    admin = _api(api_base, make_key(Scope.ADMIN))
    assert admin.get("/jobs").status_code == 200
    assert admin.post(f"/jobs/{JOB}/runs", json={"dryRun": True}).status_code == 202


def test_health_shows_the_job_types_a_key_may_read_and_finds_clients_by_prefix(
    api_base: str, make_key: Any, new_client: Any
) -> None:
    name = f"findme{uuid.uuid4().hex[:6]}"
    clients = sorted(new_client(name, records=1) for _ in range(3))
    other_job_only = _api(api_base, make_key(Scope.READ, jobs={"another-job"}))
    assert other_job_only.get("/health").json()["jobs"] == []
    assert other_job_only.get("/jobs").json() == []
    # A page of the clients the prefix finds, with the totals of all of them
    api = _api(api_base, make_key(Scope.READ, jobs={JOB}))
    [job] = api.get("/health", params={"client": f"{name}-", "limit": 2}).json()["jobs"]
    assert [c["client_id"] for c in job["clients"]] == clients[:2]
    assert (job["clients_total"], job["clients_needing_attention"]) == (3, 0)
    # The work DLQ is shared by every job type: its depth is for keys that read them all
    assert api.get("/health").json()["dlq_depth"] is None
    every_job = _api(api_base, make_key(Scope.READ))
    assert isinstance(every_job.get("/health").json()["dlq_depth"], int)


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "says"),
    [
        ("POST", "/jobs/no-such-job/runs", {}, 404, "unknown job type"),
        ("GET", "/runs/no-such-run", None, 404, "no run"),
        ("DELETE", "/runs/no-such-run", None, 404, "no run"),
        ("POST", f"/jobs/{JOB}/runs", {"clientIds": "acme"}, 422, "clientIds"),
        ("POST", f"/jobs/{JOB}/runs", {"surprise": 1}, 422, "surprise"),
        ("GET", f"/jobs/{JOB}/runs?limit=0", None, 422, "limit"),
        ("GET", f"/jobs/{JOB}/runs?next=%25%25", None, 422, "next"),
        ("PUT", f"/jobs/{JOB}/clients/x", {"group_id": "g", "page_size": 0}, 422, "page_size"),
        ("GET", f"/jobs/{JOB}/clients/never-there", None, 404, "no configuration"),
        ("GET", "/records/r1/history", None, 422, "client_id"),
        ("GET", "/health?limit=201", None, 422, "limit"),
        ("GET", "/health?client=no%20spaces", None, 422, "client"),
        # hostile paths and bodies
        ("GET", "/runs/..%2F..%2Fetc%2Fpasswd", None, 404, "no such resource"),
        ("GET", "/jobs/%00%01/runs", None, 404, "no such resource"),
        ("PUT", f"/jobs/{JOB}/clients/x", {"group_id": "g" * 100_000}, 422, "group_id"),
        ("POST", f"/jobs/{JOB}/runs", {"clientIds": ["; DROP TABLE runs"]}, 422, "clientIds"),
    ],
)
def test_bad_requests_get_a_precise_4xx(
    api_base: str, make_key: Any, method: str, path: str, body: Any, status: int, says: str
) -> None:
    response = _api(api_base, make_key(Scope.ADMIN)).request(method, path, json=body)
    assert response.status_code == status
    assert says in response.text


def test_trigger_answers_202_and_the_run_reaches_a_final_status_with_counts(
    api_base: str,
    make_key: Any,
    new_client: Any,
    external: httpx.Client,
) -> None:
    client = new_client("api", records=9)
    api = _api(api_base, make_key(Scope.TRIGGER, jobs={JOB}))
    accepted = api.post(f"/jobs/{JOB}/runs", json={"clientIds": [client]})
    assert accepted.status_code == 202
    run_id = accepted.json()["run_id"]
    # The Location, resolved against the API's URL as a client resolves it, is this run
    location = urljoin(f"{api_base}/", accepted.headers["location"])
    followed = httpx.get(location, headers=api.headers, timeout=30.0)
    assert followed.status_code == 200 and followed.json()["run_id"] == run_id
    final: dict[str, Any] = {}

    def finished() -> bool:
        final.update(api.get(f"/runs/{run_id}").json())
        return final["status"] in ("SUCCEEDED", "COMPLETED_WITH_ERRORS", "FAILED")

    wait_until(finished, what="the run to finish")
    assert final["status"] == "SUCCEEDED"
    assert final["trigger"] == "api" and final["requested_by"].startswith("key:")
    assert (final["counts"]["received"], final["counts"]["processed"]) == (9, 9)
    items = api.get(f"/runs/{run_id}/items", params={"status": "processed", "limit": 5}).json()
    assert len(items["items"]) == 5 and items["next"]
    rest = api.get(
        f"/runs/{run_id}/items", params={"status": "processed", "next": items["next"]}
    ).json()
    assert len(items["items"]) + len(rest["items"]) == 9
    clients = api.get(f"/runs/{run_id}/clients", params={"limit": 10}).json()
    assert [(c["client_id"], c["processed"]) for c in clients["items"]] == [(client, 9)]
    assert clients["next"] is None
    # A page token of another run is refused, not handed to DynamoDB
    other = base64.urlsafe_b64encode(b'{"run_id": "another-run", "sk": "CLIENT#x"}').decode()
    refused = api.get(f"/runs/{run_id}/clients", params={"next": other})
    assert refused.status_code == 404 and "not a page token of this run" in refused.text
    history = api.get(f"/records/{client}-r00001/history", params={"client_id": client}).json()
    assert [h["to_status"] for h in history] == ["COMPLETED"]
    runs = api.get(f"/jobs/{JOB}/runs", params={"limit": 50}).json()["items"]
    assert run_id in [r["run_id"] for r in runs]


def test_cancel_mid_run_skips_the_rest(
    api_base: str,
    make_key: Any,
    new_client: Any,
    external: httpx.Client,
) -> None:
    client = new_client("cancel", records=60, page_size=10)
    external.put("/_admin/faults", json={"latency_ms": 1000, "clients": [client]})
    api = _api(api_base, make_key(Scope.TRIGGER))
    run_id = api.post(f"/jobs/{JOB}/runs", json={"clientIds": [client]}).json()["run_id"]
    wait_until(
        lambda: api.get(f"/runs/{run_id}").json()["counts"]["processed"] > 0,
        what="the first processed records",
    )
    cancelled = api.delete(f"/runs/{run_id}")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "CANCELLED"
    assert api.delete(f"/runs/{run_id}").status_code == 409

    def settled() -> bool:
        counts = api.get(f"/runs/{run_id}").json()["clients"][0]
        return bool(counts["result"] != "RUNNING")

    wait_until(settled, what="the cancelled run's queued items to drain")
    [row] = api.get(f"/runs/{run_id}").json()["clients"]
    # Queued record items were skipped, later pages never fetched: the rest is not processed
    assert row["processed"] + row["skipped"] + row["failed"] == row["received"]
    assert row["processed"] < 60 and row["received"] < 60


def test_clients_are_managed_through_the_api_with_admin_keys(
    api_base: str,
    make_key: Any,
    stack: Stack,
) -> None:
    admin = _api(api_base, make_key(Scope.ADMIN))
    path = f"/jobs/{JOB}/clients/api-made-client"
    body = {"group_id": "north", "page_size": 20, "credentials": True}
    assert admin.put(path, json=body).status_code == 200
    stored = admin.get(path).json()
    assert (stored["page_size"], stored["credentials"]) == (20, True)
    # The platform syncs it for a while; a new page size keeps where its sync stands.
    ConfigStore(stack.table("ConfigTableName")).save_cursor(JOB, "api-made-client", "c-42")
    replaced = admin.put(path, json={**body, "page_size": 30}).json()
    assert (replaced["page_size"], replaced["cursor"]) == (30, "c-42")
    assert _api(api_base, make_key(Scope.TRIGGER)).get(path).status_code == 403
    assert admin.delete(path).status_code == 204
    assert admin.get(path).status_code == 404


def test_openapi_document_is_published_without_a_key(api_base: str) -> None:
    document = _api(api_base).get("/swagger", params={"format": "json"}).json()
    assert "/jobs/{job_type}/runs" in document["paths"]
    assert "apiKey" in document["components"]["securitySchemes"]
