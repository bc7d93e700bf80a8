"""What AWS does with template.yaml that MiniStack does not show, read off SAM's transform.

Each test transforms the template with samtranslator (what CloudFormation runs for
`sam deploy`) and asserts on the result: the resources AWS will be asked to create.
"""

import json
import re
from collections.abc import Iterator
from functools import cache
from typing import Any

import pytest
from pydantic import BaseModel

from jobkit import settings as settings_module
from tests.support import processor_env, template, transformed_template

# The longest stack name CloudFormation accepts: every name derived from it must still fit.
LONGEST_STACK_NAME = "j" + "x" * 127
# AWS's limits on the names this template may set, by resource type and property.
NAME_LIMITS = {
    ("AWS::Lambda::Function", "FunctionName"): 64,
    ("AWS::Lambda::LayerVersion", "LayerName"): 140,
    ("AWS::Events::EventBus", "Name"): 256,
    ("AWS::Events::Rule", "Name"): 64,
    ("AWS::Scheduler::ScheduleGroup", "Name"): 64,
    ("AWS::Scheduler::Schedule", "Name"): 64,
    ("AWS::CloudWatch::Dashboard", "DashboardName"): 255,
    ("AWS::CloudWatch::Alarm", "AlarmName"): 255,
    ("AWS::IAM::Role", "RoleName"): 64,
    ("AWS::SQS::Queue", "QueueName"): 80,
    ("AWS::DynamoDB::Table", "TableName"): 255,
    ("AWS::SNS::Topic", "TopicName"): 256,
    ("AWS::Logs::LogGroup", "LogGroupName"): 512,
    ("AWS::KMS::Alias", "AliasName"): 256,
}
# What CloudFormation generates at most for a resource named after nothing (a function's
# name: stack, logical id and a suffix, cut to 64).
GENERATED_NAME_LENGTH = {"AWS::Lambda::Function": 64}
# The UUID in a stack's id, unique per stack: arn:...:stack/<name>/<uuid>.
STACK_UUID = {"Fn::Select": [2, {"Fn::Split": ["/", {"Ref": "AWS::StackId"}]}]}
# CloudWatch Logs' accepted retention periods (PutRetentionPolicy).
LOG_RETENTION_DAYS = [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096,
                      1827, 2192, 2557, 2922, 3288, 3653]  # fmt: skip


@cache
def _aws() -> dict[str, Any]:
    return transformed_template()


def _resources(kind: str | None = None) -> dict[str, dict[str, Any]]:
    resources: dict[str, dict[str, Any]] = _aws()["Resources"]
    return {name: r for name, r in resources.items() if kind is None or r["Type"] == kind}


