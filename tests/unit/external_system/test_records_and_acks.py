"""Serving completed records and remembering acks, over real HTTP on loopback."""

import re
from typing import Any

import httpx
import pytest


@pytest.fixture
def api(empty_api: httpx.Client) -> httpx.Client:
    return empty_api


def seed(api: httpx.Client, client_id: str = "acme", records: int = 5, **extra: Any) -> None:
    body = {"client_id": client_id, "group_id": "g1", "records": records, **extra}
    assert api.post("/_admin/clients", json=body).status_code == 201


def served_ids(api: httpx.Client, client_id: str = "acme") -> list[str]:
    body = api.get(f"/v1/clients/{client_id}/records", params={"limit": 500}).json()
    return [record["id"] for record in body["records"]]


def ack(api: httpx.Client, *pairs: tuple[str, int], client_id: str = "acme") -> httpx.Response:
    acks = [{"record_id": record_id, "version": version} for record_id, version in pairs]
    return api.post(f"/v1/clients/{client_id}/acks", json={"acks": acks})


def ack_report(api: httpx.Client, client_id: str = "acme") -> dict[str, Any]:
    clients: dict[str, Any] = api.get("/_admin/acks").json()["clients"]
    return dict(clients[client_id])


def test_seeding_answers_created_with_the_record_count(api: httpx.Client) -> None:
    # Given a client definition / When it is seeded
    response = api.post(
        "/_admin/clients", json={"client_id": "acme", "group_id": "g1", "records": 7}
    )
    # Then it is created with that many records
    assert response.status_code == 201
    assert response.json() == {"client_id": "acme", "records": 7}


def test_paging_with_keyset_cursors_serves_every_record_exactly_once(api: httpx.Client) -> None:
    # Given a client with 23 records
    seed(api, records=23)
    # When every page of 5 is fetched, following next_cursor
    pages: list[dict[str, Any]] = []
    params: dict[str, Any] = {"status": "completed", "group": "g1", "limit": 5}
    for _ in range(10):  # bounded: a cursor that never ends must fail, not hang
        page = api.get("/v1/clients/acme/records", params=params).json()
        pages.append(page)
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
    else:
        pytest.fail("next_cursor never became null")
    # Then the pages hold every record once, in id order, and the last cursor is null
    ids = [record["id"] for page in pages for record in page["records"]]
    assert ids == [f"acme-r{n:05d}" for n in range(1, 24)]
    assert [len(page["records"]) for page in pages] == [5, 5, 5, 5, 3]
    assert [page["next_cursor"] for page in pages[:-1]] == [
        p["records"][-1]["id"] for p in pages[:-1]
    ]


def test_acking_each_page_before_fetching_the_next_skips_nothing(api: httpx.Client) -> None:
    # Given a client with 12 records
    seed(api, records=12)
    # When each page of 5 is acked before the next is fetched from its cursor
    seen: list[str] = []
    params: dict[str, Any] = {"limit": 5}
    for _ in range(10):  # bounded: a cursor that never ends must fail, not hang
        page = api.get("/v1/clients/acme/records", params=params).json()
        seen += [record["id"] for record in page["records"]]
        ack(api, *[(record["id"], record["version"]) for record in page["records"]])
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
    # Then every record was seen once and nothing is left to serve
    assert seen == [f"acme-r{n:05d}" for n in range(1, 13)]
    assert served_ids(api) == []
    assert ack_report(api)["acked"] == 12


def test_a_page_ending_on_the_last_record_has_a_null_cursor(api: httpx.Client) -> None:
    # Given exactly one page worth of records
    seed(api, records=4)
    # When that page is fetched
    page = api.get("/v1/clients/acme/records", params={"limit": 4}).json()
    # Then there is no next page to ask for
    assert len(page["records"]) == 4
    assert page["next_cursor"] is None


