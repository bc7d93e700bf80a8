"""Window queries (completed_from / completed_to): every record of a time window, acked or not,
keyset-paged like the unacked feed, over real HTTP."""

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


def window(start: datetime | None = None, end: datetime | None = None) -> dict[str, str]:
    bounds = {"completed_from": start, "completed_to": end}
    return {name: bound.isoformat() for name, bound in bounds.items() if bound is not None}


def completed(record: dict[str, Any]) -> datetime:
    return datetime.strptime(record["completed_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def completion_times(api: httpx.Client, client_id: str = "acme") -> list[datetime]:
    """Each record's served time, read before any ack hides it from the unacked feed."""
    return [completed(record) for record in fetch(api, client_id)["records"]]


def ack(api: httpx.Client, *rids: str, client_id: str = "acme") -> None:
    acks = [{"record_id": rid, "version": 1} for rid in rids]
    response = api.post(f"/v1/clients/{client_id}/acks", json={"acks": acks})
    assert response.json()["acknowledged"] == list(rids)


def page_through(api: httpx.Client, **params: Any) -> list[list[str]]:
    """Every page's ids, following next_cursor; a cursor that fails to move fails the test."""
    pages: list[list[str]] = []
    cursor = ""
    for _ in range(100):  # bounded: a cursor that never ends must fail, not hang
        page = fetch(api, cursor=cursor, **params)
        pages.append([record["id"] for record in page["records"]])
        if page["next_cursor"] is None:
            return pages
        assert page["next_cursor"] == pages[-1][-1] != cursor
        cursor = page["next_cursor"]
    pytest.fail("next_cursor never became null")


def ids(*numbers: int, client_id: str = "acme") -> list[str]:
    return [f"{client_id}-r{n:05d}" for n in numbers]


def test_a_window_serves_acknowledged_records_too(api: httpx.Client) -> None:
    # Given five records, two of them acknowledged
    seed(api, records=5)
    times = completion_times(api)
    ack(api, *ids(2, 4))
    # When the window holding all five is asked for
    records = fetch(api, **window(times[0], times[-1] + SECOND))["records"]
    # Then all five are served, acked ones at their version, while the plain feed still hides them
    assert [(r["id"], r["version"]) for r in records] == [(rid, 1) for rid in ids(1, 2, 3, 4, 5)]
    assert served_ids(api) == ids(1, 3, 5)


def test_a_window_includes_its_start_and_excludes_its_end(api: httpx.Client) -> None:
    # Given five records a second apart, t2 and t4 the times of records 2 and 4
    seed(api, records=5)
    times = completion_times(api)
    t2, t4 = times[1], times[3]
    # When windows are bounded at those exact times, on either side or both
    # Then a record at the start is in, a record at the end is out
    assert served_ids(api, **window(t2, t4)) == ids(2, 3)
    assert served_ids(api, **window(start=t4)) == ids(4, 5)
    assert served_ids(api, **window(end=t2)) == ids(1)
    # And a bound given in another offset means the same instant
    plus_two = timezone(timedelta(hours=2))
    assert served_ids(api, **window(t2.astimezone(plus_two), t4.astimezone(plus_two))) == ids(2, 3)


def test_adjacent_windows_serve_every_record_exactly_once(api: httpx.Client) -> None:
    # Given six records, all acknowledged
    seed(api, records=6)
    times = completion_times(api)
    ack(api, *ids(1, 2, 3, 4, 5, 6))
    # When the time is cut into windows that share their bounds
    cuts = [times[0], times[2], times[3], times[-1] + SECOND]
    served = [served_ids(api, **window(start, end)) for start, end in pairwise(cuts)]
    # Then each record lands in exactly one of them
    assert served == [ids(1, 2), ids(3), ids(4, 5, 6)]


def test_a_window_outside_every_record_serves_nothing(api: httpx.Client) -> None:
    seed(api, records=3)
    newest = completion_times(api)[-1]
    assert fetch(api, **window(start=newest + SECOND)) == {"records": [], "next_cursor": None}


@pytest.mark.parametrize(("limit", "sizes"), [(4, [4, 4, 4, 4, 2]), (18, [18]), (17, [17, 1])])
def test_paging_a_window_serves_each_record_once_acked_or_not(
    api: httpx.Client, limit: int, sizes: list[int]
) -> None:
    # Given 23 records, every third one acknowledged, and a window over records 3 to 20
    seed(api, records=23)
    times = completion_times(api)
    ack(api, *ids(*range(3, 24, 3)))
    # When every page of the window is fetched, following next_cursor
    pages = page_through(api, limit=limit, **window(times[2], times[20]))
    # Then the pages hold records 3 to 20 once each, in id order, acked ones included
    assert [rid for page in pages for rid in page] == ids(*range(3, 21))
    assert [len(page) for page in pages] == sizes


def test_acking_each_window_page_before_the_next_skips_nothing(api: httpx.Client) -> None:
    # Given twelve records, and a backfill that acks each page of its window as it goes
    seed(api, records=12)
    times = completion_times(api)
    seen: list[str] = []
    cursor = ""
    for _ in range(10):  # bounded: a cursor that never ends must fail, not hang
        page = fetch(api, cursor=cursor, limit=5, **window(start=times[0]))
        seen += [record["id"] for record in page["records"]]
        ack(api, *[record["id"] for record in page["records"]])
        if page["next_cursor"] is None:
            break
        cursor = page["next_cursor"]
    # Then it saw every record once, and the same window still serves them all afterwards
    assert seen == ids(*range(1, 13))
    assert served_ids(api, **window(start=times[0])) == seen
    assert served_ids(api) == []


def test_a_window_honours_group(api: httpx.Client) -> None:
    # Given a client in group g1, all its records acknowledged
    seed(api, records=2)
    times = completion_times(api)
    ack(api, *ids(1, 2))
    # When its window is asked for in its group and in another
    in_group = api.get(RECORDS.format(client_id="acme"), params={"group": "g1", **window(times[0])})
    elsewhere = api.get(
        RECORDS.format(client_id="acme"), params={"group": "g2", **window(times[0])}
    )
    # Then its group serves both, another group is not found
    assert [r["id"] for r in in_group.json()["records"]] == ids(1, 2)
    assert (elsewhere.status_code, elsewhere.json()) == (404, {"error": "unknown group g2"})


def test_a_window_honours_the_pending_script(api: httpx.Client) -> None:
    # Given a client whose records have no pending items and one whose records have two,
    # all acknowledged
    seed(api, "acme", records=3, pending_items_per_record=0)
    seed(api, "globex", records=3, pending_items_per_record=2)
    since = completion_times(api, "acme")[0] - SECOND
    ack(api, *ids(1, 2, 3))
    ack(api, *ids(1, 2, 3, client_id="globex"), client_id="globex")
    # When each window is asked for completed-and-pending records
    pending_only = {"script": "GET_COMPLETED_PENDING", **window(start=since)}
    # Then only the records with pending items are served, though the window holds all of them
    assert served_ids(api, "acme", **pending_only) == []
    assert served_ids(api, "acme", **window(start=since)) == ids(1, 2, 3)
    assert served_ids(api, "globex", **pending_only) == ids(1, 2, 3, client_id="globex")


def test_a_window_honours_year_and_completed_after(api: httpx.Client) -> None:
    # Given five records, t3 the time of record 3
    seed(api, records=5)
    times = completion_times(api)
    everything = window(times[0], times[-1] + SECOND)
    # When the window is narrowed by year and by completed_after
    # Then each narrows it: the year of the records serves them all, another year none, and
    # completed_after drops what came before it
    assert served_ids(api, year=times[-1].year, **everything) == [
        rid
        for rid, time in zip(ids(1, 2, 3, 4, 5), times, strict=True)
        if time.year == times[-1].year
    ]
    assert served_ids(api, year=times[0].year - 1, **everything) == []
    assert served_ids(api, completed_after=times[2].isoformat(), **everything) == ids(3, 4, 5)


def test_a_poison_record_is_windowed_by_its_stored_time(api: httpx.Client) -> None:
    # Given three records, record 2 poison (served with completed_at "garbage"), t1 record 1's
    seed(api, records=3, poison=["acme-r00002"])
    t1 = completed(fetch(api, limit=1)["records"][0])
    # When the window holding only record 2's stored time is asked for
    [record] = fetch(api, **window(t1 + SECOND, t1 + 2 * SECOND))["records"]
    # Then the poison record is served, still malformed
    assert (record["id"], record["completed_at"]) == ("acme-r00002", "garbage")
