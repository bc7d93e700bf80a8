"""Per-client cadence and the query fields on the local stack: the planner Lambda decides which
clients a scheduled fire plans, and the fake external system serves what the query asks for."""

from datetime import timedelta
from typing import Any

import pytest

from jobkit.runs.models import RunView
from jobkit.runs.queries import RunQueries
from jobkit_cli.stack import Stack
from tests.integration.conftest import fire, unused_schedule_time, wait_for_run

pytestmark = pytest.mark.integration


def _run(stack: Stack, runs: RunQueries, **payload: Any) -> RunView:
    return wait_for_run(runs, fire(stack, **payload)["run_id"])


def _planned(view: RunView) -> list[str]:
    return sorted(row.client_id for row in view.clients)


def test_each_client_syncs_at_its_own_frequency(
    stack: Stack, runs: RunQueries, new_client: Any
) -> None:
    # Given a half-hourly and a daily client of a job scheduled every half hour
    half_hourly = new_client("every-30", records=2, frequency_minutes=30)
    daily = new_client("every-1440", records=2, frequency_minutes=1440)
    both = [half_hourly, daily]
    # When three fires come 30 minutes apart in scheduled time (as Scheduler sends them)
    first = unused_schedule_time()
    fires = [
        _run(
            stack,
            runs,
            trigger="schedule",
            scheduled_time=(first + timedelta(minutes=30 * n)).isoformat(),
            client_ids=both,
        )
        for n in range(3)
    ]
    # Then the half-hourly client is planned three times, the daily one once
    assert [_planned(view) for view in fires] == [sorted(both), [half_hourly], [half_hourly]]
    assert [view.header.not_due for view in fires] == [0, 1, 1]
    assert fires[0].header.received == 4 and fires[1].header.received == 0
    # And a run asked for by hand plans both
    manual = _run(stack, runs, trigger="cli", client_ids=both)
    assert (_planned(manual), manual.header.not_due) == (sorted(both), 0)


@pytest.mark.parametrize(
    ("seeded", "config", "received"),
    [
        ({"completed_days_ago": 10}, {}, 0),  # older than the default seven days
        ({"completed_days_ago": 10}, {"days": 11}, 3),
        ({}, {"year": 2000}, 0),
        ({"pending_items": 0}, {"script": "GET_COMPLETED_PENDING"}, 0),
        ({"pending_items": 1}, {"script": "GET_COMPLETED_PENDING"}, 3),
    ],
)
def test_the_external_query_is_what_the_clients_fields_ask_for(
    stack: Stack,
    runs: RunQueries,
    new_client: Any,
    seeded: dict[str, Any],
    config: dict[str, Any],
    received: int,
) -> None:
    client = new_client("query", records=3, **seeded, **config)
    view = _run(stack, runs, trigger="cli", client_ids=[client])
    assert (view.header.received, view.header.status.value) == (received, "SUCCEEDED")


def test_an_unknown_script_fails_the_client_with_the_systems_reason(
    stack: Stack, runs: RunQueries, new_client: Any
) -> None:
    client = new_client("script", records=2, script="NO_SUCH_QUERY")
    view = wait_for_run(runs, fire(stack, trigger="cli", client_ids=[client])["run_id"], 400)
    [row] = view.clients
    assert view.header.status.value == "FAILED"
    assert "script" in (row.error or "") and "400" in (row.error or ""), row.error