def _refs(value: Any) -> Iterator[str]:
    """Every logical id a value refers to (Ref, GetAtt, ${...} in Sub), conditions included."""
    if isinstance(value, dict):
        for key, inner in value.items():
            if key == "Ref" and isinstance(inner, str):
                yield inner
            elif key == "Fn::GetAtt":
                yield inner[0] if isinstance(inner, list) else inner.split(".")[0]
            elif key == "Fn::Sub":
                text = inner[0] if isinstance(inner, list) else inner
                yield from (m.split(".")[0] for m in re.findall(r"\$\{([^}!]+)\}", text))
                if isinstance(inner, list):
                    yield from _refs(inner[1])
            else:
                yield from _refs(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from _refs(inner)


def _depends_on(name: str) -> set[str]:
    """The resources CloudFormation creates before ``name`` (references anywhere, DependsOn)."""
    resources = _resources()
    seen: set[str] = set()
    todo = [name]
    while todo:
        resource = resources[todo.pop()]
        direct = set(_refs({k: v for k, v in resource.items() if k != "Condition"}))
        depends = resource.get("DependsOn", [])
        direct |= {depends} if isinstance(depends, str) else set(depends)
        for other in direct & set(resources) - seen:
            seen.add(other)
            todo.append(other)
    return seen


def _resolved_length(value: Any, kind: str) -> int:
    """A name's length once deployed under the longest stack name."""
    if isinstance(value, str):
        return len(value)
    if "Fn::Sub" in value:
        text, variables = value["Fn::Sub"], {}
        if isinstance(text, list):
            text, variables = text
        for name, variable in variables.items():
            # Only the stack id's UUID part: Select 2 of its "/"-split
            assert variable == STACK_UUID, (name, variable)

        def one(match: re.Match[str]) -> str:
            ref = match.group(1)
            if ref == "AWS::StackName":
                return LONGEST_STACK_NAME
            if ref in variables:
                return "x" * 36
            target = _resources()[ref.split(".")[0]]["Type"]
            return "x" * GENERATED_NAME_LENGTH[target]

        return len(re.sub(r"\$\{([^}]+)\}", one, text))
    raise AssertionError(f"a {kind} name of a form this test cannot resolve: {value}")


def _stack_scoped(value: Any) -> bool:
    text = json.dumps(value)
    return (
        "AWS::StackName" in text
        or "AWS::StackId" in text
        or any(r in _resources() for r in _refs(value))
    )


def test_no_fixed_physical_name_and_every_derived_name_fits_the_longest_stack_name() -> None:
    named: list[str] = []
    for logical_id, resource in _resources().items():
        for (kind, prop), limit in NAME_LIMITS.items():
            if resource["Type"] != kind or prop not in resource.get("Properties", {}):
                continue
            value = resource["Properties"][prop]
            named.append(logical_id)
            if kind == "AWS::Scheduler::Schedule":
                # Unique within its group, and every group here is this stack's own
                group = resource["Properties"]["GroupName"]
                assert _resources()[group["Ref"]]["Type"] == "AWS::Scheduler::ScheduleGroup"
            elif kind == "AWS::Events::Rule":
                # Unique within its bus, and the bus is this stack's own
                bus = resource["Properties"]["EventBusName"]
                assert _resources()[bus["Ref"]]["Type"] == "AWS::Events::EventBus"
            else:
                assert _stack_scoped(value), f"{logical_id}.{prop} is fixed: {value}"
            assert _resolved_length(value, kind) <= limit, (logical_id, prop, limit)
    assert {"EventsBus", "JobHealthDashboard"} <= set(named)
    # SAM gives each layer version a logical id with its content's hash
    assert sum(n.startswith("CommonLayer") for n in named) == 2
    # Before: the retry worker was `<stack>-retry-worker`, the layer `CommonLayer` everywhere
    assert "FunctionName" not in _resources()["RetryWorker"]["Properties"]


def test_every_schedule_lives_in_the_stacks_own_group_and_the_retry_role_is_scoped_to_it() -> None:
    [(group, definition)] = _resources("AWS::Scheduler::ScheduleGroup").items()
    assert "AWS::StackId" in json.dumps(definition["Properties"]["Name"])  # unique per stack
    schedules = _resources("AWS::Scheduler::Schedule")
    assert len(schedules) >= 4
    for name, schedule in schedules.items():
        assert schedule["Properties"]["GroupName"] == {"Ref": group}, name
    # The one-off retries: created in that group, by functions allowed only there
    assert template()["Globals"]["Function"]["Environment"]["Variables"][
        "RETRY_SCHEDULE_GROUP"
    ] == (group)
    creating = [
        statement
        for resource in _resources("AWS::IAM::Role").values()
        for policy in resource["Properties"].get("Policies", [])
        for statement in policy["PolicyDocument"]["Statement"]
        if "scheduler:CreateSchedule" in json.dumps(statement["Action"])
    ]
    assert len(creating) >= 4
    for statement in creating:
        arn = statement["Resource"]["Fn::Sub"]
        assert arn.endswith(f":schedule/${{{group}}}/jobkit-retry-*"), arn
    trust = _resources()["RetrySchedulerRole"]["Properties"]["AssumeRolePolicyDocument"]
    [assume] = trust["Statement"]
    assert assume["Condition"]["StringEquals"]["aws:SourceArn"] == {"Fn::GetAtt": [group, "Arn"]}


def _stages() -> list[str]:
    stages = list(_resources("AWS::ApiGateway::Stage"))
    # A deployment with a StageName creates a stage of that name too (SAM's "Stage")
    stages += [
        f"{name}:{d['Properties']['StageName']}"
        for name, d in _resources("AWS::ApiGateway::Deployment").items()
        if "StageName" in d["Properties"]
    ]
    return stages


def test_the_api_has_exactly_one_stage_with_throttling_logs_and_tracing() -> None:
    assert _stages() == ["Apiv1Stage"]
    stage = _resources()["Apiv1Stage"]["Properties"]
    assert stage["StageName"] == "v1" and stage["TracingEnabled"] is True
    assert stage["AccessLogSetting"]["DestinationArn"] == {"Fn::GetAtt": ["ApiAccessLogs", "Arn"]}
    [throttle] = stage["MethodSettings"]
    assert (throttle["ThrottlingRateLimit"], throttle["ThrottlingBurstLimit"]) == (20, 50)


def test_api_gateways_own_refusals_are_part_of_the_deployment_with_the_error_body() -> None:
    # SAM writes GatewayResponses into the API's OpenAPI body, so each deployment carries them
    # (a separate AWS::ApiGateway::GatewayResponse takes effect only at the next deployment).
    body = _resources("AWS::ApiGateway::RestApi")["Api"]["Properties"]["Body"]
    responses = body["x-amazon-apigateway-gateway-responses"]
    statuses = {kind: r.get("statusCode") for kind, r in responses.items()}
    assert statuses == {
        "UNAUTHORIZED": "401",
        "ACCESS_DENIED": "403",
        "MISSING_AUTHENTICATION_TOKEN": "403",
        "THROTTLED": "429",
        "DEFAULT_4XX": None,
        "DEFAULT_5XX": None,
    }
    for response in responses.values():
        template = response["responseTemplates"]["application/json"]
        assert template == '{"error":$context.error.messageString}'


def test_access_logs_come_after_the_accounts_api_gateway_role_when_the_stack_creates_it() -> None:
    parameters = template()["Parameters"]["CreateApiGatewayAccountRole"]
    assert parameters["Default"] == "true"  # a fresh account has no role
    account = _resources()["ApiGatewayAccount"]
    assert account["Condition"] == "CreateApiGatewayAccount"
    role = _resources()["ApiGatewayCloudWatchRole"]
    assert role["Properties"]["ManagedPolicyArns"][0]["Fn::Sub"].endswith(
        "service-role/AmazonAPIGatewayPushToCloudWatchLogs"
    )
    # Created before the stage: CloudFormation orders by references, and a DependsOn cannot
    # name a resource a condition may leave out
    assert {"ApiGatewayAccount", "ApiGatewayCloudWatchRole"} <= _depends_on("Apiv1Stage")
    # Kept by `sam delete`: the account's setting outlives this stack
    for resource in (account, role):
        assert (resource["DeletionPolicy"], resource["UpdateReplacePolicy"]) == ("Retain",) * 2


def test_eventbridge_may_use_the_key_of_its_encrypted_targets_and_its_failures_alarm() -> None:
    key = _resources("AWS::KMS::Key")["DataKey"]["Properties"]["KeyPolicy"]["Statement"]
    [events] = [s for s in key if "events.amazonaws.com" in json.dumps(s["Principal"])]
    # As AWS documents it for SQS targets: aws:SourceAccount/SourceArn are not supported
    assert "Condition" not in events
    assert {"kms:Decrypt", "kms:GenerateDataKey"} <= set(events["Action"])
    [(rule_id, rule)] = _resources("AWS::Events::Rule").items()
    [target] = rule["Properties"]["Targets"]
    for queue in (target["Arn"], target["DeadLetterConfig"]["Arn"]):
        assert _resources()[queue["Fn::GetAtt"][0]]["Properties"]["KmsMasterKeyId"] == {
            "Ref": "DataKey"
        }
    failed = [
        a["Properties"]
        for a in _resources("AWS::CloudWatch::Alarm").values()
        if a["Properties"].get("MetricName") == "FailedInvocations"
    ]
    assert [{d["Name"]: d["Value"] for d in alarm["Dimensions"]} for alarm in failed] == [
        {"EventBusName": {"Ref": "EventsBus"}, "RuleName": rule["Properties"]["Name"]}
    ]


def _dead_letter_queues() -> set[str]:
    """Every queue something dead-letters into: redrive, function, rule and schedule DLQs."""
    queues: set[str] = set()
    for resource in _resources().values():
        props = resource.get("Properties", {})
        if "RedrivePolicy" in props:
            queues.add(props["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0])
        if "DeadLetterConfig" in props:
            queues.add(props["DeadLetterConfig"]["TargetArn"]["Fn::GetAtt"][0])
        for target in props.get("Targets", []) + [props.get("Target", {})]:
            if "DeadLetterConfig" in target:
                queues.add(target["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0])
    return queues


def test_every_asynchronous_path_has_a_dead_letter_queue() -> None:
    for name, function in _resources("AWS::Lambda::Function").items():
        assert "DeadLetterConfig" in function["Properties"], name  # async invokes
    for name, schedule in _resources("AWS::Scheduler::Schedule").items():
        assert "DeadLetterConfig" in schedule["Properties"]["Target"], name
    for name, rule in _resources("AWS::Events::Rule").items():
        assert all("DeadLetterConfig" in t for t in rule["Properties"]["Targets"]), name
    consumed = {
        m["Properties"]["EventSourceArn"]["Fn::GetAtt"][0]
        for m in _resources("AWS::Lambda::EventSourceMapping").values()
    }
    for queue in consumed:
        assert "RedrivePolicy" in _resources()[queue]["Properties"], queue
    # The one-off retry schedules are made by the functions: they name this DLQ, and the
    # role Scheduler sends it with may write to it (tests/unit/test_handlers.py has them use it)
    env = template()["Globals"]["Function"]["Environment"]["Variables"]
    assert env["RETRY_DLQ_ARN"] == "ScheduleDLQ.Arn"
    policy = _resources()["RetrySchedulerPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert {"Action": "sqs:SendMessage", "Effect": "Allow", "Resource": {
        "Fn::GetAtt": ["ScheduleDLQ", "Arn"]}} in policy  # fmt: skip


def test_every_dead_letter_queue_has_an_alarm_and_a_line_on_the_dashboard() -> None:
    queues = _dead_letter_queues()
    assert queues == {"WorkDLQ", "FunctionDLQ", "ScheduleDLQ", "WebhookDLQ", "DomainEventsDLQ"}
    watched = {
        alarm["Properties"]["Dimensions"][0]["Value"]["Fn::GetAtt"][0]
        for alarm in _resources("AWS::CloudWatch::Alarm").values()
        if alarm["Properties"].get("MetricName") == "ApproximateNumberOfMessagesVisible"
    }
    assert queues <= watched
    body = _resources("AWS::CloudWatch::Dashboard")["JobHealthDashboard"]["Properties"]
    text = json.dumps(body["DashboardBody"])
    for queue in queues:
        assert f"${{{queue}.QueueName}}" in text, queue


def test_the_key_every_table_and_every_dead_letter_queue_survive_delete_and_replacement() -> None:
    stateful = set(_resources("AWS::DynamoDB::Table")) | {"DataKey"} | _dead_letter_queues()
    assert len(stateful) == 14
    for name in stateful:
        resource = _resources()[name]
        assert (resource.get("DeletionPolicy"), resource.get("UpdateReplacePolicy")) == (
            "Retain",
            "Retain",
        ), name
    # The rest says what happens to it, rather than leaving it to the default
    for kind in ("AWS::SQS::Queue", "AWS::Logs::LogGroup"):
        for name, resource in _resources(kind).items():
            assert resource.get("DeletionPolicy") in ("Retain", "Delete"), name


def _condition_holds(name: str, parameters: dict[str, str]) -> bool:
    condition = _aws()["Conditions"][name]
    [(function, (left, right))] = condition.items()
    assert function == "Fn::Equals" and set(left) == {"Ref"}, condition
    return bool(parameters[left["Ref"]] == right)


@pytest.mark.parametrize("architecture", ["arm64", "x86_64"])
def test_the_functions_get_the_layer_built_for_their_architecture(architecture: str) -> None:
    parameters = {"Architecture": architecture}
    layers = {
        name: layer
        for name, layer in _resources("AWS::Lambda::LayerVersion").items()
        if _condition_holds(layer["Condition"], parameters)
    }
    [(deployed, layer)] = layers.items()
    assert layer["Properties"]["CompatibleArchitectures"] == [architecture]
    # SAM's build: this layer is its own build target, for this architecture only
    source = template()["Resources"]
    [source_id] = [n for n, r in source.items() if deployed.startswith(n) and "Layer" in n]
    assert source[source_id]["Metadata"]["BuildArchitecture"] == architecture
    for name, function in _resources("AWS::Lambda::Function").items():
        props = function["Properties"]
        assert props["Architectures"] == [{"Ref": "Architecture"}], name
        [choice] = props["Layers"]
        condition, when_true, when_false = choice["Fn::If"]
        chosen = when_true if _condition_holds(condition, parameters) else when_false
        assert chosen == {"Ref": deployed}, name


def _settings_field(variable: str) -> Any:
    for model in vars(settings_module).values():
        if isinstance(model, type) and issubclass(model, BaseModel):
            for field in model.model_fields.values():
                if field.alias == variable:
                    return field
    return None


def _bounds(field: Any) -> tuple[float | None, float | None]:
    low = high = None
    for constraint in field.metadata:
        low = getattr(constraint, "ge", None) or getattr(constraint, "gt", None) or low
        high = getattr(constraint, "le", None) or getattr(constraint, "lt", None) or high
    return low, high


def test_parameters_refuse_what_aws_or_the_functions_would_refuse() -> None:
    parameters = template()["Parameters"]
    # CloudWatch Logs takes only these: 45 would fail the deploy half-way through
    assert parameters["LogRetentionDays"]["AllowedValues"] == LOG_RETENTION_DAYS
    # Every number handed to a function is bounded as the function's settings bound it
    environments = [template()["Globals"]["Function"]["Environment"]["Variables"]] + [
        r["Properties"].get("Environment", {}).get("Variables", {})
        for r in template()["Resources"].values()
        if r["Type"] == "AWS::Serverless::Function"
    ]
    checked = 0
    for variables in environments:
        for variable, value in variables.items():
            if not (isinstance(value, str) and value in parameters):
                continue
            parameter, field = parameters[value], _settings_field(variable)
            if parameter["Type"] != "Number" or field is None:
                continue
            low, high = _bounds(field)
            if low is not None:
                assert float(parameter["MinValue"]) >= low, (value, low)
            if high is not None:
                assert float(parameter["MaxValue"]) <= high, (value, high)
            checked += 1
    assert checked >= 10
    url = re.compile(parameters["ExternalBaseUrl"]["AllowedPattern"])
    assert url.fullmatch("https://external.example.com/api")
    assert not url.fullmatch("external.example.com")
    schedule = re.compile(parameters["ProbeSchedule"]["AllowedPattern"])
    assert schedule.fullmatch("rate(5 minutes)") and schedule.fullmatch("cron(0 * * * ? *)")
    assert not schedule.fullmatch("every 5 minutes")
    email = re.compile(parameters["AlertEmail"]["AllowedPattern"])
    assert email.fullmatch("") and email.fullmatch("ops@example.com")
    assert not email.fullmatch("ops")


def test_the_processors_timeout_covers_its_largest_start_threshold_at_every_allowed_timeout() -> (
    None
):
    from jobkit.pipeline.budget import TimeBudget
    from jobkit.settings import ProcessorSettings

    processor = template()["Resources"]["Processor"]["Properties"]
    parameters = template()["Parameters"]
    queue = template()["Resources"]["WorkQueue"]["Properties"]
    # AWS's guidance: the queue's visibility timeout at least 6 x the function's timeout
    assert queue["VisibilityTimeout"] >= 6 * processor["Timeout"]
    low = parameters["ExternalTimeoutSeconds"]["MinValue"]
    high = parameters["ExternalTimeoutSeconds"]["MaxValue"]
    for timeout in range(low, high + 1):
        # The template's own variables over placeholders for the names
        variables = {k: v for k, v in processor["Environment"]["Variables"].items()}
        env = processor_env(EXTERNAL_TIMEOUT_SECONDS=str(timeout), **variables)
        # Every allowed per-attempt timeout leaves the processor able to make one attempt
        budget = TimeBudget.from_settings(ProcessorSettings.model_validate(env))
        # And a page item, even in a batch that owes an acknowledgement, can start at all
        worst = budget.call_seconds + budget.after_call(owes_ack=True)
        assert worst <= processor["Timeout"], (timeout, worst)
