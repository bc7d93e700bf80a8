"""The job-health page in headless Chromium against the local stack (screenshot kept)."""

import re
import subprocess
import tempfile
import uuid
from typing import Any

import httpx
import pytest

from jobkit.adapters.keys import Scope
from tests.integration.conftest import JOB, wait_until
from tests.support import ROOT

pytestmark = pytest.mark.integration
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]


def _chromium(url: str, *extra: str) -> str:
    with tempfile.TemporaryDirectory() as profile:
        result = subprocess.run(
            [
                "chromium",
                *CHROMIUM_FLAGS,
                f"--user-data-dir={profile}",
                "--virtual-time-budget=20000",
                *extra,
                url,
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert result.returncode == 0, result.stderr[-1500:]
    return result.stdout


def test_page_shell_needs_no_key(api_base: str) -> None:
    page = httpx.get(f"{api_base}/dashboard", timeout=30)
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "x-api-key" in page.text


def test_page_shows_the_seeded_clients_and_a_run_s_live_counts(
    api_base: str,
    make_key: Any,
    new_client: Any,
    external: httpx.Client,
) -> None:
    # Given two clients and a run kept open by a slow external system
    clients = [new_client("page", records=40, page_size=10) for _ in range(2)]
    external.put("/_admin/faults", json={"latency_ms": 700, "clients": clients})
    trigger = httpx.Client(
        base_url=api_base, headers={"x-api-key": make_key(Scope.TRIGGER)}, timeout=30
    )
    run_id = trigger.post(f"/jobs/{JOB}/runs", json={"clientIds": clients}).json()["run_id"]
    wait_until(
        lambda: trigger.get(f"/runs/{run_id}").json()["counts"]["received"] > 0,
        what="the run to receive records",
    )
    # When the page is opened with a read key (given in the fragment, never sent to a server),
    # filtered to the prefix the two clients share
    url = f"{api_base}/dashboard#key={make_key(Scope.READ)}&client=page-"
    dom = _chromium(url, "--dump-dom")
    ARTIFACTS.mkdir(exist_ok=True)
    _chromium(url, f"--screenshot={ARTIFACTS / 'job-health.png'}", "--window-size=1280,1400")
    # Then it shows both clients and the open run with its live counts
    for client in clients:
        assert f'data-client="{client}"' in dom
    assert run_id in dom
    assert 'class="live-counts"' in dom and " of " in dom
    assert (ARTIFACTS / "job-health.png").stat().st_size > 10_000
    assert 'id="dlq"' in dom  # the status line rendered from /health, not an error
    assert 'class="muted clients-shown"' in dom and "needing attention" in dom


def test_jobkit_health_lists_a_page_of_clients_and_finds_any_by_prefix(
    stack: Any, new_client: Any
) -> None:
    from typer.testing import CliRunner

    from jobkit.adapters.config_store import ConfigStore
    from jobkit_cli.main import app

    client = new_client("health", records=1)
    total = sum(1 for _ in ConfigStore(stack.table("ConfigTableName")).clients(JOB))
    assert total > 3
    shown = CliRunner().invoke(app, ["health", "--limit", "3"], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    assert f"3 of {total} client(s)" in shown.output
    assert "last success" in shown.output and " stale" in shown.output
    found = CliRunner().invoke(app, ["health", "--client", client], env={"COLUMNS": "200"})
    assert found.exit_code == 0, found.output
    assert client in found.output and "1 of 1 client(s)" in found.output


def test_page_shows_a_stale_client_with_those_needing_attention(
    api_base: str, make_key: Any, new_client: Any, stack: Any
) -> None:
    from datetime import UTC, datetime, timedelta

    from jobkit.adapters.config_store import ConfigStore

    # Given a half-hourly client whose last clean run started two days ago, and a fresh one
    prefix = f"stale{uuid.uuid4().hex[:6]}"
    stale, fresh = new_client(prefix, records=0), new_client(prefix, records=0)
    configs = ConfigStore(stack.table("ConfigTableName"))
    now = datetime.now(UTC)
    configs.record_result(JOB, stale, failed=False, started=now - timedelta(days=2))
    configs.record_result(JOB, fresh, failed=False, started=now)
    # When the page is opened, filtered to the two
    dom = _chromium(
        f"{api_base}/dashboard#key={make_key(Scope.READ)}&client={prefix}-", "--dump-dom"
    )
    # Then the stale client is listed first, with its age, marked stale; the fresh one is not
    # (the page's own script holds the row's template: rows are those with a real id)
    rows = [row for row in dom.split('<tr class="client"')[1:] if "${" not in row[:40]]
    assert [row.split('"')[1] for row in rows] == [stale, fresh]
    cells = [re.search(r'class="last-success ?([a-z]*)"[^>]*>([^<]*)<', row) for row in rows]
    assert [cell.groups() if cell else None for cell in cells] == [
        ("bad", "2 d ago · stale"),
        ("", "0 min ago"),
    ]
    assert "1 stale" in dom and "1 needing attention" in dom
