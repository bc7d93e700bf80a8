"""Helpers shared by every test tier: event fixtures, a Lambda context, the template's tables."""

import json
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from jobkit_cli.template import load_template

ROOT = Path(__file__).resolve().parent.parent


def processor_env(**overrides: str) -> dict[str, str]:
    """What the processor's settings need (ProcessorSettings), with placeholder names."""
    env = {
        "CONFIG_TABLE": "c",
        "RUNS_TABLE": "r",
        "WORK_QUEUE_URL": "q",
        "CONTROL_TABLE": "t",
        "EXTERNAL_BASE_URL": "https://external.example.com",
        "CREDENTIALS_SECRET_PREFIX": "jobkit/external",
        "RETRY_FUNCTION_ARN": "arn",
        "RETRY_ROLE_ARN": "arn",
        "RETRY_SCHEDULE_GROUP": "jobkit-schedules",
        "RECORDS_TABLE": "rec",
        "EVENT_BUS_NAME": "bus",
        "IDEMPOTENCY_TABLE": "idem",
        "WORK_DLQ_URL": "dlq",
        "EXTERNAL_TIMEOUT_SECONDS": "5",
    }
    return {**env, **overrides}


def load_event(name: str) -> dict[str, Any]:
    """A sample event from events/, the same files `sam local invoke -e` uses."""
    event: dict[str, Any] = json.loads((ROOT / "events" / f"{name}.json").read_text())
    return event


@dataclass
class LambdaContext:
    function_name: str = "jobkit-test"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:jobkit-test"
    aws_request_id: str = "6f1c5c6e-2b1a-4a55-9d57-2f0b6c1d9e0a"
    remaining_ms: int = 30_000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def add_records(
    base_url: str, client_id: str, count: int, completed_days_ago: float = 0.0
) -> dict[str, Any]:
    """``count`` more records for a client already seeded in the fake external system (see
    jobkit_cli.seed.seed_client), numbered on from its last and unacknowledged, completed a
    second apart up to a second before now, or ``completed_days_ago`` earlier. Returns the
    answer: ``{"client_id", "added", "records"}``, records being the client's new total."""
    body = {"count": count, "completed_days_ago": completed_days_ago}
    # Plain HTTP needs no CA bundle, and loading one costs ~40 ms per client.
    verify = urlsplit(base_url).scheme == "https"
    with httpx.Client(base_url=base_url, timeout=10.0, verify=verify) as admin:
        response = admin.post(f"/_admin/clients/{quote(client_id, safe='')}/records", json=body)
        response.raise_for_status()
        answer: dict[str, Any] = response.json()
        return answer


def template() -> dict[str, Any]:
    return load_template(ROOT)


def table_definitions() -> dict[str, dict[str, Any]]:
    """Logical id -> CreateTable arguments, straight from template.yaml."""
    tables = {}
    for logical_id, resource in template()["Resources"].items():
        if resource["Type"] != "AWS::DynamoDB::Table":
            continue
        props = resource["Properties"]
        definition = {
            "TableName": logical_id,
            "AttributeDefinitions": props["AttributeDefinitions"],
            "KeySchema": props["KeySchema"],
            "BillingMode": props["BillingMode"],
        }
        if "GlobalSecondaryIndexes" in props:
            definition["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
        tables[logical_id] = definition
    return tables


SAM_PYTHON = ROOT / ".jobkit" / "venvs" / "sam" / "bin" / "python"
_TRANSFORM = """
import json, os, sys
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse
source = yaml_parse(open(sys.argv[1]).read())
for resource in source["Resources"].values():
    props = resource.get("Properties", {})
    for key in ("CodeUri", "ContentUri"):  # where `sam package` puts the code
        if isinstance(props.get(key), str):
            props[key] = "s3://artifacts/" + props[key]
class NoManagedPolicies:  # the template names managed policies by ARN only
    def load(self):
        return {}
print(json.dumps(transform(source, json.loads(sys.argv[2]), NoManagedPolicies())))
"""


def transformed_template(**parameters: str) -> dict[str, Any]:
    """template.yaml after SAM's transform, as CloudFormation runs it on `sam deploy`.

    Run by the SAM CLI's own samtranslator (its venv, `make setup`): the translator pins
    a pydantic older than the layer's, so it does not share the project's venv.
    """
    values = {"ExternalBaseUrl": "https://external.example.com", **parameters}
    result = subprocess.run(  # noqa: S603 - our own interpreter and script
        [str(SAM_PYTHON), "-c", _TRANSFORM, str(ROOT / "template.yaml"), json.dumps(values)],
        capture_output=True,
        text=True,
        check=True,
        env={"AWS_DEFAULT_REGION": "us-east-1", "PATH": "/usr/bin:/bin"},
    )
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def copy_project(target: Path) -> None:
    """The checkout's files as git sees them (tracked and new), without build output."""
    listed = (
        subprocess.run(
            ["git", "ls-files", "-co", "--exclude-standard", "-z"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .split("\0")
    )
    archive = target / "project.tar"
    with tarfile.open(archive, "w") as tar:
        for name in filter(None, listed):
            if (ROOT / name).exists():
                tar.add(ROOT / name, arcname=name)
    with tarfile.open(archive) as tar:
        tar.extractall(target, filter="data")
    archive.unlink()