def test_records_are_served_in_the_documented_shape(api: httpx.Client) -> None:
    # Given a seeded client
    seed(api, records=1)
    # When its records are fetched
    [record] = api.get("/v1/clients/acme/records").json()["records"]
    # Then the first record is exactly the documented example, completed at a UTC second
    # (relative to seeding: test_record_times_and_filters pins which one)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", record.pop("completed_at"))
    assert record == {
        "id": "acme-r00001",
        "client_id": "acme",
        "group_id": "g1",
        "version": 1,
        "status": "COMPLETED",
        "pending_items": ["acme-r00001-p1", "acme-r00001-p2"],
        "attributes": {"amount": 12.5},
    }


def test_acked_records_are_no_longer_served(api: httpx.Client) -> None:
    # Given five records
    seed(api, records=5)
    # When two of them are acked at their version
    response = ack(api, ("acme-r00002", 1), ("acme-r00004", 1))
    # Then they are acknowledged and only the other three are served
    assert response.json() == {"acknowledged": ["acme-r00002", "acme-r00004"], "unknown": []}
    assert served_ids(api) == ["acme-r00001", "acme-r00003", "acme-r00005"]


def test_a_bumped_record_is_served_again_until_acked_at_its_new_version(
    api: httpx.Client,
) -> None:
    # Given an acked record
    seed(api, records=2)
    ack(api, ("acme-r00001", 1))
    # When its version is bumped
    bumped = api.post("/_admin/clients/acme/records/acme-r00001/bump")
    # Then it is served again at version 2, a stale ack does not hide it, a current one does
    assert bumped.status_code == 200 and bumped.json()["version"] == 2
    assert served_ids(api) == ["acme-r00001", "acme-r00002"]
    ack(api, ("acme-r00001", 1))
    assert served_ids(api) == ["acme-r00001", "acme-r00002"]
    ack(api, ("acme-r00001", 2))
    assert served_ids(api) == ["acme-r00002"]


def test_acking_again_is_idempotent_and_counted_as_a_duplicate(api: httpx.Client) -> None:
    # Given an acked record
    seed(api, records=3)
    ack(api, ("acme-r00001", 1))
    # When the same (record, version) is acked twice more
    first, second = ack(api, ("acme-r00001", 1)), ack(api, ("acme-r00001", 1))
    # Then each answer acknowledges it and the report counts one record, two duplicates
    assert first.json()["acknowledged"] == second.json()["acknowledged"] == ["acme-r00001"]
    assert ack_report(api) == {"acked": 1, "duplicate_acks": 2, "record_ids": ["acme-r00001"]}


def test_ids_not_belonging_to_the_client_are_reported_unknown(api: httpx.Client) -> None:
    # Given two clients
    seed(api, "acme", records=2)
    seed(api, "globex", records=2)
    # When acme acks one of its records, one of globex's and a made-up id
    response = ack(api, ("acme-r00001", 1), ("globex-r00001", 1), ("nope", 1))
    # Then only its own record is acknowledged and globex's record is still served to globex
    assert response.json() == {
        "acknowledged": ["acme-r00001"],
        "unknown": ["globex-r00001", "nope"],
    }
    assert served_ids(api, "globex") == ["globex-r00001", "globex-r00002"]


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/v1/clients/ghost/records"), ("POST", "/v1/clients/ghost/acks")],
)
def test_an_unknown_client_is_not_found(api: httpx.Client, method: str, path: str) -> None:
    # Given no client "ghost" / When it is asked for / Then 404 names it
    body = {"acks": [{"record_id": "ghost-r00001", "version": 1}]} if method == "POST" else None
    response = api.request(method, path, json=body)
    assert response.status_code == 404
    assert response.json() == {"error": "unknown client ghost"}


def test_a_group_other_than_the_clients_is_not_found(api: httpx.Client) -> None:
    # Given a client in group g1 / When its records are asked for in group g2
    seed(api)
    response = api.get("/v1/clients/acme/records", params={"group": "g2"})
    # Then 404
    assert response.status_code == 404
    assert response.json() == {"error": "unknown group g2"}


