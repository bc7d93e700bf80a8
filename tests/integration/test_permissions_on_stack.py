"""At the session's finish (``at_finish``, after every other test): every AWS request any
function made during the suite is one its deployed role allows. MiniStack does not enforce IAM,
AWS does: a request missing from a function's policy passes every other test here and fails as
AccessDenied once deployed. Each function logs the permissions its requests needed
(``jobkit.tooling.permissions``); IAM's policy simulator, asked about the roles as deployed
(SAM's policy templates and managed policies included), decides."""

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from jobkit.tooling.permissions import (
    ANY,
    BUS,
    FUNCTION,
    INDEX,
    QUEUE,
    ROLE,
    SCHEDULE,
    SECRET,
    TABLE,
    Permission,
)
from jobkit_cli.logs import log_events
from jobkit_cli.stack import Stack

pytestmark = pytest.mark.integration


def _arn(permission: Permission, region: str, account: str) -> str:
    """The ARN IAM evaluates for a resource as the request named it."""
    kind, name = permission.kind, permission.name
    if name.startswith("arn:") or kind == ANY:
        return name
    prefix = {
        TABLE: f"arn:aws:dynamodb:{region}:{account}:table/",
        INDEX: f"arn:aws:dynamodb:{region}:{account}:table/",
        BUS: f"arn:aws:events:{region}:{account}:event-bus/",
        SCHEDULE: f"arn:aws:scheduler:{region}:{account}:schedule/",
        FUNCTION: f"arn:aws:lambda:{region}:{account}:function:",
        QUEUE: f"arn:aws:sqs:{region}:{account}:",
        SECRET: f"arn:aws:secretsmanager:{region}:{account}:secret:",
        ROLE: "",
    }[kind]
    if kind == QUEUE:
        name = name.rstrip("/").rsplit("/", 1)[-1]
    if kind == SECRET:
        name += "-AbCdEf"  # a secret's ARN ends in six random characters
    return prefix + name


def _functions(stack: Stack) -> dict[str, str]:
    """Physical function name -> logical id, for this stack's functions."""
    cloudformation = stack.client("cloudformation")
    found = {}
    for page in cloudformation.get_paginator("list_stack_resources").paginate(StackName=stack.name):
        for resource in page["StackResourceSummaries"]:
            if resource["ResourceType"] == "AWS::Lambda::Function":
                found[resource["PhysicalResourceId"]] = resource["LogicalResourceId"]
    return found


def _permissions_used(stack: Stack, function_name: str, since_ms: int) -> set[Permission]:
    used: set[Permission] = set()
    for event in log_events(stack.client("logs"), f"/aws/lambda/{function_name}", since_ms):
        message = event["message"]
        if '"aws requests"' in message:
            line = json.loads(message[message.index("{") :])
            used.update(Permission.parse(key) for key in line.get("permissions", []))
    return used


def _denied(iam: Any, role_arn: str, wanted: set[tuple[str, str]]) -> list[tuple[str, str]]:
    """The (action, resource ARN) pairs the role's policies do not allow."""
    by_resource: dict[str, set[str]] = defaultdict(set)
    for action, resource in wanted:
        by_resource[resource].add(action)
    denied = []
    for resource, actions in sorted(by_resource.items()):
        results = iam.simulate_principal_policy(
            PolicySourceArn=role_arn, ActionNames=sorted(actions), ResourceArns=[resource]
        )["EvaluationResults"]
        denied += [
            (result["EvalActionName"], resource)
            for result in results
            if result["EvalDecision"] != "allowed"
        ]
    return denied


def _whole_suite(request: pytest.FixtureRequest) -> bool:
    collected = {Path(str(item.path)).name for item in request.session.items}
    return {path.name for path in Path(__file__).parent.glob("test_*.py")} <= collected


@pytest.mark.at_finish
def test_every_request_a_function_made_is_allowed_by_its_deployed_role(
    stack: Stack, deployed_from_ms: int, request: pytest.FixtureRequest
) -> None:
    if not _whole_suite(request):
        pytest.skip("run the whole integration suite: it drives every function")
    lambdas, iam = stack.client("lambda"), stack.client("iam")
    used_by: dict[str, set[Permission]] = {}
    roles: dict[str, str] = {}
    for function_name, logical_id in _functions(stack).items():
        used_by[logical_id] = _permissions_used(stack, function_name, deployed_from_ms)
        roles[logical_id] = lambdas.get_function_configuration(FunctionName=function_name)["Role"]
    # Every function ran, so a check of only some cannot pass unnoticed.
    assert sorted(name for name, used in used_by.items() if not used) == []
    assert any(p.action == "dynamodb:PutItem" for p in used_by["Processor"])

    denied = {}
    for logical_id, used in sorted(used_by.items()):
        account = roles[logical_id].split(":")[4]
        wanted = {(p.action, _arn(p, stack.region, account)) for p in used}
        if missing := _denied(iam, roles[logical_id], wanted):
            denied[logical_id] = missing
    assert denied == {}


def test_the_policy_simulator_denies_what_a_role_was_not_given(stack: Stack) -> None:
    # The check above is only as good as the simulator: it must say no as well as yes
    [function_name] = [name for name, id_ in _functions(stack).items() if id_ == "Processor"]
    role = stack.client("lambda").get_function_configuration(FunctionName=function_name)["Role"]
    account = role.split(":")[4]
    table = stack.outputs["ConfigTableName"]
    # The processor reads and updates client configs; it never deletes one
    delete = Permission("dynamodb:DeleteItem", TABLE, table)
    read = Permission("dynamodb:GetItem", TABLE, table)
    wanted = {(p.action, _arn(p, stack.region, account)) for p in (delete, read)}
    assert _denied(stack.client("iam"), role, wanted) == [
        ("dynamodb:DeleteItem", _arn(delete, stack.region, account))
    ]
