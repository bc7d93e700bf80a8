"""`jobkit smoke`: the checks a newcomer runs after a deploy, against the deployed stack."""

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from jobkit.adapters.keys import Scope
from jobkit_cli.stack import Stack
from tests.integration.conftest import JOB
from tests.support import ROOT

pytestmark = pytest.mark.integration
JOBKIT = Path(sys.executable).parent / "jobkit"


def _smoke(key: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - the project's own CLI
        [str(JOBKIT), "smoke", *args],
        cwd=ROOT,
        env=dict(os.environ, JOBKIT_API_KEY=key, COLUMNS="200"),
        capture_output=True,
        text=True,
        check=False,
        timeout=180,
    )


def _lines(output: str) -> dict[str, str]:
    """check name -> its PASS/FAIL line"""
    return {line.split()[1]: line for line in output.splitlines() if line[:4] in ("PASS", "FAIL")}


def test_a_healthy_stack_passes_every_check(
    stack: Stack, new_client: Callable[..., str], make_key: Callable[..., str]
) -> None:
    client = new_client("smoke", records=2)
    result = _smoke(make_key(Scope.TRIGGER, Scope.READ), JOB, client)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = _lines(result.stdout)
    assert set(lines) == {"stack", "dry", "probe", "alarms"}
    assert all(line.startswith("PASS") for line in lines.values()), result.stdout
    assert f"{client}: up" in lines["probe"]


def test_a_firing_alarm_and_an_unknown_client_fail_their_lines_and_the_command(
    stack: Stack, make_key: Callable[..., str]
) -> None:
    cloudwatch: Any = stack.client("cloudwatch")
    resources = stack.client("cloudformation").describe_stack_resources(StackName=stack.name)
    [alarm] = [
        r["PhysicalResourceId"]
        for r in resources["StackResources"]
        if r["LogicalResourceId"] == "WorkDLQNotEmptyAlarm"
    ]
    cloudwatch.set_alarm_state(AlarmName=alarm, StateValue="ALARM", StateReason="smoke test")
    try:
        result = _smoke(make_key(Scope.TRIGGER, Scope.READ), JOB, "nobody-configured")
    finally:
        cloudwatch.set_alarm_state(AlarmName=alarm, StateValue="OK", StateReason="smoke test")
    assert result.returncode == 1
    lines = _lines(result.stdout)
    assert lines["stack"].startswith("PASS")
    assert lines["alarms"].startswith("FAIL") and alarm in lines["alarms"]
    assert lines["probe"].startswith("FAIL") and "nobody-configured" in lines["probe"]
    assert lines["dry"].startswith("FAIL") and "not configured" in lines["dry"]