def test_poison_records_are_served_malformed_but_identifiable(api: httpx.Client) -> None:
    # Given a client with a poison record
    seed(api, records=3, poison=["acme-r00002"])
    # When its records are fetched
    records = api.get("/v1/clients/acme/records").json()["records"]
    # Then the poison one has a malformed version and timestamp, a valid id, and the others are fine
    poison = records[1]
    assert (poison["id"], poison["client_id"]) == ("acme-r00002", "acme")
    assert (poison["version"], poison["completed_at"]) == ("not-a-number", "garbage")
    assert [r["version"] for r in (records[0], records[2])] == [1, 1]


def test_pending_items_follow_the_seeded_count(api: httpx.Client) -> None:
    # Given records seeded with three pending items each
    seed(api, records=1, pending_items_per_record=3)
    # When fetched / Then each carries its three item ids
    [record] = api.get("/v1/clients/acme/records").json()["records"]
    assert record["pending_items"] == ["acme-r00001-p1", "acme-r00001-p2", "acme-r00001-p3"]


def test_the_ack_report_can_be_filtered_to_one_client(api: httpx.Client) -> None:
    # Given acks on two clients
    seed(api, "acme", records=3)
    seed(api, "globex", records=3)
    ack(api, ("acme-r00003", 1), ("acme-r00001", 1))
    ack(api, ("globex-r00002", 1), client_id="globex")
    # When the report is asked for acme only
    body = api.get("/_admin/acks", params={"client_id": "acme"}).json()
    # Then only acme is reported, with its ids sorted
    assert body == {
        "clients": {
            "acme": {"acked": 2, "duplicate_acks": 0, "record_ids": ["acme-r00001", "acme-r00003"]}
        }
    }


def test_reseeding_a_client_replaces_its_records_and_forgets_its_acks(api: httpx.Client) -> None:
    # Given a client with an acked record
    seed(api, records=3)
    ack(api, ("acme-r00001", 1))
    # When it is seeded again with two records
    seed(api, records=2)
    # Then both are served and nothing is acked
    assert served_ids(api) == ["acme-r00001", "acme-r00002"]
    assert ack_report(api)["acked"] == 0


def test_reset_forgets_clients_acks_stats_and_faults(api: httpx.Client) -> None:
    # Given a client, an ack, traffic and a fault configuration
    seed(api)
    ack(api, ("acme-r00001", 1))
    api.put("/_admin/faults", json={"error_rate": 0.5})
    # When the system is reset
    assert api.post("/_admin/reset").status_code == 200
    # Then everything is back to empty
    assert api.get("/v1/clients/acme/records").status_code == 404
    assert api.get("/_admin/acks").json() == {"clients": {}}
    assert api.get("/_admin/faults").json()["error_rate"] == 0
    stats = api.get("/_admin/stats").json()
    assert stats["requests"]["POST /v1/acks"] == {}
    assert set(stats["injected"].values()) == {0}


def test_stats_count_external_requests_by_route_and_status(api: httpx.Client) -> None:
    # Given a client
    seed(api)
    # When it is read twice, asked for a bad limit once and acked once
    api.get("/v1/clients/acme/records")
    api.get("/v1/clients/acme/records")
    api.get("/v1/clients/acme/records", params={"limit": 0})
    ack(api, ("acme-r00001", 1))
    # Then the counts are per route and status, and admin calls are not counted
    assert api.get("/_admin/stats").json() == {
        "requests": {
            "GET /v1/records": {"200": 2, "400": 1},
            "POST /v1/acks": {"200": 1},
            "GET /v1/contacts": {},
            "GET /v1/health": {},
            "POST /v1/credentials": {},
        },
        "injected": {"error": 0, "timeout": 0, "throttle": 0, "ack_error": 0},
    }


def test_health_answers_ok(api: httpx.Client) -> None:
    # Given a running system / When its health is asked / Then it is ok
    response = api.get("/health")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})
