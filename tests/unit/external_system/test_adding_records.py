"""Adding records to a seeded client (POST /_admin/clients/{id}/records), over real HTTP,
through the tests' own helper."""

from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

import httpx
import pytest

from tests.support import add_records

RECORDS = "/v1/clients/{client_id}/records"
SECOND = timedelta(seconds=1)


@pytest.fixture
def api(empty_api: httpx.Client) -> httpx.Client:
    return empty_api


def seed(api: httpx.Client, client_id: str = "acme", records: int = 3, **extra: Any) -> None:
    body = {"client_id": client_id, "group_id": "g1", "records": records, **extra}
    assert api.post("/_admin/clients", json=body).status_code == 201


def add(api: httpx.Client, count: int, **extra: Any) -> dict[str, Any]:
    return add_records(str(api.base_url), "acme", count, **extra)


def records(api: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    response = api.get(RECORDS.format(client_id="acme"), params={"limit": 500, **params})
    assert response.status_code == 200, response.text
    served: list[dict[str, Any]] = response.json()["records"]
    return served


def completed(record: dict[str, Any]) -> datetime:
    return datetime.strptime(record["completed_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def ack(api: httpx.Client, *rids: str) -> None:
    acks = [{"record_id": rid, "version": 1} for rid in rids]
    assert api.post("/v1/clients/acme/acks", json={"acks": acks}).status_code == 200


def ids(*numbers: int) -> list[str]:
    return [f"acme-r{n:05d}" for n in numbers]


def test_added_records_continue_the_numbering_and_are_served_unacked(api: httpx.Client) -> None:
    # Given three records, all acknowledged
    seed(api, records=3)
    ack(api, *ids(1, 2, 3))
    # When two are added, then one more
    first, second = add(api, 2), add(api, 1)
    # Then they are numbered 4 to 6, the answers count them and the new totals, and the
    # unacked feed serves exactly them
    assert first == {"client_id": "acme", "added": 2, "records": 5}
    assert second == {"client_id": "acme", "added": 1, "records": 6}
    assert [r["id"] for r in records(api)] == ids(4, 5, 6)


def test_added_records_have_the_seeded_shape(api: httpx.Client) -> None:
    # Given a client seeded with three pending items per record
    seed(api, records=1, pending_items_per_record=3)
    # When a record is added
    add(api, 1)
    # Then it looks like the seeded one but for its id
    seeded, added = records(api)
    assert added["id"] == "acme-r00002"
    assert added["pending_items"] == ["acme-r00002-p1", "acme-r00002-p2", "acme-r00002-p3"]
    unlike = {"id", "pending_items", "completed_at"}
    assert {k: v for k, v in added.items() if k not in unlike} == {
        k: v for k, v in seeded.items() if k not in unlike
    }


@pytest.mark.parametrize("days", [0, 1.5])
def test_added_records_complete_a_second_apart_ending_just_before_now(
    api: httpx.Client, days: float
) -> None:
    # Given a client seeded long ago
    seed(api, records=2, completed_days_ago=30)
    # When three records are added, completed that many days ago
    before = datetime.now(UTC).replace(microsecond=0)
    add(api, 3, completed_days_ago=days)
    after = datetime.now(UTC).replace(microsecond=0)
    # Then they are a second apart, the newest a second before the adding less those days
    times = [completed(r) for r in records(api)[2:]]
    assert [later - earlier for earlier, later in pairwise(times)] == [SECOND, SECOND]
    shift = timedelta(days=days)
    assert before - shift - SECOND <= times[-1] <= after - shift - SECOND


def test_added_records_join_the_windows_they_complete_in(api: httpx.Client) -> None:
    # Given three records completed ten days ago, all acknowledged
    seed(api, records=3, completed_days_ago=10)
    ack(api, *ids(1, 2, 3))
    # When two records completing a day ago are added
    add(api, 2, completed_days_ago=1)
    # Then a window over the last two days serves only them, a window over the last eleven
    # serves all five, and the unacked feed serves the two
    now = datetime.now(UTC)
    last_two_days = {"completed_from": (now - timedelta(days=2)).isoformat()}
    last_eleven = {
        "completed_from": (now - timedelta(days=11)).isoformat(),
        "completed_to": now.isoformat(),
    }
    assert [r["id"] for r in records(api, **last_two_days)] == ids(4, 5)
    assert [r["id"] for r in records(api, **last_eleven)] == ids(1, 2, 3, 4, 5)
    assert [r["id"] for r in records(api)] == ids(4, 5)


def test_paging_a_window_over_seeded_and_added_records_serves_each_once(
    api: httpx.Client,
) -> None:
    # Given seven records, four acknowledged, and five added since
    seed(api, records=7)
    ack(api, *ids(1, 3, 5, 7))
    add(api, 5)
    # When the window of the last hour is paged three at a time
    params: dict[str, Any] = {
        "limit": 3,
        "completed_from": (datetime.now(UTC) - timedelta(hours=1)).isoformat(),
    }
    seen: list[str] = []
    for _ in range(10):  # bounded: a cursor that never ends must fail, not hang
        page = api.get(RECORDS.format(client_id="acme"), params=params).json()
        seen += [r["id"] for r in page["records"]]
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
    # Then every record is served once, in id order
    assert seen == ids(*range(1, 13))


def test_adding_to_an_unknown_client_is_not_found(api: httpx.Client) -> None:
    # Given no client "ghost" / When records are added to it / Then 404 names it
    response = api.post("/_admin/clients/ghost/records", json={"count": 1})
    assert response.status_code == 404
    assert response.json() == {"error": "unknown client ghost"}
    # And the helper raises rather than returning the refusal
    with pytest.raises(httpx.HTTPStatusError):
        add_records(str(api.base_url), "ghost", 1)


@pytest.mark.parametrize("count", [0, 100_000])
def test_a_count_outside_1_to_99999_is_refused_and_adds_nothing(
    api: httpx.Client, count: int
) -> None:
    seed(api, records=2)
    response = api.post("/_admin/clients/acme/records", json={"count": count})
    assert response.status_code == 400
    assert response.json()["error"].startswith("count: ")
    assert len(records(api)) == 2


def test_an_unknown_field_is_refused(api: httpx.Client) -> None:
    seed(api)
    response = api.post("/_admin/clients/acme/records", json={"count": 1, "poison": []})
    assert response.status_code == 400
    assert response.json() == {"error": "poison: Extra inputs are not permitted"}


def test_adding_past_what_five_digit_ids_can_number_is_a_conflict(api: httpx.Client) -> None:
    # Given a client one record short of the most a client can hold
    seed(api, records=99_998)
    # When one is added, then one more
    last = add(api, 1)
    refused = api.post("/_admin/clients/acme/records", json={"count": 1})
    # Then the first takes the last id, the second is refused naming what the client holds
    assert last == {"client_id": "acme", "added": 1, "records": 99_999}
    assert records(api, cursor="acme-r99998")[0]["id"] == "acme-r99999"
    assert refused.status_code == 409
    assert refused.json() == {
        "error": "count: acme holds 99999 records; 1 more would pass the 99999 a client can hold"
    }


def test_a_seedings_own_fields_are_served_beside_every_records(api: httpx.Client) -> None:
    # Given a seeding that gives its records fields of their own (a job's record model)
    fields = [{"amount": 100, "currency": "EUR"}, {"amount": 0, "currency": "EUR"}]
    seed(api, records=3, fields=fields)
    add(api, 1)
    # Then each record carries them, in turn, records added later too
    served = records(api)
    assert [(r["amount"], r["currency"]) for r in served] == [
        (100, "EUR"),
        (0, "EUR"),
        (100, "EUR"),
        (0, "EUR"),
    ]
    assert all(r["status"] == "COMPLETED" and r["version"] == 1 for r in served)


def test_a_seeding_may_not_replace_what_every_record_has(api: httpx.Client) -> None:
    body = {"client_id": "acme", "group_id": "g1", "records": 1, "fields": [{"id": "x"}]}
    response = api.post("/_admin/clients", json=body)
    assert response.status_code == 400
    assert "fields[0]: every record has id already" in response.json()["error"]
    # And nothing was seeded
    assert api.get(RECORDS.format(client_id="acme")).status_code == 404
