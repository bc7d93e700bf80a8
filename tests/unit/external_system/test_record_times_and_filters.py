"""Completion times relative to seeding, and the records query's filters, over real HTTP."""

from datetime import UTC, datetime, timedelta, timezone
from itertools import pairwise
from typing import Any

import httpx
import pytest

RECORDS = "/v1/clients/{client_id}/records"
SECOND = timedelta(seconds=1)


@pytest.fixture
def api(empty_api: httpx.Client) -> httpx.Client:
    return empty_api


def seed(api: httpx.Client, client_id: str = "acme", records: int = 5, **extra: Any) -> None:
    body = {"client_id": client_id, "group_id": "g1", "records": records, **extra}
    assert api.post("/_admin/clients", json=body).status_code == 201


def fetch(api: httpx.Client, client_id: str = "acme", **params: Any) -> dict[str, Any]:
    response = api.get(RECORDS.format(client_id=client_id), params={"limit": 500, **params})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def served_ids(api: httpx.Client, client_id: str = "acme", **params: Any) -> list[str]:
    return [record["id"] for record in fetch(api, client_id, **params)["records"]]


def completed(record: dict[str, Any]) -> datetime:
    # strptime, not fromisoformat: it also pins the served format to exactly this one.
    return datetime.strptime(record["completed_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def completion_times(api: httpx.Client, client_id: str = "acme") -> list[datetime]:
    return [completed(record) for record in fetch(api, client_id)["records"]]


def seeded_between(api: httpx.Client, **extra: Any) -> tuple[datetime, datetime]:
    """Seeds acme and returns bounds on the seeding's wall clock, in whole seconds."""
    before = datetime.now(UTC).replace(microsecond=0)
    seed(api, **extra)
    return before, datetime.now(UTC).replace(microsecond=0)


def page_through(api: httpx.Client, **params: Any) -> list[list[str]]:
    """Every page's ids, following next_cursor; a cursor that fails to move fails the test."""
    pages: list[list[str]] = []
    cursor = ""
    for _ in range(100):  # bounded: a cursor that never ends must fail, not hang
        page = fetch(api, cursor=cursor, **params)
        pages.append([record["id"] for record in page["records"]])
        if page["next_cursor"] is None:
            return pages
        assert page["next_cursor"] != cursor
        assert page["next_cursor"] == pages[-1][-1]
        cursor = page["next_cursor"]
    pytest.fail("next_cursor never became null")


def ids(*numbers: int) -> list[str]:
    return [f"acme-r{n:05d}" for n in numbers]


def test_seeded_records_complete_a_second_apart_ending_just_before_seeding(
    api: httpx.Client,
) -> None:
    # Given five records seeded now
    before, after = seeded_between(api, records=5)
    # When their completion times are read
    times = completion_times(api)
    # Then record 1 is the oldest, each is one second after the previous one, and the newest
    # completed one second before seeding
    assert [later - earlier for earlier, later in pairwise(times)] == [SECOND] * 4
    assert before - SECOND <= times[-1] <= after - SECOND


def test_the_largest_seeding_spans_under_28_hours(api: httpx.Client) -> None:
    # Given the most records a client can have
    seed(api, records=99_999)
    # When the first and the last are fetched
    [first] = fetch(api, limit=1)["records"]
    [last] = fetch(api, cursor="acme-r99998")["records"]
    # Then they are 99,998 seconds apart
    assert completed(last) - completed(first) == timedelta(seconds=99_998)
    assert completed(last) - completed(first) < timedelta(hours=28)


@pytest.mark.parametrize("days", [1, 0.5, 365, 3650])
def test_completed_days_ago_moves_every_record_back(api: httpx.Client, days: float) -> None:
    # Given records seeded as completed that many days ago
    before, after = seeded_between(api, records=3, completed_days_ago=days)
    # When their completion times are read
    times = completion_times(api)
    # Then the newest is one second before seeding less those days, the others still a second apart
    shift = timedelta(days=days)
    assert before - shift - SECOND <= times[-1] <= after - shift - SECOND
    assert times == [times[-1] - 2 * SECOND, times[-1] - SECOND, times[-1]]


def test_completed_after_serves_records_from_exactly_that_time(api: httpx.Client) -> None:
    # Given five records, record 3 completing at t
    seed(api, records=5)
    t = completion_times(api)[2]
    # When records completed after t are asked for, in UTC and in another offset
    in_utc = served_ids(api, completed_after=t.isoformat())
    plus_two = t.astimezone(timezone(timedelta(hours=2))).isoformat()
    elsewhere = served_ids(api, completed_after=plus_two)
    # Then record 3 (exactly at t) and later are served, record 2 (a second before) is not
    assert in_utc == elsewhere == ids(3, 4, 5)
    assert served_ids(api, completed_after=(t - SECOND).isoformat()) == ids(2, 3, 4, 5)


def test_completed_after_the_newest_record_serves_nothing(api: httpx.Client) -> None:
    seed(api, records=3)
    newest = completion_times(api)[-1]
    assert fetch(api, completed_after=(newest + SECOND).isoformat()) == {
        "records": [],
        "next_cursor": None,
    }


def test_year_serves_only_records_completed_in_that_utc_year(api: httpx.Client) -> None:
    # Given records seeded now, and records seeded as completed ten years ago
    seed(api, records=3)
    seed(api, "old", records=3, completed_days_ago=3650)
    now_years = {time.year for time in completion_times(api)}
    [old_year] = {time.year for time in completion_times(api, "old")}
    # When each is asked for by year
    # Then a year serves exactly its records (read per record: a seeding may straddle New Year)
    for year in now_years:
        expected = [r["id"] for r in fetch(api)["records"] if completed(r).year == year]
        assert served_ids(api, year=year) == expected
    assert served_ids(api, "old", year=old_year) == ["old-r00001", "old-r00002", "old-r00003"]
    assert served_ids(api, year=old_year) == []
    assert served_ids(api, "old", year=max(now_years)) == []


def test_filters_combine(api: httpx.Client) -> None:
    # Given five records, record 4 completing at t
    seed(api, records=5)
    t = completion_times(api)[3]
    # When asked for after t in t's year, and after t in another year
    # Then the first serves records 4 and 5, the second nothing
    assert served_ids(api, completed_after=t.isoformat(), year=t.year) == ids(4, 5)
    assert served_ids(api, completed_after=t.isoformat(), year=t.year - 1) == []


def test_poison_records_filter_by_their_stored_completion_time(api: httpx.Client) -> None:
    # Given three records, record 2 poison (served with completed_at "garbage")
    seed(api, records=3, poison=["acme-r00002"])
    first = completed(fetch(api)["records"][0])
    # When asked for records completed from record 2's real time on, and in record 1's year
    from_poison = fetch(api, completed_after=(first + SECOND).isoformat())["records"]
    after_poison = served_ids(api, completed_after=(first + 2 * SECOND).isoformat())
    # Then the poison record is served (still malformed) from its time on, and not after it
    assert (from_poison[0]["id"], from_poison[0]["completed_at"]) == ("acme-r00002", "garbage")
    assert [r["id"] for r in from_poison] == ids(2, 3)
    assert after_poison == ids(3)
    assert "acme-r00002" in served_ids(api, year=(first + SECOND).year)


def test_get_completed_pending_serves_only_records_with_pending_items(api: httpx.Client) -> None:
    # Given one client whose records have no pending items and one whose records have two
    seed(api, "acme", records=3, pending_items_per_record=0)
    seed(api, "globex", records=3, pending_items_per_record=2)
    # When each is asked for completed-and-pending records
    # Then only the records with pending items are served
    assert fetch(api, "acme", script="GET_COMPLETED_PENDING") == {
        "records": [],
        "next_cursor": None,
    }
    pending = fetch(api, "globex", script="GET_COMPLETED_PENDING")["records"]
    assert [r["id"] for r in pending] == ["globex-r00001", "globex-r00002", "globex-r00003"]
    assert all(len(r["pending_items"]) == 2 for r in pending)


def test_get_completed_is_the_default_and_serves_every_completed_record(
    api: httpx.Client,
) -> None:
    seed(api, records=3, pending_items_per_record=0)
    assert served_ids(api, script="GET_COMPLETED") == served_ids(api) == ids(1, 2, 3)


@pytest.mark.parametrize(("limit", "sizes"), [(2, [2, 2, 2, 1]), (7, [7]), (3, [3, 3, 1])])
def test_paging_with_a_filter_that_skips_many_serves_each_match_once(
    api: httpx.Client, limit: int, sizes: list[int]
) -> None:
    # Given 2,000 records of which only the last seven complete at or after t
    seed(api, records=2_000)
    t = completed(fetch(api, cursor="acme-r01993", limit=1)["records"][0])
    # When every page is fetched with that filter, following next_cursor
    pages = page_through(api, completed_after=t.isoformat(), limit=limit)
    # Then the pages hold exactly those seven, once each, in id order
    assert [id_ for page in pages for id_ in page] == ids(*range(1994, 2001))
    assert [len(page) for page in pages] == sizes


def test_paging_with_a_filter_skips_acked_records_too(api: httpx.Client) -> None:
    # Given ten records, the matching ones from record 5 on, two of which are acked
    seed(api, records=10)
    t = completion_times(api)[4]
    acks = [{"record_id": rid, "version": 1} for rid in ids(6, 9)]
    assert api.post("/v1/clients/acme/acks", json={"acks": acks}).status_code == 200
    # When every page of two is fetched with the filter
    pages = page_through(api, completed_after=t.isoformat(), limit=2)
    # Then only the unacked matching records are served
    assert pages == [ids(5, 7), ids(8, 10)]
