"""`jobkit smoke JOB CLIENT`: is the deployed stack alive? One pass/fail line per check.

Read-mostly, so it is safe against production: the stack's status, a dry run of one client
through the API (planned and reported, nothing enqueued), a probe of that client's endpoint
through its circuit, and the state of every alarm of the stack.
"""

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from jobkit.runs.models import FINAL_STATUSES, RunStatus
from jobkit_cli.api_client import ApiClient, ApiError
from jobkit_cli.stack import Stack

HEALTHY_STACK = {"CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE"}
DRY_RUN_SECONDS = 60.0


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str


def run_checks(stack: Stack, api: ApiClient, job_type: str, client_id: str) -> Iterator[Check]:
    """Every check, in order; one failing does not stop the others."""
    checks: list[tuple[str, Callable[[], Check]]] = [
        ("stack", lambda: _stack_status(stack)),
        ("dry run", lambda: _dry_run(api, job_type, client_id)),
        ("probe", lambda: _probe(stack, client_id)),
        ("alarms", lambda: _alarms(stack)),
    ]
    for name, check in checks:
        try:
            yield check()
        except Exception as exc:  # noqa: BLE001 - a check that cannot run is a failed check
            yield Check(name, False, f"{type(exc).__name__}: {exc}")


def _stack_status(stack: Stack) -> Check:
    [described] = stack.client("cloudformation").describe_stacks(StackName=stack.name)["Stacks"]
    status = str(described["StackStatus"])
    return Check("stack", status in HEALTHY_STACK, f"{stack.name}: {status}")


def _dry_run(api: ApiClient, job_type: str, client_id: str) -> Check:
    try:
        accepted, location = api.start_run_at(job_type, [client_id], dry_run=True)
    except ApiError as exc:
        return Check("dry run", False, f"POST /jobs/{job_type}/runs: {exc}")
    deadline = time.monotonic() + DRY_RUN_SECONDS
    run = api.run_at(location)  # the Location leads to the run, under the API's stage
    while RunStatus(run.status) not in FINAL_STATUSES and time.monotonic() < deadline:
        time.sleep(1.0)
        run = api.run_at(location)
    planned = any(issue.startswith("dry run: 1 client(s) would run") for issue in run.issues)
    passed = run.status == RunStatus.SUCCEEDED.value and planned
    problems = "; ".join(i for i in run.issues if not i.startswith("dry run:"))
    detail = f"run {accepted.run_id}: {run.status}" + (f" ({problems})" if problems else "")
    return Check("dry run", passed, detail)


def _probe(stack: Stack, client_id: str) -> Check:
    result = stack.invoke(stack.outputs["HealthProbeName"], {"client_ids": [client_id]})
    probes: list[dict[str, Any]] = result.get("probes", [])
    if not probes:
        return Check("probe", False, f"{client_id}: no enabled client of that id to probe")
    [row] = probes
    latency = row.get("latency_ms")
    shown = f", {latency:.0f} ms" if latency is not None else ""
    error = f": {row['error']}" if row.get("error") else ""
    return Check(
        "probe",
        row["status"] == "up",
        f"{client_id}: {row['status']}{shown}, circuit {row['circuit']}{error}",
    )


def _alarms(stack: Stack) -> Check:
    resources = stack.client("cloudformation").describe_stack_resources(StackName=stack.name)
    names = [
        r["PhysicalResourceId"]
        for r in resources["StackResources"]
        if r["ResourceType"] == "AWS::CloudWatch::Alarm"
    ]
    states = _alarm_states(stack.client("cloudwatch"), names)
    firing = sorted(name for name, state in states.items() if state == "ALARM")
    missing = sorted(set(names) - set(states))
    detail = f"{len(names)} alarms, {len(firing)} in ALARM"
    detail += f": {', '.join(firing)}" if firing else ""
    detail += f"; not found: {', '.join(missing)}" if missing else ""
    return Check("alarms", not firing and not missing and bool(names), detail)


def _alarm_states(cloudwatch: Any, names: list[str]) -> dict[str, str]:
    states: dict[str, str] = {}
    for start in range(0, len(names), 100):  # DescribeAlarms takes 100 names at most
        described = cloudwatch.describe_alarms(AlarmNames=names[start : start + 100])
        states |= {a["AlarmName"]: a["StateValue"] for a in described["MetricAlarms"]}
    return states
