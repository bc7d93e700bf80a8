"""The deployed stack as the CLI sees it: outputs by name, clients bound to its endpoint.

Resource names come from the stack's outputs, so the same commands work against the local
stack and against AWS. The local stack is used when ``.jobkit/local.json`` exists, unless
``JOBKIT_TARGET=aws``.
"""

import json
import os
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import boto3
from pydantic import BaseModel

from jobkit_cli.paths import state_dir

LOCAL_CREDENTIALS = {"aws_access_key_id": "test", "aws_secret_access_key": "test"}


class LocalState(BaseModel):
    """What `jobkit up` started, written to .jobkit/local.json."""

    endpoint_url: str
    region: str = "us-east-1"
    stack_name: str = "jobkit-local"
    external_url: str
    ministack_pid: int
    external_pid: int


def local_state_path() -> Any:
    return state_dir() / "local.json"


def load_local_state() -> LocalState | None:
    path = local_state_path()
    if not path.is_file():
        return None
    return LocalState.model_validate_json(path.read_text())


@dataclass
class Stack:
    name: str
    region: str
    endpoint_url: str | None = None
    external_url: str | None = None

    @classmethod
    def current(cls) -> "Stack":
        local = load_local_state()
        if local is not None and os.environ.get("JOBKIT_TARGET", "local") != "aws":
            return cls(local.stack_name, local.region, local.endpoint_url, local.external_url)
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        return cls(os.environ.get("JOBKIT_STACK", "jobkit"), region)

    @property
    def is_local(self) -> bool:
        return self.endpoint_url is not None

    def client(self, service: str) -> Any:
        kwargs: dict[str, Any] = {"region_name": self.region}
        if self.endpoint_url:
            kwargs.update(endpoint_url=self.endpoint_url, **LOCAL_CREDENTIALS)
        return boto3.client(service, **kwargs)  # type: ignore[call-overload]

    def resource(self, service: str) -> Any:
        kwargs: dict[str, Any] = {"region_name": self.region}
        if self.endpoint_url:
            kwargs.update(endpoint_url=self.endpoint_url, **LOCAL_CREDENTIALS)
        return boto3.resource(service, **kwargs)  # type: ignore[call-overload]

    @cached_property
    def _outputs(self) -> list[dict[str, str]]:
        described = self.client("cloudformation").describe_stacks(StackName=self.name)
        return list(described["Stacks"][0].get("Outputs", []))

    @property
    def outputs(self) -> dict[str, str]:
        return {o["OutputKey"]: o["OutputValue"] for o in self._outputs}

    @property
    def planners(self) -> dict[str, str]:
        """Job type -> planner function name, from outputs described ``planner:<job type>``."""
        return {
            o["Description"].removeprefix("planner:"): o["OutputValue"]
            for o in self._outputs
            if o.get("Description", "").startswith("planner:")
        }

    def table(self, output: str) -> Any:
        return self.resource("dynamodb").Table(self.outputs[output])

    def invoke(self, function_name: str, payload: dict[str, Any]) -> dict[str, Any]:
        response = self.client("lambda").invoke(
            FunctionName=function_name, Payload=json.dumps(payload).encode()
        )
        body = json.loads(response["Payload"].read() or b"null")
        if response.get("FunctionError"):
            message = body.get("errorMessage") if isinstance(body, dict) else body
            raise RuntimeError(f"{function_name} failed: {message}")
        return body if isinstance(body, dict) else {"result": body}
