"""CloudFormation refuses a parameter value AWS or the functions would refuse, before it
creates anything: the template's Parameters, as the local stack's CloudFormation checks them."""

import uuid

import pytest
import yaml

from jobkit_cli.stack import Stack
from tests.support import template

pytestmark = pytest.mark.integration

BAD = {
    "LogRetentionDays": "45",  # CloudWatch Logs has no 45-day retention
    "ExternalBaseUrl": "external.example.com",  # no scheme: every call would fail
    "CircuitFailureThreshold": "0",  # the functions refuse it at cold start
    "RetryMaxRetries": "50",
    "ProbeSchedule": "every minute",  # not a Scheduler expression
    "AlertEmail": "ops",
}


def _parameters_only() -> str:
    """template.yaml's Parameters over one resource that costs nothing: the whole template
    is over CreateStack's inline size limit, and only the parameters are being checked."""
    return yaml.safe_dump(
        {
            "AWSTemplateFormatVersion": "2010-09-09",
            "Parameters": template()["Parameters"],
            "Resources": {"Nothing": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
        }
    )


def _create(stack: Stack, name: str, values: dict[str, str]) -> None:
    stack.client("cloudformation").create_stack(
        StackName=name,
        TemplateBody=_parameters_only(),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in values.items()],
    )


@pytest.mark.parametrize("parameter", sorted(BAD))
def test_a_value_aws_would_refuse_fails_the_deploy_before_anything_is_created(
    stack: Stack, parameter: str
) -> None:
    cloudformation = stack.client("cloudformation")
    name = f"jobkit-params-{uuid.uuid4().hex[:8]}"
    values = {"ExternalBaseUrl": "https://external.example.com", parameter: BAD[parameter]}
    with pytest.raises(cloudformation.exceptions.ClientError) as refused:
        _create(stack, name, values)
    assert refused.value.response["Error"]["Code"] == "ValidationError"
    assert parameter in str(refused.value)
    with pytest.raises(cloudformation.exceptions.ClientError):
        cloudformation.describe_stacks(StackName=name)


def test_the_defaults_and_the_local_values_are_accepted(stack: Stack) -> None:
    cloudformation = stack.client("cloudformation")
    name = f"jobkit-params-{uuid.uuid4().hex[:8]}"
    _create(stack, name, {"ExternalBaseUrl": "https://external.example.com"})
    try:
        described = cloudformation.describe_stacks(StackName=name)["Stacks"][0]
        given = {p["ParameterKey"]: p["ParameterValue"] for p in described["Parameters"]}
        assert given["LogRetentionDays"] == "30"
        assert set(given) == set(template()["Parameters"])
    finally:
        cloudformation.delete_stack(StackName=name)
